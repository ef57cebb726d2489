"""Compiled inner loops of the analysis (numba), used when numba is installed.

The STFT's windowing and the two-channel cue pass touch every time-frequency bin a few
times; in numpy each step is its own pass over memory (a dozen for the two-channel cues),
here each is one loop that reads a frame's bins once while they are in cache.  Every
kernel has a numpy twin (in :mod:`spa2v.cues` or :mod:`spa2v.tracking`) that computes the
same figures (to float32 rounding) and serves where numba is missing, or when
``SPA2V_JIT=0`` is set; the tests run both.

The kernels are compiled on first use and cached on disk (numba's ``cache=True``), so
only the first process pays the compilation (a few seconds).
"""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np

_NUMBA = importlib.util.find_spec("numba") is not None
"""numba is installed (a dependency wherever it has wheels; it is imported, and each
kernel compiled, on the kernel's first call, so that importing spa2v stays quick)."""

JIT = _NUMBA and os.environ.get("SPA2V_JIT", "1") != "0"
"""Whether :mod:`spa2v.cues` and :mod:`spa2v.tracking` use the compiled kernels (numba
installed and ``SPA2V_JIT`` not ``0``)."""

# floating-point freedoms that let the loops vectorise (sums in any order, fused
# multiply-add, division by a reciprocal); never the no-NaN or no-infinity assumptions
_FASTMATH = {"reassoc", "contract", "arcp", "nsz"}


def _jit(fn):
    """``fn`` compiled by numba on its first call (``None`` without numba)."""
    if not _NUMBA:  # pragma: no cover - exercised only where numba is absent
        return None
    compiled = None

    @functools.wraps(fn)
    def call(*args):
        nonlocal compiled
        if compiled is None:
            try:
                import numba
            except ImportError as exc:  # installed but broken (a numpy it does not support)
                raise RuntimeError(f"numba is installed but does not import ({exc}); set "
                                   "SPA2V_JIT=0 to run the numpy paths instead") from exc

            # numpy's error model: a division by zero gives inf or NaN, as in numpy,
            # instead of a check (and a branch) per division that keeps loops scalar
            options = dict(nogil=True, fastmath=_FASTMATH, error_model="numpy")
            try:
                compiled = numba.njit(cache=True, **options)(fn)
            except RuntimeError:  # no writable cache directory: compile in each process
                compiled = numba.njit(**options)(fn)
        return compiled(*args)

    return call


def _window_frames(y, first, hop, win, out, power):
    """``out[i] = y[(first + i) * hop : ... + n_fft] * win`` and ``power[i]``, the sum of
    squares of ``out[i]``, for each row ``i`` of ``out``."""
    n_fft = win.size
    for i in range(out.shape[0]):
        # row views: their indices need no wrap-around checks, so the loop vectorises
        frame = y[(first + i) * hop : (first + i) * hop + n_fft]
        row = out[i]
        acc = np.float32(0.0)
        for k in range(n_fft):
            v = frame[k] * win[k]
            row[k] = v
            acc += v * v
        power[i] = acc


window_frames = _jit(_window_frames)


def _window_sums(x, starts, win, out):
    """``out[i] += x[starts[i] : starts[i] + win].sum(axis=0)`` (cut at the last row) for a
    2-D ``x``, accumulated in ``out``'s precision (float64)."""
    n = x.shape[0]
    for i in range(starts.size):
        acc = out[i]
        for t in range(starts[i], min(starts[i] + win, n)):
            row = x[t]
            for c in range(row.size):
                acc[c] += row[c]


window_sums = _jit(_window_sums)


