"""The spatial audio simulator: one renderer for every direction of spa2v.

A scene is a list of ``SceneSource`` (a mono signal moving along a ``Trajectory``).
``simulate_scene`` renders it to first-order Ambisonics (AmbiX) or binaural audio and
returns the audio together with a JSON-serialisable ground truth.

Physics, per source:

* Propagation: every sample is read from the source at its emission time (the retarded
  time ``tau`` with ``t = tau + r(tau) / c``) through a cubic Lagrange fractional delay
  (on the source upsampled 4 times, flat to 20 kHz), scaled by ``1 / r`` (1 at 1 m).  Moving sources therefore carry the right Doppler shift.
* Binaural: each ear adds its own delay from the head model (``spa2v.hrtf``) and is filtered
  by the head model's onset-aligned FIR for the current direction.  The filters change
  every ``FILTER_HOP_S`` without clicks: the delayed signal is cut into Hann-windowed
  frames (50 % overlap, summing to one), each frame is filtered by its own FIR (batched
  FFTs) and the results are overlap-added, i.e. the filters are crossfaded.
* FOA: AmbiX gains (``conventions.ambix_gains``) per sample.
* Room (``rt60_s``): first-order image sources of a shoebox room sized for the RT60
  (reflection gain from Sabine's formula) rendered like the direct sound and moving with
  it, plus an exponentially decaying diffuse tail, decorrelated across channels.
* Background (``noise_snr_db``): diffuse pink noise at that SNR relative to the mix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.fft as sfft
from scipy import signal as sps

from spa2v._typing import ArrayLike, FloatArray
from spa2v.conventions import (
    HEAD_RADIUS_M,
    SPEED_OF_SOUND_M_S,
    ambix_gains,
    angle_diff_deg,
    cart_to_sph,
    fold_front,
    motion_label,
    position_label,
    sph_to_cart,
    unwrap_deg,
    wrap_deg,
)
from spa2v.errors import InputError
from spa2v.hrtf import HeadModel, SofaHrtf, SphericalHead

TRUTH_HOP_S = 0.02
"""Sampling period of the truth tracks."""
FILTER_HOP_S = 0.005
"""How often the binaural filters are updated (crossfaded)."""
CONTROL_STEP = 16
"""Geometry (retarded time, gains, directions) is computed every this many samples and
interpolated linearly in between; it changes far too slowly for that to matter."""
MIN_DISTANCE_M = 0.2
"""The 1/r gain is held below this distance."""
PEAK_DBFS = -3.0
"""``normalize`` scales the mix so that it peaks here."""
RETARDED_TIME_ITERATIONS = 4

Format = Literal["foa", "binaural"]


# --------------------------------------------------------------------------- trajectories
@dataclass(frozen=True)
class Keyframe:
    """A source position at time ``t`` (seconds)."""

    t: float
    azimuth_deg: float
    elevation_deg: float = 0.0
    distance_m: float = 2.0

    def to_dict(self) -> dict:
        return {"t": float(self.t), "azimuth_deg": float(self.azimuth_deg),
                "elevation_deg": float(self.elevation_deg), "distance_m": float(self.distance_m)}


@dataclass(frozen=True)
class Trajectory:
    """A source path through keyframes, linear in time between them.

    ``interpolation="spherical"`` (default): azimuth, elevation and distance are
    interpolated linearly; azimuth along the shortest signed path between consecutive
    keyframes (exactly 180 degrees apart goes counter-clockwise, i.e. through +90 from 0).
    ``interpolation="cartesian"``: positions move along straight lines at constant speed.
    Positions are held before the first and after the last keyframe.
    """

    keyframes: tuple[Keyframe, ...]
    interpolation: Literal["spherical", "cartesian"] = "spherical"
    _t: np.ndarray = field(init=False, repr=False, compare=False)
    _az_unwrapped: np.ndarray = field(init=False, repr=False, compare=False)
    _el: np.ndarray = field(init=False, repr=False, compare=False)
    _r: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        kfs = tuple(sorted(self.keyframes, key=lambda k: k.t))
        if not kfs:
            raise ValueError("a trajectory needs at least one keyframe")
        if self.interpolation not in ("spherical", "cartesian"):
            raise ValueError(f"unknown interpolation {self.interpolation!r}")
        t = np.array([k.t for k in kfs], dtype=np.float64)
        az = np.array([k.azimuth_deg for k in kfs], dtype=np.float64)
        el = np.array([k.elevation_deg for k in kfs], dtype=np.float64)
        r = np.array([k.distance_m for k in kfs], dtype=np.float64)
        if not (np.isfinite(t).all() and np.isfinite(az).all() and np.isfinite(el).all()
                and np.isfinite(r).all()):
            raise ValueError("keyframes must be finite numbers")
        if np.any(np.diff(t) <= 0):
            raise ValueError("keyframe times must be distinct")
        if np.any(r < 0) or np.any(np.abs(el) > 90):
            raise ValueError("distance must be >= 0 and elevation within [-90, 90]")
        steps = angle_diff_deg(az[1:], az[:-1])
        az_u = wrap_deg(az[0]) + np.concatenate([[0.0], np.cumsum(steps)])
        object.__setattr__(self, "keyframes", kfs)
        object.__setattr__(self, "_t", t)
        object.__setattr__(self, "_az_unwrapped", az_u)
        object.__setattr__(self, "_el", el)
        object.__setattr__(self, "_r", r)

    # ---------------------------------------------------------------- constructors
    @classmethod
    def static(cls, azimuth_deg: float, elevation_deg: float = 0.0,
               distance_m: float = 2.0) -> Trajectory:
        """A source that does not move."""
        return cls((Keyframe(0.0, azimuth_deg, elevation_deg, distance_m),))

    @classmethod
    def line(cls, start_xyz: ArrayLike, end_xyz: ArrayLike, duration_s: float,
             *, start_t: float = 0.0) -> Trajectory:
        """Straight-line motion at constant speed from ``start_xyz`` to ``end_xyz`` (metres)."""
        if not duration_s > 0:
            raise ValueError(f"duration_s must be positive, got {duration_s}")
        kfs = []
        for t, p in ((start_t, start_xyz), (start_t + duration_s, end_xyz)):
            az, el, r = cart_to_sph(np.asarray(p, dtype=np.float64))
            kfs.append(Keyframe(float(t), float(az), float(el), float(r)))
        return cls(tuple(kfs), interpolation="cartesian")

    @classmethod
    def parse(cls, text: str) -> Trajectory:
        """Parse ``"az,el,dist@t; az,el,dist@t"`` (el and dist optional; ``@t`` optional
        for a single keyframe).  Bad text raises ``InputError``."""
        items = [s.strip() for s in re.split(r"[;\n]", str(text)) if s.strip()]
        if not items:
            raise InputError(f"bad trajectory {text!r}: no keyframes")
        kfs = []
        for item in items:
            body, _, when = item.partition("@")
            try:
                nums = [float(v) for v in body.split(",")]
                t = float(when) if when.strip() else (0.0 if len(items) == 1 else None)
            except ValueError:
                raise InputError(f"bad trajectory keyframe {item!r}: expected "
                                 "'azimuth,elevation,distance@time'") from None
            if t is None or not 1 <= len(nums) <= 3:
                raise InputError(f"bad trajectory keyframe {item!r}: expected "
                                 "'azimuth,elevation,distance@time'")
            el = nums[1] if len(nums) > 1 else 0.0
            r = nums[2] if len(nums) > 2 else 2.0
            kfs.append(Keyframe(t, nums[0], el, r))
        try:
            return cls(tuple(kfs))
        except ValueError as exc:
            raise InputError(f"bad trajectory {text!r}: {exc}") from None

    # ---------------------------------------------------------------- evaluation
    @property
    def is_static(self) -> bool:
        return len(self.keyframes) == 1 or bool(
            np.ptp(self._az_unwrapped) == 0 and np.ptp(self._el) == 0 and np.ptp(self._r) == 0
        )

    def at(self, times_s: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(azimuth_deg, elevation_deg, distance_m) at the given times, each shaped like them."""
        t = np.asarray(times_s, dtype=np.float64)
        if self.interpolation == "cartesian":
            return cart_to_sph(self.xyz_at(t))
        az = wrap_deg(np.interp(t, self._t, self._az_unwrapped))
        return az, np.interp(t, self._t, self._el), np.interp(t, self._t, self._r)

    def xyz_at(self, times_s: ArrayLike) -> FloatArray:
        """Cartesian positions ``(..., 3)`` at the given times (x front, y left, z up)."""
        t = np.asarray(times_s, dtype=np.float64)
        if self.interpolation == "cartesian":
            kp = sph_to_cart(self._az_unwrapped, self._el, self._r)  # (K, 3)
            return np.stack([np.interp(t, self._t, kp[:, i]) for i in range(3)], axis=-1)
        return sph_to_cart(*self.at(t))

    def to_dicts(self) -> list[dict]:
        return [k.to_dict() for k in self.keyframes]


