"""Frame-wise spatial cues from one STFT per channel.

Every cue is computed from the same :class:`Spectrogram`, vectorised over frames:

* two channels (binaural, stereo): ILD per band (ERB-spaced) and broadband, ITD by
  GCC-PHAT limited to +-1 ms with sub-sample (parabolic) peak interpolation, IPD per
  bin, interaural coherence (a reliability weight), loudness per channel and its slope;
  :func:`two_channel_cues` computes the ones the analysis needs in one pass over blocks
  of frames (the fast path; the single-cue functions remain for other uses);
* FOA (AmbiX): active intensity vector per time-frequency bin, its azimuth and
  elevation, and diffuseness.

Sign conventions follow spa2v.conventions: channel 0 is the left ear, a positive ILD
means the left channel is louder, a positive ITD means the left ear leads; both point
to a source on the left (positive azimuth).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np
import scipy.fft as sfft

from spa2v import kernels
from spa2v._typing import FloatArray

EPS = 1e-12
DEFAULT_HOP_S = 0.02
MAX_ITD_S = 1e-3
ONSET_RISE = 2.0
"""A bin carries an onset when its power exceeds this many times its previous frames'."""
ONSET_MEMORY = 3
"""How many previous frames an onset is compared with (:func:`onset_weights`)."""
_STFT_BLOCK_BYTES = 1 << 18
_BLOCK_BYTES = 1 << 19


@dataclass(frozen=True)
class Spectrogram:
    """One STFT per channel.

    Attributes
    ----------
    X : np.ndarray, complex64, shape ``(channels, frames, bins)``
    sr : int
    hop : int
        Hop in samples.
    n_fft : int
    """

    X: np.ndarray
    sr: int
    hop: int
    n_fft: int
    frame_power: np.ndarray | None = field(default=None, repr=False, compare=False)
    """Sum of squares of each windowed frame, ``(channels, frames)``, when :func:`stft`
    made it (the frame energy without another pass over the spectrum)."""

    @cached_property
    def freqs(self) -> np.ndarray:
        return np.fft.rfftfreq(self.n_fft, 1.0 / self.sr)

    @property
    def times(self) -> np.ndarray:
        """Frame centre times in seconds, shape ``(frames,)``."""
        return (np.arange(self.X.shape[1]) * self.hop + self.n_fft / 2) / self.sr

    @property
    def hop_s(self) -> float:
        return self.hop / self.sr

    @cached_property
    def power(self) -> np.ndarray:
        """``|X|^2``, shape ``(channels, frames, bins)``, float32 (computed once)."""
        p = np.abs(self.X)
        return np.square(p, out=p)


def power_sum(S: Spectrogram, lo: int, hi: int) -> np.ndarray:
    """Power summed over bins ``lo..hi-1`` per channel and frame, ``(channels, frames)``.

    From ``S.power`` when it has been computed; else straight from the spectrum, without
    storing ``|X|^2`` (two-channel analysis needs no power array: less memory).
    """
    P = S.__dict__.get("power")
    if P is not None:
        return P[..., lo:hi] @ np.ones(hi - lo, dtype=P.dtype)
    return _abs2_sum(S.X[..., lo:hi])


def _abs2_sum(Z: np.ndarray) -> np.ndarray:
    """``sum |Z|^2`` over the last axis of a complex array, without storing ``|Z|^2``."""
    Z = np.asarray(Z, dtype=np.complex64)
    if Z.strides[-1] != Z.itemsize:  # viewing (re, im) pairs needs contiguous bins
        Z = np.ascontiguousarray(Z)
    return _sum_squares(Z.view(np.float32))


def _sum_squares(x: np.ndarray) -> np.ndarray:
    """Sum of squares over the last axis."""
    if hasattr(np, "vecdot"):  # numpy >= 2
        return np.vecdot(x, x)
    return np.einsum("...k,...k->...", x, x)


def frame_params(sr: int, hop_s: float = DEFAULT_HOP_S) -> tuple[int, int]:
    """Hop and FFT size: hop ``round(hop_s * sr)``; the FFT the next power of two >= hop."""
    hop = max(1, int(round(hop_s * sr)))
    n_fft = 1 << int(np.ceil(np.log2(max(hop, 256))))
    return hop, n_fft


@lru_cache(maxsize=16)
def _window(n_fft: int) -> np.ndarray:
    return np.hanning(n_fft + 2)[1:-1].astype(np.float32)


