"""Frame-wise spatial cues from one STFT per channel.

Every cue is computed from the same :class:`Spectrogram`, vectorised over frames:

* two channels (binaural, stereo): ILD per band (ERB-spaced) and broadband, ITD by
  GCC-PHAT limited to +-1 ms with sub-sample (parabolic) peak interpolation, IPD per
  bin, interaural coherence (a reliability weight), loudness per channel and its slope;
* FOA (AmbiX): active intensity vector per time-frequency bin, its azimuth and
  elevation, and diffuseness.

Sign conventions follow spa2v.conventions: channel 0 is the left ear, a positive ILD
means the left channel is louder, a positive ITD means the left ear leads; both point
to a source on the left (positive azimuth).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
import scipy.fft as sfft

from spa2v._typing import FloatArray

EPS = 1e-12
DEFAULT_HOP_S = 0.02
MAX_ITD_S = 1e-3


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

    @property
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
        p = np.square(self.X.real)
        p += np.square(self.X.imag)
        return p


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
    Spectrogram with ``X`` of shape ``(channels, frames, n_fft // 2 + 1)``.
    """
    y = np.asarray(y, dtype=np.float32)
    hop, n_fft = frame_params(sr, hop_s)
    n = y.shape[-1]
    if n < n_fft:
        raise ValueError(f"signal of {n} samples is shorter than one analysis frame ({n_fft})")
    n_frames = 1 + (n - n_fft) // hop
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft, axis=-1)[:, ::hop][:, :n_frames]
    X = sfft.rfft(frames * _window(n_fft), axis=-1, workers=1, overwrite_x=True)
    return Spectrogram(X.astype(np.complex64, copy=False), int(sr), hop, n_fft)


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
    return 10.0 * np.log10(S.power @ M.T + EPS)


def ild_db(S: Spectrogram, M: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Interaural level difference (left minus right), per band and broadband.

    Returns
    -------
    ild_band_db : shape ``(frames, bands)``
    ild_broadband_db : shape ``(frames,)``
    """
    if M is None:
        M, _ = erb_band_matrix(S.sr, S.n_fft)
    P = S.power
    bp = P @ M.T
    band = 10.0 * np.log10((bp[0] + EPS) / (bp[1] + EPS))
    tot = bp.sum(axis=-1)
    broad = 10.0 * np.log10((tot[0] + EPS) / (tot[1] + EPS))
    return band, broad


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
    shape ``(frames, bins)``, or ``(K, frames, bins)`` for K weightings at once (one
    inverse FFT); each frame is then normalised by its summed weight.

    Returns
    -------
    itd_s : shape ``(lags,)``; the ITD each column stands for (positive: left leads).
    r : shape ``(frames, lags)`` (``(K, frames, lags)`` for stacked weights); 1.0 for a
        single coherent source at that ITD.

    ``phase``, optional, is :func:`unit_cross_spectrum`'s result for these arguments
    (computed once when several GCC functions share it).
    """
    unit, band, n_corr = phase or unit_cross_spectrum(S, cross=cross, f_band=f_band)
    if weights is None:
        phat = unit
        norm = n_corr / max(float(band.sum()), 1.0)
    else:
        wb = weights[..., : unit.shape[-1]]
        phat = unit * wb
        norm = n_corr / ((wb * band).sum(axis=-1, keepdims=True) + EPS)
    return _lag_function(phat, norm, S, n_corr, max_itd_s)


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
    :func:`gcc_phat_function`, each frame weighted by its summed weight, at the cost of
    one inverse FFT per window rather than per frame.

    Returns
    -------
    itd_s : shape ``(lags,)``
    r : shape ``(windows, lags)``
    weight : shape ``(windows,)``; the summed weight of each window's bins.
    """
    unit, band, n_corr = phase or unit_cross_spectrum(S, cross=cross, f_band=f_band)
    wb = weights[:, : unit.shape[-1]] * band
    stop = np.minimum(starts + win, unit.shape[0])

    def window_sums(x):
        c = np.concatenate([np.zeros((1,) + x.shape[1:], x.dtype), np.cumsum(x, axis=0)])
        return c[stop] - c[starts]

    num = window_sums(unit * wb)
    w = window_sums(wb.sum(axis=-1, dtype=np.float64))
    itds, r = _lag_function(num, n_corr / (w[:, None] + EPS), S, n_corr, max_itd_s)
    return itds, r, w


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


def _lag_function(phat: np.ndarray, norm, S: Spectrogram, n_corr: int, max_itd_s: float):
    # the correlation only needs the band: an inverse FFT of n_corr points samples it at
    # sr * n_corr / n_fft (parabolic interpolation refines the peak below one sample)
    sr_c = S.sr * n_corr / S.n_fft
    max_lag = min(int(np.ceil(max_itd_s * sr_c)), n_corr // 2 - 2)
    # r[k] = sum_n l[n + k] r[n]: when the right channel is the left delayed by d samples
    # (left leads), the peak is at k = -d, so the ITD is minus the lag; columns are
    # ordered from ITD -max to +max.
    lags = np.arange(max_lag, -max_lag - 1, -1)
    r = sfft.irfft(phat, n=n_corr, axis=-1, workers=1)[..., lags % n_corr] * norm
    return -lags / sr_c, r


def onset_weights(
    S: Spectrogram, *, n_bins: int | None = None, rise: float = 2.0, memory: int = 3
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
    prev = np.zeros_like(P)
    for k in range(1, memory + 1):
        np.maximum(prev[k:], P[:-k], out=prev[k:])
    w = np.clip(1.0 - rise * prev / (P + EPS), 0.0, 1.0)
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
    kc = np.clip(k, 1, r.shape[-1] - 2)
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
    cc = sfft.irfft(c[:, :n_bins], n=n_corr, axis=-1, workers=1)
    lag = np.rint(-itd_s * S.sr * n_corr / S.n_fft).astype(np.int64) % n_corr
    rows = np.arange(cc.shape[0])
    near = np.abs(np.stack([cc[rows, (lag + d) % n_corr] for d in (-1, 0, 1)]))
    num = near.max(axis=0) * n_corr / 2.0
    P = S.power[:, :, :n_bins]
    den = np.sqrt(P[0].sum(axis=-1) * P[1].sum(axis=-1)) + EPS
    return np.clip(num / den, 0.0, 1.0)


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
    norm = (S.n_fft / 2.0) * float(np.sum(win**2))  # Parseval for a one-sided spectrum
    P = S.power
    e = (P.sum(axis=-1) - 0.5 * (P[..., 0] + P[..., -1])) / norm
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