@dataclass
class SceneSource:
    """A mono signal ``(samples,)`` at the scene's sample rate, moving along ``trajectory``."""

    signal: np.ndarray
    trajectory: Trajectory
    name: str = "sound source"
    gain_db: float = 0.0


@dataclass
class Simulation:
    """Rendered audio ``(channels, samples)`` float32, its rate and the ground truth."""

    audio: np.ndarray
    sr: int
    truth: dict


# --------------------------------------------------------------------------- DSP pieces
def fractional_delay(x: FloatArray, positions: FloatArray) -> np.ndarray:
    """Read ``x`` at fractional sample ``positions`` with 4-point (cubic) Lagrange interpolation.

    Parameters
    ----------
    x : np.ndarray, shape ``(samples,)``
    positions : np.ndarray, shape ``(n,)``
        Where to read, in samples of ``x``; outside ``x`` reads zeros.

    Returns
    -------
    y : np.ndarray, float32, shape ``(n,)``
    """
    return _lagrange_read(_pad_for_lagrange(x), positions)


def _pad_for_lagrange(x: FloatArray) -> np.ndarray:
    return np.concatenate([np.zeros(2, np.float32), np.asarray(x, np.float32),
                           np.zeros(3, np.float32)])


def _lagrange_read(xp: np.ndarray, positions: FloatArray) -> np.ndarray:
    """``fractional_delay`` on a signal padded with 2 zeros before and 3 after."""
    p = np.asarray(positions, dtype=np.float64)
    i = np.floor(p)
    mu = (p - i).astype(np.float32)
    j = i.astype(np.int64) + 2  # index of x[i] in the padded copy
    valid = None
    if len(j) and (j.min() < 1 or j.max() > len(xp) - 3):
        valid = (j >= 1) & (j <= len(xp) - 3)
        np.clip(j, 1, len(xp) - 3, out=j)
    x0 = np.take(xp, j)
    xm1 = np.take(xp, j - 1)
    x1 = np.take(xp, j + 1)
    x2 = np.take(xp, j + 2)
    # the Lagrange polynomial in Farrow (Horner) form
    c3 = (x2 - xm1) * np.float32(1 / 6) + (x0 - x1) * np.float32(0.5)
    c2 = (xm1 + x1) * np.float32(0.5) - x0
    c1 = x1 - xm1 * np.float32(1 / 3) - x0 * np.float32(0.5) - x2 * np.float32(1 / 6)
    y = x0 + mu * (c1 + mu * (c2 + mu * c3))
    if valid is not None:
        y[~valid] = 0.0
    return y


