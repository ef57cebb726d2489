"""Angles, coordinates, Ambisonics channel conventions, labels and the camera model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spa2v.conventions import (
    MOTION_LABELS,
    Camera,
    ambix_gains,
    ambix_to_fuma,
    angle_diff_deg,
    cart_to_sph,
    fold_front,
    fuma_to_ambix,
    motion_label,
    n3d_to_sn3d,
    position_label,
    sph_to_cart,
    wrap_deg,
)

# ----------------------------------------------------------------------------- angles


@pytest.mark.parametrize(
    ("angle", "wrapped"),
    [(0, 0), (90, 90), (180, 180), (-180, 180), (540, 180), (-540, 180), (190, -170),
     (-190, 170), (360, 0), (-360, 0), (721, 1), (-179.5, -179.5), (179.5, 179.5)],
)
def test_wrap_deg_values(angle, wrapped):
    assert float(wrap_deg(angle)) == pytest.approx(wrapped, abs=1e-9)


def test_wrap_deg_range_on_a_dense_sweep():
    a = np.linspace(-1080.0, 1080.0, 20001)
    w = wrap_deg(a)
    assert w.shape == a.shape
    assert np.all(w > -180.0) and np.all(w <= 180.0)
    # the wrapped angle is the same direction
    assert np.allclose(np.cos(np.deg2rad(w)), np.cos(np.deg2rad(a)), atol=1e-9)
    assert np.allclose(np.sin(np.deg2rad(w)), np.sin(np.deg2rad(a)), atol=1e-9)


@pytest.mark.parametrize(
    ("a", "b", "diff"),
    [(10, 350, 20), (350, 10, -20), (0, 180, 180), (-90, 90, 180), (90, -90, 180),
     (170, -170, -20), (-170, 170, 20), (45, 45, 0), (30, -30, 60)],
)
def test_angle_diff_deg_is_the_signed_smallest_difference(a, b, diff):
    assert float(angle_diff_deg(a, b)) == pytest.approx(diff, abs=1e-9)


def test_angle_diff_deg_broadcasts():
    d = angle_diff_deg(np.array([0.0, 90.0, 179.0]), -179.0)
    assert np.allclose(d, [179.0, -91.0, -2.0])


@pytest.mark.parametrize(
    ("az", "folded", "behind"),
    [(0, 0, False), (30, 30, False), (90, 90, False), (-90, -90, False), (120, 60, True),
     (-120, -60, True), (180, 0, True), (-150, -30, True), (150, 30, True), (91, 89, True)],
)
def test_fold_front(az, folded, behind):
    f, b = fold_front(az)
    assert float(f) == pytest.approx(folded, abs=1e-9)
    assert bool(b) is behind


def test_fold_front_keeps_the_interaural_lateral_angle():
    az = np.linspace(-180, 180, 73)
    f, _ = fold_front(az)
    assert np.all(np.abs(f) <= 90.0)
    assert np.allclose(np.sin(np.deg2rad(f)), np.sin(np.deg2rad(az)), atol=1e-9)


# ----------------------------------------------------------------------------- coordinates


def test_sph_cart_axes():
    assert np.allclose(sph_to_cart(0.0), [1, 0, 0], atol=1e-12)  # front is +x
    assert np.allclose(sph_to_cart(90.0), [0, 1, 0], atol=1e-12)  # left is +y
    assert np.allclose(sph_to_cart(-90.0), [0, -1, 0], atol=1e-12)
    assert np.allclose(sph_to_cart(0.0, 90.0), [0, 0, 1], atol=1e-12)  # up is +z
    assert np.allclose(sph_to_cart(180.0, 0.0, 3.0), [-3, 0, 0], atol=1e-12)


def test_sph_cart_round_trip(rng):
    az = rng.uniform(-179.9, 180.0, 500)
    el = rng.uniform(-89.0, 89.0, 500)
    r = rng.uniform(0.1, 50.0, 500)
    xyz = sph_to_cart(az, el, r)
    assert xyz.shape == (500, 3)
    assert np.allclose(np.linalg.norm(xyz, axis=-1), r)
    az2, el2, r2 = cart_to_sph(xyz)
    assert np.allclose(angle_diff_deg(az2, az), 0.0, atol=1e-9)
    assert np.allclose(el2, el, atol=1e-9)
    assert np.allclose(r2, r, rtol=1e-12)
    assert np.all(az2 > -180) and np.all(az2 <= 180)


def test_cart_to_sph_rear_is_180_not_minus_180():
    az, el, r = cart_to_sph([-2.0, 0.0, 0.0])
    assert float(az) == 180.0 and float(el) == 0.0 and float(r) == 2.0


# ----------------------------------------------------------------------------- ambisonics


@pytest.mark.parametrize("az", [-180, -135, -90, -30, 0, 30, 90, 120, 180])
@pytest.mark.parametrize("el", [-60, 0, 20, 90])
def test_ambix_gains_formulas(az, el):
    g = ambix_gains(az, el)
    a, e = math.radians(az), math.radians(el)
    expected = [1.0, math.sin(a) * math.cos(e), math.sin(e), math.cos(a) * math.cos(e)]
    assert g.shape == (4,)
    assert np.allclose(g, expected, atol=1e-12)
    # SN3D first order: the directional part is a unit vector
    assert np.linalg.norm(g[1:]) == pytest.approx(1.0)


def test_ambix_gains_channel_order_is_w_y_z_x():
    assert np.allclose(ambix_gains(90, 0), [1, 1, 0, 0], atol=1e-12)  # left -> Y
    assert np.allclose(ambix_gains(0, 90), [1, 0, 1, 0], atol=1e-12)  # up -> Z
    assert np.allclose(ambix_gains(0, 0), [1, 0, 0, 1], atol=1e-12)  # front -> X


def test_ambix_gains_broadcast_shape():
    g = ambix_gains(np.zeros((3, 5)), 10.0)
    assert g.shape == (4, 3, 5)


def test_fuma_ambix_round_trip_and_w_scaling(rng):
    y = rng.standard_normal((4, 1000)).astype(np.float32)
    fuma = ambix_to_fuma(y)
    assert fuma.dtype == np.float32
    assert np.allclose(fuma[0], y[0] / np.sqrt(2.0), rtol=1e-6)  # W at -3 dB
    assert np.allclose(fuma[1], y[3])  # FuMa X <- AmbiX X (ACN 3)
    assert np.allclose(fuma[2], y[1])  # FuMa Y <- AmbiX Y (ACN 1)
    assert np.allclose(fuma[3], y[2])  # FuMa Z <- AmbiX Z (ACN 2)
    assert np.allclose(fuma_to_ambix(fuma), y, rtol=1e-6, atol=1e-7)


def test_fuma_to_ambix_of_an_encoded_plane_wave():
    az, el = 60.0, 20.0
    a, e = math.radians(az), math.radians(el)
    fuma = np.array([[1 / math.sqrt(2)], [math.cos(a) * math.cos(e)],
                     [math.sin(a) * math.cos(e)], [math.sin(e)]])
    assert np.allclose(fuma_to_ambix(fuma)[:, 0], ambix_gains(az, el), atol=1e-12)


def test_n3d_to_sn3d(rng):
    y = rng.standard_normal((4, 64))
    out = n3d_to_sn3d(y)
    assert np.array_equal(out[0], y[0])
    assert np.allclose(out[1:], y[1:] / np.sqrt(3.0))
    assert not np.shares_memory(out, y)
    n3d = ambix_gains(-40, 10) * np.array([1, np.sqrt(3), np.sqrt(3), np.sqrt(3)])
    assert np.allclose(n3d_to_sn3d(n3d), ambix_gains(-40, 10))


@pytest.mark.parametrize("fn", [fuma_to_ambix, ambix_to_fuma, n3d_to_sn3d])
def test_foa_conversions_reject_other_channel_counts(fn):
    with pytest.raises(ValueError):
        fn(np.zeros((3, 10), dtype=np.float32))


# ----------------------------------------------------------------------------- labels


@pytest.mark.parametrize(
    ("az", "label"),
    [(15.0, "left"), (-15.0, "right"), (14.999, "center"), (-14.999, "center"), (0.0, "center"),
     (90.0, "left"), (-90.0, "right"), (60.0, "left"), (-45.0, "right"),
     # rear azimuths are judged on their frontal fold (az -> 180 - az)
     (165.0, "left"), (-165.0, "right"), (170.0, "center"), (-170.0, "center"),
     (180.0, "center"), (-180.0, "center"), (120.0, "left"), (-120.0, "right"),
     (375.0, "left"), (-375.0, "right")],
)
def test_position_label_thresholds(az, label):
    assert position_label(az) == label


@pytest.mark.parametrize(
    ("sweep", "change", "label"),
    [(-30.0, 0.0, "left_to_right"), (30.0, 0.0, "right_to_left"), (-120.0, 10.0, "left_to_right"),
     (29.9, 0.0, "static"), (-29.9, 0.0, "static"), (0.0, 3.0, "approaching"),
     (0.0, -3.0, "receding"), (10.0, 2.9, "static"), (-10.0, -2.9, "static"),
     (-20.0, 12.0, "approaching"), (20.0, -12.0, "receding"), (0.0, 0.0, "static")],
)
def test_motion_label(sweep, change, label):
    assert motion_label(sweep, change) == label
    assert label in MOTION_LABELS


# ----------------------------------------------------------------------------- camera


@pytest.mark.parametrize(
    ("az", "x"), [(0, 0.5), (90, 0.0), (-90, 1.0), (30, 0.25), (-30, 0.75)]
)
def test_sine_camera_x(az, x):
    xs, visible, behind = Camera().azimuth_to_x(az)
    assert float(xs) == pytest.approx(x, abs=1e-12)
    assert bool(visible) and not bool(behind)


def test_sine_camera_inverse_round_trip():
    cam = Camera("sine")
    az = np.linspace(-90, 90, 181)
    x, visible, behind = cam.azimuth_to_x(az)
    assert visible.all() and not behind.any()
    assert np.all(np.diff(x) < 0)  # left of the picture is the listener's left
    assert np.allclose(cam.x_to_azimuth(x), az, atol=1e-6)


def test_sine_camera_folds_sources_behind():
    x, visible, behind = Camera().azimuth_to_x([150.0, -150.0, 180.0, 100.0])
    assert behind.tolist() == [True, True, True, True]
    assert visible.all()
    assert np.allclose(x, [0.25, 0.75, 0.5, 0.5 - 0.5 * math.sin(math.radians(80))])


@pytest.mark.parametrize("hfov", [60.0, 90.0, 120.0])
def test_pinhole_camera(hfov):
    cam = Camera("pinhole", hfov)
    half = math.tan(math.radians(hfov) / 2)
    x, visible, behind = cam.azimuth_to_x([0.0, 30.0, -30.0])
    assert np.allclose(x, [0.5, 0.5 - math.tan(math.radians(30)) / (2 * half),
                           0.5 + math.tan(math.radians(30)) / (2 * half)])
    assert visible.all() and not behind.any()
    # the edges of the field of view land on the frame edges
    xe, _, _ = cam.azimuth_to_x([hfov / 2 - 1e-6, -(hfov / 2 - 1e-6)])
    assert np.allclose(xe, [0.0, 1.0], atol=1e-6)
    # inverse round trip inside the field of view
    az = np.linspace(-hfov / 2 + 0.5, hfov / 2 - 0.5, 50)
    xs, vis, _ = cam.azimuth_to_x(az)
    assert vis.all()
    assert np.allclose(cam.x_to_azimuth(xs), az, atol=1e-6)


def test_pinhole_off_screen_and_behind_flags():
    cam = Camera("pinhole", 90.0)
    x, visible, behind = cam.azimuth_to_x([60.0, -60.0, 90.0, -90.0, 150.0, 120.0])
    assert visible.tolist() == [False, False, False, False, True, False]
    assert behind.tolist() == [False, False, False, False, True, True]
    assert x[0] < 0.0 and x[1] > 1.0 and x[2] < 0.0 and x[3] > 1.0
    assert np.isfinite(x).all()
    # 150 deg is folded to 30 deg: the same x, but behind
    assert x[4] == pytest.approx(0.5 - math.tan(math.radians(30)) / 2)


@pytest.mark.parametrize("kw", [{"projection": "fisheye"}, {"hfov_deg": 0.0},
                                {"hfov_deg": 180.0}, {"hfov_deg": -10.0}])
def test_camera_rejects_bad_parameters(kw):
    with pytest.raises(ValueError):
        Camera(**kw)


def test_camera_to_dict():
    assert Camera("pinhole", 70).to_dict() == {"projection": "pinhole", "hfov_deg": 70.0}