def _two_channel_block(X, s, e, lo, hi, seg_a, seg_b, rise, floor, n_keep, eps, memory,
                       hist, c_re, c_im, seg_power, w_sum, kept, re, im):
    """The elementwise part of :func:`spa2v.cues.two_channel_cues` for frames ``s:e``.

    Writes each channel's power over the segments ``seg_a[i]:seg_b[i]`` (``seg_power``),
    the cross-spectrum ``X[0] * conj(X[1])`` over the first ``c_re.shape[1]`` bins
    (``c_re``, ``c_im``), and, over the GCC band ``lo:hi``, the PHAT-weighted
    cross-spectrum: with onset weighting (``re.shape[0] == 2``) times ``floor + w`` (row 0)
    and times ``w`` (row 1), ``w`` each bin's onset weight, whose per-frame sums go to
    ``w_sum`` and whose bins below ``n_keep`` to ``kept``; without, unweighted (row 0).
    ``hist`` ``(memory + at least e - s, bins)`` holds the band's summed power (both
    channels) of the ``memory`` frames before ``s`` in its first rows, and of the block's
    last ones on return.
    """
    F = c_re.shape[1]
    n_band = hi - lo
    onset = re.shape[0] == 2
    top = F
    for i in range(seg_b.size):
        top = max(top, seg_b[i])
    top = max(top, hi)
    P = np.empty((2, top), dtype=np.float32)
    w = np.empty(n_band, dtype=np.float32)
    inv = np.empty(n_band, dtype=np.float32)
    prev = np.empty(n_band, dtype=np.float32)
    rise32, eps32, floor32 = np.float32(rise), np.float32(eps), np.float32(floor)
    for t in range(s, e):
        i = t - s
        # row views: their indices need no wrap-around checks, so the loops vectorise
        left, right = X[0, t], X[1, t]
        pl, pr, cr, ci = P[0], P[1], c_re[t], c_im[t]
        for k in range(top):
            pl[k] = left[k].real * left[k].real + left[k].imag * left[k].imag
            pr[k] = right[k].real * right[k].real + right[k].imag * right[k].imag
        for g in range(seg_a.size):
            for ch in range(2):
                run = P[ch, seg_a[g] : seg_b[g]]
                acc = np.float32(0.0)
                for k in range(run.size):
                    acc += run[k]
                seg_power[g, ch, t] = acc
        for k in range(F):
            cr[k] = left[k].real * right[k].real + left[k].imag * right[k].imag
            ci[k] = left[k].imag * right[k].real - left[k].real * right[k].imag
        bl, br, bcr, bci = pl[lo:hi], pr[lo:hi], cr[lo:hi], ci[lo:hi]
        # (short loops over few arrays each: the compiler vectorises them)
        for j in range(n_band):  # PHAT: 1 / |cross| = 1 / (|left| |right|)
            inv[j] = np.float32(1.0) / (np.sqrt(bl[j]) * np.sqrt(br[j]) + eps32)
        if not onset:
            r0, i0 = re[0, i], im[0, i]
            for j in range(n_band):
                r0[j] = bcr[j] * inv[j]
                i0[j] = bci[j] * inv[j]
            continue
        now = hist[memory + i]
        for j in range(n_band):
            now[j] = bl[j] + br[j]
        prev[:] = hist[memory + i - 1]  # the previous frames' maximum
        for q in range(2, memory + 1):
            back = hist[memory + i - q]
            for j in range(n_band):
                prev[j] = max(prev[j], back[j])
        ws = np.float32(0.0)
        for j in range(n_band):
            wj = max(np.float32(1.0) - rise32 * prev[j] / (now[j] + eps32), np.float32(0.0))
            wj = wj if now[j] > eps32 else np.float32(0.0)  # silence carries no wavefront
            w[j] = wj
            ws += wj
        r0, i0, r1, i1 = re[0, i], im[0, i], re[1, i], im[1, i]
        for j in range(n_band):
            on = w[j] * inv[j]
            r1[j] = bcr[j] * on
            i1[j] = bci[j] * on
        for j in range(n_band):
            both = (w[j] + floor32) * inv[j]
            r0[j] = bcr[j] * both
            i0[j] = bci[j] * both
        w_sum[t] = ws
        for j in range(max(n_keep - lo, 0)):
            kept[t, lo + j] = w[j]
    if onset:
        n = e - s
        for q in range(memory):  # the block's last frames, for the next block
            hist[q] = hist[n + q]


two_channel_block = _jit(_two_channel_block)


def _row_peaks(r, eps):
    """Each row's maximum (the first, as ``np.argmax``), refined by a parabola through it
    and its neighbours: the position ``(rows,)`` in columns and the height
    (:func:`spa2v.cues.parabolic_peak` of ``np.argmax(r, axis=-1)``)."""
    n, m = r.shape
    pos = np.empty(n)
    height = np.empty(n)
    for i in range(n):
        k = 0
        for j in range(1, m):
            if r[i, j] > r[i, k]:
                k = j
        height[i] = r[i, k]
        if k < 1 or k > m - 2:
            pos[i] = min(max(k, 1), m - 2)
            continue
        y0, y1, y2 = np.float64(r[i, k - 1]), np.float64(r[i, k]), np.float64(r[i, k + 1])
        den = y0 - 2.0 * y1 + y2
        d = 0.5 * (y0 - y2) / den if abs(den) > eps else 0.0
        pos[i] = k + min(max(d, -0.5), 0.5)
    return pos, height


row_peaks = _jit(_row_peaks)


def _coherence_near(c_re, c_im, lag, cos_rows, sin_rows, e0, e1, eps):
    """``max(|cc[lag - 1]|, |cc[lag]|, |cc[lag + 1]|) * n_corr / 2 / sqrt(e0 * e1)``, clipped
    to [0, 1], per frame, where ``cc = irfft(c_re + 1j * c_im, n_corr)``: evaluated at those
    three lags only, from ``irfft``'s weights of each bin at lags ``0..R`` (rows of
    ``cos_rows`` and ``sin_rows``, ``(R + 1, bins)``; a negative lag by symmetry).  Every
    ``|lag| + 1`` must be at most ``R``."""
    n_bins = c_re.shape[1]
    n_corr = 2 * (n_bins - 1)
    out = np.empty(c_re.shape[0])
    for t in range(c_re.shape[0]):
        best = 0.0
        cr, ci = c_re[t], c_im[t]  # row views: no wrap-around checks, the loop vectorises
        for d in range(-1, 2):
            q = lag[t] + d
            cos_q, sin_q = cos_rows[abs(q)], sin_rows[abs(q)]
            sign = 1.0 if q >= 0 else -1.0
            even = np.float32(0.0)
            odd = np.float32(0.0)
            for k in range(n_bins):
                even += cr[k] * cos_q[k]
                odd += ci[k] * sin_q[k]
            best = max(best, abs(even - sign * odd))
        v = best * (n_corr / 2.0) / (np.sqrt(e0[t] * e1[t]) + eps)
        out[t] = min(max(v, 0.0), 1.0)
    return out


