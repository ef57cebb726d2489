"""The one place for spa2v's conventions (see DESIGN.md, "Conventions").

Listener and camera at the origin looking along +x; +y is left, +z is up.
Azimuth in degrees, 0 = front, +90 = left, -90 = right, range (-180, 180].
Elevation in degrees, 0 = horizontal, +90 = up.  Distance in metres.

FOA is AmbiX: ACN channel order (W, Y, Z, X) with SN3D normalisation.
Image coordinates are normalised to [0, 1], origin top-left, x right, y down.

Everything else in the code imports these helpers instead of re-deriving them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from spa2v._typing import ArrayLike, FloatArray

SPEED_OF_SOUND_M_S = 343.0
"""Speed of sound used by the simulator and the head models."""

HEAD_RADIUS_M = 0.0875
"""Radius of the default spherical head (Brown and Duda's average head)."""

# --------------------------------------------------------------------------- labels
POSITION_LABELS = ("left", "center", "right")
MOTION_LABELS = ("static", "left_to_right", "right_to_left", "approaching", "receding")
POSITION_THRESHOLD_DEG = 15.0
"""``left`` if azimuth >= 15, ``right`` if <= -15, else ``center``."""
CROSSING_MIN_SWEEP_DEG = 30.0
"""A source whose azimuth moves by at least this much is crossing."""
DISTANCE_MIN_CHANGE_DB = 3.0
"""A level change of at least this much (direct-path, i.e. 20 log10(r0/r1)) is approach/recession."""

FORMATS = ("mono", "stereo", "binaural", "foa")
FOA_CHANNELS = ("W", "Y", "Z", "X")


def position_label(azimuth_deg: float) -> str:
    """Position label of a (frontal-folded or not) azimuth: ``left``, ``center`` or ``right``."""
    az = float(wrap_deg(azimuth_deg))
    if az > 90.0:
        az = 180.0 - az
    elif az < -90.0:
        az = -180.0 - az
    if az >= POSITION_THRESHOLD_DEG:
        return "left"
    if az <= -POSITION_THRESHOLD_DEG:
        return "right"
    return "center"


def motion_label(azimuth_sweep_deg: float, level_change_db: float) -> str:
    """Motion label from the net azimuth change and the net level change of a source.

    Parameters
    ----------
    azimuth_sweep_deg : float
        End azimuth minus start azimuth (frontal, unwrapped).  Azimuth decreases
        as a source moves to the right, so a negative sweep is ``left_to_right``.
    level_change_db : float
        End level minus start level.  A rise is ``approaching``.
    """
    if abs(azimuth_sweep_deg) >= CROSSING_MIN_SWEEP_DEG:
        return "left_to_right" if azimuth_sweep_deg < 0 else "right_to_left"
    if level_change_db >= DISTANCE_MIN_CHANGE_DB:
        return "approaching"
    if level_change_db <= -DISTANCE_MIN_CHANGE_DB:
        return "receding"
    return "static"


# --------------------------------------------------------------------------- angles
def wrap_deg(angle_deg: ArrayLike) -> FloatArray:
    """Wrap angles in degrees to (-180, 180]."""
    a = np.asarray(angle_deg, dtype=np.float64)
    w = np.mod(a + 180.0, 360.0) - 180.0
    return np.where(w == -180.0, 180.0, w)


def angle_diff_deg(a_deg: ArrayLike, b_deg: ArrayLike) -> FloatArray:
    """Signed smallest difference ``a - b`` in degrees, in (-180, 180]."""
    return wrap_deg(np.asarray(a_deg, dtype=np.float64) - np.asarray(b_deg, dtype=np.float64))


def unwrap_deg(angle_deg: ArrayLike) -> FloatArray:
    """Unwrap a sequence of azimuths (degrees) so that it has no 360-degree jumps."""
    return np.rad2deg(np.unwrap(np.deg2rad(np.asarray(angle_deg, dtype=np.float64))))


def fold_front(azimuth_deg: ArrayLike) -> tuple[FloatArray, np.ndarray]:
    """Fold azimuths behind the listener to the front: ``az -> 180 - az`` for ``|az| > 90``.

    Returns the folded azimuths in [-90, 90] and a boolean mask that flags the
    ones that were behind.
    """
    az = wrap_deg(azimuth_deg)
    behind = np.abs(az) > 90.0
    folded = np.where(behind, wrap_deg(180.0 - az), az)
    return folded, behind


def lateral_angle_deg(azimuth_deg: ArrayLike, elevation_deg: ArrayLike = 0.0) -> FloatArray:
    """Interaural-polar lateral angle in [-90, 90] (+90 = on the left-ear axis)."""
    az = np.deg2rad(np.asarray(azimuth_deg, dtype=np.float64))
    el = np.deg2rad(np.asarray(elevation_deg, dtype=np.float64))
    return np.rad2deg(np.arcsin(np.clip(np.sin(az) * np.cos(el), -1.0, 1.0)))


# --------------------------------------------------------------------------- coordinates
def sph_to_cart(
    azimuth_deg: ArrayLike, elevation_deg: ArrayLike = 0.0, distance_m: ArrayLike = 1.0
) -> FloatArray:
    """Spherical (az, el, r) to Cartesian ``(..., 3)`` with x front, y left, z up."""
    az = np.deg2rad(np.asarray(azimuth_deg, dtype=np.float64))
    el = np.deg2rad(np.asarray(elevation_deg, dtype=np.float64))
    r = np.asarray(distance_m, dtype=np.float64)
    az, el, r = np.broadcast_arrays(az, el, r)
    return np.stack(
        [r * np.cos(el) * np.cos(az), r * np.cos(el) * np.sin(az), r * np.sin(el)], axis=-1
    )


def cart_to_sph(xyz: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Cartesian ``(..., 3)`` to (azimuth_deg, elevation_deg, distance_m)."""
    p = np.asarray(xyz, dtype=np.float64)
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    r = np.sqrt(x * x + y * y + z * z)
    az = wrap_deg(np.rad2deg(np.arctan2(y, x)))
    el = np.rad2deg(np.arctan2(z, np.hypot(x, y)))
    return az, el, r


# --------------------------------------------------------------------------- ambisonics
def ambix_gains(azimuth_deg: ArrayLike, elevation_deg: ArrayLike = 0.0) -> FloatArray:
    """First-order AmbiX (ACN/SN3D) encoding gains, shape ``(4, ...)`` in order W, Y, Z, X.

    ``W = 1, Y = sin(az) cos(el), Z = sin(el), X = cos(az) cos(el)``.
    """
    az = np.deg2rad(np.asarray(azimuth_deg, dtype=np.float64))
    el = np.deg2rad(np.asarray(elevation_deg, dtype=np.float64))
    az, el = np.broadcast_arrays(az, el)
    return np.stack(
        [np.ones_like(az), np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)], axis=0
    )


def fuma_to_ambix(y: FloatArray) -> FloatArray:
    """Convert first-order FuMa (W, X, Y, Z; W at -3 dB) to AmbiX (W, Y, Z, X; SN3D)."""
    _check_foa(y)
    w, x, yy, z = y[0], y[1], y[2], y[3]
    return np.stack([w * np.sqrt(2.0), yy, z, x]).astype(y.dtype, copy=False)


def ambix_to_fuma(y: FloatArray) -> FloatArray:
    """Convert first-order AmbiX (W, Y, Z, X; SN3D) to FuMa (W, X, Y, Z; W at -3 dB)."""
    _check_foa(y)
    w, yy, z, x = y[0], y[1], y[2], y[3]
    return np.stack([w / np.sqrt(2.0), x, yy, z]).astype(y.dtype, copy=False)


def n3d_to_sn3d(y: FloatArray) -> FloatArray:
    """Convert first-order ACN/N3D to ACN/SN3D (first-order channels divided by sqrt(3))."""
    _check_foa(y)
    out = np.array(y, copy=True)
    out[1:4] /= np.sqrt(3.0)
    return out


def _check_foa(y: FloatArray) -> None:
    if np.shape(y)[0] != 4:
        raise ValueError(f"first-order Ambisonics needs 4 channels, got {np.shape(y)[0]}")


# --------------------------------------------------------------------------- camera
Projection = Literal["sine", "pinhole"]


@dataclass(frozen=True)
class Camera:
    """The camera model shared by planners, evaluation and the reverse direction.

    ``sine`` (default): ``x = 0.5 - 0.5 sin(az)`` for ``|az| <= 90``: a source heard
    at the far left is at the left edge, and every frontal source is in view.
    ``pinhole``: ``x = 0.5 - tan(az) / (2 tan(hfov / 2))``, off-screen outside the
    field of view.  Sources behind the listener are folded to the front first and
    flagged ``behind``.
    """

    projection: Projection = "sine"
    hfov_deg: float = 90.0

    def __post_init__(self) -> None:
        if self.projection not in ("sine", "pinhole"):
            raise ValueError(f"unknown projection {self.projection!r}; use 'sine' or 'pinhole'")
        if not 0.0 < self.hfov_deg < 180.0:
            raise ValueError(f"hfov_deg must be in (0, 180), got {self.hfov_deg}")

    def azimuth_to_x(self, azimuth_deg: ArrayLike) -> tuple[FloatArray, np.ndarray, np.ndarray]:
        """Project azimuths to normalised image x.

        Returns
        -------
        x : ndarray
            Normalised x (may lie outside [0, 1] for the pinhole model).
        visible : ndarray of bool
            Whether the point is inside the frame horizontally.
        behind : ndarray of bool
            Whether the source was behind the listener (and folded).
        """
        folded, behind = fold_front(azimuth_deg)
        a = np.deg2rad(folded)
        if self.projection == "sine":
            x = 0.5 - 0.5 * np.sin(a)
        else:
            half = np.tan(np.deg2rad(self.hfov_deg) / 2.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                x = 0.5 - np.tan(np.clip(a, -np.pi / 2 + 1e-9, np.pi / 2 - 1e-9)) / (2.0 * half)
        visible = (x >= 0.0) & (x <= 1.0)
        return x, visible, behind

    def x_to_azimuth(self, x: ArrayLike) -> FloatArray:
        """Inverse projection: normalised image x to (frontal) azimuth in degrees."""
        xv = np.asarray(x, dtype=np.float64)
        if self.projection == "sine":
            return np.rad2deg(np.arcsin(np.clip(1.0 - 2.0 * xv, -1.0, 1.0)))
        half = np.tan(np.deg2rad(self.hfov_deg) / 2.0)
        return np.rad2deg(np.arctan((0.5 - xv) * 2.0 * half))

    def to_dict(self) -> dict:
        return {"projection": self.projection, "hfov_deg": float(self.hfov_deg)}
