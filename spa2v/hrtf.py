"""Head models for binaural rendering: a spherical head and measured HRTFs (SOFA).

Both implement the small protocol the renderer (``spa2v.simulate``) uses:

* ``ear_delays_s(azimuth_deg, elevation_deg) -> (2, T)``: arrival delay of each ear
  (0 = left, 1 = right) relative to the centre of the head, in seconds (negative = earlier);
* ``ear_filters(azimuth_deg, elevation_deg, sr) -> (T, 2, L)``: onset-aligned FIRs that
  carry the rest of the direction-dependent filtering;
* ``name``: what the truth files record ("spherical" or the SOFA file's name).

The ear axis is y (left ear on +y, right ear on -y), as in ``spa2v.conventions``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from spa2v._typing import ArrayLike, FloatArray, PathType
from spa2v.conventions import HEAD_RADIUS_M, SPEED_OF_SOUND_M_S, cart_to_sph, sph_to_cart
from spa2v.errors import InputError

BROWN_DUDA_ALPHA_MIN = 0.1
BROWN_DUDA_THETA_MIN_DEG = 150.0
SPHERICAL_FILTER_TAPS_AT_48K = 64
ONSET_THRESHOLD_DB = -20.0
"""An HRIR starts where its envelope first comes within this of its own peak."""
ONSET_MARGIN_S = 0.0001
"""Kept before the detected onset so that the onset-aligned HRIR keeps its rise."""


class HeadModel(Protocol):
    """What the binaural renderer needs from a head model."""

    name: str

    def ear_delays_s(self, azimuth_deg: ArrayLike, elevation_deg: ArrayLike = 0.0) -> FloatArray:
        ...

    def ear_filters(
        self, azimuth_deg: ArrayLike, elevation_deg: ArrayLike, sr: int
    ) -> FloatArray:
        ...


# --------------------------------------------------------------------------- spherical head
def ear_angles_rad(azimuth_deg: ArrayLike, elevation_deg: ArrayLike = 0.0) -> FloatArray:
    """Angle between the source direction and each ear's axis, shape ``(2, ...)`` (left, right)."""
    u = sph_to_cart(azimuth_deg, elevation_deg, 1.0)
    cos_left = np.clip(u[..., 1], -1.0, 1.0)
    return np.arccos(np.stack([cos_left, -cos_left]))


def woodworth_ear_delays_s(
    azimuth_deg: ArrayLike,
    elevation_deg: ArrayLike = 0.0,
    *,
    radius_m: float = HEAD_RADIUS_M,
    c_m_s: float = SPEED_OF_SOUND_M_S,
) -> FloatArray:
    """Woodworth's per-ear delays relative to the head centre, shape ``(2, ...)``.

    ``-(a/c) cos(beta)`` for a lit ear (``beta <= 90 deg``), ``(a/c)(beta - pi/2)`` for a
    shadowed one, so the ITD is ``(a/c)(theta + sin(theta))`` for lateral angle ``theta``.
    """
    beta = ear_angles_rad(azimuth_deg, elevation_deg)
    a_c = radius_m / c_m_s
    return np.where(beta <= np.pi / 2, -a_c * np.cos(beta), a_c * (beta - np.pi / 2))


def woodworth_itd_s(
    lateral_deg: ArrayLike, *, radius_m: float = HEAD_RADIUS_M, c_m_s: float = SPEED_OF_SOUND_M_S
) -> FloatArray:
    """Woodworth ITD (right-ear delay minus left-ear delay) for a lateral angle, in seconds."""
    th = np.deg2rad(np.asarray(lateral_deg, dtype=np.float64))
    return (radius_m / c_m_s) * (th + np.sin(th))


def brown_duda_alpha(beta_rad: ArrayLike) -> FloatArray:
    """Brown-Duda (1998) head-shadow zero coefficient for the angle ``beta`` to the ear axis."""
    beta = np.asarray(beta_rad, dtype=np.float64)
    a_min = BROWN_DUDA_ALPHA_MIN
    return (1.0 + a_min / 2.0) + (1.0 - a_min / 2.0) * np.cos(
        beta / np.deg2rad(BROWN_DUDA_THETA_MIN_DEG) * np.pi
    )


