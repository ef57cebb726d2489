"""From cues to sources: directions per frame, clustering, activity, labels.

Pipeline (``analyze_signal``):

1. One STFT per channel (``spa2v.cues.stft``), reused by every cue.
2. Source directions per short window: binaural from the peaks of the window-averaged
   GCC-PHAT function (only ITDs a head can produce) with every bin weighted by its
   onset strength (``cues.onset_weights``: the precedence effect; the direct sound
   leads the room's reflections and reverberation, so they cannot pose as sources),
   then the sources it hides: steady ones (all-frames GCC-PHAT), ones that hold the low
   band, ones that stand out of the steady background below 3 kHz
   (``foreground_mask``), and ones that hold a few bins (the residual search);
   studio stereo from a weighted azimuth histogram of per-bin directions (the bin's
   level difference through the stereophonic tangent law); FOA from the signal-subspace
   spectrum of each window's covariance per band (``_foa_subspace_peaks``).
3. Window peaks linked into up to ``max_sources`` tracks that survive pauses.
4. Per frame and track, a direction: where one track is alive, from all bins (binaural:
   GCC-PHAT ITD and high-frequency ILD through the calibrated head model, fused by
   inverse variance with the interaural coherence as a reliability weight; stereo: the
   pan law; FOA: the summed intensity vector); where several are, binaural tracks take
   the frame's GCC-PHAT peak nearest their own ITD (the per-frame GCC-PHAT leans on
   onset bins but keeps all bins) and the level of the low bins its direction holds,
   ranked by the peak heights scaled by each track's precedence strength (a reflection
   comes out no louder than its source); stereo and FOA tracks take the bins nearest
   their direction.
5. Activity, smoothing, position and motion labels, a distance trend from loudness.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d, median_filter, uniform_filter1d

from spa2v import cues, distance, kernels
from spa2v.conventions import (
    CROSSING_MIN_SWEEP_DEG,
    ambix_gains,
    angle_diff_deg,
    motion_label,
    position_label,
    unwrap_deg,
    wrap_deg,
)

STEREO_SPEAKER_DEG = 30.0
"""Loudspeaker half-angle of the standard stereo set-up used by the tangent law."""
AZ_GRID = np.arange(-90.0, 90.5, 1.0)
HF_BAND_HZ = (1500.0, 12000.0)
GCC_REL_HEIGHT = 0.4
"""A GCC-PHAT window peak counts as a source above this fraction of the highest peak."""
ONSET_FLOOR = 0.1
"""Weight of a steady or decaying bin in the per-frame binaural GCC-PHAT (onsets add up to 1)."""
MIN_REL_MASS = 0.25
"""A track is kept when its summed peak height is at least this fraction of the strongest."""
NIL_SHARE_DB = 40.0
"""A binaural track is not active in frames where the bins its direction holds carry less
than this (dB) under the frame's level."""
PREC_GAMMA = 4.0
"""Where binaural tracks overlap, they are ranked by their share of the GCC-PHAT peaks
scaled by their precedence strength (onset-weighted GCC-PHAT along its path, relative to
the strongest) to this power, and none comes out louder than one ranked above it: wall
reflections, strong mostly in the decays, rank below their source."""