coherence_near = _jit(_coherence_near)


def _set_aside(e_win, e_sub, e_bin, key, e_re, e_im, e_w, k_of, speed_of, sub_t_s, s_re,
               s_im, cos_wide, cos_model, cos_tight, n_keys, eps):
    """The residual search's step that sets aside the bins a found source explains
    (``set_aside`` in :func:`spa2v.tracking._residual_window_peaks`, its numpy twin).

    Entry ``e`` (a time-frequency bin of window ``e_win[e]``, sub-block ``e_sub[e]``, bin
    ``e_bin[e]``, phasor ``e_re + 1j e_im``, weight ``e_w``) of a window with a source
    (grid row ``k_of >= 0``, sweeping at ``speed_of`` deg/s) loses its weight when its
    phase is within ``cos_model`` of the head model's for the source's direction at its
    sub-block, or within ``cos_tight`` of the source's own phase in that (window, bin),
    ``key[e]``: the mean phasor of the entries within ``cos_wide`` of the model's.
    """
    n = e_w.size
    n_grid = s_re.shape[0]
    o_re = np.zeros(n_keys)
    o_im = np.zeros(n_keys)
    c = np.empty(n, dtype=np.float32)
    for e in range(n):
        kw = k_of[e_win[e]]
        if kw < 0 or not e_w[e] > 0:
            continue
        k = kw + np.int64(np.rint(speed_of[e_win[e]] * sub_t_s[e_sub[e]]))
        k = min(max(k, 0), n_grid - 1)
        b = e_bin[e]
        c[e] = e_re[e] * s_re[k, b] - e_im[e] * s_im[k, b]  # cos of its mismatch with the model
        if c[e] > cos_wide:  # the source's own phase: the mean of its bins near the model's
            o_re[key[e]] += np.float64(e_re[e] * e_w[e])
            o_im[key[e]] += np.float64(e_im[e] * e_w[e])
    for e in range(n):
        if k_of[e_win[e]] < 0 or not e_w[e] > 0:
            continue
        q = key[e]
        own = (e_re[e] * o_re[q] + e_im[e] * o_im[q]) / (np.hypot(o_re[q], o_im[q]) + eps)
        if not (c[e] <= cos_model and own <= cos_tight):
            e_w[e] = 0.0


set_aside = _jit(_set_aside)


def _pick_peaks(H, centres, circular, max_sources, min_sep_deg, rel_height, min_height,
                az, height, count):
    """The greedy peak picking of :func:`spa2v.tracking._pick_peaks` (its numpy twin), row
    by row: ``az[w, :count[w]]`` and ``height[w, :count[w]]`` get the ``centres`` and
    values of row ``w``'s peaks, highest first.

    A peak is a local maximum (a plateau's last bin; the ends of the row only when
    ``circular``, its neighbours then wrapping round) at least ``rel_height`` of the row's
    highest value and above ``min_height``; each pick rules out the bins whose ``centres``
    lie closer than ``min_sep_deg`` to its own (around the circle when ``circular``).  A row
    holding a NaN has no peaks (numpy's maximum is then NaN).
    """
    n_rows, n = H.shape
    cand = np.empty(n)
    for w in range(n_rows):
        row = H[w]
        top = -np.inf
        for k in range(n):
            v = row[k]
            if v != v:  # NaN
                top = np.nan
                break
            top = max(top, v)
        count[w] = 0
        if not top > 0.0:
            continue
        for k in range(n):
            v = row[k]
            if k > 0:
                left = row[k - 1]
            else:
                left = row[n - 1] if circular else np.inf
            if k < n - 1:
                right = row[k + 1]
            else:
                right = row[0] if circular else np.inf
            ok = v >= left and v > right and v >= rel_height * top and v > min_height
            cand[k] = v if ok else -np.inf
        for j in range(max_sources):
            best = 0
            for k in range(1, n):
                if cand[k] > cand[best]:
                    best = k
            if cand[best] == -np.inf:
                break
            c0 = centres[best]
            az[w, j] = c0
            height[w, j] = row[best]
            count[w] = j + 1
            for k in range(n):
                d = abs(centres[k] - c0)
                if circular:
                    d = abs((d + 180.0) % 360.0 - 180.0)
                if d < min_sep_deg:
                    cand[k] = -np.inf


pick_peaks = _jit(_pick_peaks)