def head_shadow_fir(
    alpha: ArrayLike, sr: int, *, n_taps: int, radius_m: float = HEAD_RADIUS_M,
    c_m_s: float = SPEED_OF_SOUND_M_S,
) -> FloatArray:
    """Impulse response of the Brown-Duda head-shadow filter (bilinear transform).

    ``H(w) = (1 + j alpha w / (2 w0)) / (1 + j w / (2 w0))``, ``w0 = c / a``; a first-order
    IIR whose impulse response is written in closed form.  Shape ``alpha.shape + (n_taps,)``.
    """
    al = np.asarray(alpha, dtype=np.float64)[..., None]
    k = 2.0 * sr / (2.0 * c_m_s / radius_m)  # bilinear constant over the pole frequency
    den0 = 1.0 + k
    b0 = (1.0 + al * k) / den0
    b1 = (1.0 - al * k) / den0
    a1 = (1.0 - k) / den0
    n = np.arange(n_taps, dtype=np.float64)
    tail = (b1 - a1 * b0) * (-a1) ** np.maximum(n - 1.0, 0.0)
    return np.where(n == 0, b0, tail)


@dataclass(frozen=True)
class SphericalHead:
    """Rigid spherical head: Woodworth ear delays and Brown-Duda head shadow."""

    radius_m: float = HEAD_RADIUS_M
    c_m_s: float = SPEED_OF_SOUND_M_S
    name: str = "spherical"

    def ear_delays_s(self, azimuth_deg: ArrayLike, elevation_deg: ArrayLike = 0.0) -> FloatArray:
        """Per-ear delays in seconds relative to the head centre, shape ``(2, ...)``."""
        return woodworth_ear_delays_s(
            azimuth_deg, elevation_deg, radius_m=self.radius_m, c_m_s=self.c_m_s
        )

    def ear_filters(
        self, azimuth_deg: ArrayLike, elevation_deg: ArrayLike, sr: int
    ) -> FloatArray:
        """Head-shadow FIRs, shape ``(T, 2, L)`` for ``T`` directions (flattened)."""
        beta = ear_angles_rad(np.ravel(azimuth_deg), np.ravel(elevation_deg))  # (2, T)
        n_taps = max(16, int(round(SPHERICAL_FILTER_TAPS_AT_48K * sr / 48000)))
        h = head_shadow_fir(brown_duda_alpha(beta), sr, n_taps=n_taps,
                            radius_m=self.radius_m, c_m_s=self.c_m_s)  # (2, T, L)
        return np.ascontiguousarray(np.moveaxis(h, 0, 1))


# --------------------------------------------------------------------------- SOFA
def onset_samples(hrirs: FloatArray, *, threshold_db: float = ONSET_THRESHOLD_DB) -> np.ndarray:
    """Index where each impulse response's envelope first reaches ``threshold_db`` of its peak.

    The envelope is the magnitude ``|h|`` (an analytic-signal envelope would smear a
    sharp onset backwards by a few samples).  ``hrirs`` has shape ``(..., N)``; returns
    integers of shape ``(...)``.
    """
    env = np.abs(np.asarray(hrirs))
    peak = env.max(axis=-1, keepdims=True)
    above = env >= peak * 10.0 ** (threshold_db / 20.0)
    return np.argmax(above, axis=-1)