# =========================================================================== head model
@dataclass(frozen=True)
class HeadCalibration:
    """Cue-to-azimuth tables of a head, on the frontal horizontal grid ``AZ_GRID``.

    Tables are measured with the analysis' own estimators on the head's HRIR pairs, so
    that estimator bias cancels.
    """

    name: str
    sr: int
    n_fft: int
    azimuth_deg: np.ndarray  # (A,)
    itd_s: np.ndarray  # (A,) broadband GCC-PHAT ITD
    ild_hf_db: np.ndarray  # (A,) high-frequency ILD
    steer: np.ndarray | None = None
    """(A, bins) unit phasors conjugate to the head's interaural phase per analysis bin (up
    to ``cues.cue_bins``): the head-model steering vectors of the residual search."""
    ild_db: np.ndarray | None = None
    """(A, bins) the head's interaural level difference per analysis bin (dB, left over
    right, same bins as ``steer``): what tells a harmonic source from its aliases."""

    def az_from_itd(self, itd_s: np.ndarray) -> np.ndarray:
        return _monotonic_inverse(self.azimuth_deg, self.itd_s, itd_s)

    def steer_parts(self, nf: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The steering vectors of the first ``nf`` bins as the residual search uses them:
        real and imaginary parts (contiguous) and ``[Re, -Im]`` transposed as one float32
        matrix; computed once per ``nf``."""
        cache = self._steer_cache
        if nf not in cache:
            st = self.steer[:, :nf]
            s_re, s_im = np.ascontiguousarray(st.real), np.ascontiguousarray(st.imag)
            s_cat = np.ascontiguousarray(np.concatenate([s_re, -s_im], axis=1).T,
                                         dtype=np.float32)
            cache[nf] = (s_re, s_im, s_cat)
        return cache[nf]

    @cached_property
    def _steer_cache(self) -> dict:
        return {}

    @cached_property
    def slopes(self) -> tuple[np.ndarray, np.ndarray]:
        """Each cue's change per degree along ``azimuth_deg`` (ITD, HF ILD), computed once."""
        return (np.gradient(self.itd_s, self.azimuth_deg),
                np.gradient(self.ild_hf_db, self.azimuth_deg))

    @cached_property
    def ild_monotonic_limit_deg(self) -> float:
        """Azimuth magnitude up to which the head's HF ILD rises monotonically (5 deg margin)."""
        a, t = self.azimuth_deg, self.ild_hf_db
        return float(min(abs(a[int(np.argmax(t))]), abs(a[int(np.argmin(t))])) - 5.0)

    def az_from_ild(self, ild_db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Azimuth from HF ILD over the table's monotonic range, and whether it saturated."""
        a, t = self.azimuth_deg, self.ild_hf_db
        i_max, i_min = int(np.argmax(t)), int(np.argmin(t))
        lo, hi = min(i_min, i_max), max(i_min, i_max)
        az = _monotonic_inverse(a[lo : hi + 1], t[lo : hi + 1], ild_db)
        saturated = (ild_db >= t[i_max]) | (ild_db <= t[i_min])
        return az, saturated


def _monotonic_inverse(az: np.ndarray, table: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Invert a table that rises with azimuth (made monotonic by a running maximum)."""
    t = np.maximum.accumulate(table + np.arange(table.size) * 1e-12)
    return np.interp(values, t, az)


def calibrate_from_hrirs(
    hrirs: np.ndarray, azimuth_deg: np.ndarray, sr: int, *, name: str, hop_s: float = cues.DEFAULT_HOP_S
) -> HeadCalibration:
    """Measure cue tables from HRIR pairs ``(A, 2, L)`` at frontal azimuths ``(A,)``.

    The tables are resampled onto ``AZ_GRID`` (1-degree steps, -90..90).
    """
    hop, n_fft = cues.frame_params(sr, hop_s)
    L = hrirs.shape[-1]
    nf = max(n_fft, 1 << int(np.ceil(np.log2(L))))
    H = np.fft.rfft(hrirs, nf, axis=-1)
    if nf != n_fft:  # bring the responses onto the analysis' frequency grid
        f_an = np.fft.rfftfreq(n_fft, 1.0 / sr)
        f_h = np.fft.rfftfreq(nf, 1.0 / sr)
        idx = np.clip(np.searchsorted(f_h, f_an), 0, f_h.size - 1)
        H = H[..., idx]
    S = cues.Spectrogram(np.moveaxis(H, 1, 0).astype(np.complex64), sr, hop, n_fft)
    itd, _ = cues.gcc_phat(S)
    ild_hf = cues.band_ild_db(S, *HF_BAND_HZ)
    nb = cues.cue_bins(S)
    ipd = S.X[0, :, :nb] * np.conj(S.X[1, :, :nb])
    steer = np.conj(ipd / (np.abs(ipd) + cues.EPS))
    ild = cues._ild_from_power(np.abs(S.X[:, :, :nb]) ** 2)
    order = np.argsort(azimuth_deg)
    a = np.asarray(azimuth_deg, dtype=float)[order]

    def onto_grid(v):
        return np.interp(AZ_GRID, a, np.asarray(v, dtype=float)[order])

    # the per-bin tables (steering phasors, ILD) onto the grid
    pos = np.interp(AZ_GRID, a, np.arange(a.size, dtype=float))
    i0 = np.minimum(np.floor(pos).astype(np.int64), max(a.size - 2, 0))
    fr = (pos - i0)[:, None]

    def rows_onto_grid(v):  # per-bin tables: linear between measured azimuths
        v = v[order]
        return v[i0] * (1.0 - fr) + v[np.minimum(i0 + 1, a.size - 1)] * fr

    st = rows_onto_grid(steer)
    st = (st / (np.abs(st) + cues.EPS)).astype(np.complex64)  # renormalised
    ild = rows_onto_grid(ild).astype(np.float32)

    return HeadCalibration(
        name, int(sr), n_fft, AZ_GRID.copy(), onto_grid(itd), onto_grid(ild_hf), st, ild
    )


def head_hrir_pairs(head, azimuth_deg: np.ndarray, sr: int) -> np.ndarray:
    """HRIR pairs ``(A, 2, L)`` of a head model on the horizontal plane.

    Uses the model's own pairs where it has them (SOFA), else composes its per-ear
    delays and onset-aligned filters (the spherical head).
    """
    el = np.zeros_like(azimuth_deg, dtype=float)
    if hasattr(head, "hrir_pairs"):
        return np.asarray(head.hrir_pairs(azimuth_deg, el), dtype=np.float64)
    firs = np.asarray(head.ear_filters(azimuth_deg, el, sr), dtype=np.float64)  # (A, 2, L)
    delays = np.asarray(head.ear_delays_s(azimuth_deg, el), dtype=np.float64).T  # (A, 2)
    L = firs.shape[-1]
    n = 1 << int(np.ceil(np.log2(L + 4 * sr / 1000 + 1)))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    shift = delays + 0.002  # keep it causal
    spec = np.fft.rfft(firs, n, axis=-1) * np.exp(-2j * np.pi * f * shift[..., None])
    return np.fft.irfft(spec, n, axis=-1)


@lru_cache(maxsize=8)
def spherical_calibration(sr: int, hop_s: float = cues.DEFAULT_HOP_S) -> HeadCalibration:
    """The default calibration: the simulator's parametric spherical head."""
    from spa2v.hrtf import SphericalHead

    hrirs = head_hrir_pairs(SphericalHead(), AZ_GRID, sr)
    return calibrate_from_hrirs(hrirs, AZ_GRID, sr, name="spherical", hop_s=hop_s)


@lru_cache(maxsize=8)
def sofa_calibration(path: str, sr: int, hop_s: float = cues.DEFAULT_HOP_S) -> HeadCalibration:
    """A calibration measured on a SOFA file's HRIRs (horizontal plane, interpolated)."""
    from spa2v.hrtf import SofaHrtf

    hrirs = head_hrir_pairs(SofaHrtf.from_file(path, sr), AZ_GRID, sr)
    return calibrate_from_hrirs(hrirs, AZ_GRID, sr, name=Path(path).name, hop_s=hop_s)


# =========================================================================== results
@dataclass
class SourceTrack:
    id: int
    times: np.ndarray
    azimuth_deg: np.ndarray
    elevation_deg: np.ndarray | None
    loudness_db: np.ndarray
    active: np.ndarray
    confidence: float
    behind: bool = False
    mean_azimuth_deg: float = 0.0
    position: str = "center"
    motion: str = "static"
    distance_rel: np.ndarray | None = None


@dataclass
class Analysis:
    format: str
    sample_rate: int
    duration: float
    hop_s: float
    sources: list[SourceTrack]
    cues: dict[str, np.ndarray]
    notes: list[str] = field(default_factory=list)
    head: str | None = None


# =========================================================================== per-bin directions
def _bin_directions_stereo(S):
    f = S.freqs
    sel = (f >= 100.0) & (f <= 10000.0)
    P = S.power[:, :, sel]
    ild = 10 * np.log10((P[0] + cues.EPS) / (P[1] + cues.EPS))
    return stereo_pan_to_azimuth(ild), P[0] + P[1]


def stereo_pan_to_azimuth(ild_db: np.ndarray) -> np.ndarray:
    """Azimuth heard from an amplitude-panned pair: the tangent law, speakers at +-30 deg."""
    u = cues.ild_to_unit(np.asarray(ild_db))
    return np.rad2deg(np.arctan(u * np.tan(np.deg2rad(STEREO_SPEAKER_DEG))))


FOA_DIRECTNESS_FRAMES = 5
FOA_DIRECTNESS_POWER = 4.0
"""A FOA bin's weight is its energy times its directness, ``|<I>| / <E>`` over this many
frames, to this power.  Where two sources share a bin their intensity points between
them, with a directness that stays high in one frame but falls on average as their
relative phase turns; one source alone keeps it near 1."""


def _foa_bins(S):
    (ix, iy, iz), energy = cues.foa_intensity_vectors(S)
    f = S.freqs
    sel = (f >= 100.0) & (f <= 8000.0)
    ix, iy, iz, energy = ix[:, sel], iy[:, sel], iz[:, sel], energy[:, sel]
    az = np.rad2deg(np.arctan2(iy, ix))
    el = np.rad2deg(np.arctan2(iz, np.hypot(ix, iy)))
    n = FOA_DIRECTNESS_FRAMES
    mean_i = np.sqrt(cues.smooth(ix, n, axis=0) ** 2 + cues.smooth(iy, n, axis=0) ** 2
                     + cues.smooth(iz, n, axis=0) ** 2)
    directness = mean_i / (cues.smooth(energy, n, axis=0) + cues.EPS)
    weight = energy * np.clip(directness, 0.0, 1.0) ** FOA_DIRECTNESS_POWER
    return az, el, weight, sel


# =========================================================================== clustering
def _windows(T: int, hop_s: float, window_s: float = 0.5) -> tuple[np.ndarray, int]:
    win = max(1, min(T, int(round(window_s / hop_s))))
    step = max(1, win // 2)
    return np.arange(0, max(T - win, 0) + 1, step), win


def _pick_peaks(H: np.ndarray, centres: np.ndarray, *, circular: bool, max_sources: int,
                min_sep_deg: float, rel_height: float,
                min_height: float = 0.0) -> list[list[tuple[float, float]]]:
    """Peaks of each row of ``H`` (windows, bins): ``(azimuth, height)``, highest first.

    A peak is a local maximum at least ``rel_height`` of its row's highest value and
    above ``min_height``; peaks closer than ``min_sep_deg`` to a higher one are dropped.
    """
    H = np.ascontiguousarray(H, dtype=np.float64)
    c = np.ascontiguousarray(centres, dtype=np.float64)
    n_rows = H.shape[0]
    if kernels.JIT:
        az = np.empty((n_rows, max_sources))
        h = np.empty((n_rows, max_sources))
        n = np.empty(n_rows, dtype=np.int64)
        kernels.pick_peaks(H, c, bool(circular), int(max_sources), float(min_sep_deg),
                           float(rel_height), float(min_height), az, h, n)
        return [list(zip(a[:k], b[:k], strict=True))
                for a, b, k in zip(az.tolist(), h.tolist(), n.tolist(), strict=True)]
    left, right = np.empty_like(H), np.empty_like(H)  # each bin's neighbours
    left[:, 1:], right[:, :-1] = H[:, :-1], H[:, 1:]
    if circular:
        left[:, 0], right[:, -1] = H[:, -1], H[:, 0]
    else:  # the ends of the range are never peaks: the function may still rise
        left[:, 0] = right[:, -1] = np.inf
    top = H.max(axis=-1, keepdims=True)
    is_peak = (H >= left) & (H > right) & (H >= rel_height * top) & (H > min_height) & (top > 0)
    # greedy, highest first: each pick drops the peaks closer than min_sep_deg to it
    C = np.where(is_peak, H, -np.inf)
    picks = np.empty((max_sources, n_rows), dtype=np.int64)
    n_pick = 0
    for n_pick in range(1, max_sources + 1):
        k = np.argmax(C, axis=-1)
        v = C[np.arange(n_rows), k]
        picks[n_pick - 1] = np.where(np.isfinite(v), k, -1)
        if not np.isfinite(v).any() or n_pick == max_sources:
            break
        d = np.abs(c[None, :] - c[k][:, None])
        if circular:
            d = np.abs((d + 180.0) % 360.0 - 180.0)
        C[d < min_sep_deg] = -np.inf
    picks = picks[:n_pick].T  # (rows, picks): a row's peaks, then -1s
    az = c[picks].tolist()
    h = H[np.arange(n_rows)[:, None], picks].tolist()
    n = (picks >= 0).sum(axis=1).tolist()
    return [list(zip(az[w][: n[w]], h[w][: n[w]], strict=True)) for w in range(n_rows)]


def _hist_window_peaks(az_bins, w_bins, active, *, max_sources, hop_s):
    """Peaks of weighted azimuth histograms over short windows (stereo, -90..90 deg)."""
    T = az_bins.shape[0]
    lo, hi = -90.0, 90.0
    width = 2.0
    nb = int(round((hi - lo) / width))
    centres = lo + width * (np.arange(nb) + 0.5)
    idx = np.clip(((az_bins - lo) / width).astype(np.int64), 0, nb - 1)
    flat = (idx + nb * np.arange(T)[:, None]).ravel()
    frame_hist = np.bincount(flat, weights=(w_bins * active[:, None]).ravel(),
                             minlength=T * nb).reshape(T, nb)
    starts, win = _windows(T, hop_s)
    H = gaussian_filter1d(cues.window_sums(frame_hist, starts, win), sigma=1.5, axis=1,
                          mode="nearest")
    peaks = _pick_peaks(H, centres, circular=False, max_sources=max_sources,
                        min_sep_deg=20.0, rel_height=0.25)
    return peaks, starts, win


FOA_SUBSPACE_BAND_HZ = (100.0, 4000.0)
FOA_BAND_BINS = 2
FOA_SUBSPACE_RATIO = 0.02
FOA_NOISE_RATIO = 10.0
FOA_SHARPNESS = 8.0
FOA_AZ_STEP_DEG = 2.0
FOA_EL_GRID_DEG = (0.0, 30.0, 60.0)
"""FOA source detection: covariances over bands of ``BAND_BINS`` bins within
``BAND_HZ`` and an analysis window; a second eigenvector joins the signal subspace at
``RATIO`` of the first eigenvalue; each band's projection spectrum is raised to
``SHARPNESS`` (a first-order pattern is broad) on an azimuth grid of ``AZ_STEP_DEG``,
each azimuth at the best of the elevations ``EL_GRID_DEG`` (a plane 27 degrees up has a
projection of 0.89 on the horizontal steering vector, 0.41 once sharpened, and beside a car
on the ground was missed; on the round trip, FOA motion agreement 90.0 % with the horizontal
plane alone, 94.0 % with these three elevations, 92.7 % with -20 to 80 in steps of 20).
Measured on the 110-scene round trip: bands of 1, 2, 4 and 8 bins gave 82.0, 84.7, 83.3
and 83.3 % motion agreement; ratios 0.03, 0.1 and 0.3 gave 80.7, 83.3 and 75.3 %.

The second eigenvector must also stand ``NOISE_RATIO`` above the third (the noise
subspace's larger eigenvalue): two sources 25 degrees apart have steering vectors 0.95
alike, so the second eigenvalue of an equal pair is 0.024 of the first, under a fixed
ratio of 0.1, yet far above the noise where the recording is clean.  With the ratio at
0.1 alone, a crossing source passing within 30 degrees of a static one went unfound
until they parted (round trip seed 0, FOA: motion 94.0 %, 97.3 % with 0.02 and 10;
hold-out seed 7: 90.0 -> 95.7 %).  A hall's strong early reflections pass too: the real
hall's mean azimuth error from the subspace peaks rises from 0.9 to 1.4 degrees."""


def _foa_subspace_peaks(S, active, *, max_sources, hop_s):
    """Peaks of the FOA subspace spectrum over short windows.

    Per window and band of bins, the spatial covariance of the four channels; its signal
    subspace (the eigenvectors whose eigenvalues reach ``FOA_SUBSPACE_RATIO`` of the
    largest and ``FOA_NOISE_RATIO`` times the noise's, at most two) holds each source's
    steering vector wherever one or two sources share the band: the projection of the
    horizontal steering vector on it is 1 at each source and less between them (the intensity vector of a bin that two sources share
    points between them).  Each band adds its projections, sharpened, weighted by the
    power above the noise subspace's.
    """
    T = S.X.shape[1]
    f = S.freqs
    lo, hi = np.searchsorted(f, FOA_SUBSPACE_BAND_HZ)
    nb = max(1, (hi - lo) // FOA_BAND_BINS)
    hi = lo + nb * FOA_BAND_BINS
    x = np.zeros((4, T + 1, nb * FOA_BAND_BINS), dtype=S.X.dtype)  # + a frame for reduceat
    np.multiply(S.X[:, :, lo:hi], active[None, :, None], out=x[:, :T])
    x = x.reshape(4, T + 1, nb, FOA_BAND_BINS)
    starts, win = _windows(T, hop_s)
    # covariance per frame and band (summed over the band's bins), then per window
    C = np.einsum("itbk,jtbk->tbij", x, np.conj(x))
    bounds = np.stack([starts, np.minimum(starts + win, T)], axis=1).ravel()
    Cw = np.add.reduceat(C, bounds, axis=0)[::2]  # (windows, bands, 4, 4)
    lam, vec = np.linalg.eigh(Cw)  # ascending
    lam = np.maximum(lam, 0.0)
    top = lam[..., 3]
    k2 = (lam[..., 2] >= FOA_SUBSPACE_RATIO * top) & (
        lam[..., 2] >= FOA_NOISE_RATIO * lam[..., 1])
    az = np.deg2rad(np.arange(-180.0, 180.0, FOA_AZ_STEP_DEG) + FOA_AZ_STEP_DEG / 2)
    # the two leading eigenvectors, the second zeroed where it is not signal
    e = vec[..., 2:].swapaxes(-1, -2) * np.stack([k2, np.ones_like(k2)], axis=-1)[..., None]
    e = e.reshape(-1, 4)  # (windows * bands * 2, channels: W, Y, Z, X)
    e_re, e_im = np.ascontiguousarray(e.real), np.ascontiguousarray(e.imag)
    # e^H a for the real steering vector a = (1, cos el sin az, sin el, cos el cos az) / root 2:
    # the horizontal part's product, shared by every elevation, then one update per elevation
    r2 = np.float32(np.sqrt(0.5))
    horiz = (np.stack([np.sin(az), np.cos(az)]) * r2).astype(np.float32)
    h_re, h_im = e_re[:, [1, 3]] @ horiz, e_im[:, [1, 3]] @ horiz
    P = None
    for el in np.deg2rad(FOA_EL_GRID_DEG):  # each azimuth's best elevation
        c, z = np.float32(np.cos(el)), np.float32(np.sin(el)) * r2
        p_re = h_re * c
        p_re += (e_re[:, 0] * r2 + e_re[:, 2] * z)[:, None]
        np.square(p_re, out=p_re)
        p_im = h_im * c
        p_im += (e_im[:, 0] * r2 + e_im[:, 2] * z)[:, None]
        np.square(p_im, out=p_im)
        p_re += p_im
        # |e^H a|^2 summed over the signal subspace's eigenvectors
        p_el = p_re.reshape(vec.shape[:2] + (2, -1)).sum(axis=2)
        np.clip(p_el, 0.0, 1.0, out=p_el)
        if FOA_SHARPNESS == 8.0:  # three squarings: far cheaper than a power
            p_el *= p_el
            p_el *= p_el
            p_el *= p_el
        else:
            p_el **= FOA_SHARPNESS
        P = p_el if P is None else np.maximum(P, p_el, out=P)
    noise = lam[..., 0]
    signal = np.where(k2, lam[..., 3] + lam[..., 2] - 2 * noise, lam[..., 3] - noise)
    weight = signal / (lam.sum(-1) + cues.EPS)
    H = np.einsum("wb,wba->wa", weight, P)
    centres = np.rad2deg(az)
    H = gaussian_filter1d(H, sigma=1.5, axis=1, mode="wrap")
    peaks = _pick_peaks(H, centres, circular=True, max_sources=max_sources,
                        min_sep_deg=20.0, rel_height=0.25)
    peaks = [[(_refine_peak(H[wi], centres, a), h) for a, h in p] for wi, p in enumerate(peaks)]
    return _foa_residual_peaks(peaks, P, weight, k2, centres, max_sources), starts, win


def _refine_peak(h: np.ndarray, centres: np.ndarray, az: float) -> float:
    """A peak of a circular spectrum ``h`` on the even grid ``centres``, moved to the
    vertex of the parabola through it and its neighbours (within half a step)."""
    n, step = centres.size, centres[1] - centres[0]
    k = int(round((az - centres[0]) / step)) % n
    y0, y1, y2 = h[(k - 1) % n], h[k], h[(k + 1) % n]
    den = y0 - 2.0 * y1 + y2
    off = float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5)) if den < 0 else 0.0
    return float(wrap_deg(centres[k] + off * step))


FOA_RESIDUAL_MIN_R = 0.4
FOA_RESIDUAL_MIN_SHARE = 0.05


def _foa_residual_peaks(peaks, P, weight, k2, centres, max_sources):
    """Add the sources the subspace spectrum hides beside a stronger one.

    Every band votes alike, so a source holding few bands (a siren beside an engine)
    makes no peak of its own.  The single-source bands that the found directions explain
    are set aside; the spectrum of the rest, over its own weight (``R``, 1 where every
    band points at one direction), peaks at a hidden source, accepted at
    ``FOA_RESIDUAL_MIN_R`` over at least ``FOA_RESIDUAL_MIN_SHARE`` of the weight.
    """
    step = centres[1] - centres[0]
    out = [list(p) for p in peaks]
    alive = weight > 0
    total = weight.sum(axis=1) + cues.EPS
    top = np.array([p[0][1] if p else 0.0 for p in peaks])
    done = [0] * len(out)  # peaks whose bands are already set aside, per window
    for _ in range(max_sources):
        for wi, p in enumerate(out):  # the found sources' single-source bands
            for a, _h in p[done[wi]:]:
                k = int(np.clip((a - centres[0]) / step + 0.5, 0, centres.size - 1))
                alive[wi] &= P[wi, :, k] < 0.5
            done[wi] = len(p)
        w_left = weight * alive
        left = w_left.sum(axis=1)
        H = gaussian_filter1d(np.einsum("wb,wba->wa", w_left, P), sigma=1.5, axis=1,
                              mode="wrap") / (left[:, None] + cues.EPS)
        added = False
        for wi, p in enumerate(out):
            if not p or len(p) >= max_sources or left[wi] < FOA_RESIDUAL_MIN_SHARE * total[wi]:
                continue
            h = H[wi].copy()
            for a, _h in p:
                h[np.abs(angle_diff_deg(centres, a)) < 20.0] = -1.0
            k = int(np.argmax(h))
            if h[k] >= FOA_RESIDUAL_MIN_R:
                p.append((float(centres[k]), float(top[wi] * h[k] * np.sqrt(left[wi] / total[wi]))))
                added = True
        if not added:
            break
    return out


def _gcc_window_peaks(itds, r_win, cal: HeadCalibration, *, max_sources,
                      rel_height=GCC_REL_HEIGHT):
    """Peaks of window-averaged GCC-PHAT functions ``(windows, lags)``, as azimuths.

    Only ITDs a head can produce are searched (side lobes beyond them are not sources).
    """
    az_cols = cal.az_from_itd(itds)
    possible = np.abs(itds) <= 1.15 * np.max(np.abs(cal.itd_s))
    R = np.where(possible, r_win, 0.0)
    return _pick_peaks(np.maximum(R, 0.0), az_cols, circular=False, max_sources=max_sources,
                       min_sep_deg=20.0, rel_height=rel_height, min_height=0.05)


STEADY_MIN_HEIGHT = 0.2
STEADY_MIN_R = 0.25
STEADY_REL_HEIGHT = 0.25
"""A peak of the window-averaged all-frames GCC-PHAT adds a source the onset-weighted
windows missed when it is at least ``HEIGHT`` high, at least ``REL_HEIGHT`` of the
window's highest all-frames peak, and the window's low bins that the found sources leave
have a steered response of at least ``R`` at it.  A real steady source beside an
impulsive one measured 0.23-0.51 there (10th-90th percentile, round-trip scenes); the
images of walls in a room (RT60 0.5 s), whose peaks can be as high, 0.11-0.22: the bins
they leave are diffuse.  An engine beside a helicopter about as loud makes all-frames
peaks a third to half as high as the helicopter's; with the onset windows' threshold
(``GCC_REL_HEIGHT``, 0.4) it was dropped wherever the helicopter's peak grew."""
LOW_BAND_HZ = (100.0, 1500.0)
LOW_REL_HEIGHT = 0.3
LOW_REFINE_DEG = 15
LOW_MIN_ONSET = 0.25
"""A source that holds the low band (a voice, a piano, an engine beside broadband noise:
PHAT counts each bin once, and most bins lie above it) shows as a peak of the low bins'
all-frames steered response, at least ``LOW_REL_HEIGHT`` of the window's highest there.
It is added as the all-frames GCC-PHAT peaks are, its coherence read within
``LOW_REFINE_DEG`` of the peak from the bins the found sources leave, and its direction
there where the window's bins, each given to the nearest direction, fit best
(:func:`_best_split`): a broad low-frequency beam is pushed off by its neighbour's side
lobe.  Its onset-weighted low-band response must be at least ``LOW_MIN_ONSET`` of the
strongest found source's there: a wall's image, or a room's diffuse low end (coherent,
in phase, so it looks frontal), shows in the decays.  Talkers and a piano beside
broadband noise as loud, through KEMAR: both found within 8 degrees in 8 -> 25 of 30
scenes; the price, in a room (RT60 0.5 s), a faint second source beside 7 more of 68
lone static sources (32 in all)."""


def _add_steady_peaks(peaks, itds, r, active, starts, win, cal: HeadCalibration, *,
                      max_sources, unit, onset_w=None):
    """Add the steady and the low-band sources that the onset-weighted window GCC-PHAT
    misses.

    Source detection leans on onsets, where the direct sound stands clear of the room; but
    a steady source (an engine, a drone) beside an impulsive one (a helicopter, speech)
    has few onsets of its own and vanishes there.  The per-frame GCC-PHAT, which weighs
    every frame, averaged over each window, shows it; its peaks at least 20 degrees from
    the ones found, high enough and coherent enough (``STEADY_MIN_HEIGHT``,
    ``STEADY_MIN_R``) are added.  Their heights are put in the onset peaks' units: the
    window's strongest onset peak times their share of the strongest all-frames peak.
    Then the same for the peaks of the low bins' steered response (``LOW_BAND_HZ``).
    ``unit`` holds the unit phasors of the low bins' cross-spectrum (:func:`_unit`).
    """
    if not len(starts):
        return peaks
    n_act = cues.window_sums(active.astype(np.float64), starts, win)
    r_all = cues.window_sums(np.where(active[:, None], r, 0.0), starts, win)
    r_all /= n_act[:, None] + cues.EPS
    steady = _gcc_window_peaks(itds, r_all, cal, max_sources=max_sources,
                               rel_height=STEADY_REL_HEIGHT)
    nf = min(unit.shape[1], cal.steer.shape[1])
    lo, hi = np.searchsorted(np.arange(nf) * cal.sr / cal.n_fft, LOW_BAND_HZ)
    low = _low_band_peaks(unit, active, starts, win, cal, n_act, (lo, hi),
                          max_sources=max_sources)
    out = []
    for start, p, q, ql in zip(starts, peaks, steady, low, strict=True):
        p = list(p)
        cands = [(az, h, q[0][1], False) for az, h in q]
        cands += [(az, h, ql[0][1], True) for az, h in ql]
        sel = slice(start, start + win)
        u = None  # the window's unit phasors, read once if a candidate needs them
        for az, h, top, in_low in cands:
            if (len(p) >= max_sources or h < STEADY_MIN_HEIGHT or (in_low and not p)
                    or any(abs(az - a) <= 20.0 for a, _h in p)):
                continue  # (a low-band source is sought beside the ones found)
            if u is None:
                u = unit[sel, :nf][active[sel]]
            found = _grid_index(np.asarray([a for a, _h in p], dtype=float))
            s_found = cal.steer[found, :nf]
            z, n_b = _residual_phasors(u, s_found)
            k = int(_grid_index(np.asarray(az, dtype=float)))
            if in_low:
                near = np.arange(max(0, k - LOW_REFINE_DEG),
                                 min(AZ_GRID.size, k + LOW_REFINE_DEG + 1))
                st = cal.steer[near, :nf]
                rc = float(((st[:, lo:hi] @ z[lo:hi]).real / max(n_b[lo:hi].sum(), 1.0)).max())
                k = int(near[_best_split(u, s_found, st)])
                az = float(AZ_GRID[k])
                if any(abs(az - a) <= 20.0 for a, _h in p):
                    continue
                if onset_w is not None:
                    # a wall's image (or the room's diffuse low end) shows in the decays
                    w = onset_w[sel, lo:hi][active[sel]]
                    pair = cal.steer[[k, found[0]], lo:hi]
                    on = (w[None] * (u[None, :, lo:hi] * pair[:, None, :]).real).sum(axis=(1, 2))
                    if on[0] < LOW_MIN_ONSET * max(float(on[1]), cues.EPS):
                        continue
            else:
                rc = float((cal.steer[k, :nf] @ z).real / max(n_b.sum(), 1.0))
            if rc < STEADY_MIN_R:
                continue  # a wall's image: the bins left are diffuse
            # in the units of the onset peaks: its share of the window's highest
            p.append((az, p[0][1] * h / top if p else h))
        out.append(p)
    return out


def _window_response(u: np.ndarray, starts, win, cal: HeadCalibration, lo: int = 0
                     ) -> np.ndarray:
    """Each window's head-model steered response ``(windows, AZ_GRID)`` of the unit phasors
    ``u`` ``(frames, bins)`` of bins ``lo..lo + bins`` (zero where a bin does not count):
    ``Re(sum of u * steer)`` over the window's frames and the bins, unnormalised."""
    hi = lo + u.shape[1]
    z = cues.window_sums(u.astype(np.complex64).view(np.float32), starts, win)
    s_cat = cal.steer_parts(hi)[2]  # rows: Re s of bins 0..hi, then -Im s of the same
    return z[:, 0::2] @ s_cat[lo:hi] + z[:, 1::2] @ s_cat[hi + lo:]


def _low_band_peaks(unit, active, starts, win, cal, n_act, band, *, max_sources):
    """Peaks of each window's all-frames steered response over the low bins ``band``
    (``(lo, hi)`` bin indices) of the unit phasors ``unit`` ``(frames, bins)``."""
    lo, hi = band
    if hi - lo < 4:
        return [[] for _ in starts]
    P = _window_response(unit[:, lo:hi] * active[:, None], starts, win, cal, lo)
    P /= (n_act[:, None] + cues.EPS) * (hi - lo)
    return _pick_peaks(np.maximum(P, 0.0), AZ_GRID, circular=False, max_sources=max_sources,
                       min_sep_deg=20.0, rel_height=LOW_REL_HEIGHT, min_height=0.02)


FOREGROUND_BAND_HZ = (100.0, 3000.0)
FOREGROUND_RISE = 10.0
FOREGROUND_PERCENTILE = 20.0
"""A low bin is in the foreground in a frame where its power (both ears) is at least
``RISE`` times its ``PERCENTILE``-th percentile over the active frames.  A steady point
source's power in a bin is exponentially distributed: it passes in a tenth of the frames
(``exp(-RISE * 0.223)``), at random (a diffuse field, whose ears fluctuate apart, far
less often); a voice's harmonics, a melody's notes, a siren's sweep, standing 10-20 dB
above a steady noise as loud as they are, pass wherever they sound."""
FOREGROUND_REL_HEIGHT = 0.5
FOREGROUND_MIN_R = 0.6
FOREGROUND_MIN_SHARE = 0.15
FOREGROUND_MIN_BINS = 16
FOREGROUND_LINK_DEG = 15.0
"""A peak of a window's foreground steered response at least ``REL_HEIGHT`` of its highest
(a hidden talker holds most of the foreground: 0.86 of the highest, median; a lone
engine's side lobes 0.38-0.52, most of them under it, which spares their tests) is a
source when the foreground bins that the sources
found do not explain are at least ``MIN_SHARE`` of the window's and ``MIN_BINS`` in
number, with a steered response of at least ``MIN_R`` near it, and when the next or the
previous window adds one within ``LINK_DEG`` too.  Talkers beside pink noise as loud,
through KEMAR, measured 0.65-0.88 there over about 45 bins (median), window after
window; the KEMAR bins of a lone lateral engine that the spherical model misplaces reach
as high over 11-14 bins, in a room, and a source moving across its window leaves such
bins in a window here and there."""


def foreground_mask(power: np.ndarray, active: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """Foreground bins ``(frames, bins)`` of the low bins' power ``(frames, bins)``: the
    ones that rise ``FOREGROUND_RISE`` times above their steady level in active frames,
    within ``FOREGROUND_BAND_HZ``."""
    nf = power.shape[1]
    lo, hi = np.searchsorted(freqs[:nf], FOREGROUND_BAND_HZ)
    fg = np.zeros(power.shape, dtype=bool)
    if hi - lo < 4 or not active.any():
        return fg
    p = power[:, lo:hi]
    p_act = p[active]
    k = int(FOREGROUND_PERCENTILE / 100.0 * (p_act.shape[0] - 1))
    floor = np.partition(p_act, k, axis=0)[k] + cues.EPS  # (digital silence: no floor)
    fg[:, lo:hi] = (p > FOREGROUND_RISE * floor) & active[:, None]
    return fg


def _explained(u: np.ndarray, found: np.ndarray, cal: HeadCalibration) -> np.ndarray:
    """Which of the unit phasors ``u`` ``(frames, bins)`` the sources at grid rows
    ``found`` explain: their phase is within the second of ``RESIDUAL_TOL_RAD`` of the
    head model's for one of them, or within the third of that source's own phase in the
    bin (the mean phase of the bins within the first of the model's), as the residual
    search sets bins aside (:func:`_residual_window_peaks`)."""
    nf = u.shape[1]
    cos_wide, cos_model, cos_tight = np.cos(RESIDUAL_TOL_RAD)
    out = np.zeros(u.shape, dtype=bool)
    for k in found:
        c = (u * cal.steer[k, :nf]).real
        own = (u * (c > cos_wide)).sum(axis=0)
        own /= np.abs(own) + cues.EPS
        out |= (c > cos_model) | ((u * np.conj(own)).real > cos_tight)
    return out


def _add_foreground_peaks(peaks, unit, fg, active, starts, win, cal: HeadCalibration, *,
                          max_sources):
    """Add the sources that stand out of the foreground bins (:func:`foreground_mask`)
    beside the ones found in each window.

    A voice beside broadband noise as loud holds few bins (its harmonics), and at few
    onsets against the noise's many chance ones: no GCC-PHAT, low-band or residual peak
    of its own.  Its harmonics, though, stand well above the noise's steady level in
    those bins.  The steered response of each window's foreground bins peaks at it; a
    peak at least 20 degrees from the sources found is tested on the foreground bins
    they do not explain (:func:`_explained`), placed where the window's bins fit best
    (:func:`_best_split`), and kept on the terms of ``FOREGROUND_MIN_R``.  Its height is
    in the units of the window's strongest onset peak: its share of the highest
    foreground peak.  ``unit`` holds the unit phasors of the low bins' cross-spectrum
    (:func:`_unit`), ``fg`` their foreground mask.

    Talkers beside pink noise as loud, through KEMAR: both found within 8 degrees in
    25 -> 29 of the benchmark's 30 scenes (talkers, a piano, engines and noise), 31 -> 42
    of 48 other ones; no lone source, anechoic or in a room, gains a source.
    """
    nf = min(unit.shape[1], cal.steer.shape[1], fg.shape[1])
    if not len(starts) or max_sources < 2 or not fg.any():
        return peaks  # (a source is sought beside one found)
    n_fg = cues.window_sums(fg[:, :nf].sum(axis=1, dtype=np.float64), starts, win)
    P = _window_response(unit[:, :nf] * fg[:, :nf], starts, win, cal)
    P /= n_fg[:, None] + cues.EPS
    # (the highest peak is often at a source found already: max_sources of them)
    cand = _pick_peaks(np.maximum(P, 0.0), AZ_GRID, circular=False, max_sources=max_sources,
                       min_sep_deg=20.0, rel_height=FOREGROUND_REL_HEIGHT, min_height=0.1)
    added: list[list[tuple[float, float]]] = [[] for _ in starts]
    for wi, (start, p, q) in enumerate(zip(starts, peaks, cand, strict=True)):
        if not p or len(p) >= max_sources:
            continue
        found = [a for a, _h in p]
        u = m = None  # the window's active bins, once a candidate asks
        left = None  # the foreground bins the found sources leave, once a candidate asks
        for az, h in q:
            if len(found) >= max_sources or any(abs(az - a) <= 20.0 for a in found):
                continue
            if u is None:
                act = active[start : start + win]
                u = unit[start : start + win, :nf][act]
                m = fg[start : start + win, :nf][act]
            if left is None:
                rows = _grid_index(np.asarray(found, dtype=float))
                left = m & ~_explained(u, rows, cal)
            n_left = float(left.sum())
            if n_left < FOREGROUND_MIN_BINS or n_left < FOREGROUND_MIN_SHARE * m.sum():
                break
            k = int(_grid_index(np.asarray(az, dtype=float)))
            near = np.arange(max(0, k - LOW_REFINE_DEG), min(AZ_GRID.size, k + LOW_REFINE_DEG + 1))
            st = cal.steer[near, :nf]
            rc = float(((st @ (u * left).sum(axis=0)).real / n_left).max())
            if rc < FOREGROUND_MIN_R:
                continue
            k = int(near[_best_split(u * m, cal.steer[rows, :nf], st)])
            az = float(AZ_GRID[k])
            if any(abs(az - a) <= 20.0 for a in found):
                continue
            added[wi].append((az, p[0][1] * h / q[0][1]))
            found.append(az)
            left = None
    out = []
    for wi, p in enumerate(peaks):
        # a source holds its place from window to window; a misplaced bin here and there
        # does not
        nb = [a for j in (wi - 1, wi + 1) if 0 <= j < len(added) for a, _h in added[j]]
        out.append(list(p) + [(az, h) for az, h in added[wi]
                              if any(abs(az - a) <= FOREGROUND_LINK_DEG for a in nb)])
    return out


def _residual_phasors(u: np.ndarray, found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The unit phasors ``u`` ``(frames, bins)`` that the found directions' steering
    vectors ``found`` ``(n, bins)`` do not explain, summed over frames (all weigh alike),
    and how many there are per bin: the steered response at a direction is
    ``Re(steer @ z) / n.sum()``."""
    keep = np.ones(u.shape, dtype=bool)
    for s in found:
        keep &= (u * s).real <= np.cos(RESIDUAL_TOL_RAD[1])
    return (u * keep).sum(axis=0), keep.sum(axis=0).astype(np.float64)


def _best_split(u: np.ndarray, found: np.ndarray, candidates: np.ndarray) -> int:
    """Which of the ``candidates`` steering vectors ``(c, bins)``, beside the ``found``
    ones, best explains the phasors ``u`` ``(frames, bins)`` when each bin goes to the
    direction nearest its phase (DUET's assignment).  Unlike the residual left by a fixed
    tolerance around the found directions, this does not push a neighbour away from them:
    a bin between two sources is no longer cut from the side facing the other."""
    fit = np.full(u.shape, -1.0, dtype=np.float32)
    for s in found:
        np.maximum(fit, (u * s).real, out=fit)
    c = (u[None] * candidates[:, None, :]).real
    return int(np.argmax(np.maximum(fit[None], c).sum(axis=(1, 2))))


def _unit(cross: np.ndarray) -> np.ndarray:
    """Unit phasors of a cross-spectrum (its interaural phase)."""
    return cross / (np.abs(cross) + cues.EPS)


def _grid_index(az_deg: np.ndarray) -> np.ndarray:
    """The nearest ``AZ_GRID`` row of each azimuth (clipped to the grid)."""
    return np.clip(np.round(az_deg - AZ_GRID[0]).astype(np.int64), 0, AZ_GRID.size - 1)


RESIDUAL_F_MAX_HZ = 3000.0
"""The residual search uses bins up to here: heads agree on their interaural phase below a
few kilohertz (above, pinnae differ and the phase wraps)."""
RESIDUAL_TOL_RAD = (1.2, 0.6, 0.5)
"""A found source explains a bin whose phase is within the second tolerance of the head
model's for its direction, or within the third of the source's own phase in that bin: the
mean phase, over the window, of the bins within the first (wide) tolerance of the model's,
so that a head other than the model's still explains its own bins."""
RESIDUAL_SUB_BLOCKS = 5
RESIDUAL_SPEEDS_DEG_S = (0.0, -30.0, 30.0, -60.0, 60.0, -90.0, 90.0)
"""The residual's steered response is taken along these sweeps (window centre plus speed
times time), over this many sub-blocks of the window, each steered as one."""
RESIDUAL_MIN_R = 0.6
RESIDUAL_MIN_SHARE = 0.05
RESIDUAL_MIN_BINS = 10.0
"""A residual peak counts as a source when its steered response is at least ``MIN_R`` (a
coherent direction) over bins holding at least ``MIN_SHARE`` of the window's weight, and
as much as ``MIN_BINS`` bins of equal weight would (a handful of bins fits some sweep
whatever their phases)."""


def _residual_window_peaks(peaks, unit, weights, starts, win, cal: HeadCalibration, freqs, *,
                           max_sources, hop_s=cues.DEFAULT_HOP_S):
    """Add the sources that the window GCC-PHAT hides to each window's peaks.

    The GCC-PHAT weighs every bin alike, so a source that holds only a few bins (a siren or
    a voice beside broadband noise) makes no peak of its own.  Per window, the bins the
    found sources explain (their phase matches the head model's for the source direction
    and the source's own phase in that bin) are set aside; the head-model steered
    response of the remaining bins then peaks at the hidden source, which is accepted when
    coherent enough over enough of the window's weight, and its bins are set aside in turn.
    Sources move: each steered response is the best over straight sweeps across the window
    (``RESIDUAL_SPEEDS_DEG_S``), and each source's bins are set aside along its sweep.
    Its height is its steered response times the root of its share of the weight, in the
    units of the window's strongest GCC-PHAT peak.  ``unit`` holds the unit phasors of the
    low bins' cross-spectrum (:func:`_unit`) and ``weights`` their onset weights.
    """
    if cal.steer is None or not len(starts):
        return peaks
    # heads agree on their interaural phase below a few kilohertz: the search stays there
    nf = min(unit.shape[1], cal.steer.shape[1], int(np.searchsorted(freqs, RESIDUAL_F_MAX_HZ)))
    T = unit.shape[0]
    n_w = len(starts)
    cos_wide, cos_model, cos_tight = np.cos(RESIDUAL_TOL_RAD).astype(np.float32)
    # only the bins that carry weight (onsets: a tenth or so) take part: one entry per
    # (window, frame, bin), windows overlapping, with its phasor and its weight
    t_nz, b_nz = np.nonzero(weights[:, :nf] > 0)
    lo = np.searchsorted(t_nz, starts)
    hi = np.searchsorted(t_nz, np.minimum(starts + win, T))
    counts = hi - lo
    e_win = np.repeat(np.arange(n_w), counts)
    take = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    take += np.repeat(lo, counts)
    t_e, e_bin = t_nz[take], b_nz[take]
    u_e = unit[t_e, e_bin]  # only the bins that take part
    e_re, e_im = u_e.real.astype(np.float32), u_e.imag.astype(np.float32)
    e_w = weights[t_e, e_bin].astype(np.float32)
    key = e_win * nf + e_bin  # (window, bin)
    s_re, s_im, s_cat = cal.steer_parts(nf)

    def window_sums(x):
        return np.bincount(e_win, x, minlength=n_w)

    # a moving source sweeps its window (a crossing at 45 deg/s, 20 degrees: a radian of
    # interaural phase at 1 kHz): the residual is also steered along straight sweeps, per
    # sub-block of the window, each at its own direction
    n_sub = max(1, min(RESIDUAL_SUB_BLOCKS, win))
    e_sub = np.minimum((t_e - starts[e_win]) * n_sub // win, n_sub - 1)
    key_sub = (e_sub * n_w + e_win) * nf + e_bin
    sub_t_s = ((np.arange(n_sub) + 0.5) * win / n_sub - win / 2.0) * hop_s
    grid = np.arange(AZ_GRID.size)

    # steering as one real matrix (s_cat): Re(z * s) = [Re z, Im z] @ [Re s, -Im s]
    speeds = np.asarray(RESIDUAL_SPEEDS_DEG_S, dtype=np.float64)
    shifts = np.round(speeds[:, None] * sub_t_s[None, :]).astype(np.int64)  # (speeds, subs)
    rows = np.clip(grid[None, None, :] + shifts[:, :, None], 0, grid.size - 1)
    subs = np.arange(n_sub)[None, :, None]

    def sweep_products(wins):
        """Re(sum over each sub-block's frames of unit * weight, steered): (sub-blocks, az,
        windows ``wins``)."""
        n_z = n_sub * n_w * nf
        z = np.empty((n_sub, n_w, 2 * nf), dtype=np.float32)
        z[..., :nf] = np.bincount(key_sub, e_re * e_w, minlength=n_z).reshape(n_sub, n_w, nf)
        z[..., nf:] = np.bincount(key_sub, e_im * e_w, minlength=n_z).reshape(n_sub, n_w, nf)
        return np.ascontiguousarray((z[:, wins] @ s_cat).transpose(0, 2, 1))

    def best_sweep(M, cols=None, wsel=None):
        """The steered response along the best of the sweeps ``RESIDUAL_SPEEDS_DEG_S`` per
        window x az (the sweep's centre), and the speed that gave it; at grid rows
        ``cols`` (windows ``wsel`` of ``M``, a few rows each) instead of every row."""
        if cols is None:
            R = M[subs, rows].sum(axis=1)  # (speeds, az, windows)
            return R.max(axis=0).T.astype(np.float64), speeds[R.argmax(axis=0)].T
        r = np.clip(cols[None, None] + shifts[:, :, None, None], 0, grid.size - 1)
        R = M[subs[..., None], r, wsel[None, None, :, None]].sum(axis=1)  # (speeds, win, col)
        return R.max(axis=0).astype(np.float64), speeds[R.argmax(axis=0)]

    w0 = window_sums(e_w) + cues.EPS
    k_of = np.full(n_w, -1, dtype=np.int64)

    speed_of = np.zeros(n_w)

    def set_aside(az_w, wins, speed_deg_s=0.0):
        """Zero the weight of bins explained by sources at ``az_w`` (window centres,
        sweeping at ``speed_deg_s``) in windows ``wins``."""
        k_of[:] = -1
        k_of[wins] = _grid_index(az_w)
        speed_of[:] = 0.0
        speed_of[wins] = speed_deg_s
        if kernels.JIT:
            kernels.set_aside(e_win, e_sub, e_bin, key, e_re, e_im, e_w, k_of, speed_of,
                              sub_t_s, s_re, s_im, cos_wide, cos_model, cos_tight, n_w * nf,
                              cues.EPS)
            return
        sel = np.nonzero((k_of[e_win] >= 0) & (e_w > 0))[0]
        if not sel.size:
            return
        shift = np.round(speed_of[e_win[sel]] * sub_t_s[e_sub[sel]]).astype(np.int64)
        k = np.clip(k_of[e_win[sel]] + shift, 0, AZ_GRID.size - 1)
        bn, kk = e_bin[sel], key[sel]
        ur, ui, w = e_re[sel], e_im[sel], e_w[sel]
        c = ur * s_re[k, bn] - ui * s_im[k, bn]  # cos of the mismatch with the head model
        wm = w * (c > cos_wide)
        o_re = np.bincount(kk, ur * wm, minlength=n_w * nf)  # the source's own phase
        o_im = np.bincount(kk, ui * wm, minlength=n_w * nf)
        mag = np.hypot(o_re, o_im) + cues.EPS
        own = (ur * o_re[kk] + ui * o_im[kk]) / mag[kk]  # cos of the mismatch with it
        e_w[sel] = w * ((c <= cos_model) & (own <= cos_tight))

    out = [list(p) for p in peaks]
    top = np.array([p[0][1] if p else 0.0 for p in peaks])
    # the found sources' directions, refined on the head model's steered response (the
    # GCC-PHAT peak maps through the broadband ITD table, a degree or two off), and their
    # sweeps over the window
    M0 = sweep_products(np.arange(n_w))
    near = np.arange(-6, 7)
    half_s = 0.5 * win * hop_s
    span = [[(az, az) for az, _h in p] for p in peaks]  # each source's range over its window
    for j in range(max_sources):
        wins = np.array([wi for wi, p in enumerate(peaks) if len(p) > j], dtype=np.int64)
        if not wins.size:
            continue
        cols = np.clip(_grid_index(np.array([peaks[wi][j][0] for wi in wins]))[:, None]
                       + near, 0, grid.size - 1)
        R, v = best_sweep(M0, cols, wins)
        best = np.argmax(R, axis=1)
        az_j = AZ_GRID[cols[np.arange(wins.size), best]]
        v_j = v[np.arange(wins.size), best]
        set_aside(az_j, wins, v_j)
        for wi, a, v in zip(wins.tolist(), az_j.tolist(), v_j.tolist(), strict=True):
            span[wi][j] = (a - abs(v) * half_s, a + abs(v) * half_s)
    for _ in range(max_sources):
        room = np.array([0 < len(p) < max_sources for p in out])
        w_left = window_sums(e_w)
        share = w_left / w0
        n_eff = w_left ** 2 / (window_sums(e_w.astype(np.float64) ** 2) + cues.EPS)
        room &= (share >= RESIDUAL_MIN_SHARE) & (n_eff >= RESIDUAL_MIN_BINS)
        if not room.any():
            break
        wins = np.nonzero(room)[0]
        R, speed = best_sweep(sweep_products(wins))
        R /= w_left[wins][:, None] + cues.EPS
        for i, wi in enumerate(wins.tolist()):  # never next to a source already found
            for j, (az, _h) in enumerate(out[wi]):
                lo, hi = span[wi][j] if j < len(span[wi]) else (az, az)
                R[i, (AZ_GRID > lo - 20.0) & (AZ_GRID < hi + 20.0)] = -1.0
        k = np.argmax(R, axis=1)
        r_k = R[np.arange(wins.size), k]
        v_k = speed[np.arange(wins.size), k]
        ok = r_k >= RESIDUAL_MIN_R
        if not ok.any():
            break
        pos, _ = cues.parabolic_peak(R, k)
        az_new = AZ_GRID[0] + pos * (AZ_GRID[1] - AZ_GRID[0])
        for i in np.nonzero(ok)[0]:
            wi = int(wins[i])
            out[wi].append((float(az_new[i]), float(top[wi] * r_k[i] * np.sqrt(share[wi]))))
        set_aside(az_new[ok], wins[ok], v_k[ok])
    return out


ALIAS_BAND_HZ = (500.0, 3000.0)
ALIAS_ILD_SIGMA_DB = 3.0
ALIAS_MAX_FIT = 0.1
ALIAS_MIN_REL = 0.5
ALIAS_MERGE_DEG = 15.0
ALIAS_TONAL_RISE = 4.0
ALIAS_TONAL_SPAN = 13
ALIAS_MIN_TONAL = 0.5
"""A harmonic source whose fundamental is high (a siren's 450-1350 Hz) has interaural
phases that fit its true delay and that delay plus or minus one period equally well: every
harmonic wraps by whole turns.  GCC-PHAT and the steered responses then find ghosts 30-60
degrees to the other side, as high as the source, and often miss the source itself.  Its
level differences tell them apart.  In a window whose power in ``ALIAS_BAND_HZ`` lies
mostly (at least ``ALIAS_MIN_TONAL``) in tonal bins (:func:`_tonal`), each peak is scored
by the power of the bins that fit the head model at it in phase, and the part of it that
fits in level too (a Gaussian of the ILD misfit, ``SIGMA``); a peak whose part is under
``ALIAS_MAX_FIT`` is a ghost.  It moves to the highest inner peak of the window's
phase-and-level response (at least ``ALIAS_MIN_REL`` of its top) that no kept peak lies
within ``ALIAS_MERGE_DEG`` of or shares a lobe with (:func:`_own_lobe`), or is dropped
(on another head, in a room, the response's top can lie 20-30 degrees off the siren, on
its lobe).  Round-trip scenes with a siren: ghosts fit
0.02-0.08, the siren 0.6-0.9, a plane beside it (whose bins the siren's harmonics share)
0.17-0.45; tonal shares 0.7-0.9.  Two sources through KEMAR, a head the model only
approximates, where broadband noise holds the band: the weaker source fits as little as
0.03, but the tonal share is 0.1-0.25, and no source there aliases."""
TONAL_MIN_FIT = 0.3
TONAL_MAX_DIP = 0.7
"""In such a window the top of the phase-and-level response is a source too (a siren
beside a helicopter that holds the onsets, which GCC-PHAT weighs bin by bin) where it
fits at least ``TONAL_MIN_FIT`` of the band's power and lies on a lobe of its own: the
response dips to ``TONAL_MAX_DIP`` of the lower of the two between it and each peak kept
(in a room, a lone source's response is broad and its top wanders off its peak).  A
window is never emptied: where every peak is a ghost and nothing takes their place (level
differences that fit no direction), it is left as it was."""
ALIAS_GRID_STEP = 3
"""The response is read over the grid in steps of this many degrees (it divides 180, so
both ends are on the coarse grid), each pick refined to the degree, and not at all where
no peak is a ghost and the best one alone fits all but ``TONAL_MIN_FIT`` of the band's
power (no tonal source can be left): 10 s of a siren took 64 ms here before, about 5
times the rest of the analysis."""


def _tonal(power: np.ndarray) -> np.ndarray:
    """Which time-frequency bins of ``power`` ``(frames, bins)`` are tonal: at least
    ``ALIAS_TONAL_RISE`` times the mean of the ``ALIAS_TONAL_SPAN`` bins around them."""
    return power > ALIAS_TONAL_RISE * cues.smooth(power, ALIAS_TONAL_SPAN, axis=1)


def _band_ild(X: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """ILD (dB) of the time-frequency bins ``lo:hi``."""
    Y = X[:, :, lo:hi]
    return cues._ild_from_power(Y.real ** 2 + Y.imag ** 2)


def _fit_response(power, u, ild, steer, model) -> tuple[np.ndarray, np.ndarray]:
    """Steered responses of bins ``(frames, F)`` at head-model rows ``steer``/``model``
    ``(A, F)``: the in-phase power, and the part of it that fits in level too, ``(A,)``."""
    c = np.maximum(np.einsum("tf,af->taf", u, steer).real, 0.0) * power[:, None, :]
    g = np.exp(-0.5 * ((ild[:, None, :] - model[None]) / ALIAS_ILD_SIGMA_DB) ** 2)
    return c.sum(axis=(0, 2)), (c * g).sum(axis=(0, 2))


def _refine_row(bins, steer, model, row: int, step: int) -> tuple[float, float]:
    """The azimuth less than ``step`` rows from grid row ``row`` where the phase-and-level
    response of ``bins`` (power, phasors, ILD ``(frames, F)``) is highest, and that value."""
    near = np.arange(max(row - step + 1, 0), min(row + step, AZ_GRID.size))
    _P, Q = _fit_response(*bins, steer[near], model[near])
    return float(AZ_GRID[near[int(np.argmax(Q))]]), float(Q.max())


def _own_lobe(Q: np.ndarray, k: int, j: int) -> bool:
    """Whether rows ``k`` and ``j`` of a response ``Q`` lie on lobes of their own: it dips
    to at most ``TONAL_MAX_DIP`` of the lower of the two between them."""
    a, b = min(k, j), max(k, j)
    return b - a >= 2 and Q[a : b + 1].min() <= TONAL_MAX_DIP * min(Q[k], Q[j])


def _unalias_peaks(peaks, unit, power, X, freqs, active, starts, win, cal: HeadCalibration,
                   *, max_sources: int = 4):
    """Move or drop each window's peaks that are aliases of a harmonic source, and add the
    source where it stands on a lobe of its own (see ``ALIAS_BAND_HZ`` and
    ``TONAL_MIN_FIT``), from the low bins' unit interaural phasors and power ``(frames,
    bins)`` and the STFT ``X``."""
    if cal.ild_db is None or not len(starts):
        return peaks
    nf = min(unit.shape[1], cal.steer.shape[1])
    lo, hi = (int(v) for v in np.searchsorted(freqs[:nf], ALIAS_BAND_HZ))
    if hi - lo < ALIAS_TONAL_SPAN:
        return peaks
    p = power[:, :hi] * active[:, None]
    tonal = _tonal(p)[:, lo:]
    p = p[:, lo:]
    frame = np.stack([(p * tonal).sum(axis=1), p.sum(axis=1)], axis=-1)
    sums = cues.window_sums(frame, starts, win)
    is_tonal = (sums[:, 0] >= ALIAS_MIN_TONAL * (sums[:, 1] + cues.EPS)) & np.array(
        [bool(pk) for pk in peaks])
    if not is_tonal.any():
        return peaks
    u, ild = unit[:, lo:hi], _band_ild(X, lo, hi)
    steer, model = cal.steer[:, lo:hi], cal.ild_db[:, lo:hi]
    step = ALIAS_GRID_STEP
    coarse = np.arange(0, AZ_GRID.size, step)
    out = []
    for wi, pk in enumerate(peaks):
        if not is_tonal[wi]:
            out.append(pk)
            continue
        sl = slice(int(starts[wi]), int(starts[wi]) + win)
        bins = (p[sl], u[sl], ild[sl])
        rows = _grid_index(np.array([az for az, _ in pk]))
        P, Q = _fit_response(*bins, steer[rows], model[rows])
        ghost = Q < ALIAS_MAX_FIT * P
        if not ghost.any() and Q.max() >= (1.0 - TONAL_MIN_FIT) * sums[wi, 1]:
            out.append(pk)  # the peaks explain so much that no tonal source is left
            continue
        keep = [q for q, g in zip(pk, ghost, strict=True) if not g]
        # the response over the grid in coarse steps, each pick refined to the degree
        _P, Qc = _fit_response(*bins, steer[coarse], model[coarse])

        def own_lobe(c: int, az: float, Qc=Qc) -> bool:
            j = int(np.clip(np.round((az - AZ_GRID[0]) / step), 0, coarse.size - 1))
            return _own_lobe(Qc, c, j)

        kc = int(np.argmax(Qc))
        az_top, q_top = _refine_row(bins, steer, model, coarse[kc], step)
        fit = q_top / (sums[wi, 1] + cues.EPS)
        if (fit >= TONAL_MIN_FIT and len(keep) < max_sources
                and all(own_lobe(kc, q[0]) for q in keep)):
            keep.append((az_top, fit))
        if not ghost.any():
            out.append(sorted(keep, key=lambda q: -q[1]))
            continue
        (cand,) = _pick_peaks(Qc[None], np.arange(coarse.size), circular=False,
                              max_sources=coarse.size, min_sep_deg=0.5,  # (rows)
                              rel_height=ALIAS_MIN_REL)
        cand = [int(c) for c, _q in cand]
        refined: dict[int, float] = {}  # each candidate refined once, when first asked
        for (_az, h), g in zip(pk, ghost, strict=True):
            if not g:
                continue
            for c in cand:
                if c not in refined:
                    refined[c] = _refine_row(bins, steer, model, coarse[c], step)[0]
                az_c = refined[c]
                if all(abs(az_c - k_az) >= ALIAS_MERGE_DEG and own_lobe(c, k_az)
                       for k_az, _ in keep):
                    keep.append((az_c, h))
                    break
        # level differences that fit no direction at all (a panned mix read as binaural,
        # a head far from the model's) leave the window as it was
        out.append(sorted(keep, key=lambda q: -q[1]) if keep else pk)
    return out


MAX_SPEED_DEG_S = 90.0
"""Fastest azimuth change a track's prediction assumes."""


HEIGHT_PENALTY_DEG = 20.0
WEAK_PEAK_RATIO = 3.0
"""Where a peak could go to several tracks, a track whose recent peaks (their median) are
less than half as high as the peak counts as this many degrees farther from it per factor
e beyond that half.  A room's reflection makes a weak track whose predicted path, from
its scattered peaks, can pass the strong source's next peak closer than the source's own
track's does; the two peaks of crossing sources that merge into one peak are at most
about twice either source's height, so they are not penalised.  The other way round, a
track counts a peak under ``1 / WEAK_PEAK_RATIO`` of its recent height as farther by the
same measure: a young track (no velocity yet) took its siren's side lobe, a fifth as
high and nearer than the siren's next peak (heights swing up to twice between windows)."""


def _recent_height(h: list[float]) -> float:
    """Median of a track's last three peak heights (plain Python: it runs per live track
    per window)."""
    x = sorted(h[-3:])
    return x[len(x) // 2] if len(x) % 2 else 0.5 * (x[0] + x[1])


def _track_velocity(t: dict, max_step: float, n: int = 4, *, first: bool = False) -> float:
    """Azimuth change per window of a track over its last ``n`` peaks (``first``: its
    first ``n``), a line fit clipped to ``max_step``.

    Plain Python: it runs per live track per window, on at most ``n`` points."""
    w = t["win"][:n] if first else t["win"][-n:]
    if len(w) < 2 or w[-1] - w[0] < 1:
        return 0.0
    az = t["az"][:n] if first else t["az"][-n:]
    a = [float(az[0])]
    for i in range(1, len(az)):  # unwrapped: no 360-degree jumps
        a.append(a[-1] + ((az[i] - az[i - 1] + 180.0) % 360.0 - 180.0))
    wm = sum(w) / len(w)
    am = sum(a) / len(a)
    num = den = 0
    for wi, ai in zip(w, a, strict=True):
        num += (wi - wm) * (ai - am)
        den += (wi - wm) ** 2
    return min(max(num / den, -max_step), max_step)


def _link_tracks(peaks_per_win, starts, win, T, *, circular, max_sources, hop_s,
                 gate_deg=30.0, min_sep_deg=20.0, min_rel_mass=None):
    """Link window peaks into tracks; each track is an azimuth per frame (NaN where dead)."""
    tracks: list[dict] = []
    step_s = float(starts[1] - starts[0]) * hop_s if len(starts) > 1 else win * hop_s
    max_gap = max(2, int(round(1.5 / max(step_s, 1e-9))))  # pauses in speech, gaps in music
    max_step = MAX_SPEED_DEG_S * step_s  # degrees per window step
    # each live track's velocity and recent height, kept until it takes its next peak
    state: dict[int, tuple[int, float, float]] = {}

    def track_state(t: dict) -> tuple[int, float, float]:
        s = state.get(id(t))
        if s is None or s[0] != len(t["win"]):
            s = (len(t["win"]), _track_velocity(t, max_step), _recent_height(t["h"]) + cues.EPS)
            state[id(t)] = s
        return s

    for wi, peaks in enumerate(peaks_per_win):
        if not peaks:
            continue
        live = [t for t in tracks if wi - t["last"] <= max_gap]
        st = [track_state(t) for t in live]
        # each track is expected where its recent motion leads (sources that cross each
        # other keep their ways instead of bouncing off)
        pred = [t["az"][-1] + s[1] * (wi - t["last"]) for t, s in zip(live, st, strict=True)]
        # a weak track does not take a peak far stronger than its own (HEIGHT_PENALTY_DEG)
        h_t = [s[2] for s in st]
        pairs = sorted(
            ((abs((p[0] - pred[ti] + 180.0) % 360.0 - 180.0),
              HEIGHT_PENALTY_DEG * (max(0.0, math.log((p[1] + cues.EPS) / (2.0 * h_t[ti])))
                                    + max(0.0, math.log(h_t[ti] / (WEAK_PEAK_RATIO * p[1]
                                                                   + cues.EPS)))),
              pi, ti)
             for pi, p in enumerate(peaks) for ti in range(len(live))),
            key=lambda x: x[0] + x[1])
        used_p, used_t = set(), set()
        for d, _penalty, pi, ti in pairs:
            # a source may move on during a pause: the gate widens with the gap (60 deg/s)
            gate = gate_deg + 60.0 * step_s * (wi - live[ti]["last"] - 1)
            if d > gate or pi in used_p or ti in used_t:
                continue
            used_p.add(pi)
            used_t.add(ti)
            t = live[ti]
            t["win"].append(wi)
            t["az"].append(peaks[pi][0])
            t["h"].append(peaks[pi][1])
            t["last"] = wi
        for pi, p in enumerate(peaks):
            if pi not in used_p:
                tracks.append({"win": [wi], "az": [p[0]], "h": [p[1]], "last": wi})

    tracks = _bridge_crossings(_take_over(_stitch(tracks)),
                               max(2, int(round(BRIDGE_MAX_S / max(step_s, 1e-9)))))
    for t in tracks:
        t["mass"] = float(sum(t["h"]))
    total = sum(t["mass"] for t in tracks) or 1.0
    min_windows = 2 if len(peaks_per_win) > 2 else 1
    tracks = [t for t in tracks if len(t["win"]) >= min_windows and t["mass"] >= 0.08 * total]
    tracks.sort(key=lambda t: -t["mass"])
    if min_rel_mass is None:
        min_rel_mass = MIN_REL_MASS
    if tracks:  # reflections and side lobes make weak tracks; real sources carry mass
        tracks = [t for t in tracks if t["mass"] >= min_rel_mass * tracks[0]["mass"]]
    centres_t = starts + win / 2.0
    # a weaker track that stays within the separation of a stronger one is its echo
    kept: list[dict] = []
    for t in tracks:
        shadow = False
        for k in kept:
            common = sorted(set(t["win"]) & set(k["win"]))
            if common:
                ta = np.asarray(t["az"])[np.isin(t["win"], common)]
                ka = np.asarray(k["az"])[np.isin(k["win"], common)]
                if np.mean(np.abs(angle_diff_deg(ta, ka))) < min_sep_deg:
                    shadow = True
                    break
        if not shadow:
            kept.append(t)
    tracks = kept[:max_sources]
    _unbounce(tracks)
    frames = np.arange(T)
    out = []
    for t in tracks:
        wins = np.asarray(t["win"])
        az = unwrap_deg(np.asarray(t["az"])) if circular else np.asarray(t["az"])
        tc = centres_t[wins]
        track = np.interp(frames, tc, az)
        alive = (frames >= tc[0] - win / 2.0) & (frames <= tc[-1] + win / 2.0)
        out.append(np.where(alive, wrap_deg(track) if circular else track, np.nan))
    return out


STITCH_MAX_OVERLAP = 3
STITCH_MAX_DEG = 10.0


def _stitch(tracks: list[dict]) -> list[dict]:
    """Join a track to one that takes over from it at the same azimuth.

    Where a source's direct sound fades for a moment (a pause, a room's reflections
    taking over), its windows' peaks scatter and the linker may follow a stray one: the
    track goes astray while a new one starts, and a little later resumes where the first
    was.  A track that starts at most ``STITCH_MAX_OVERLAP`` windows before another ends,
    and whose first peaks after it lie within ``STITCH_MAX_DEG`` of that one's last peaks
    before it, continues it; in the windows where both live, the peak nearer their common
    azimuth is kept.
    """
    median = np.median
    merged = True
    while merged:
        merged = False
        for a in tracks:
            for b in tracks:
                if b is a or b["win"][0] <= a["win"][0] or b["win"][-1] <= a["win"][-1]:
                    continue
                s_b, e_a = b["win"][0], a["win"][-1]
                n_over = sum(1 for w in a["win"] if w >= s_b)
                if n_over > STITCH_MAX_OVERLAP or (n_over == 0 and s_b > e_a + 1):
                    continue
                a_pre = [z for w, z in zip(a["win"], a["az"], strict=True) if w < s_b][-3:]
                b_post = [z for w, z in zip(b["win"], b["az"], strict=True) if w > e_a][:3]
                if len(a_pre) < 2 or len(b_post) < 2:
                    continue
                m_a, m_b = median(a_pre), median(b_post)
                if abs(m_a - m_b) > STITCH_MAX_DEG:
                    continue
                ref = 0.5 * (m_a + m_b)
                pa = {w: (z, h) for w, z, h in zip(a["win"], a["az"], a["h"], strict=True)}
                pb = {w: (z, h) for w, z, h in zip(b["win"], b["az"], b["h"], strict=True)}
                wins = sorted(set(pa) | set(pb))
                chosen = [min((p for p in (pa.get(w), pb.get(w)) if p is not None),
                              key=lambda p: abs(p[0] - ref)) for w in wins]
                a["win"], a["az"], a["h"] = (wins, [c[0] for c in chosen],
                                             [c[1] for c in chosen])
                a["last"] = wins[-1]
                tracks.remove(b)
                merged = True
                break
            if merged:
                break
    return tracks


STRAY_MAX_REL_HEIGHT = 0.5


def _take_over(tracks: list[dict]) -> list[dict]:
    """Hand a track's continuation to it from a stray track that took it over.

    A source's peaks may go to a track that began as a stray peak next to it: the
    linker's motion prediction (from the source's first two peaks) can overshoot, and a
    fast source's next peak lands nearer a stray's azimuth.  The source's own track then
    ends after a window or two while the stray's goes on from where it ended.  Where a
    track ends and, in the next window, another track's peak lies within
    ``STITCH_MAX_DEG`` of its last peak, and that other track had at most
    ``STITCH_MAX_OVERLAP`` windows before, whose peaks were weak (on average at most
    ``STRAY_MAX_REL_HEIGHT`` of the ending track's: a stray), the ending track takes the
    rest; the stray keeps its own few windows (the mass filter then drops them).
    """
    changed = True
    rounds = len(tracks) ** 2  # a guard: each hand-over moves a track's end later
    while changed and rounds > 0:
        changed = False
        rounds -= 1
        for a in tracks:
            e_a = a["win"][-1]
            for b in tracks:
                if b is a or b["win"][-1] <= e_a + 1:
                    continue
                cut = bisect_right(b["win"], e_a)  # b's windows up to a's end
                if (cut == 0 or cut > STITCH_MAX_OVERLAP or b["win"][cut] != e_a + 1
                        or sum(b["h"][:cut]) / cut
                        >= STRAY_MAX_REL_HEIGHT * sum(a["h"]) / len(a["h"])
                        or abs(angle_diff_deg(b["az"][cut], a["az"][-1])) > STITCH_MAX_DEG):
                    continue
                for key in ("win", "az", "h"):
                    a[key], b[key] = a[key] + b[key][cut:], b[key][:cut]
                a["last"], b["last"] = a["win"][-1], b["win"][-1]
                changed = True
                break
            if changed:
                break
    return tracks


BRIDGE_MAX_S = 2.0
BRIDGE_MIN_STEP_DEG = 3.0
BRIDGE_MAX_SPEED_RATIO = 4.0
"""A moving track that ends as it reaches another track is continued by one that starts
on the other track's far side within ``BRIDGE_MAX_S``, moving the same way at least
``BRIDGE_MIN_STEP_DEG`` per window, where the speed across the gap is within a factor
``BRIDGE_MAX_SPEED_RATIO`` of the first track's."""


def _az_at(t: dict, wi: int) -> float:
    """A track's azimuth at window ``wi`` (interpolated between its peaks, unwrapped)."""
    return float(wrap_deg(np.interp(wi, t["win"], unwrap_deg(np.asarray(t["az"], float)))))


def _bridge_crossings(tracks: list[dict], max_gap: int) -> list[dict]:
    """Join the two halves of a source that crossed another one and was lost meanwhile.

    Where two sources cross, their peaks merge for a while into one (two GCC-PHAT delays,
    two plane waves in an FOA subspace, closer than the resolution): the weaker source's
    track ends as it reaches the other track, and a new one starts on the far side when
    they part, too late (up to ``BRIDGE_MAX_S``) for the linker's gap.  A track that ends
    moving towards a track that lives on past it is continued by one that starts on that
    track's other side moving the same way (see ``BRIDGE_MIN_STEP_DEG``); among several,
    the one nearest the first one's constant-speed path.  Frames in between are
    interpolated along the crossing.
    """
    changed = True
    while changed:
        changed = False
        for a in tracks:
            if len(a["win"]) < 3:
                continue
            e = a["win"][-1]
            v_a = _track_velocity(a, math.inf)
            if abs(v_a) < BRIDGE_MIN_STEP_DEG:
                continue
            best, best_err = None, np.inf
            for b in tracks:
                s = b["win"][0]
                if b is a or len(b["win"]) < 2 or not 1 <= s - e <= max_gap:
                    continue
                v_b = _track_velocity(b, math.inf, first=True)
                gap = float(angle_diff_deg(b["az"][0], a["az"][-1]))
                v_gap = gap / (s - e)
                if (np.sign(v_b) != np.sign(v_a) or abs(v_b) < BRIDGE_MIN_STEP_DEG
                        or np.sign(v_gap) != np.sign(v_a)
                        or not 1.0 / BRIDGE_MAX_SPEED_RATIO <= v_gap / v_a
                        <= BRIDGE_MAX_SPEED_RATIO):
                    continue
                crossed = any(
                    c is not a and c is not b and c["win"][0] <= e and c["win"][-1] >= s
                    and np.sign(angle_diff_deg(a["az"][-1], _az_at(c, e))) == -np.sign(v_a)
                    and np.sign(angle_diff_deg(b["az"][0], _az_at(c, s))) == np.sign(v_a)
                    for c in tracks)
                if not crossed:
                    continue
                err = abs(float(angle_diff_deg(b["az"][0], a["az"][-1] + v_a * (s - e))))
                if err < best_err:
                    best, best_err = b, err
            if best is not None:
                for key in ("win", "az", "h"):
                    a[key] = a[key] + best[key]
                a["last"] = a["win"][-1]
                tracks.remove(best)
                changed = True
                break
    return tracks


BOUNCE_MIN_CLOSING_DEG = 40.0
BOUNCE_MIN_TURN_DEG = 10.0
"""Two tracks that close in on each other by at least ``CLOSING`` degrees and part again
by as much, each moving at least ``TURN`` degrees towards the other and as much away,
are read as two sources that passed each other."""


def _unbounce(tracks: list[dict]) -> None:
    """Swap the halves of two tracks that meet and turn back: sources that cross.

    Near each other, two sources' window peaks merge and repel (the GCC-PHAT of two close
    delays, the histogram of two close directions), so that two sources crossing each
    other look like two that approach, touch and turn back.  Real sources pass each other
    far more often than they bounce, so where two tracks close in and part again (see
    ``BOUNCE_MIN_TURN_DEG``), the tracks exchange their parts after the window where they
    are closest.  A static source gives no turn, so a source passing a static one is left
    as it is.
    """
    turn = BOUNCE_MIN_TURN_DEG
    for i in range(len(tracks)):
        for j in range(i + 1, len(tracks)):
            a, b = tracks[i], tracks[j]
            pa, pb = dict(zip(a["win"], a["az"], strict=True)), dict(zip(b["win"], b["az"],
                                                                        strict=True))
            common = sorted(set(pa) & set(pb))
            if len(common) < 5:
                continue
            xa = np.array([pa[w] for w in common])
            xb = np.array([pb[w] for w in common])
            d = angle_diff_deg(xa, xb)
            if np.any(np.sign(d) != np.sign(d[0])):
                continue  # they crossed: nothing to mend
            m = int(np.argmin(np.abs(d)))
            if m < 2 or m > len(common) - 3:
                continue
            sa = np.sign(d[0])  # a lies on this side of b
            ta0 = -sa * angle_diff_deg(xa[m], xa[0])  # a's travel towards b, then away
            ta1 = sa * angle_diff_deg(xa[-1], xa[m])
            tb0 = sa * angle_diff_deg(xb[m], xb[0])
            tb1 = -sa * angle_diff_deg(xb[-1], xb[m])
            closing, opening = abs(d[0]) - abs(d[m]), abs(d[-1]) - abs(d[m])
            if min(closing, opening) < BOUNCE_MIN_CLOSING_DEG or min(ta0, ta1, tb0, tb1) < turn:
                continue
            # windows ascend: each track keeps its part up to the cut, then takes the other's
            ia, ib = bisect_right(a["win"], common[m]), bisect_right(b["win"], common[m])
            for key in ("win", "az", "h"):
                a[key], b[key] = a[key][:ia] + b[key][ib:], b[key][:ib] + a[key][ia:]


# =========================================================================== frame estimates
def fuse_binaural_azimuth(
    cal: HeadCalibration, itd_s: np.ndarray, peak: np.ndarray, ild_hf_db: np.ndarray
) -> np.ndarray:
    """Azimuth per frame from ITD and HF ILD, fused by inverse variance.

    The ITD's variance grows as its PHAT peak (coherence) drops; each cue's weight is
    its sensitivity (cue change per degree, from the calibration) over its noise.  The
    ILD is used only within the azimuth range where the head's ILD rises monotonically.
    """
    az_itd = cal.az_from_itd(itd_s)
    az_ild, sat = cal.az_from_ild(ild_hf_db)
    d_itd, d_ild = cal.slopes
    s_itd = np.abs(np.interp(az_itd, cal.azimuth_deg, d_itd))
    s_ild = np.abs(np.interp(az_itd, cal.azimuth_deg, d_ild))
    sigma_itd = 15e-6 / np.clip(peak, 0.05, 1.0)
    sigma_ild = 4.0  # heads differ: the ILD is trusted less than the ITD
    lim = cal.ild_monotonic_limit_deg
    usable = ~sat & (np.abs(az_itd) <= lim) & (np.abs(az_ild) <= lim)
    w_itd = (s_itd / sigma_itd) ** 2
    w_ild = np.where(usable, (s_ild / sigma_ild) ** 2, 0.0)
    return (w_itd * az_itd + w_ild * az_ild) / (w_itd + w_ild + cues.EPS)


def _masked_mean_az(az_bins, w_bins, mask, circular):
    w = w_bins * mask
    if circular:
        rad = np.deg2rad(az_bins)
        return np.rad2deg(np.arctan2((w * np.sin(rad)).sum(-1), (w * np.cos(rad)).sum(-1)))
    return (w * az_bins).sum(-1) / (w.sum(-1) + cues.EPS)


# =========================================================================== analysis
def analyze_signal(
    y: np.ndarray,
    sr: int,
    fmt: str,
    *,
    max_sources: int = 4,
    hop_s: float = cues.DEFAULT_HOP_S,
    calibration: HeadCalibration | None = None,
) -> Analysis:
    """Analyse a recording: cues, source tracks and labels.

    Parameters
    ----------
    y : np.ndarray, shape ``(channels, samples)``
    sr : int
    fmt : {"mono", "stereo", "binaural", "foa"}
    max_sources : int
        Upper bound on the number of tracks.
    calibration : HeadCalibration, optional
        Binaural head model; the spherical head by default.
    """
    S = cues.stft(y, sr, hop_s=hop_s)
    times = S.times
    T = times.size
    hop_s = S.hop_s
    level = cues.frame_energy_db(S)  # (C, T)
    level_max = level[0] if fmt == "foa" else level.max(axis=0)
    active = _activity(level_max)
    notes: list[str] = []
    cue_block: dict[str, np.ndarray] = {"times": times}
    loud = level_max
    cue_block["loudness_db"] = loud
    cue_block["loudness_slope_db_per_s"] = cues.loudness_slope_db_per_s(loud, hop_s)
    duration = y.shape[-1] / sr

    def result(sources, head=None):
        return Analysis(fmt, int(sr), float(duration), float(hop_s), sources, cue_block, notes, head)

    if fmt == "mono":
        notes.append("one channel carries no direction: sources are placed at the centre "
                     "with confidence 0")
        if not active.any():
            return result([])
        tr = SourceTrack(0, times, np.zeros(T), None, loud, active, 0.0)
        _finish(tr, hop_s)
        tr.confidence = 0.0
        return result([tr])

    if fmt in ("binaural", "stereo"):
        # every two-channel cue in one pass: per-frame directions lean on the direct sound
        # (onsets) but keep every bin; source detection (windows) uses onsets alone
        if fmt == "binaural":
            starts, win = _windows(T, hop_s)
            tc = cues.two_channel_cues(S, onset_floor=ONSET_FLOOR, active=active,
                                       starts=starts, win=win, ild_band_hz=HF_BAND_HZ,
                                       keep_onset_hz=RESIDUAL_F_MAX_HZ)
        else:
            tc = cues.two_channel_cues(S)
        itds, r, itd_all, peak, ic = tc.lag_itd_s, tc.gcc, tc.itd_s, tc.peak, tc.coherence
        ild_broad = tc.ild_db
        cue_block.update(ild_db=ild_broad, itd_ms=itd_all * 1e3, coherence=ic)
        if not active.any():
            return result([])
        if fmt == "binaural":
            cal = calibration or spherical_calibration(sr, hop_s)
            r_win, w_win = tc.gcc_windows, tc.window_weight
            peaks = _gcc_window_peaks(itds, r_win, cal, max_sources=max_sources)
            # the residual search reads the low bins' phases and onset weights only
            w_res = tc.onset_bins
            if w_res is not None and w_res.shape[1]:
                nf = w_res.shape[1]
                # the low bins' interaural phase, read by every search below
                u_low = _unit(S.X[0, :, :nf] * np.conj(S.X[1, :, :nf]))
                w_act = w_res * active[:, None]  # the onset weights of active frames
                p_low = np.abs(S.X[0, :, :nf]) ** 2 + np.abs(S.X[1, :, :nf]) ** 2
                peaks = _add_steady_peaks(peaks, itds, r, active, starts, win, cal,
                                          max_sources=max_sources, unit=u_low, onset_w=w_act)
                peaks = _add_foreground_peaks(peaks, u_low, foreground_mask(p_low, active, S.freqs),
                                              active, starts, win, cal, max_sources=max_sources)
                peaks = _residual_window_peaks(peaks, u_low, w_act, starts, win, cal, S.freqs,
                                               max_sources=max_sources, hop_s=hop_s)
                peaks = _unalias_peaks(peaks, u_low, p_low, S.X, S.freqs, active, starts, win,
                                       cal, max_sources=max_sources)
            track_az = _link_tracks(peaks, starts, win, T, circular=False,
                                    max_sources=max_sources, hop_s=hop_s)
            if not track_az:
                return result([], cal.name)
            ild_hf = tc.ild_band_db
            az_single = fuse_binaural_azimuth(cal, itd_all, peak, ild_hf)
            e_trk = None
            if len(track_az) > 1 and w_res is not None and w_res.shape[1]:
                e_trk = _track_bin_energy(track_az, u_low, p_low, cal)
            sources = _resolve_binaural(track_az, itds, r, cal, az_single, peak * ic, active,
                                        level.max(axis=0),
                                        onsets=(r_win, w_win, starts + win // 2),
                                        bin_energy=e_trk, stft=S)
        else:
            cal = None
            az_bins, w_bins = _bin_directions_stereo(S)
            peaks, starts, win = _hist_window_peaks(az_bins, w_bins, active,
                                                    max_sources=max_sources, hop_s=hop_s)
            track_az = _link_tracks(peaks, starts, win, T, circular=False,
                                    max_sources=max_sources, hop_s=hop_s)
            if not track_az:
                return result([])
            az_single = stereo_pan_to_azimuth(ild_broad)
            sources = _resolve_tracks(track_az, az_bins, w_bins, az_single, np.ones(T), active,
                                      level.max(axis=0), circular=False)
        direct = room = None
        if cal:
            direct = _direct_sound(itds, r, itd_all, cal, sources, tc.ild_band_db)
            # the louder ear's level in the band, as the tracks' levels
            band_db = cues.band_power_db(S, *distance.REVERBERANT_BAND_HZ).max(axis=0)
            room = dict(band_level_db=band_db, alone=direct.one_track, coherence=ic)
        out = []
        for i, (az, _el, lvl, act, conf) in enumerate(sources):
            tr = SourceTrack(i, times, az, None, lvl, act, conf)
            _finish(tr, hop_s, direct, room)
            out.append(tr)
        return result(_sort_loudest(out), cal.name if cal else None)

    if fmt == "foa":
        az_b, el_b, w_b, sel = _foa_bins(S)
        diff = cues.foa_diffuseness(S)
        # per-frame intensity-vector direction over all bins
        Wc = np.conj(S.X[0])
        ix = (Wc * S.X[3]).real.sum(-1)
        iy = (Wc * S.X[1]).real.sum(-1)
        iz = (Wc * S.X[2]).real.sum(-1)
        az_frame = np.rad2deg(np.arctan2(iy, ix))
        el_frame = np.rad2deg(np.arctan2(iz, np.hypot(ix, iy)))
        cue_block.update(azimuth_deg=az_frame, elevation_deg=el_frame, diffuseness=diff)
        if not active.any():
            return result([])
        peaks, starts, win = _foa_subspace_peaks(S, active, max_sources=max_sources,
                                                 hop_s=hop_s)
        track_az = _link_tracks(peaks, starts, win, T, circular=True, max_sources=max_sources, hop_s=hop_s)
        if not track_az:
            return result([])
        sources = _resolve_foa(track_az, az_b, el_b, w_b, active, level[0], diff,
                               S.X[:, :, sel], hop_s)
        out = []
        for i, (az, el, lvl, act, conf) in enumerate(sources):
            tr = SourceTrack(i, times, az, el, lvl, act, conf)
            _finish(tr, hop_s)
            out.append(tr)
        return result(_sort_loudest(out))

    raise ValueError(f"unknown format {fmt!r}")


def _activity(level_db: np.ndarray, *, floor_rel_db: float = 40.0) -> np.ndarray:
    """Frames that carry sound.

    Within ``floor_rel_db`` of the peak, and, where the level distribution shows pauses,
    6 dB above the noise floor (its 10th percentile).  Pauses show as a median at least
    10 dB above the floor, or, where the sound is sparse (more pause than sound), as a
    median within 2 dB of the floor (the noise's frames) with the 90th percentile 10 dB
    above it.  A continuous sound (music, an engine) has no pauses to estimate a floor
    from, so only the peak-relative threshold applies.
    """
    if level_db.size == 0:
        return np.zeros(0, dtype=bool)
    peak = float(level_db.max())
    if peak < -90.0:
        return np.zeros_like(level_db, dtype=bool)
    floor, median, high = _percentiles(level_db, (10.0, 50.0, 90.0))
    thr = max(peak - floor_rel_db, -90.0)
    if median - floor >= 10.0 or (median - floor < 2.0 and high - median >= 10.0):
        thr = max(thr, min(floor + 6.0, peak - 6.0))
    act = level_db > thr
    # majority vote over 5 frames: closes short gaps and drops blips
    return cues.smooth(act.astype(np.float64), 5) > 0.5


def _median(x: np.ndarray) -> float:
    """``np.median`` of a short 1-D array without its overhead."""
    v = np.sort(x)
    if v.size == 0 or np.isnan(v[-1]):
        return float("nan")
    return float((v[(v.size - 1) // 2] + v[v.size // 2]) / 2.0)


def _percentiles(x: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """``np.percentile(x, qs)`` (linear interpolation) of a 1-D array, for short arrays
    without its overhead."""
    v = np.sort(x)
    out = []
    for q in qs:
        pos = q / 100.0 * (v.size - 1)
        i = min(int(pos), v.size - 1)
        j = min(i + 1, v.size - 1)
        out.append(float(v[i] + (pos - i) * (v[j] - v[i])))
    return out


def _track_output(az, act, circular, lvl, rel):
    if act.sum() < 3:
        return None
    conf = float(np.clip(np.mean(rel[act]), 0.0, 1.0))
    return (_smooth_track(az, act, circular), None, lvl, act, conf)


def _guard(az: np.ndarray, track: np.ndarray, limit_deg: float = 35.0) -> np.ndarray:
    """Keep each frame near its track (a frame must not grab another source)."""
    t = np.nan_to_num(track)
    return np.where(np.abs(az - t) > limit_deg, t, az)


def _resolve_tracks(track_az, az_bins, w_bins, az_single, rel_single, active, level_db, *,
                    circular):
    """Per-frame directions, levels and activity for each track from per-bin directions."""
    A = np.stack(track_az)  # (K, T), NaN where dead
    alive = ~np.isnan(A)
    single = alive.sum(axis=0) <= 1
    K, T = A.shape
    if K > 1:
        d = np.abs(az_bins[None] - np.where(alive, A, 1e6)[:, :, None])  # (K, T, F')
        nearest = np.argmin(d, axis=0)
        gate = np.min(d, axis=0) <= 25.0
    tot_w = w_bins.sum(-1) + cues.EPS
    out = []
    for k in range(K):
        if K > 1:
            mask = ((nearest == k) & gate).astype(np.float32)
            az_multi = _masked_mean_az(az_bins, w_bins, mask, circular)
            share = np.where(single, 1.0, (w_bins * mask).sum(-1) / tot_w)
        else:
            az_multi, share = az_single, np.ones(T)
        az = _guard(np.where(single, az_single, az_multi), A[k])
        lvl = level_db + 10 * np.log10(np.clip(share, 1e-6, 1.0))
        act = active & alive[k] & (share > 0.15)
        o = _track_output(az, act, circular, lvl, np.where(single, rel_single, share))
        if o:
            out.append(o)
    return out


MOVER_MIN_SLOPE_DEG_S = 15.0
"""A track continues past its ends (for the level split only) when its azimuth runs at
least this fast there ..."""
MOVER_MAX_RMS_DEG = 5.0
"""... along a straight line (RMS residual at most this) ..."""
MOVER_FIT_S = 0.8
"""... fitted over its first or last this many seconds ..."""
MOVER_MAX_EXTEND_S = 1.5
"""... for at most this long."""
PAIR_BAND_HZ = LOW_BAND_HZ
"""Two sources are told apart per bin in the low band, where the interaural level
difference is small next to the phase (the pair split models the phase alone)."""
PAIR_MIN_SEP = 0.5
"""A bin separates a pair where their steering phasors differ by at least this much (the
demixing gain stays below 2)."""
PAIR_MIN_RESOLVED = 0.5
"""A frame's pair split holds where the separable bins carry at least this share of the
band's power; elsewhere the two are too close to split, and each track's level is
interpolated over the frame."""
PAIR_SMOOTH_S = 0.3
"""A track's per-frame azimuths are averaged over this long for the pair split."""


def _continue_movers(A: np.ndarray, hop_s: float, *, circular: bool = False) -> np.ndarray:
    """Track paths continued past their ends where a track moves steadily: a crossing
    source the searches pick up late (or lose early, as it passes another) is still
    there, and its sound must not count for the source it passes.  Internal gaps are
    interpolated.  Used for the level split only; the tracks' output is unchanged.
    ``circular``: azimuths all round (FOA), unwrapped for the fits and wrapped back;
    otherwise they stay within the head model's grid."""
    A = A.copy()
    T = A.shape[1]
    t = np.arange(T) * hop_s
    n_fit = max(int(round(MOVER_FIT_S / hop_s)), 3)
    n_ext = int(round(MOVER_MAX_EXTEND_S / hop_s))
    for k in range(A.shape[0]):
        live = np.nonzero(~np.isnan(A[k]))[0]
        if live.size < max(n_fit // 2, 3):
            continue
        inner = np.arange(live[0], live[-1] + 1)
        a_live = unwrap_deg(A[k, live]) if circular else A[k, live]
        A[k, inner] = np.interp(inner, live, a_live)
        for seg, fill in ((live[:n_fit], np.arange(max(live[0] - n_ext, 0), live[0])),
                          (live[-n_fit:], np.arange(live[-1] + 1, min(live[-1] + 1 + n_ext, T)))):
            if not fill.size:
                continue
            slope, icpt = np.polyfit(t[seg], A[k, seg], 1)
            rms = np.sqrt(np.mean((slope * t[seg] + icpt - A[k, seg]) ** 2))
            if abs(slope) >= MOVER_MIN_SLOPE_DEG_S and rms <= MOVER_MAX_RMS_DEG:
                A[k, fill] = slope * t[fill] + icpt
                if not circular:
                    A[k, fill] = np.clip(A[k, fill], AZ_GRID[0], AZ_GRID[-1])
        if circular:
            A[k] = wrap_deg(A[k])
    return A


def _pair_shares(A: np.ndarray, X: np.ndarray, freqs: np.ndarray, cal: HeadCalibration
                 ) -> np.ndarray:
    """Each track's share of the low band's power in frames where exactly two tracks
    live, ``(tracks, frames)``: NaN where the two are too close to split, 1 where one
    track lives alone, and NaN where more than two live.

    Per bin, the two channels are a sum of two sources with the head model's interaural
    phases (``X0 = a + b``, ``X1 = a s_a + b s_b``, ``s`` the steering phasors), solved
    for ``a`` and ``b`` where the phasors differ enough; the share is the power of each
    over the separable bins.  Unlike a winner-take-all mask, a bin two sources share is
    split between them, so a source's level does not fall when a louder one comes near
    nor rise when a quieter one passes.
    """
    K, T = A.shape
    alive = ~np.isnan(A)
    n_alive = alive.sum(axis=0)
    out = np.full((K, T), np.nan)
    out[:, n_alive == 1] = alive[:, n_alive == 1]
    pair = np.nonzero(n_alive == 2)[0]
    if not pair.size:
        return out
    lo, hi = np.searchsorted(freqs, PAIR_BAND_HZ)
    hi = min(hi, cal.steer.shape[1])
    X0, X1 = X[0, pair, lo:hi], X[1, pair, lo:hi]
    order = np.argsort(~alive[:, pair], axis=0, kind="stable")[:2]  # the two live rows
    ka, kb = order[0], order[1]
    idx = _grid_index(np.nan_to_num(A[:, pair]))
    cols = np.arange(pair.size)
    s_a = cal.steer[idx[ka, cols], lo:hi]
    s_b = cal.steer[idx[kb, cols], lo:hi]
    den = s_b - s_a
    ok = np.abs(den) >= PAIR_MIN_SEP
    b = (X1 - X0 * s_a) / np.where(ok, den, 1.0)
    a = X0 - b
    pa = (np.abs(a) ** 2 * ok).sum(axis=1)
    pb = (np.abs(b) ** 2 * ok).sum(axis=1)
    p = np.abs(X0) ** 2 + np.abs(X1) ** 2
    resolved = (p * ok).sum(axis=1) >= PAIR_MIN_RESOLVED * p.sum(axis=1)
    sa = np.where(resolved, pa / (pa + pb + cues.EPS), np.nan)
    out[ka, pair] = sa
    out[kb, pair] = 1.0 - sa
    return out


def _track_bin_energy(track_az, unit, p_low, cal: HeadCalibration
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Each track's power of the low bins per frame, ``(tracks, frames)``, and all their
    power, ``(frames,)``: a bin goes to the live track whose direction explains its
    interaural phase best (the head model's, within 1 rad), as in DUET's time-frequency
    masks."""
    A = np.stack(track_az)
    K, T = A.shape
    nf = unit.shape[1]
    k_idx = _grid_index(np.nan_to_num(A, nan=0.0))
    match = np.empty((K, T, nf), dtype=np.float32)
    for k in range(K):
        match[k] = (unit * cal.steer[k_idx[k], :nf]).real
        match[k][np.isnan(A[k])] = -2.0
    best = np.argmax(match, axis=0)
    ok = np.take_along_axis(match, best[None], axis=0)[0] > np.cos(1.0)
    e = np.empty((K, T))
    for k in range(K):
        e[k] = (p_low * ((best == k) & ok)).sum(axis=1)
    return e, p_low.sum(axis=1)


def _smooth_path(az: np.ndarray, alive: np.ndarray, hop_s: float) -> np.ndarray:
    """A track's azimuths averaged over ``PAIR_SMOOTH_S`` along its live frames, NaN
    elsewhere."""
    out = np.full(az.shape, np.nan)
    if alive.any():
        out[alive] = cues.smooth(az[alive], max(int(round(PAIR_SMOOTH_S / hop_s)), 1))
    return out


def _split_pairs(e: np.ndarray, A: np.ndarray, X: np.ndarray, freqs: np.ndarray,
                 cal: HeadCalibration, hop_s: float) -> np.ndarray:
    """The tracks' low-band power ``e`` ``(tracks, frames)`` re-split where two sources
    sound together: their paths ``A`` (fine per-frame
    azimuths, NaN where dead) continued where they move steadily
    (:func:`_continue_movers`), the power the two hold split by :func:`_pair_shares`,
    and each track's level taken from its neighbouring frames where the two are too
    close to split."""
    A = _continue_movers(A, hop_s)
    if not ((~np.isnan(A)).sum(axis=0) == 2).any():
        return e
    return _split_levels(e, A, _pair_shares(A, X, freqs, cal), hop_s)


def _resolve_binaural(track_az, itds, r, cal, az_single, rel_single, active, level_db,
                      onsets=None, bin_energy=None, stft=None):
    """Binaural per-frame directions.

    Where one track is alive, the fused ITD/ILD estimate from all bins.  Where several
    are, each track takes the GCC-PHAT peak of the frame nearest its own ITD (within
    +-120 us; a frame's PHAT function has one peak per coherent source).  A track's level
    is the frame's level times its share: of the low bins' power, from the bins its
    direction explains (``bin_energy``: per-track and total power, from
    :func:`_track_bin_energy`), everywhere along the track, so that a louder neighbour
    (or one that starts later) does not lend it its level; else from the relative peak
    heights.  Where two tracks sound together (a steadily moving one continued past the
    frames it was found in), the power their bins hold is split between them by the
    two-source solution of each bin (:func:`_split_pairs`), so that a source neither
    takes a passing one's sound nor loses its own under a louder neighbour.  The tracks
    are ranked by their share of the peak heights times their precedence strength to the
    ``PREC_GAMMA`` (tracks that show mostly in decays, reflections, rank low), and a
    track's level is lowered to that of any track ranked above it that is quieter: in a
    room, a phantom between the source and the median plane (the reverberation's
    interaural phases lean toward zero) may hold more of the low bins than the source,
    but is no louder.
    """
    A = np.stack(track_az)
    alive = ~np.isnan(A)
    K, T = A.shape
    multi = alive.sum(axis=0) >= 2
    step = itds[1] - itds[0]
    heights = np.zeros((K, T))
    az_multi = np.zeros((K, T))
    if multi.any():
        idx = np.nonzero(multi)[0]
        rm = r[idx]
        for k in range(K):
            itd_k = cal_interp(cal.itd_s, np.nan_to_num(A[k, idx]))
            near = np.abs(itds[None, :] - itd_k[:, None]) <= 120e-6
            rk = np.where(near, rm, -np.inf)
            pos, hgt = cues.parabolic_peak(np.where(near, rm, rm.min() - 1.0), np.argmax(rk, -1))
            az_multi[k, idx] = cal.az_from_itd(itds[0] + pos * step)
            heights[k, idx] = np.where(alive[k, idx], np.clip(hgt, 0.0, None), 0.0)
    total = heights.sum(axis=0) + cues.EPS
    # the rank of a source is its direct sound's: tracks that show mostly in decays
    # (reflections) rank in proportion to their precedence strength
    prec = np.ones(K)
    if K > 1 and onsets is not None:
        prec = _precedence_strength(A, itds, *onsets, cal) ** PREC_GAMMA
    direct = heights * prec[:, None]
    bin_level = None
    fine = [_guard(np.where(multi, az_multi[k], az_single), A[k]) for k in range(K)]
    if bin_energy is not None:
        # level shares from the bins each source holds: GCC-PHAT heights count a bin
        # once however loud it is, so a source that grows louder barely gains height
        e, tot = bin_energy
        if stft is not None:
            paths = np.stack([_smooth_path(np.where(np.isnan(f), A[k], f), alive[k], stft.hop_s)
                              for k, f in enumerate(fine)])
            e = _split_pairs(e, paths, stft.X, stft.freqs, cal, stft.hop_s)
        # (clipped: the running sum leaves rounding residue where the power drops by decades)
        e = np.maximum(cues.smooth(np.where(alive, e, 0.0), 5, axis=-1), 0.0)
        tot_db = 10 * np.log10(cues.smooth(tot, 5) + cues.EPS)
        # the low bins' level follows each source's own bins; one offset (the median gap
        # between the full band and the low bins) keeps it in the frame level's units
        # without borrowing the full band's changes (a siren's high partials)
        gap = level_db - tot_db
        offset = float(np.median(gap[active])) if active.any() else 0.0
        bin_level = 10 * np.log10(e + cues.EPS) + offset
    total_direct = direct.sum(axis=0) + cues.EPS
    rows = []
    for k in range(K):
        share = np.where(multi, heights[k] / total, 1.0)
        share_direct = np.where(multi, direct[k] / total_direct, 1.0)
        rank_lvl = level_db + 10 * np.log10(np.clip(share_direct, 1e-6, 1.0))
        act = active & alive[k] & (share > 0.15)
        lvl = rank_lvl
        if bin_level is not None and (alive[k] & active).any():
            lvl = np.maximum(bin_level[k], -120.0)  # the power of the bins it holds
            # (where they hold next to none of the frame's, it is not heard there: a
            # track beside another that takes its every bin)
            act &= lvl > level_db - NIL_SHARE_DB
        if act.sum() < 3:
            continue
        rows.append((k, act, rank_lvl, lvl))
    # ranked by the precedence-weighted share (a reflection below its source), each
    # track's level is that of its bins, no louder than any track ranked above it
    rows.sort(key=lambda row: -_energy_mean_db(row[2][row[1]]))
    out, cap = [], np.inf
    for k, act, _rank, lvl in rows:
        mean = _energy_mean_db(lvl[act])
        if mean >= cap:  # (0.01 dB below, so that the sort keeps the rank)
            lvl = lvl - (mean - cap + 0.01)
        cap = min(cap, mean) - 0.01
        out.append(_track_output(fine[k], act, False, lvl,
                                 np.where(multi, heights[k], rel_single)))
    return out


def _energy_mean_db(level_db: np.ndarray) -> float:
    """The energy mean of levels in dB: what :func:`_sort_loudest` orders the sources by."""
    return float(10 * np.log10(np.mean(10 ** (level_db / 10.0)) + 1e-30))


def _precedence_strength(A, itds, r_win, w_win, centres, cal):
    """Each track's onset-weighted GCC-PHAT along its path, relative to the strongest.

    ``r_win`` ``(windows, lags)`` is the onset-weighted function of windows centred on
    frames ``centres`` and ``w_win`` their onset weight.  The direct sound of a source
    leads its reflections, so a real source keeps its direction at the onsets while a
    wall's image mostly shows in the decays.
    """
    a = A[:, np.minimum(centres, A.shape[1] - 1)]  # (K, windows)
    alive = ~np.isnan(a)
    col = np.clip(np.searchsorted(itds, cal_interp(cal.itd_s, np.nan_to_num(a))), 0,
                  itds.size - 1)
    h = np.clip(r_win[np.arange(r_win.shape[0])[None, :], col], 0.0, None)
    m = w_win[None, :] * alive
    out = (h * m).sum(axis=1) / (m.sum(axis=1) + cues.EPS)
    return out / (out.max() + cues.EPS)


def cal_interp(table: np.ndarray, az: np.ndarray) -> np.ndarray:
    return np.interp(az, AZ_GRID, table)


FOA_SPLIT_MIN_SEP_DEG = 25.0
"""The FOA level split holds in frames where the live tracks are at least this far apart;
closer, their steering vectors are over 0.95 alike, a few degrees of direction error
move much of one's power to the other, and each track's level is interpolated from the
frames around.  Round trip FOA motion, seed 0 / hold-out seed 7: 98.7 / 97.0 % at 20
degrees, 98.7 / 97.3 % at 25, 98.0 / 97.3 % at 30."""
FOA_SPLIT_MAX_TRACKS = 3
"""At most this many tracks are split per frame: four channels leave one dimension for
what the tracks do not explain."""


def _foa_shares(A: np.ndarray, E: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Each live track's share of the omni power per frame ``(tracks, frames)``, NaN
    where two live tracks are closer than ``FOA_SPLIT_MIN_SEP_DEG`` or more than
    ``FOA_SPLIT_MAX_TRACKS`` live.

    Per frame the four channels of every bin are a sum of plane waves from the tracks'
    directions ``A, E`` (degrees), solved by least squares (one pseudo-inverse per frame:
    the steering gains do not depend on frequency); a track's share is its omni power
    over the frame's bins ``X`` ``(4, frames, bins)`` next to the W channel's.  Unlike
    the bins nearest to each track, it does not shrink as two sources part (a bin two
    sources share points between them, near neither) nor grow as another comes near.
    """
    K, T = A.shape
    alive = ~np.isnan(A)
    n_alive = alive.sum(axis=0)
    out = np.full((K, T), np.nan)
    p_w = (np.abs(X[0]) ** 2).sum(axis=-1) + cues.EPS
    for n in range(1, min(FOA_SPLIT_MAX_TRACKS, K) + 1):
        frames = np.nonzero(n_alive == n)[0]
        if not frames.size:
            continue
        rows = np.argsort(~alive[:, frames], axis=0, kind="stable")[:n]  # (n, frames)
        g = ambix_gains(A[rows, frames[None]], np.nan_to_num(E[rows, frames[None]]))
        # (W, Y, Z, X, n, frames); Y, Z, X of each track: its unit direction
        cos_min = np.cos(np.deg2rad(FOA_SPLIT_MIN_SEP_DEG))
        apart = np.ones(frames.size, dtype=bool)
        for i in range(n):
            for j in range(i + 1, n):
                apart &= (g[1:, i] * g[1:, j]).sum(axis=0) <= cos_min
        V = g.transpose(2, 0, 1)  # (frames, 4 channels, n)
        coef = np.linalg.pinv(V) @ X[:, frames].transpose(1, 0, 2)  # (frames, n, bins)
        sh = (np.abs(coef) ** 2).sum(axis=-1) / p_w[frames, None]
        sh[~apart] = np.nan
        out[rows, frames[None]] = sh.T
    return out


def _split_levels(e: np.ndarray, paths: np.ndarray, share: np.ndarray, hop_s: float, *,
                  total: np.ndarray | None = None, min_live: int = 2) -> np.ndarray:
    """The tracks' power ``e`` ``(tracks, frames)`` re-split by ``share`` where at least
    ``min_live`` tracks (``paths``, NaN where dead) live: ``total`` (by default the power
    the tracks hold together) times each one's share; frames whose share is NaN (too
    close to split) take each track's level from the frames around that split (their
    power averaged over ``PAIR_SMOOTH_S``: one frame of an engine is a few dB off its
    mean)."""
    several = (~np.isnan(paths)).sum(axis=0) >= min_live
    if not several.any():
        return e
    held = e.sum(axis=0) if total is None else total
    e = e.copy()
    for k in range(paths.shape[0]):
        live = several & ~np.isnan(paths[k])
        split = live & ~np.isnan(share[k])
        e[k, split] = held[split] * share[k, split]
        gap = live & np.isnan(share[k])
        if gap.any() and split.any():
            n = max(int(round(PAIR_SMOOTH_S / hop_s)), 1)
            ones = uniform_filter1d(np.ones(split.sum()), n, mode="constant")
            mean = uniform_filter1d(e[k, split], n, mode="constant") / ones
            e_db = 10 * np.log10(mean + cues.EPS)
            e[k, gap] = 10 ** (np.interp(np.nonzero(gap)[0], np.nonzero(split)[0], e_db) / 10)
    return e


def _resolve_foa(track_az, az_b, el_b, w_b, active, level_w, diff, X, hop_s):
    """Tracks' directions, levels, activity and confidence from FOA bins.

    A track's azimuth is its subspace-spectrum peak (the intensity vectors of a hall's
    bins lean toward its reflections: 3.0 degrees mean error on the real hall, 1.4 from
    the peaks); its elevation the intensity vectors' of the bins nearest to it.  Its
    level is the omni level times its share: alone in the recording, the share of the
    bins nearest to it; beside other tracks, its least-squares share in every frame it
    lives in (:func:`_foa_shares`), along paths continued where they move steadily
    (:func:`_continue_movers`).  ``X``: the four channels' STFT over the
    bins of ``az_b`` ``(4, frames, bins)``.
    """
    A = np.stack(track_az)
    alive = ~np.isnan(A)
    K, T = A.shape
    d = np.abs(angle_diff_deg(az_b[None], np.where(alive, A, 1e6)[:, :, None]))
    nearest = np.argmin(d, axis=0)
    gate = np.min(d, axis=0) <= 30.0
    tot = w_b.sum(-1) + cues.EPS
    lin = 10 ** (level_w / 10.0)
    x = np.cos(np.deg2rad(el_b))
    ux, uy, uz = x * np.cos(np.deg2rad(az_b)), x * np.sin(np.deg2rad(az_b)), np.sin(np.deg2rad(el_b))
    rows = []
    for k in range(K):
        m = ((nearest == k) & gate) * w_b
        sx, sy, sz = (m * ux).sum(-1), (m * uy).sum(-1), (m * uz).sum(-1)
        el = np.rad2deg(np.arctan2(sz, np.hypot(sx, sy)))
        share = m.sum(-1) / tot
        rows.append((el, share, active & alive[k] & (share > 0.15)))
    e = np.stack([lin * np.clip(sh, 1e-6, 1) for _el, sh, _a in rows])
    if K > 1:
        paths = _continue_movers(A, hop_s, circular=True)
        el_path = np.zeros((K, T))  # each track's smoothed elevation, held past its ends
        for k, (el, _s, _a) in enumerate(rows):
            live = np.nonzero(alive[k])[0]
            if live.size:
                el_path[k] = np.median(el[live])
                el_path[k, live] = _smooth_path(el, alive[k], hop_s)[live]
        e = _split_levels(e, paths, _foa_shares(paths, el_path, X), hop_s, total=lin,
                         min_live=1)
    out = []
    for k, (el, share, act) in enumerate(rows):
        if act.sum() < 3:
            continue
        lvl = 10 * np.log10(e[k] + cues.EPS)
        conf = float(np.clip(np.mean((1 - diff[act]) * np.minimum(share[act] * 1.5, 1)), 0, 1))
        az = np.where(alive[k], A[k], 0.0)
        out.append((_smooth_track(az, act, True), _smooth_track(el, act, False), lvl, act, conf))
    return out


def _running_median(x: np.ndarray, n: int) -> np.ndarray:
    """Centred running median with edge padding (odd ``n``)."""
    n = max(1, n | 1 if n % 2 == 0 else n)
    if n <= 1 or x.size < 2:
        return x
    return median_filter(np.asarray(x, dtype=np.float64), size=n, mode="nearest")


def _smooth_track(az: np.ndarray, act: np.ndarray, circular: bool) -> np.ndarray:
    """Median then mean smoothing over active frames; inactive frames interpolated."""
    T = az.size
    idx = np.nonzero(act)[0]
    if idx.size == 0:
        return az
    a = unwrap_deg(az[idx]) if circular else az[idx]
    a = _running_median(a, min(9, a.size))
    a = cues.smooth(a, min(5, a.size))
    full = np.interp(np.arange(T), idx, a)
    return wrap_deg(full) if circular else full


def _finish(tr: SourceTrack, hop_s: float, direct: distance.DirectSound | None = None,
            room: dict[str, np.ndarray] | None = None) -> None:
    """Labels, mean direction, distance trend.

    ``direct``, binaural only, holds the direct-sound cues that can confirm a level trend
    too weak to count on its own (``spa2v.distance``); ``room``, binaural only, the
    frames' ``band_level_db``, ``alone`` and ``coherence`` that
    ``distance.track_level_trend`` reads a track's level trend from in a room.
    """
    act = tr.active
    if not act.any():
        return
    a = tr.azimuth_deg[act]
    lvl = tr.loudness_db[act]
    w = 10 ** (lvl / 10.0)
    rad = np.deg2rad(a)
    mean = float(np.rad2deg(np.arctan2((w * np.sin(rad)).sum(), (w * np.cos(rad)).sum())))
    tr.mean_azimuth_deg = mean
    tr.behind = bool(abs(mean) > 90.0)
    tr.position = position_label(mean)
    n = max(3, int(round(0.2 * a.size)))
    if tr.elevation_deg is not None:  # FOA: motion is judged on the frontal-folded path
        wa = wrap_deg(a)
        front = np.where(np.abs(wa) > 90, wrap_deg(180 - wa), wa)
    elif a.size < 2 or np.abs(np.diff(a)).max() <= 180.0:
        front = a  # no 360-degree jump to unwrap (binaural and stereo stay within +-90)
    else:
        front = unwrap_deg(a)
    sweep = _median(front[-n:]) - _median(front[:n])
    if abs(sweep) >= CROSSING_MIN_SWEEP_DEG:
        change = 0.0  # a crossing: its level follows the head's shadow, not the distance
    else:
        level = distance.track_level_trend(tr.times, tr.loudness_db, act, **(room or {}))
        confirm, share = (), None
        if direct is not None and not distance.stands_alone(level):
            confirm = direct.trends(tr.times, tr.azimuth_deg, act, tr.loudness_db)
            share = direct.share_trend(tr.times, act, tr.loudness_db)
        change = distance.distance_change_db(level, confirm, share)
    tr.motion = motion_label(sweep, change)
    full = cues.smooth(np.interp(np.arange(tr.loudness_db.size), np.nonzero(act)[0], lvl),
                       max(1, int(round(0.5 / hop_s))))
    ref = full[np.nonzero(act)[0][0]]
    tr.distance_rel = np.clip(10 ** (-(full - ref) / 20.0), 0.05, 20.0)


def level_change_db(times: np.ndarray, level_db: np.ndarray) -> float:
    """Net level change over a track, 0 where it does not stand out from the level's own
    ups and downs.

    A linear fit to the level (energy mean) of 0.25 s windows; the change (slope times
    span) counts when the slope is at least two standard errors from zero (t test), so
    the phrases of speech and the notes of music do not pose as a change of distance.
    """
    trend = distance.level_trend(times, level_db)
    return trend.change if abs(trend.z) >= distance.LEVEL_MIN_Z else 0.0


def _direct_sound(itds, r, itd_s, cal: HeadCalibration, sources,
                  ild_db: np.ndarray | None = None) -> distance.DirectSound:
    """The direct-sound cues of a binaural analysis (``sources`` as resolved:
    ``(az, el, level_db, active, confidence)``; ``ild_db`` the frames' high-frequency
    ILD)."""
    return distance.DirectSound.of_tracks(itds, r, itd_s, AZ_GRID, cal.itd_s,
                                          [(s[3], s[2]) for s in sources], ild_db=ild_db)


def _sort_loudest(tracks: list[SourceTrack]) -> list[SourceTrack]:
    def key(t):
        return -_energy_mean_db(t.loudness_db[t.active]) if t.active.any() else np.inf

    tracks = sorted(tracks, key=key)
    for i, t in enumerate(tracks):
        t.id = i
    return tracks


# =========================================================================== JSON
def _r(x, nd=3):
    return [None if not np.isfinite(v) else round(float(v), nd) for v in np.asarray(x)]


def to_json(an: Analysis, input_name: str) -> dict:
    """The analysis JSON of DESIGN.md."""
    sources = []
    for t in an.sources:
        s = {
            "id": t.id,
            "times": _r(t.times, 4),
            "azimuth_deg": _r(t.azimuth_deg, 2),
            "elevation_deg": None if t.elevation_deg is None else _r(t.elevation_deg, 2),
            "loudness_db": _r(t.loudness_db, 2),
            "active": [bool(v) for v in t.active],
            "mean_azimuth_deg": round(float(t.mean_azimuth_deg), 2),
            "position": t.position,
            "motion": t.motion,
            "behind": bool(t.behind),
            "confidence": round(float(t.confidence), 3),
        }
        if t.distance_rel is not None:
            s["distance_rel"] = _r(t.distance_rel, 3)
        sources.append(s)
    c = an.cues
    cue_out = {"times": _r(c["times"], 4)}
    for k in ("ild_db", "itd_ms", "coherence", "azimuth_deg", "elevation_deg", "diffuseness",
              "loudness_db", "loudness_slope_db_per_s"):
        if k in c:
            cue_out[k] = _r(c[k], 4 if k == "itd_ms" else 2)
    out = {
        "input": input_name,
        "format": an.format,
        "sample_rate": an.sample_rate,
        "duration": round(an.duration, 4),
        "hop_s": round(an.hop_s, 5),
        "sources": sources,
        "cues": cue_out,
    }
    if an.head:
        out["head_model"] = an.head
    if an.notes:
        out["notes"] = an.notes
    return out