def upsample_linear(values: FloatArray, step: int, n: int) -> np.ndarray:
    """Linear interpolation of values given every ``step`` samples (from 0) to ``n`` samples."""
    v = np.asarray(values)
    frac = np.arange(step, dtype=v.dtype) / step
    return (v[:-1, None] + np.diff(v)[:, None] * frac).ravel()[:n]


DELAY_OVERSAMPLING = 4
"""Sources are upsampled this many times before the fractional-delay reads, so that the
cubic interpolation stays flat to 20 kHz at 48 kHz (alone it loses 3 dB at 16 kHz
half-way between samples, which a moving source would turn into a flutter)."""


@dataclass(frozen=True)
class DelayLine:
    """A mono signal prepared for fractional-delay reads (polyphase-upsampled ``factor`` times)."""

    padded: np.ndarray
    """The upsampled signal with 2 zeros before and 3 after (the interpolator's reach)."""
    factor: int = 1

    @classmethod
    def of(cls, x: FloatArray, factor: int = DELAY_OVERSAMPLING) -> DelayLine:
        x = np.asarray(x, dtype=np.float32)
        if factor > 1:
            x = sps.resample_poly(x, factor, 1).astype(np.float32)
        return cls(_pad_for_lagrange(x), int(factor))

    def read(self, positions: FloatArray) -> np.ndarray:
        """Values at fractional ``positions`` in samples of the original rate, float32."""
        return _lagrange_read(self.padded, np.asarray(positions, np.float64) * self.factor)