@dataclass
class SofaHrtf:
    """Measured HRTFs from a SOFA file, split into onset delays and onset-aligned HRIRs.

    Attributes
    ----------
    positions_deg : np.ndarray, shape ``(M, 3)``
        Measured (azimuth deg, elevation deg, distance m), azimuth in (-180, 180].
    hrirs : np.ndarray, shape ``(M, 2, N)``
        The measured HRIRs resampled to ``sr``.
    sr : int
    onsets : np.ndarray, shape ``(M, 2)``
        Onset of each HRIR in samples (integer), including the file's ``Data.Delay``.
    aligned : np.ndarray, shape ``(M, 2, L)``
        ``hrirs`` advanced by ``onsets``, so that ``hrirs[m, e] == delay(aligned[m, e], onsets[m, e])``
        up to the sub-threshold samples before the onset.
    reference_onset : float
        Onset (samples) taken as the head centre: the mean of both ears for the measured
        direction nearest the front.  ``ear_delays_s`` is relative to it.
    """

    positions_deg: np.ndarray
    hrirs: np.ndarray
    sr: int
    onsets: np.ndarray
    aligned: np.ndarray
    reference_onset: float
    name: str = "sofa"
    _interp: _SphereInterpolator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._interp = _SphereInterpolator(self.positions_deg[:, 0], self.positions_deg[:, 1])

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_file(cls, path: PathType, sr: int | None = None) -> SofaHrtf:
        """Read a SOFA file (SimpleFreeFieldHRIR) and resample it to ``sr`` (default: its own)."""
        ir, file_sr, pos, delay = _read_sofa(Path(path))
        if sr is not None and int(sr) != file_sr:
            try:
                from spa2v.audio import resample
            except ImportError:  # pragma: no cover - audio.py is part of the package
                resample = _resample_poly
            ir = np.asarray(resample(ir, file_sr, int(sr)), dtype=np.float64)
            delay = delay * (int(sr) / file_sr)
            file_sr = int(sr)
        return cls.from_arrays(ir, file_sr, pos, extra_delay_samples=delay, name=Path(path).name)

    @classmethod
    def from_arrays(
        cls,
        hrirs: FloatArray,
        sr: int,
        positions_deg: FloatArray,
        *,
        extra_delay_samples: FloatArray | float = 0.0,
        name: str = "sofa",
    ) -> SofaHrtf:
        """Build from HRIRs ``(M, 2, N)`` at ``sr`` measured at ``(az, el, r)`` positions ``(M, 3)``."""
        h = np.asarray(hrirs, dtype=np.float64)
        pos = np.asarray(positions_deg, dtype=np.float64).copy()
        pos[:, 0] = np.mod(pos[:, 0] + 180.0, 360.0) - 180.0
        pos[:, 0] = np.where(pos[:, 0] == -180.0, 180.0, pos[:, 0])
        margin = int(round(ONSET_MARGIN_S * sr))
        on = np.maximum(onset_samples(h) - margin, 0)  # (M, 2)
        n = h.shape[-1]
        length = n - int(on.min())
        idx = on[..., None] + np.arange(length)  # (M, 2, L)
        padded = np.concatenate([h, np.zeros(h.shape[:2] + (length,))], axis=-1)
        aligned = np.take_along_axis(padded, idx, axis=-1)
        extra = np.broadcast_to(np.asarray(extra_delay_samples, dtype=np.float64), on.shape)
        onsets = on + np.rint(extra).astype(int)
        front = np.argmin(np.linalg.norm(sph_to_cart(pos[:, 0], pos[:, 1]) - [1.0, 0.0, 0.0],
                                         axis=-1))
        return cls(
            positions_deg=pos,
            hrirs=h.astype(np.float32),
            sr=int(sr),
            onsets=onsets,
            aligned=aligned.astype(np.float32),
            reference_onset=float(onsets[front].mean()),
            name=name,
        )

    def resampled(self, sr: int) -> SofaHrtf:
        """The same HRTF at another sample rate (from the resampled raw HRIRs)."""
        if int(sr) == self.sr:
            return self
        from spa2v.audio import resample

        h = np.asarray(resample(self.hrirs, self.sr, int(sr)), dtype=np.float64)
        return SofaHrtf.from_arrays(h, int(sr), self.positions_deg, name=self.name)

    # ---------------------------------------------------------------- protocol
    def weights(
        self, azimuth_deg: ArrayLike, elevation_deg: ArrayLike = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Barycentric interpolation: indices ``(T, 3)`` into the measured set, weights ``(T, 3)``."""
        return self._interp.weights(np.ravel(azimuth_deg), np.ravel(elevation_deg))

    def ear_delays_s(self, azimuth_deg: ArrayLike, elevation_deg: ArrayLike = 0.0) -> FloatArray:
        """Interpolated onset delays relative to the head centre, shape ``(2, T)``."""
        idx, w = self.weights(*np.broadcast_arrays(azimuth_deg, elevation_deg))
        on = self._interp.values(self.onsets.astype(np.float64), idx, w)  # (T, 2)
        return ((on - self.reference_onset) / self.sr).T

    def ear_filters(
        self, azimuth_deg: ArrayLike, elevation_deg: ArrayLike, sr: int
    ) -> FloatArray:
        """Interpolated onset-aligned HRIRs, shape ``(T, 2, L)``."""
        if int(sr) != self.sr:
            raise ValueError(f"this HRTF is at {self.sr} Hz, not {sr} Hz; use .resampled(sr)")
        idx, w = self.weights(*np.broadcast_arrays(azimuth_deg, elevation_deg))
        return self._interp.values(self.aligned, idx, w)

    def hrir_pairs(self, azimuth_deg: ArrayLike, elevation_deg: ArrayLike = 0.0) -> FloatArray:
        """Full interpolated HRIR pairs (delay put back, rounded to samples), ``(T, 2, N)``."""
        idx, w = self.weights(*np.broadcast_arrays(azimuth_deg, elevation_deg))
        h = self._interp.values(self.aligned, idx, w)
        on = np.rint(self._interp.values(self.onsets.astype(np.float64), idx, w)).astype(int)
        n = self.hrirs.shape[-1]
        out = np.zeros(h.shape[:2] + (n,), dtype=np.float32)
        for e in range(2):  # two ears, vectorised over directions
            cols = on[:, e, None] + np.arange(h.shape[-1])
            ok = cols < n
            rows = np.broadcast_to(np.arange(h.shape[0])[:, None], cols.shape)
            out[rows[ok], e, cols[ok]] = h[:, e][ok]
        return out


def _resample_poly(y: FloatArray, sr_in: int, sr_out: int) -> np.ndarray:
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(sr_in, sr_out)
    return resample_poly(y, sr_out // g, sr_in // g, axis=-1)


def _attr_str(obj, key: str) -> str:
    v = obj.attrs.get(key, b"")
    if isinstance(v, np.ndarray):
        v = v.ravel()[0] if v.size else b""
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


def _read_sofa(path: Path) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """(IR (M, 2, N), sr, positions (M, 3) az/el/r, delay samples (M, 2) or (1, 2))."""
    if not path.exists():
        raise InputError("no such file", path)
    try:
        import h5py

        with h5py.File(path, "r") as f:
            missing = [k for k in ("Data.IR", "Data.SamplingRate", "SourcePosition") if k not in f]
            if missing:
                raise InputError(f"not a readable SOFA file: missing {', '.join(missing)}", path)
            ir = np.asarray(f["Data.IR"][()], dtype=np.float64)
            sr = float(np.ravel(f["Data.SamplingRate"][()])[0])
            pos = np.asarray(f["SourcePosition"][()], dtype=np.float64)
            kind = _attr_str(f["SourcePosition"], "Type").lower()
            delay = np.asarray(f["Data.Delay"][()], dtype=np.float64) if "Data.Delay" in f else 0.0
    except InputError:
        raise
    except Exception as exc:  # h5py raises OSError, KeyError, TypeError, ...
        raise InputError(f"not a readable SOFA file: {exc}", path) from None
    if ir.ndim != 3 or ir.shape[1] != 2 or ir.shape[2] < 2:
        raise InputError(f"not a readable SOFA file: Data.IR has shape {ir.shape}, need (M, 2, N)",
                         path)
    if pos.ndim == 1:
        pos = np.broadcast_to(pos, (ir.shape[0], pos.shape[0]))
    if pos.shape[0] != ir.shape[0] or pos.shape[1] < 2:
        raise InputError(f"not a readable SOFA file: SourcePosition has shape {pos.shape} "
                         f"for {ir.shape[0]} measurements", path)
    if not (np.isfinite(ir).all() and np.isfinite(pos).all()) or not sr > 0:
        raise InputError("not a readable SOFA file: non-finite data or sampling rate", path)
    if kind.startswith("cart"):
        az, el, r = cart_to_sph(pos[:, :3])
        pos = np.stack([az, el, r], axis=-1)
    elif pos.shape[1] == 2:
        pos = np.concatenate([pos, np.ones((pos.shape[0], 1))], axis=1)
    delay = np.broadcast_to(np.asarray(delay, dtype=np.float64).reshape(-1, 2)
                            if np.size(delay) % 2 == 0 else np.zeros((1, 2)), (ir.shape[0], 2))
    return ir, int(round(sr)), pos[:, :3].copy(), delay.copy()


# --------------------------------------------------------------------------- interpolation
_FACET_CANDIDATES = 8
class _SphereInterpolator:
    """Barycentric interpolation on the triangulated sphere of measured directions.

    The convex hull of the measured unit vectors is the triangulation.  Where the
    measurements leave a cap uncovered (KEMAR stops at -40 deg elevation) a virtual
    point at the pole stands in, carrying the mean of the nearest ring.  A set of
    directions in one horizontal ring falls back to interpolation along azimuth.
    """

    def __init__(self, azimuth_deg: np.ndarray, elevation_deg: np.ndarray) -> None:
        from scipy.spatial import ConvexHull, cKDTree

        self.n_measured = len(azimuth_deg)
        self.ring = bool(np.ptp(elevation_deg) < 1.0) or self.n_measured < 4
        if self.ring:
            order = np.argsort(azimuth_deg)
            self.ring_az = np.asarray(azimuth_deg)[order]
            self.ring_order = order
            self.extra: list[np.ndarray] = []
            return
        pts = sph_to_cart(azimuth_deg, elevation_deg, 1.0)
        self.extra = []  # indices of measured points that each virtual pole averages
        virtual = []
        for sign in (-1.0, 1.0):
            extreme = np.max(sign * elevation_deg)
            if extreme < 60.0:  # uncovered cap around this pole
                self.extra.append(np.flatnonzero(sign * elevation_deg >= extreme - 5.0))
                virtual.append([0.0, 0.0, sign])
        if virtual:
            pts = np.concatenate([pts, np.asarray(virtual)], axis=0)
        # joggled so that every measured point is a vertex, even where four are coplanar
        hull = ConvexHull(pts, qhull_options="QJ")
        self.simplices = hull.simplices  # (F, 3)
        verts = pts[self.simplices]  # (F, 3 vertices, 3 coords), unjoggled
        normals = np.cross(verts[:, 1] - verts[:, 0], verts[:, 2] - verts[:, 0])
        offsets = np.einsum("fc,fc->f", normals, verts[:, 0])
        normals = np.where(offsets[:, None] < 0, -normals, normals)
        offsets = np.abs(offsets)
        # a ray from the centre leaves a convex hull through the facet maximising n.u / d
        self.scaled_normals = normals / np.maximum(offsets, 1e-12)[:, None]
        self.inv = np.linalg.inv(verts)  # u = w @ verts  ->  w = u @ inv
        centroids = verts.mean(axis=1)
        self.tree = cKDTree(centroids / np.linalg.norm(centroids, axis=1, keepdims=True))

    def weights(self, azimuth_deg: np.ndarray, elevation_deg: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        az = np.asarray(azimuth_deg, dtype=np.float64)
        el = np.asarray(elevation_deg, dtype=np.float64)
        if self.ring:
            return self._ring_weights(az)
        u = sph_to_cart(az, el, 1.0).reshape(-1, 3)  # (T, 3)
        # candidates: the facets with the nearest centroids; the containing facet is the
        # one whose barycentric weights are all non-negative (of coplanar neighbours, which
        # tie, any such one will do)
        k = min(_FACET_CANDIDATES, len(self.simplices))
        _, cand = self.tree.query(u, k=k)
        cand = cand.reshape(len(u), k)
        facet, w = self._best_of(u, cand)
        lost = w.min(axis=1) < -1e-9
        if lost.any():  # rare: search every facet ranked by the exit-ray criterion
            score = u[lost] @ self.scaled_normals.T
            kk = min(4 * _FACET_CANDIDATES, score.shape[1])
            wide = np.argpartition(-score, kk - 1, axis=1)[:, :kk]
            facet[lost], w[lost] = self._best_of(u[lost], wide)
        w = np.clip(w, 0.0, None)
        w /= w.sum(axis=1, keepdims=True)
        return self.simplices[facet], w

    def _best_of(self, u: np.ndarray, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w_all = np.einsum("tc,tkcv->tkv", u, self.inv[cand])  # (T, k, 3)
        best = np.argmax(w_all.min(axis=2), axis=1)
        rows = np.arange(len(u))
        return cand[rows, best], w_all[rows, best]

    def _ring_weights(self, az: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ring = self.ring_az
        if len(ring) == 1:
            return np.zeros((len(az), 3), int), np.tile([1.0, 0.0, 0.0], (len(az), 1))
        ext = np.concatenate([ring[-1:] - 360.0, ring, ring[:1] + 360.0])
        k = np.clip(np.searchsorted(ext, az, side="right") - 1, 0, len(ext) - 2)
        frac = (az - ext[k]) / np.maximum(ext[k + 1] - ext[k], 1e-12)
        n = len(ring)
        lo, hi = self.ring_order[(k - 1) % n], self.ring_order[k % n]
        idx = np.stack([lo, hi, hi], axis=1)
        w = np.stack([1.0 - frac, frac, np.zeros_like(frac)], axis=1)
        return idx, w

    def values(self, data: np.ndarray, idx: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Weighted sum over the 3 vertices of per-direction ``data`` ``(M, ...)``, -> ``(T, ...)``."""
        if self.extra:
            poles = np.stack([data[ix].mean(axis=0) for ix in self.extra])
            data = np.concatenate([data, poles.astype(data.dtype)], axis=0)
        out = np.zeros((idx.shape[0],) + data.shape[1:], dtype=data.dtype)
        shape = (-1,) + (1,) * (data.ndim - 1)
        for v in range(3):
            out += data[idx[:, v]] * w[:, v].reshape(shape).astype(data.dtype)
        return out