def stft(y: np.ndarray, sr: int, *, hop_s: float = DEFAULT_HOP_S) -> Spectrogram:
    """Short-time Fourier transform of every channel (Hann window, no centring padding).

    Parameters
    ----------
    y : np.ndarray, shape ``(channels, samples)``
    sr : int
    hop_s : float
        Hop in seconds (at most 20 ms for the analysis contract).

    Returns
    -------
    Spectrogram with ``X`` of shape ``(channels, frames, n_fft // 2 + 1)`` and each
    frame's power (``frame_power``).
    """
    y = np.ascontiguousarray(y, dtype=np.float32)
    hop, n_fft = frame_params(sr, hop_s)
    n = y.shape[-1]
    if n < n_fft:
        raise ValueError(f"signal of {n} samples is shorter than one analysis frame ({n_fft})")
    n_frames = 1 + (n - n_fft) // hop
    win = _window(n_fft)
    X = np.empty((y.shape[0], n_frames, n_fft // 2 + 1), dtype=np.complex64)
    frame_power = np.empty((y.shape[0], n_frames), dtype=np.float32)
    # blocks of frames small enough to stay in cache: no signal-sized windowed copy
    block = max(1, min(n_frames, _STFT_BLOCK_BYTES // (4 * n_fft)))
    buf = np.empty((block, n_fft), dtype=np.float32)
    for c in range(y.shape[0]):
        # (the numpy path reads the frames through a strided view of the signal)
        frames = None if kernels.JIT else np.lib.stride_tricks.sliding_window_view(
            y[c], n_fft)[::hop]
        for s in range(0, n_frames, block):
            e = min(s + block, n_frames)
            b = buf[: e - s]
            if frames is None:
                kernels.window_frames(y[c], s, hop, win, b, frame_power[c, s:e])
            else:
                np.multiply(frames[s:e], win, out=b)
                frame_power[c, s:e] = _sum_squares(b)
            _rfft_rows(b, X[c, s:e])
    return Spectrogram(X, int(sr), hop, n_fft, frame_power)


def _rfft_rows(x: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = rfft(x)`` along the last axis (``x`` may be overwritten).

    scipy's pocketfft binding can write into ``out`` (no temporary, no copy); it is not
    public API, so it is used only after it has been seen to agree with ``scipy.fft``.
    """
    if _r2c_into() is not None:
        _r2c_into()(x, (x.ndim - 1,), True, 0, out, 1)
    else:
        out[...] = sfft.rfft(x, axis=-1, workers=1, overwrite_x=True)


@lru_cache(maxsize=1)
def _r2c_into():
    try:
        from scipy.fft._pocketfft.pypocketfft import r2c
    except ImportError:
        return None
    x = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
    out = np.empty((3, 33), dtype=np.complex64)
    try:
        r2c(x.copy(), (1,), True, 0, out, 1)
    except Exception:  # a changed private signature: fall back to the public API
        return None
    return r2c if np.allclose(out, sfft.rfft(x, axis=-1), rtol=1e-5, atol=1e-5) else None


# --------------------------------------------------------------------------- bands
def erb_band_matrix(
    sr: int, n_fft: int, *, f_min: float = 100.0, f_max: float = 16000.0, n_bands: int = 24
) -> tuple[np.ndarray, np.ndarray]:
    """Rectangular ERB-spaced band-summing matrix.

    Returns
    -------
    M : np.ndarray, float32, shape ``(bands, bins)``: 1 where a bin belongs to a band.
    centres_hz : np.ndarray, shape ``(bands,)``
    """
    return _erb_band_matrix(int(sr), int(n_fft), float(f_min), float(f_max), int(n_bands))


@lru_cache(maxsize=32)
def _erb_band_matrix(sr: int, n_fft: int, f_min: float, f_max: float, n_bands: int):
    f_max = min(f_max, 0.45 * sr)

    def erb_rate(f):
        return 21.4 * np.log10(1.0 + 0.00437 * f)

    def inv(e):
        return (10 ** (e / 21.4) - 1.0) / 0.00437

    edges = inv(np.linspace(erb_rate(f_min), erb_rate(f_max), n_bands + 1))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    idx = np.searchsorted(edges, freqs, side="right") - 1
    M = np.zeros((n_bands, freqs.size), dtype=np.float32)
    valid = (idx >= 0) & (idx < n_bands)
    M[idx[valid], np.nonzero(valid)[0]] = 1.0
    # bands too narrow to hold a bin at low frequencies take the nearest bin
    for b in np.nonzero(M.sum(axis=1) == 0)[0]:
        M[b, np.argmin(np.abs(freqs - np.sqrt(edges[b] * edges[b + 1])))] = 1.0
    centres = np.sqrt(edges[:-1] * edges[1:])
    M.setflags(write=False)
    return M, centres


# --------------------------------------------------------------------------- two channels
def band_levels_db(S: Spectrogram, M: np.ndarray) -> np.ndarray:
    """Band levels in dB per channel, shape ``(channels, frames, bands)``."""
    hi = _used_bins(M)
    return 10.0 * np.log10(S.power[..., :hi] @ M[:, :hi].T + EPS)


def _used_bins(M: np.ndarray) -> int:
    """One past the highest bin that a band matrix ``(bands, bins)`` uses."""
    used = np.flatnonzero(np.any(M != 0, axis=0))
    return int(used[-1]) + 1 if used.size else 0


def ild_db(S: Spectrogram, M: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Interaural level difference (left minus right), per band and broadband.

    Returns
    -------
    ild_band_db : shape ``(frames, bands)``
    ild_broadband_db : shape ``(frames,)``
    """
    if M is None:
        M, _ = erb_band_matrix(S.sr, S.n_fft)
    hi = _used_bins(M)  # the bands stop at 16 kHz: no need to sum the bins above
    bp = S.power[..., :hi] @ M[:, :hi].T
    band = 10.0 * np.log10((bp[0] + EPS) / (bp[1] + EPS))
    tot = bp.sum(axis=-1)
    broad = 10.0 * np.log10((tot[0] + EPS) / (tot[1] + EPS))
    return band, broad


def ild_broadband_db(S: Spectrogram, M: np.ndarray | None = None) -> np.ndarray:
    """The broadband ILD of :func:`ild_db` alone (the bands' summed power), ``(frames,)``.

    One matrix-vector product instead of the band matrix: cheaper when the bands are not
    needed.
    """
    runs = _erb_runs(S.sr, S.n_fft) if M is None else _weight_runs(M.sum(axis=0))
    tot = np.zeros(S.X.shape[:2])
    for a, b, weight in runs:
        tot += weight * power_sum(S, a, b)
    return _ild_from_power(tot)


def band_ild_db(S: Spectrogram, f_lo: float, f_hi: float) -> np.ndarray:
    """ILD (left minus right) over the bins ``f_lo <= f <= f_hi``, ``(frames,)``."""
    return _ild_from_power(power_sum(S, *_band_bins(S, f_lo, f_hi)))


def band_power_db(S: Spectrogram, f_lo: float, f_hi: float) -> np.ndarray:
    """Level (dB, up to a constant) of the bins ``f_lo <= f <= f_hi`` per channel and
    frame, ``(channels, frames)``."""
    return 10.0 * np.log10(power_sum(S, *_band_bins(S, f_lo, f_hi)) + EPS)


def _band_bins(S: Spectrogram, f_lo: float, f_hi: float) -> tuple[int, int]:
    f = S.freqs
    return int(np.searchsorted(f, f_lo)), int(np.searchsorted(f, f_hi, "right"))


def _ild_from_power(e: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10((e[0] + EPS) / (e[1] + EPS))


def _weight_runs(m: np.ndarray) -> tuple[tuple[int, int, float], ...]:
    """Runs ``(first, stop, weight)`` of bins of equal non-zero weight."""
    ext = np.concatenate([[0.0], m, [0.0]])
    cuts = np.flatnonzero(ext[1:] != ext[:-1]).tolist()
    return tuple((a, b, float(m[a])) for a, b in zip(cuts[:-1], cuts[1:], strict=True)
                 if m[a] != 0)


@lru_cache(maxsize=32)
def _disjoint_segments(sums) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint runs of bins covering weighted sums over runs ``((first, stop, weight), ...)``:
    their first and stop bins (two int64 arrays), and the matrix ``(sums, segments)`` that
    recombines the runs' power into the sums (``sums`` a tuple, so that the result is
    computed once per layout of bins; the arrays are shared, read-only)."""
    cuts = sorted({c for runs in sums for a, b, _ in runs for c in (a, b)})
    segments = [(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=False) if b > a]
    combine = np.zeros((len(sums), len(segments)))
    for i, runs in enumerate(sums):
        for a, b, weight in runs:
            for j, (sa, sb) in enumerate(segments):
                if a <= sa and sb <= b:
                    combine[i, j] += weight
    keep = combine.any(axis=0)
    combine = combine[:, keep]
    kept = np.array([sg for sg, k in zip(segments, keep, strict=True) if k],
                    dtype=np.int64).reshape(-1, 2)
    first, stop = np.ascontiguousarray(kept[:, 0]), np.ascontiguousarray(kept[:, 1])
    for a in (first, stop, combine):
        a.flags.writeable = False  # shared by every call (cached)
    return first, stop, combine


@lru_cache(maxsize=32)
def _erb_runs(sr: int, n_fft: int) -> tuple[tuple[int, int, float], ...]:
    """The ERB bands' summed weights as runs (a single run of ones: 100 Hz to 16 kHz)."""
    return _weight_runs(erb_band_matrix(sr, n_fft)[0].sum(axis=0))


def cross_spectrum(S: Spectrogram) -> np.ndarray:
    """``X_left * conj(X_right)``, shape ``(frames, bins)``."""
    return S.X[0] * np.conj(S.X[1])


def ipd(S: Spectrogram, cross: np.ndarray | None = None) -> np.ndarray:
    """Interaural phase difference per bin in radians (left minus right), ``(frames, bins)``."""
    c = cross_spectrum(S) if cross is None else cross
    return np.angle(c)


def gcc_phat_function(
    S: Spectrogram,
    *,
    max_itd_s: float = MAX_ITD_S,
    cross: np.ndarray | None = None,
    f_band: tuple[float, float] = (100.0, 10000.0),
    weights: np.ndarray | None = None,
    phase: tuple | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The GCC-PHAT function per frame over lags within +-``max_itd_s``.

    ``weights``, optional, weighs each bin's phase term (e.g. :func:`onset_weights`),
    shape ``(frames, bins)``, or ``(K, frames, bins)`` for K weightings at once; each
    frame is then normalised by its summed weight.

    Returns
    -------
    itd_s : shape ``(lags,)``; the ITD each column stands for (positive: left leads).
    r : shape ``(frames, lags)`` (``(K, frames, lags)`` for stacked weights); 1.0 for a
        single coherent source at that ITD.

    ``phase``, optional, is :func:`unit_cross_spectrum`'s result for these arguments
    (computed once when several GCC functions share it).
    """
    unit, band, n_corr = phase or unit_cross_spectrum(S, cross=cross, f_band=f_band)
    lo, hi = _band_range(band)
    if weights is None:
        phat = unit[:, lo:hi]
        norm = n_corr / max(float(band.sum()), 1.0)
    else:
        wb = weights[..., lo:hi]  # the band is 1 inside [lo, hi), 0 outside
        phat = unit[:, lo:hi] * wb
        norm = n_corr / (wb.sum(axis=-1, keepdims=True) + EPS)
    itds, r = _lag_function(phat, lo, S, n_corr, max_itd_s)
    r *= norm
    return itds, r


def gcc_phat_windows(
    S: Spectrogram,
    starts: np.ndarray,
    win: int,
    weights: np.ndarray,
    *,
    max_itd_s: float = MAX_ITD_S,
    cross: np.ndarray | None = None,
    f_band: tuple[float, float] = (100.0, 10000.0),
    phase: tuple | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted GCC-PHAT over windows of frames ``[s, s + win)`` for ``s`` in ``starts``.

    Each bin's phase term counts with its weight (``(frames, bins)``, e.g. zero in silent
    frames).  By linearity this is the mean of the per-frame functions of
    :func:`gcc_phat_function`, each frame weighted by its summed weight; it is computed
    so, from the frames' unnormalised lag functions summed over each window.

    Returns
    -------
    itd_s : shape ``(lags,)``
    r : shape ``(windows, lags)``
    weight : shape ``(windows,)``; the summed weight of each window's bins.
    """
    unit, band, n_corr = phase or unit_cross_spectrum(S, cross=cross, f_band=f_band)
    lo, hi = _band_range(band)
    wb = weights[:, lo:hi]
    itds, g = _lag_function(unit[:, lo:hi] * wb, lo, S, n_corr, max_itd_s)
    w = window_sums(wb.sum(axis=-1, dtype=np.float64), starts, win)
    return itds, window_sums(g, starts, win) * (n_corr / (w[:, None] + EPS)), w


def window_sums(x: np.ndarray, starts: np.ndarray, win: int) -> np.ndarray:
    """Sums of ``x`` ``(frames, ...)`` over the windows of frames ``[s, s + win)`` (cut at
    the last frame), float64 ``(windows, ...)``: each window summed (kernel), or one
    cumulative sum for all windows (numpy)."""
    if kernels.JIT and x.dtype in (np.float32, np.float64) and len(starts) and x.size:
        out = np.zeros((len(starts),) + x.shape[1:])
        kernels.window_sums(np.ascontiguousarray(x).reshape(x.shape[0], -1),
                            np.asarray(starts, dtype=np.int64), int(win),
                            out.reshape(len(starts), -1))
        return out
    c = np.zeros((x.shape[0] + 1,) + x.shape[1:])
    np.cumsum(x, axis=0, dtype=np.float64, out=c[1:])
    return c[np.minimum(starts + win, x.shape[0])] - c[starts]


def unit_cross_spectrum(
    S: Spectrogram, *, cross: np.ndarray | None = None,
    f_band: tuple[float, float] = (100.0, 10000.0),
) -> tuple[np.ndarray, np.ndarray, int]:
    """The PHAT-weighted cross-spectrum shared by the GCC-PHAT functions.

    Returns
    -------
    unit : shape ``(frames, bins)``; the cross-spectrum at unit magnitude over the bins
        the correlation needs, zero outside ``f_band``.
    band : shape ``(bins,)``; 1 inside the band.
    n_corr : int; the inverse FFT size of the correlation.
    """
    c = cross_spectrum(S) if cross is None else cross
    n_corr, n_bins = _corr_size(S.n_fft, S.sr, f_band[1])
    f = S.freqs[:n_bins]
    band = ((f >= f_band[0]) & (f <= f_band[1])).astype(np.float32)
    cb = c[:, :n_bins]
    mag = np.abs(cb)
    mag += EPS
    np.divide(band, mag, out=mag)
    return cb * mag, band, n_corr


def _band_range(band: np.ndarray) -> tuple[int, int]:
    """First and one-past-last bin of a contiguous 0/1 band mask."""
    inside = np.flatnonzero(band)
    return (int(inside[0]), int(inside[-1]) + 1) if inside.size else (0, 0)


def _lag_axis(S: Spectrogram, n_corr: int, max_itd_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Lags (in correlation samples) and the ITDs they stand for, ITD ascending."""
    # the correlation only needs the band: an inverse FFT of n_corr points samples it at
    # sr * n_corr / n_fft (parabolic interpolation refines the peak below one sample)
    sr_c = S.sr * n_corr / S.n_fft
    max_lag = min(int(np.ceil(max_itd_s * sr_c)), n_corr // 2 - 2)
    # r[k] = sum_n l[n + k] r[n]: when the right channel is the left delayed by d samples
    # (left leads), the peak is at k = -d, so the ITD is minus the lag; columns are
    # ordered from ITD -max to +max.
    lags = np.arange(max_lag, -max_lag - 1, -1)
    return lags, -lags / sr_c


def _lag_function(phat: np.ndarray, lo: int, S: Spectrogram, n_corr: int, max_itd_s: float):
    """ITDs and the unnormalised correlation ``(..., lags)`` of spectra ``phat``, which
    hold bins ``lo, lo + 1, ...``."""
    lags, itds = _lag_axis(S, n_corr, max_itd_s)
    z = np.asarray(phat, dtype=np.complex64)
    re, im = np.ascontiguousarray(z.real), np.ascontiguousarray(z.imag)
    return itds, _correlation_at_lags(re, im, n_corr, lo, int(lags[0]))


def _correlation_at_lags(
    re: np.ndarray, im: np.ndarray, n_corr: int, lo: int, max_lag: int
) -> np.ndarray:
    """``irfft(re + 1j * im, n_corr)`` at lags ``max_lag, max_lag - 1, ..., -max_lag``
    only (ITD ascending, as :func:`_lag_axis`), float32 ``(..., 2 * max_lag + 1)``.

    ``re`` and ``im`` (float32, contiguous bins) hold bins ``lo, lo + 1, ...`` (all others
    zero).  Two matrix products with cached cosine and sine tables of the few lags a head
    needs cost less than the whole inverse FFT; the tables cover lags ``0..max_lag``, the
    negative lags following by symmetry (the cosine part is even in the lag, the sine part
    odd), which halves the work.
    """
    cos_t, sin_t = _cos_sin_tables(n_corr, lo, re.shape[-1], max_lag)
    even = re @ cos_t  # lags 0..max_lag
    odd = im @ sin_t  # lags 1..max_lag
    neg = even[..., 1:] + odd  # lags -1..-max_lag
    even[..., 1:] -= odd  # lags 0..max_lag
    out = np.empty(even.shape[:-1] + (2 * max_lag + 1,), dtype=np.float32)
    out[..., : max_lag + 1] = even[..., ::-1]
    out[..., max_lag + 1 :] = neg
    return out


@lru_cache(maxsize=64)
def _cos_sin_tables(n_corr: int, lo: int, n_bins: int, max_lag: int):
    """``irfft``'s weights of bins ``lo..lo+n_bins-1`` at lags ``0..max_lag``: for the real
    parts (cosine, ``(bins, max_lag + 1)``) and the imaginary parts (sine, lags from 1)."""
    k = np.arange(lo, lo + n_bins)
    edge = (k == 0) | (k == n_corr // 2)  # irfft counts DC and Nyquist once, real part only
    a = np.where(edge, 1.0, 2.0)[:, None] / n_corr
    ang = (2.0 * np.pi / n_corr) * np.outer(k, np.arange(max_lag + 1))
    cos_t = (a * np.cos(ang)).astype(np.float32)
    sin_t = np.where(edge[:, None], 0.0, a * np.sin(ang[:, 1:])).astype(np.float32)
    cos_t.setflags(write=False)
    sin_t.setflags(write=False)
    return cos_t, sin_t


@lru_cache(maxsize=16)
def _lag_rows(n_corr: int, n_bins: int, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_cos_sin_tables` of bins ``0..n_bins-1`` at lags ``0..reach`` as contiguous
    rows ``(lags, bins)``, the sine's row 0 zero (the layout of
    :func:`spa2v.kernels.coherence_near`)."""
    cos_t, sin_t = _cos_sin_tables(n_corr, 0, n_bins, reach)
    cos_rows = np.ascontiguousarray(cos_t.T)
    sin_rows = np.zeros_like(cos_rows)
    sin_rows[1:] = sin_t.T
    cos_rows.flags.writeable = sin_rows.flags.writeable = False
    return cos_rows, sin_rows


def onset_weights(
    S: Spectrogram, *, n_bins: int | None = None, rise: float = ONSET_RISE,
    memory: int = ONSET_MEMORY,
) -> np.ndarray:
    """Precedence weights per time-frequency bin, in [0, 1], shape ``(frames, bins)``.

    A bin whose power (both channels) rises well above its last ``memory`` frames
    carries a fresh wavefront: the direct sound, before the room's reflections and
    reverberation arrive (the precedence effect).  The weight is
    ``1 - rise * max(previous powers) / power``, clipped to [0, 1]; decaying and steady
    bins weigh nothing, so reverberant tails cannot pull a direction towards the walls.
    The first frames compare against silence: sound there weighs 1, silence 0.
    """
    nb = S.X.shape[-1] if n_bins is None else n_bins
    P = S.power[0, :, :nb] + S.power[1, :, :nb] if S.X.shape[0] > 1 else S.power[0, :, :nb]
    # the previous frames' maximum (none before the first frame: 0), then the weight
    w = np.empty_like(P)
    w[:1] = 0.0
    w[1:] = P[:-1] if memory >= 1 else 0.0
    for k in range(2, memory + 1):
        np.maximum(w[k:], P[:-k], out=w[k:])
    w *= rise
    w /= P + EPS
    np.subtract(1.0, w, out=w)
    np.clip(w, 0.0, 1.0, out=w)
    w[P <= EPS] = 0.0  # silence carries no wavefront
    return w


def cue_bins(S: Spectrogram) -> int:
    """Number of low bins that hold every two-channel cue (GCC-PHAT, coherence: 12 kHz)."""
    return max(_corr_size(S.n_fft, S.sr, 10000.0)[1], _corr_size(S.n_fft, S.sr, 12000.0)[1])


@lru_cache(maxsize=32)
def _corr_size(n_fft: int, sr: int, f_max: float) -> tuple[int, int]:
    """Smallest power-of-two correlation length whose band covers ``f_max``."""
    need = int(np.ceil(f_max * n_fft / sr)) + 1
    n_corr = 64
    while n_corr // 2 + 1 < need and n_corr < n_fft:
        n_corr *= 2
    return n_corr, n_corr // 2 + 1


def parabolic_peak(r: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sub-sample offset in [-0.5, 0.5] and height of peaks at columns ``k`` of ``r`` rows."""
    kc = np.minimum(np.maximum(k, 1), r.shape[-1] - 2)
    rows = np.arange(r.shape[0])
    y0, y1, y2 = r[rows, kc - 1], r[rows, kc], r[rows, kc + 1]
    denom = y0 - 2 * y1 + y2
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(np.abs(denom) > EPS, 0.5 * (y0 - y2) / denom, 0.0)
    delta = np.where(k == kc, np.clip(delta, -0.5, 0.5), 0.0)
    return kc + delta, r[rows, k]


def gcc_phat(
    S: Spectrogram,
    *,
    max_itd_s: float = MAX_ITD_S,
    cross: np.ndarray | None = None,
    f_band: tuple[float, float] = (100.0, 10000.0),
) -> tuple[np.ndarray, np.ndarray]:
    """ITD per frame by GCC-PHAT, limited to +-``max_itd_s``, with parabolic refinement.

    Returns
    -------
    itd_s : shape ``(frames,)``; positive when the left channel leads.
    peak : shape ``(frames,)``; the PHAT peak height in [0, 1] (a reliability measure).
    """
    itds, r = gcc_phat_function(S, max_itd_s=max_itd_s, cross=cross, f_band=f_band)
    pos, peak = parabolic_peak(r, np.argmax(r, axis=-1))
    step = itds[1] - itds[0]
    return itds[0] + pos * step, np.clip(peak, 0.0, 1.0).astype(np.float64)


def interaural_coherence(
    S: Spectrogram, itd_s: np.ndarray, cross: np.ndarray | None = None
) -> np.ndarray:
    """Normalised cross-correlation of the two channels at the estimated ITD, per frame.

    1 for a single coherent (direct) source, near 0 for diffuse or independent channels.
    """
    c = cross_spectrum(S) if cross is None else cross
    n_corr, n_bins = _corr_size(S.n_fft, S.sr, 12000.0)
    c = np.asarray(c[:, :n_bins], dtype=np.complex64)
    return _coherence(S, np.ascontiguousarray(c.real), np.ascontiguousarray(c.imag),
                      power_sum(S, 0, n_bins), itd_s, n_corr, n_bins)


def _coherence(S: Spectrogram, re: np.ndarray, im: np.ndarray, e: np.ndarray,
               itd_s: np.ndarray, n_corr: int, n_bins: int) -> np.ndarray:
    """:func:`interaural_coherence` from the cross-spectrum's real and imaginary parts
    ``(frames, >= n_bins)`` and each channel's power ``e`` ``(2, frames)`` over its first
    ``n_bins`` bins."""
    lag = np.rint(-np.asarray(itd_s) * S.sr * n_corr / S.n_fft)
    reach = int(np.max(np.abs(lag), initial=0.0)) + 1 if np.all(np.isfinite(lag)) else n_corr
    if kernels.JIT and reach <= n_corr // 16:  # the three lags of each frame, directly
        cos_rows, sin_rows = _lag_rows(n_corr, n_bins, -(-reach // 8) * 8)
        return kernels.coherence_near(re[:, :n_bins], im[:, :n_bins], lag.astype(np.int64),
                                      cos_rows, sin_rows, e[0], e[1], EPS)
    rows = np.arange(re.shape[0])
    if reach <= n_corr // 16:
        # only the few lags a head produces (+-1 around each frame's): a small inverse DFT
        cc = _correlation_at_lags(re[:, :n_bins], im[:, :n_bins], n_corr, 0, reach)
        col = reach - lag.astype(np.int64)  # columns run from lag +reach down to -reach
    else:
        c = (re[:, :n_bins] + 1j * im[:, :n_bins]).astype(np.complex64)
        cc = sfft.irfft(c, n=n_corr, axis=-1, workers=1)
        col = np.nan_to_num(lag).astype(np.int64) % n_corr
    m = cc.shape[-1]
    near = np.abs(cc[rows, (col - 1) % m])
    np.maximum(near, np.abs(cc[rows, col % m]), out=near)
    np.maximum(near, np.abs(cc[rows, (col + 1) % m]), out=near)
    return np.clip(near * (n_corr / 2.0) / (np.sqrt(e[0] * e[1]) + EPS), 0.0, 1.0)


@dataclass(frozen=True)
class TwoChannelCues:
    """Frame-wise two-channel cues from one pass over the spectrogram (:func:`two_channel_cues`).

    Attributes
    ----------
    lag_itd_s : shape ``(lags,)``; the ITD each GCC-PHAT column stands for.
    gcc : shape ``(frames, lags)``; the per-frame GCC-PHAT function.
    itd_s : shape ``(frames,)``; its peak, refined below one lag (positive: left leads).
    peak : shape ``(frames,)``; the peak height, clipped to [0, 1].
    coherence : shape ``(frames,)``; the interaural coherence at ``itd_s``.
    ild_db : shape ``(frames,)``; the broadband ILD (as :func:`ild_broadband_db`).
    ild_band_db : shape ``(frames,)``; the ILD over the band asked for (as
        :func:`band_ild_db`; ``None`` when none was).
    onset : shape ``(frames,)``; each frame's summed onset weight over the GCC band
        (``None`` without onset weighting).
    gcc_windows, window_weight : shapes ``(windows, lags)`` and ``(windows,)``; the
        onset-weighted GCC-PHAT of windows of frames and their summed weight (``None``
        unless windows are asked for).
    onset_bins : shape ``(frames, bins)``; the onset weights of the lowest bins, below
        ``keep_onset_hz`` (zero below the GCC band; ``None`` unless asked for).
    """

    lag_itd_s: np.ndarray
    gcc: np.ndarray
    itd_s: np.ndarray
    peak: np.ndarray
    coherence: np.ndarray
    ild_db: np.ndarray
    ild_band_db: np.ndarray | None = None
    onset: np.ndarray | None = None
    gcc_windows: np.ndarray | None = None
    window_weight: np.ndarray | None = None
    onset_bins: np.ndarray | None = None


def two_channel_cues(
    S: Spectrogram,
    *,
    onset_floor: float | None = None,
    active: np.ndarray | None = None,
    starts: np.ndarray | None = None,
    win: int = 1,
    ild_band_hz: tuple[float, float] | None = None,
    max_itd_s: float = MAX_ITD_S,
    f_band: tuple[float, float] = (100.0, 10000.0),
    keep_onset_hz: float | None = None,
) -> TwoChannelCues:
    """GCC-PHAT function, ITD, PHAT peak, coherence and ILD per frame, sharing every step.

    The same figures (to float32 rounding) as the separate calls

    * ``w_on = onset_weights(S, n_bins=cue_bins(S))``;
    * ``gcc_phat_function(S, weights=onset_floor + w_on)``, or unweighted when
      ``onset_floor`` is None (stereo);
    * :func:`parabolic_peak` on each frame's maximum, then :func:`interaural_coherence`
      at that ITD;
    * with ``starts``: ``gcc_phat_windows(S, starts, win, w_on * active[:, None])``
      (``active``, a boolean per frame, defaults to every frame);
    * :func:`ild_broadband_db`, and with ``ild_band_hz``: ``band_ild_db(S, *ild_band_hz)``;
    * with ``keep_onset_hz``: ``w_on`` of the bins below that frequency, times the GCC
      band (zero below it);

    at a fraction of their cost and memory: the onset weights are computed over the GCC
    band only, the PHAT and onset weightings fold into one real factor per bin (no
    unit-magnitude cross-spectrum is stored), one pair of matrix products gives both
    weightings' lag functions, and the frames-by-bins intermediates live one block of
    frames at a time (about 0.5 MB), so that a long signal needs little memory beyond its
    spectrogram.  ``S`` must have two channels.
    """
    if starts is not None and onset_floor is None:
        raise ValueError("windowed GCC-PHAT needs onset weighting (onset_floor)")
    X = S.X
    T = X.shape[1]
    n_corr, n_gcc = _corr_size(S.n_fft, S.sr, f_band[1])
    n_coh, nb_coh = _corr_size(S.n_fft, S.sr, 12000.0)
    nb = max(n_gcc, nb_coh)
    f = S.freqs[:n_gcc]
    lo, hi = _band_range((f >= f_band[0]) & (f <= f_band[1]))
    n_band = hi - lo
    lags, lag_itd = _lag_axis(S, n_corr, max_itd_s)
    max_lag = int(lags[0])
    onset = onset_floor is not None
    if keep_onset_hz is not None and not onset:
        raise ValueError("keeping onset weights needs onset weighting (onset_floor)")
    n_keep = 0
    if keep_onset_hz is not None:
        n_keep = int(min(np.searchsorted(f, keep_onset_hz), hi))
    kept = np.zeros((T, n_keep), dtype=np.float32) if n_keep else None
    # the cross-spectrum, its real and imaginary parts apart (contiguous for the products
    # and halving the coherence's inverse DFT), kept for the coherence
    c_re = np.empty((T, nb), dtype=np.float32)
    c_im = np.empty((T, nb), dtype=np.float32)
    gcc = np.empty((T, lags.size), dtype=np.float32)
    g_on = np.empty((T, lags.size), dtype=np.float32) if starts is not None else None
    w_sum = np.empty(T, dtype=np.float32) if onset else None
    n_blocks = -(-T * max(n_band, 1) * 32 // _BLOCK_BYTES)
    B = max(1, -(-T // max(n_blocks, 1)))
    # the band's summed power of the previous frames, then of the block's
    hist = np.zeros((ONSET_MEMORY + B, n_band), dtype=np.float32)
    # each channel's power over the coherence's bins, the ERB bands (broadband ILD) and the
    # ILD band: sums over disjoint runs of bins, combined
    sums = [((0, nb_coh, 1.0),), _erb_runs(S.sr, S.n_fft)]
    if ild_band_hz is not None:
        sums.append((_band_bins(S, *ild_band_hz) + (1.0,),))
    seg_a, seg_b, combine = _disjoint_segments(tuple(sums))
    seg_power = np.empty((seg_a.size, 2, T), dtype=np.float32)
    block = kernels.two_channel_block if kernels.JIT else _two_channel_block
    floor = 0.0 if onset_floor is None else float(onset_floor)
    kept_out = kept if kept is not None else np.empty((0, 0), dtype=np.float32)
    w_out = w_sum if w_sum is not None else np.empty(0, dtype=np.float32)
    for s in range(0, T, B):
        e = min(s + B, T)
        # the PHAT-weighted cross-spectrum (with onsets: for both weightings at once)
        re = np.empty((2 if onset else 1, e - s, n_band), dtype=np.float32)
        im = np.empty_like(re)
        block(X, s, e, lo, hi, seg_a, seg_b, ONSET_RISE, floor, n_keep, EPS, ONSET_MEMORY,
              hist, c_re, c_im, seg_power, w_out, kept_out, re, im)
        g = _correlation_at_lags(re, im, n_corr, lo, max_lag)
        gcc[s:e] = g[0]
        if g_on is not None:
            g_on[s:e] = g[1]
    if onset:
        gcc *= (n_corr / (w_sum + np.float32(onset_floor * n_band) + EPS))[:, None]
    else:
        gcc *= n_corr / max(float(n_band), 1.0)
    if kernels.JIT:
        pos, pk = kernels.row_peaks(gcc, EPS)
    else:
        pos, pk = parabolic_peak(gcc, np.argmax(gcc, axis=-1))
    itd = lag_itd[0] + pos * (lag_itd[1] - lag_itd[0])
    peak = np.clip(pk, 0.0, 1.0)
    e_coh, e_broad, *e_band = np.tensordot(combine, seg_power, axes=1)
    coh = _coherence(S, c_re, c_im, e_coh, itd, n_coh, nb_coh)
    ild = _ild_from_power(e_broad)
    ild_band = _ild_from_power(e_band[0]) if e_band else None
    if g_on is None:
        return TwoChannelCues(lag_itd, gcc, itd, peak, coh, ild, ild_band, w_sum,
                              onset_bins=kept)
    act = np.ones(T, dtype=bool) if active is None else np.asarray(active, dtype=bool)
    g_on[~act] = 0.0
    w_win = window_sums(np.where(act, w_sum, 0.0), starts, win)
    r_win = window_sums(g_on, starts, win) * (n_corr / (w_win[:, None] + EPS))
    return TwoChannelCues(lag_itd, gcc, itd, peak, coh, ild, ild_band, w_sum, r_win, w_win,
                          kept)


def _two_channel_block(X, s, e, lo, hi, seg_a, seg_b, rise, floor, n_keep, eps, memory,
                       hist, c_re, c_im, seg_power, w_sum, kept, re, im) -> None:
    """numpy twin of :func:`spa2v.kernels.two_channel_block` (same arguments, same
    figures): the elementwise part of :func:`two_channel_cues` for frames ``s:e``, one
    numpy pass per step over the block."""
    n = e - s
    for i in range(seg_a.size):
        seg_power[i, :, s:e] = _abs2_sum(X[:, s:e, seg_a[i]:seg_b[i]])
    nb = c_re.shape[1]
    cblk = X[0, s:e, :nb] * np.conj(X[1, s:e, :nb])
    c_re[s:e] = cblk.real
    c_im[s:e] = cblk.imag
    cr, ci = c_re[s:e, lo:hi], c_im[s:e, lo:hi]
    a0 = np.abs(X[0, s:e, lo:hi])
    p1 = np.abs(X[1, s:e, lo:hi])
    inv = a0 * p1  # PHAT: 1 / |cross| = 1 / (|left| |right|)
    inv += eps
    np.divide(1.0, inv, out=inv)
    if re.shape[0] == 1:  # no onset weighting
        np.multiply(cr, inv, out=re[0])
        np.multiply(ci, inv, out=im[0])
        return
    psum = np.square(a0, out=hist[memory : memory + n])  # both channels' power
    psum += np.square(p1, out=p1)
    w = hist[memory - 1 : memory - 1 + n].copy()  # the previous frames' maximum
    for k in range(2, memory + 1):
        np.maximum(w, hist[memory - k : memory - k + n], out=w)
    silent = psum <= eps
    w *= rise
    np.add(psum, eps, out=p1)
    w /= p1
    np.subtract(1.0, w, out=w)
    np.maximum(w, 0.0, out=w)  # (and at most 1: the subtracted ratio is not negative)
    w[silent] = 0.0  # silence carries no wavefront
    hist[:memory] = hist[n : n + memory]  # carried to the next block
    if n_keep > lo:
        kept[s:e, lo:n_keep] = w[:, : n_keep - lo]
    np.matmul(w, np.ones(w.shape[1], dtype=np.float32), out=w_sum[s:e])
    np.multiply(w, inv, out=p1)
    np.multiply(cr, p1, out=re[1])
    np.multiply(ci, p1, out=im[1])
    w += np.float32(floor)
    w *= inv
    np.multiply(cr, w, out=re[0])
    np.multiply(ci, w, out=im[0])


def frame_gcc_itd_s(y: np.ndarray, sr: int, *, hop_s: float = DEFAULT_HOP_S):
    """Convenience: per-frame GCC-PHAT ITD and PHAT peak of a two-channel signal."""
    S = stft(y[:2], sr, hop_s=hop_s)
    itd, peak = gcc_phat(S)
    active = frame_energy_db(S).max(axis=0) > frame_energy_db(S).max() - 40.0
    return itd, np.where(active, peak, 0.0)


# --------------------------------------------------------------------------- loudness
def frame_energy_db(S: Spectrogram) -> np.ndarray:
    """Frame level in dBFS per channel (mean-square of the windowed frame), ``(channels, frames)``."""
    win = _window(S.n_fft)
    if S.frame_power is not None:  # the windowed frames' mean square, from the STFT
        return 10.0 * np.log10(S.frame_power / float(np.sum(win**2)) + EPS)
    norm = (S.n_fft / 2.0) * float(np.sum(win**2))  # Parseval for a one-sided spectrum
    P = S.__dict__.get("power")
    if P is not None:
        tot, edges = P.sum(axis=-1), P[..., 0] + P[..., -1]
    else:  # without storing |X|^2
        tot = power_sum(S, 0, S.X.shape[-1])
        edges = np.square(np.abs(S.X[..., 0])) + np.square(np.abs(S.X[..., -1]))
    e = (tot - 0.5 * edges) / norm
    return 10.0 * np.log10(e + EPS)


def smooth(x: np.ndarray, n: int, axis: int = -1) -> np.ndarray:
    """Centred moving average of ``n`` frames with edge-preserving normalisation."""
    if n <= 1:
        return np.asarray(x, dtype=np.float64)
    from scipy.ndimage import uniform_filter1d

    return uniform_filter1d(np.asarray(x, dtype=np.float64), size=n, axis=axis, mode="nearest")


def loudness_slope_db_per_s(loudness_db: np.ndarray, hop_s: float, *, window_s: float = 0.5):
    """Smoothed loudness slope in dB/s (derivative of a moving average)."""
    n = max(1, int(round(window_s / hop_s)))
    sm = smooth(loudness_db, n)
    return np.gradient(sm, hop_s, axis=-1) if sm.shape[-1] > 1 else np.zeros_like(sm)


# --------------------------------------------------------------------------- FOA
def foa_intensity_vectors(S: Spectrogram) -> tuple[np.ndarray, np.ndarray]:
    """Active intensity vectors and energy density of AmbiX FOA per time-frequency bin.

    Returns
    -------
    intensity : shape ``(3, frames, bins)``, components (x, y, z) = Re{W* (X, Y, Z)}
    energy : shape ``(frames, bins)``, ``(|W|^2 + |X|^2 + |Y|^2 + |Z|^2) / 2``
        (for an SN3D plane wave both ``|I|`` and the energy equal ``|s|^2``).
    """
    W, Y, Z, X = S.X[0], S.X[1], S.X[2], S.X[3]
    Wc = np.conj(W)
    intensity = np.stack([(Wc * X).real, (Wc * Y).real, (Wc * Z).real])
    P = S.power
    energy = 0.5 * (P[0] + P[1] + P[2] + P[3])
    return intensity, energy


def foa_intensity(S: Spectrogram) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Direction of the active intensity of AmbiX FOA per time-frequency bin.

    Returns
    -------
    azimuth_deg, elevation_deg : shape ``(frames, bins)``
    intensity_norm : ``|I|`` per bin, shape ``(frames, bins)``
    energy : energy density per bin, shape ``(frames, bins)``
    """
    (ix, iy, iz), energy = foa_intensity_vectors(S)
    az = np.rad2deg(np.arctan2(iy, ix))
    el = np.rad2deg(np.arctan2(iz, np.hypot(ix, iy)))
    return az, el, np.sqrt(ix * ix + iy * iy + iz * iz), energy


def foa_diffuseness(S: Spectrogram, n_avg: int = 10) -> np.ndarray:
    """Diffuseness per frame, ``1 - |<I>| / <E>``.

    The intensity vectors are averaged over ``n_avg`` frames per bin before their norm is
    taken (the expectation in the definition); 0 for a plane wave, near 1 for a diffuse
    field or independent channels.
    """
    intensity, energy = foa_intensity_vectors(S)
    mean_i = smooth(intensity, n_avg, axis=1)
    num = np.sqrt((mean_i**2).sum(axis=0)).sum(axis=-1)
    den = smooth(energy, n_avg, axis=0).sum(axis=-1) + EPS
    return np.clip(1.0 - num / den, 0.0, 1.0)


def ild_to_unit(ild: FloatArray) -> FloatArray:
    """Amplitude-pan position in [-1, 1] (left = +1) from a level difference in dB."""
    g = 10 ** (np.asarray(ild) / 20.0)
    return (g - 1.0) / (g + 1.0)