def n_filter_frames(n_samples: int, hop: int) -> int:
    """Frames centred on ``0, hop, 2 hop, ...`` whose windows cover every sample."""
    return (max(n_samples, 1) - 1) // hop + 2


def time_varying_fir(x: FloatArray, filters: FloatArray, hop: int,
                     *, chunk_frames: int = 512) -> np.ndarray:
    """Filter each channel with FIRs that change every ``hop`` samples, crossfaded.

    Frame ``b`` (centred on sample ``b * hop``) is the input under a periodic Hann window
    of ``2 * hop`` samples; it is convolved with ``filters[b]`` and overlap-added.  The
    windows sum to one, so a constant filter gives plain convolution, and a changing one
    crossfades between consecutive filters without clicks.

    Parameters
    ----------
    x : np.ndarray, shape ``(channels, samples)``
    filters : np.ndarray, shape ``(frames, channels, taps)``
        Frame ``b`` is centred on sample ``b * hop``; needs
        ``frames >= n_filter_frames(samples, hop)``.
    hop : int

    Returns
    -------
    y : np.ndarray, float32, shape ``(channels, samples + taps - 1)``
    """
    x = np.asarray(x, dtype=np.float32)
    n_ch, n = x.shape
    n_frames = n_filter_frames(n, hop)
    f = np.asarray(filters, dtype=np.float32)
    if f.shape[0] < n_frames or f.shape[1] != n_ch:
        raise ValueError(f"need ({n_frames}, {n_ch}, taps) filters, got {f.shape}")
    taps = f.shape[2]
    frame_len = 2 * hop
    nfft = sfft.next_fast_len(frame_len + taps - 1, real=True)
    k_blocks = -(-nfft // hop)
    win = (np.sin(np.pi * (np.arange(frame_len) + 0.5) / frame_len) ** 2).astype(np.float32)
    xp = np.zeros((n_ch, (n_frames + 1) * hop), dtype=np.float32)
    xp[:, hop : hop + n] = x
    out = np.zeros((n_ch, n_frames + k_blocks, hop), dtype=np.float32)
    for b0 in range(0, n_frames, chunk_frames):
        b1 = min(b0 + chunk_frames, n_frames)
        g = b1 - b0
        seg = xp[:, b0 * hop : (b1 + 1) * hop]
        frames = np.lib.stride_tricks.sliding_window_view(seg, frame_len, axis=-1)[:, ::hop][:, :g]
        spec = sfft.rfft(frames * win, nfft, axis=-1)  # (C, g, F)
        spec *= sfft.rfft(np.moveaxis(f[b0:b1], 1, 0), nfft, axis=-1)
        y = sfft.irfft(spec, nfft, axis=-1)
        y = np.pad(y, ((0, 0), (0, 0), (0, k_blocks * hop - nfft))).reshape(n_ch, g, k_blocks, hop)
        for k in range(k_blocks):
            out[:, b0 + k : b1 + k] += y[:, :, k]
    flat = out.reshape(n_ch, -1)  # frame b starts at (b - 1) * hop
    return flat[:, hop : hop + n + taps - 1]


# --------------------------------------------------------------------------- one path
PathFn = Callable[[np.ndarray], np.ndarray]
"""Times (s) -> positions ``(T, 3)`` in metres."""


def _retarded_geometry(path: PathFn, n: int, sr: int, static: bool, c: float
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Control-rate sample indices, propagation delays (s) and emission positions ``(T, 3)``."""
    idx = np.arange(0, n + CONTROL_STEP, CONTROL_STEP, dtype=np.float64)
    t = idx / sr
    if static:
        p = path(np.zeros(1))[0]
        return idx, np.full(len(idx), np.linalg.norm(p) / c), np.tile(p, (len(idx), 1))
    delay = np.linalg.norm(path(t), axis=-1) / c
    for _ in range(RETARDED_TIME_ITERATIONS):  # contraction by v / c per step
        delay = np.linalg.norm(path(t - delay), axis=-1) / c
    return idx, delay, path(t - delay)


def render_path(
    signal: FloatArray | DelayLine,
    path: PathFn,
    *,
    n_samples: int,
    sr: int,
    fmt: Format,
    head: HeadModel | None = None,
    static: bool = False,
    c_m_s: float = SPEED_OF_SOUND_M_S,
) -> np.ndarray:
    """Render one propagation path (direct sound or an image source).

    Parameters
    ----------
    signal : np.ndarray, shape ``(samples,)``, or DelayLine
        The mono source at ``sr``; sample 0 is emitted at time 0.  Pass a ``DelayLine``
        to share its upsampling between several paths.
    path : callable
        Times in seconds ``(T,)`` -> source positions ``(T, 3)`` in metres.
    n_samples : int
        Output length.
    fmt : ``"foa"`` or ``"binaural"``
    head : head model for binaural (``SphericalHead()`` by default).
    static : bool
        The path does not move (enables a faster exact route).

    Returns
    -------
    y : np.ndarray, float32, shape ``(4, n_samples)`` (W, Y, Z, X) or ``(2, n_samples)`` (L, R)
    """
    line = signal if isinstance(signal, DelayLine) else DelayLine.of(signal)
    idx_c, delay_c, xyz_c = _retarded_geometry(path, n_samples, sr, static, c_m_s)
    az_c, el_c, r_c = cart_to_sph(xyz_c)
    gain = upsample_linear(1.0 / np.maximum(r_c, MIN_DISTANCE_M), CONTROL_STEP, n_samples)
    gain = gain.astype(np.float32)

    def read(extra_delay_s: FloatArray | float = 0.0) -> np.ndarray:
        pos_c = idx_c - (delay_c + extra_delay_s) * sr  # where each output sample reads
        return line.read(upsample_linear(pos_c, CONTROL_STEP, n_samples)) * gain

    if fmt == "foa":
        g_c = ambix_gains(az_c, el_c)  # (4, T)
        x = read()
        if static:
            return g_c[:, :1].astype(np.float32) * x
        g = np.stack([upsample_linear(g_c[k], CONTROL_STEP, n_samples) for k in range(4)])
        return g.astype(np.float32) * x
    if fmt != "binaural":
        raise ValueError(f"unknown format {fmt!r}; use 'foa' or 'binaural'")

    head = SphericalHead() if head is None else head
    if static:
        ear_delay = head.ear_delays_s(az_c[:1], el_c[:1])[:, 0]  # (2,)
        fir = head.ear_filters(az_c[:1], el_c[:1], sr)[0]  # (2, L)
        out = np.empty((2, n_samples), dtype=np.float32)
        for e in range(2):
            out[e] = sps.oaconvolve(read(ear_delay[e]), fir[e])[:n_samples]
        return out

    hop = max(int(round(FILTER_HOP_S * sr)), 1)
    idx_b = np.arange(n_filter_frames(n_samples, hop), dtype=np.float64) * hop
    xyz_b = np.stack([np.interp(idx_b, idx_c, xyz_c[:, k]) for k in range(3)], axis=-1)
    az_b, el_b, _ = cart_to_sph(xyz_b)
    ear_delay_b = head.ear_delays_s(az_b, el_b)  # (2, B)
    x = np.empty((2, n_samples), dtype=np.float32)
    for e in range(2):
        x[e] = read(np.interp(idx_c, idx_b, ear_delay_b[e]))
    filters = head.ear_filters(az_b, el_b, sr)  # (B, 2, L)
    return time_varying_fir(x, filters, hop)[:, :n_samples]


# --------------------------------------------------------------------------- room
@dataclass(frozen=True)
class ShoeboxRoom:
    """Walls of a shoebox room around the listener (metres, listener at the origin)."""

    lower: tuple[float, float, float]  # back, right and floor walls (negative coordinates)
    upper: tuple[float, float, float]  # front, left and ceiling walls
    absorption: float
    rt60_s: float

    @property
    def dims_m(self) -> np.ndarray:
        return np.asarray(self.upper) - np.asarray(self.lower)

    @property
    def room_constant_m2(self) -> float:
        lx, ly, lz = self.dims_m
        s = 2.0 * (lx * ly + lx * lz + ly * lz)
        return s * self.absorption / (1.0 - self.absorption)

    @property
    def reflection_gain(self) -> float:
        return float(np.sqrt(1.0 - self.absorption))


def room_for_rt60(rt60_s: float, *, extent_m: np.ndarray | None = None) -> ShoeboxRoom:
    """A plausible shoebox for an RT60: bigger rooms ring longer.

    The listener sits off-centre (so the reflections do not coincide) at ear height;
    the room grows to contain ``extent_m`` (positions ``(T, 3)``) with half a metre to
    spare, and the wall absorption follows from Sabine's formula
    ``RT60 = 0.161 V / (S alpha)``.
    """
    lx, ly, lz = 4.0 + 8.0 * rt60_s, 5.0 + 10.0 * rt60_s, 2.6 + 3.0 * rt60_s
    ear_z = min(1.5, 0.45 * lz)
    lower = np.array([-0.45 * lx, -0.6 * ly, -ear_z])
    upper = np.array([0.55 * lx, 0.4 * ly, lz - ear_z])
    if extent_m is not None and len(extent_m):
        lower = np.minimum(lower, np.min(extent_m, axis=0) - 0.5)
        upper = np.maximum(upper, np.max(extent_m, axis=0) + 0.5)
    dims = upper - lower
    volume = float(np.prod(dims))
    surface = 2.0 * float(dims[0] * dims[1] + dims[0] * dims[2] + dims[1] * dims[2])
    alpha = float(np.clip(0.161 * volume / (surface * rt60_s), 0.02, 0.95))
    return ShoeboxRoom(tuple(lower), tuple(upper), alpha, float(rt60_s))


def image_paths(path: PathFn, room: ShoeboxRoom) -> list[PathFn]:
    """First-order image sources: the path mirrored in each of the six walls."""
    out = []
    for axis in range(3):
        for wall in (room.lower[axis], room.upper[axis]):
            def mirrored(t: np.ndarray, axis: int = axis, wall: float = wall) -> np.ndarray:
                p = np.array(path(t), dtype=np.float64, copy=True)
                p[..., axis] = 2.0 * wall - p[..., axis]
                return p
            out.append(mirrored)
    return out


def diffuse_noise(n: int, n_ch: int, fmt: Format, sr: int, rng: np.random.Generator,
                  *, pink: bool = False) -> np.ndarray:
    """Unit-variance diffuse-field noise ``(channels, n)``.

    FOA: W and independent X, Y, Z at ``1/sqrt(3)`` (SN3D diffuse field).  Binaural: two
    noises whose coherence follows ``sinc(2 f d / c)`` for the ear spacing ``d``.
    """
    m = max(n, 16)
    f = sfft.rfftfreq(m, 1.0 / sr)
    shape = np.where(f > 0, np.maximum(f, 20.0) ** -0.5, 0.0) if pink else np.ones_like(f)
    spec = (rng.standard_normal((n_ch, len(f))) + 1j * rng.standard_normal((n_ch, len(f)))) * shape
    if fmt == "binaural":
        coh = np.sinc(2.0 * f * (2.0 * HEAD_RADIUS_M) / SPEED_OF_SOUND_M_S)
        spec[1] = coh * spec[0] + np.sqrt(np.clip(1.0 - coh**2, 0.0, 1.0)) * spec[1]
    y = sfft.irfft(spec, m, axis=-1)[:, :n]
    y /= np.sqrt(np.mean(y**2, axis=-1, keepdims=True)) + 1e-20
    if fmt == "foa":
        y[1:] /= np.sqrt(3.0)
    return y.astype(np.float32)


def diffuse_tail(room: ShoeboxRoom, *, start_s: float, fmt: Format, sr: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Late reverberation impulse response ``(channels, L)``, starting at ``start_s``.

    Exponentially decaying diffuse noise (high frequencies above ~4 kHz decay twice as
    fast), scaled so that its energy is the Sabine steady-state reverberant energy
    ``16 pi / R`` (R the room constant) relative to the direct sound at 1 m, less the part
    before ``start_s``.
    """
    rt = room.rt60_s
    n = int((start_s + 1.2 * rt) * sr) + 1
    n_ch = 4 if fmt == "foa" else 2
    noise = diffuse_noise(n, n_ch, fmt, sr, rng)
    spec = sfft.rfft(noise, axis=-1)
    f = sfft.rfftfreq(n, 1.0 / sr)
    hi_mask = 1.0 / (1.0 + (4000.0 / np.maximum(f, 1.0)) ** 2)
    hi = sfft.irfft(spec * hi_mask, n, axis=-1)
    lo = noise - hi
    t = np.arange(n) / sr
    decay = 6.91 / rt  # amplitude e-folding rate for -60 dB in rt seconds
    h = lo * np.exp(-decay * t) + hi * np.exp(-2.0 * decay * t)
    energy = 16.0 * np.pi / room.room_constant_m2
    g = np.sqrt(energy * 2.0 * decay / sr)  # sum of exp(-2 decay t) over samples ~ sr / (2 decay)
    fade = np.clip((t - start_s) / 0.01, 0.0, 1.0)
    return (g * h * fade).astype(np.float32)


# --------------------------------------------------------------------------- scene
def simulate_scene(
    sources: Sequence[SceneSource],
    *,
    fmt: Format,
    sr: int = 48000,
    duration_s: float,
    head: HeadModel | None = None,
    rt60_s: float | None = None,
    noise_snr_db: float | None = None,
    seed: int = 0,
    normalize: bool = True,
) -> Simulation:
    """Render moving sources to FOA (AmbiX) or binaural audio with its ground truth.

    Parameters
    ----------
    sources : sequence of SceneSource
        Mono signals at ``sr``; sample 0 is emitted at time 0.
    fmt : ``"foa"`` or ``"binaural"``
    sr : int
    duration_s : float
        Output length in seconds.
    head : SphericalHead (default) or SofaHrtf, binaural only.
    rt60_s : float, optional
        Add a room with this reverberation time (early reflections + diffuse tail).
    noise_snr_db : float, optional
        Add diffuse pink background noise at this SNR relative to the mix.
    seed : int
        Seeds the reverberation tail and the background noise.
    normalize : bool
        Scale the mix so that it peaks at -3 dBFS (the gain is in the truth).

    Returns
    -------
    Simulation
        ``audio`` float32 ``(4, samples)`` (W, Y, Z, X) or ``(2, samples)`` (left, right).
    """
    if fmt not in ("foa", "binaural"):
        raise ValueError(f"unknown format {fmt!r}; use 'foa' or 'binaural'")
    if not duration_s > 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    if rt60_s is not None and not 0.05 <= rt60_s <= 10.0:
        raise ValueError(f"rt60_s must be within [0.05, 10] s, got {rt60_s}")
    sr = int(sr)
    n = int(round(duration_s * sr))
    if fmt == "binaural":
        head = SphericalHead() if head is None else head
        if isinstance(head, SofaHrtf) and head.sr != sr:
            head = head.resampled(sr)
    rng = np.random.default_rng(seed)
    n_ch = 4 if fmt == "foa" else 2
    mix = np.zeros((n_ch, n), dtype=np.float32)

    for src in sources:
        sig = np.asarray(src.signal, dtype=np.float32)
        if sig.ndim != 1 or not np.isfinite(sig).all():
            raise ValueError(f"source {src.name!r}: signal must be a finite 1-D array")
        gain = np.float32(10.0 ** (src.gain_db / 20.0))
        traj = src.trajectory
        kw = dict(n_samples=n, sr=sr, fmt=fmt, head=head, static=traj.is_static)
        line = DelayLine.of(sig)
        mix += gain * render_path(line, traj.xyz_at, **kw)
        if rt60_s is not None:
            t_c = np.arange(0.0, duration_s + 0.05, 0.05)
            xyz = traj.xyz_at(t_c)
            room = room_for_rt60(rt60_s, extent_m=xyz)
            images = image_paths(traj.xyz_at, room)
            for img in images:
                mix += gain * room.reflection_gain * render_path(line, img, **kw)
            r_direct = np.linalg.norm(xyz, axis=-1)
            r_images = np.stack([np.linalg.norm(img(t_c), axis=-1) for img in images])
            early_s = float(np.max(r_images - r_direct) / SPEED_OF_SOUND_M_S)
            tail = diffuse_tail(room, start_s=float(np.mean(r_direct)) / SPEED_OF_SOUND_M_S
                                + max(early_s, 0.005), fmt=fmt, sr=sr, rng=rng)
            mix += gain * sps.oaconvolve(sig[None, :], tail, axes=-1)[:, :n].astype(np.float32)

    if noise_snr_db is not None:
        ref = mix[0] if fmt == "foa" else mix
        p_sig = float(np.mean(ref.astype(np.float64) ** 2))
        noise = diffuse_noise(n, n_ch, fmt, sr, rng, pink=True)
        p_noise = float(np.mean((noise[0] if fmt == "foa" else noise).astype(np.float64) ** 2))
        if p_sig > 0:
            mix += noise * np.float32(np.sqrt(p_sig / p_noise * 10.0 ** (-noise_snr_db / 10.0)))

    gain_db = 0.0
    peak = float(np.max(np.abs(mix))) if mix.size else 0.0
    if normalize and peak > 0:
        gain_db = PEAK_DBFS - 20.0 * np.log10(peak)
        mix *= np.float32(10.0 ** (gain_db / 20.0))

    truth = scene_truth(sources, fmt=fmt, sr=sr, duration_s=duration_s, rt60_s=rt60_s,
                        head_name=(head.name if fmt == "binaural" else None),
                        gain_db=gain_db, noise_snr_db=noise_snr_db, seed=seed)
    return Simulation(audio=mix, sr=sr, truth=truth)


def _r(x: FloatArray, nd: int = 4) -> list[float]:
    return [round(float(v), nd) for v in np.ravel(x)]


def source_truth(traj: Trajectory, times: np.ndarray) -> dict:
    """Tracks and labels of one trajectory sampled at ``times`` (see DESIGN.md)."""
    az, el, r = traj.at(times)
    mean_vec = np.mean(sph_to_cart(az, 0.0, 1.0), axis=0)
    mean_az = float(np.rad2deg(np.arctan2(mean_vec[1], mean_vec[0])))
    folded, _ = fold_front(az)
    frontal = unwrap_deg(folded)
    r_start, r_end = max(float(r[0]), MIN_DISTANCE_M), max(float(r[-1]), MIN_DISTANCE_M)
    return {
        "keyframes": traj.to_dicts(),
        "interpolation": traj.interpolation,
        "times": _r(times),
        "azimuth_deg": _r(az, 3),
        "elevation_deg": _r(el, 3),
        "distance_m": _r(r, 4),
        "mean_azimuth_deg": round(float(wrap_deg(mean_az)), 3),
        "position": position_label(float(np.mean(folded))),
        "motion": motion_label(float(frontal[-1] - frontal[0]),
                               20.0 * np.log10(r_start / r_end)),
        "behind": bool(np.mean(np.abs(az)) > 90.0),
    }


def scene_truth(
    sources: Sequence[SceneSource],
    *,
    fmt: str,
    sr: int,
    duration_s: float,
    rt60_s: float | None = None,
    head_name: str | None = None,
    gain_db: float = 0.0,
    noise_snr_db: float | None = None,
    seed: int = 0,
) -> dict:
    """The JSON-serialisable ground truth of a scene."""
    n_hops = int(np.floor(duration_s / TRUTH_HOP_S + 1e-9))
    times = np.arange(n_hops + 1) * TRUTH_HOP_S
    srcs = []
    for i, s in enumerate(sources):
        d = {"id": i, "name": s.name, "gain_db": float(s.gain_db)}
        d.update(source_truth(s.trajectory, times))
        srcs.append(d)
    return {
        "format": fmt,
        "sample_rate": int(sr),
        "duration": float(duration_s),
        "hop_s": TRUTH_HOP_S,
        "rt60_s": None if rt60_s is None else float(rt60_s),
        "noise_snr_db": None if noise_snr_db is None else float(noise_snr_db),
        "hrtf": head_name if fmt == "binaural" else None,
        "gain_db": round(float(gain_db), 4),
        "seed": int(seed),
        "sources": srcs,
    }
