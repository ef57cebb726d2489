"""Head models: spherical head (Woodworth + Brown-Duda) and measured SOFA HRTFs."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from spa2v.conventions import HEAD_RADIUS_M, SPEED_OF_SOUND_M_S, sph_to_cart
from spa2v.errors import InputError
from spa2v.hrtf import (
    SofaHrtf,
    SphericalHead,
    brown_duda_alpha,
    head_shadow_fir,
    woodworth_ear_delays_s,
    woodworth_itd_s,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KEMAR = DATA / "hrtf" / "mit_kemar_normal_pinna.sofa"
needs_kemar = pytest.mark.skipif(not KEMAR.exists(), reason="shared KEMAR SOFA file absent")
A_C = HEAD_RADIUS_M / SPEED_OF_SOUND_M_S


# --------------------------------------------------------------------------- spherical head
@pytest.mark.parametrize("lateral_deg", [0.0, 10.0, 30.0, 45.0, 60.0, 90.0])
def test_woodworth_itd_is_a_over_c_theta_plus_sin_theta(lateral_deg):
    d = woodworth_ear_delays_s(lateral_deg, 0.0)
    th = np.deg2rad(lateral_deg)
    assert d[1] - d[0] == pytest.approx(A_C * (th + np.sin(th)), abs=1e-12)
    assert d[0] == pytest.approx(-A_C * np.sin(th), abs=1e-12)  # lit ear: -(a/c) cos(beta)
    assert d[1] - d[0] == pytest.approx(woodworth_itd_s(lateral_deg), abs=1e-12)


@pytest.mark.parametrize("az", [20.0, 70.0, 110.0, 160.0])
def test_woodworth_is_mirror_symmetric_and_front_back_ambiguous(az):
    left, right = woodworth_ear_delays_s(az), woodworth_ear_delays_s(-az)
    np.testing.assert_allclose(left, right[::-1], atol=1e-15)
    np.testing.assert_allclose(woodworth_ear_delays_s(180.0 - az), left, atol=1e-15)


def test_woodworth_front_is_zero_and_shapes_broadcast():
    d = woodworth_ear_delays_s(np.zeros((3, 4)), np.zeros((3, 4)))
    assert d.shape == (2, 3, 4)
    np.testing.assert_allclose(d, 0.0, atol=1e-15)
    # straight up is on neither side
    up = woodworth_ear_delays_s(37.0, 90.0)
    assert up[0] == pytest.approx(up[1], abs=1e-15)


def test_brown_duda_alpha_endpoints():
    assert brown_duda_alpha(0.0) == pytest.approx(2.0)
    assert brown_duda_alpha(np.deg2rad(150.0)) == pytest.approx(0.1)
    assert brown_duda_alpha(np.pi / 2) == pytest.approx(1.05 + 0.95 * np.cos(0.6 * np.pi))


@pytest.mark.parametrize("alpha", [0.1, 0.5, 1.0, 2.0])
def test_head_shadow_fir_matches_the_analog_response(alpha):
    sr = 48000
    h = head_shadow_fir(alpha, sr, n_taps=256)
    f = np.array([100.0, 500.0, 1000.0, 2000.0, 4000.0])
    w = 2 * np.pi * f
    w0 = SPEED_OF_SOUND_M_S / HEAD_RADIUS_M
    analog = (1 + 1j * alpha * w / (2 * w0)) / (1 + 1j * w / (2 * w0))
    digital = np.exp(-1j * np.outer(w / sr, np.arange(256))) @ h
    # bilinear transform: close below a few kHz, DC exactly 1, Nyquist exactly alpha
    np.testing.assert_allclose(20 * np.log10(np.abs(digital)), 20 * np.log10(np.abs(analog)),
                               atol=0.3)
    assert h.sum() == pytest.approx(1.0, abs=1e-9)
    assert (h * (-1.0) ** np.arange(256)).sum() == pytest.approx(alpha, abs=1e-9)


def test_spherical_filters_shadow_the_far_ear():
    head = SphericalHead()
    f = head.ear_filters([60.0, -60.0, 0.0], [0.0, 0.0, 0.0], 48000)
    assert f.shape[:2] == (3, 2)
    hf = np.abs(np.fft.rfft(f, 512, axis=-1))[..., 100:]  # above ~9 kHz
    assert hf[0, 0].mean() > 3 * hf[0, 1].mean()  # left source: left ear louder
    assert hf[1, 1].mean() > 3 * hf[1, 0].mean()
    np.testing.assert_allclose(f[2, 0], f[2, 1], atol=1e-12)


# --------------------------------------------------------------------------- SOFA files
def _write_sofa(path: Path, ir: np.ndarray, sr: float, pos: np.ndarray, kind: str = "spherical",
                skip: tuple[str, ...] = ()) -> Path:
    with h5py.File(path, "w") as f:
        f.attrs["Conventions"] = "SOFA"
        if "Data.IR" not in skip:
            f["Data.IR"] = ir
        if "Data.SamplingRate" not in skip:
            f["Data.SamplingRate"] = np.array([sr])
        if "SourcePosition" not in skip:
            f["SourcePosition"] = pos
            f["SourcePosition"].attrs["Type"] = np.bytes_(kind)
    return path


def _grid() -> np.ndarray:
    az, el = np.meshgrid(np.arange(0, 360, 30.0), np.arange(-60, 61, 30.0))
    pos = np.stack([az.ravel(), el.ravel(), np.full(az.size, 1.2)], axis=1)
    return np.concatenate([pos, [[0.0, 90.0, 1.2], [0.0, -90.0, 1.2]]])


def _impulse_hrirs(pos: np.ndarray, sr: int, n: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """HRIRs that are pure delays by the Woodworth model (plus 20 samples of latency)."""
    d = woodworth_ear_delays_s(pos[:, 0], pos[:, 1]).T  # (M, 2)
    on = 20 + np.rint(d * sr).astype(int)
    ir = np.zeros((len(pos), 2, n))
    rows = np.arange(len(pos))
    ir[rows, 0, on[:, 0]] = 1.0
    ir[rows, 1, on[:, 1]] = 0.5
    return ir, on


def test_sofa_onsets_and_delays_from_a_synthetic_file(tmp_path):
    sr = 48000
    pos = _grid()
    ir, on = _impulse_hrirs(pos, sr)
    hrtf = SofaHrtf.from_file(_write_sofa(tmp_path / "imp.sofa", ir, sr, pos))
    assert hrtf.sr == sr and hrtf.positions_deg.shape == (len(pos), 3)
    margin = on - hrtf.onsets
    assert np.all(margin == margin[0, 0]) and 0 <= margin[0, 0] <= 10  # same margin everywhere
    # delays relative to the head centre reproduce the model at every measured direction
    delays = hrtf.ear_delays_s(pos[:, 0], pos[:, 1])
    expected = woodworth_ear_delays_s(pos[:, 0], pos[:, 1])
    np.testing.assert_allclose(delays, expected, atol=0.51 / sr)


def test_sofa_cartesian_positions_are_converted(tmp_path):
    sr = 48000
    pos = _grid()
    xyz = sph_to_cart(pos[:, 0], pos[:, 1], pos[:, 2])
    ir, _ = _impulse_hrirs(pos, sr)
    a = SofaHrtf.from_file(_write_sofa(tmp_path / "sph.sofa", ir, sr, pos))
    b = SofaHrtf.from_file(_write_sofa(tmp_path / "cart.sofa", ir, sr, xyz, kind="cartesian"))
    np.testing.assert_allclose(sph_to_cart(*b.positions_deg.T), sph_to_cart(*a.positions_deg.T),
                               atol=1e-9)
    np.testing.assert_allclose(b.positions_deg[:, 2], 1.2)


def test_horizontal_ring_interpolates_along_azimuth(tmp_path):
    sr = 48000
    pos = np.stack([np.arange(0, 360, 10.0), np.zeros(36), np.ones(36)], axis=1)
    ir, _ = _impulse_hrirs(pos, sr)
    hrtf = SofaHrtf.from_file(_write_sofa(tmp_path / "ring.sofa", ir, sr, pos))
    idx, w = hrtf.weights([5.0, 0.0, -175.0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    mid = {int(i): float(x) for i, x in zip(idx[0], w[0], strict=True) if x > 0}
    assert mid == pytest.approx({0: 0.5, 1: 0.5})
    assert w[1].max() == pytest.approx(1.0)


def test_unreadable_sofa_files_raise_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        SofaHrtf.from_file(tmp_path / "absent.sofa")
    text = tmp_path / "text.sofa"
    text.write_text("not hdf5 at all")
    with pytest.raises(InputError, match="not a readable SOFA file"):
        SofaHrtf.from_file(text)
    pos = _grid()
    ir, _ = _impulse_hrirs(pos, 48000)
    lacking = _write_sofa(tmp_path / "lacking.sofa", ir, 48000, pos, skip=("Data.IR",))
    with pytest.raises(InputError, match="not a readable SOFA file: missing Data.IR") as exc:
        SofaHrtf.from_file(lacking)
    assert exc.value.path == str(lacking)
    wrong = _write_sofa(tmp_path / "wrong.sofa", ir[:, :1], 48000, pos)
    with pytest.raises(InputError, match="not a readable SOFA file: Data.IR has shape"):
        SofaHrtf.from_file(wrong)


# --------------------------------------------------------------------------- KEMAR
@pytest.fixture(scope="module")
def kemar() -> SofaHrtf:
    return SofaHrtf.from_file(KEMAR, 48000)


@needs_kemar
def test_kemar_reads_and_resamples(kemar):
    assert kemar.positions_deg.shape == (710, 3)
    assert kemar.sr == 48000
    assert kemar.hrirs.shape[:2] == (710, 2)
    assert kemar.hrirs.shape[2] == pytest.approx(512 * 48000 / 44100, abs=1)
    assert np.all((kemar.positions_deg[:, 0] > -180) & (kemar.positions_deg[:, 0] <= 180))
    native = SofaHrtf.from_file(KEMAR)
    assert native.sr == 44100 and native.hrirs.shape == (710, 2, 512)


@needs_kemar
def test_kemar_split_into_onset_and_aligned_hrir_is_lossless(kemar):
    n = kemar.hrirs.shape[-1]
    rebuilt = np.zeros_like(kemar.hrirs)
    for e in range(2):
        cols = kemar.onsets[:, e, None] + np.arange(kemar.aligned.shape[-1])
        ok = cols < n
        rows = np.broadcast_to(np.arange(710)[:, None], cols.shape)
        rebuilt[rows[ok], e, cols[ok]] = kemar.aligned[:, e][ok]
    err = np.sum((rebuilt - kemar.hrirs) ** 2, axis=-1) / np.sum(kemar.hrirs**2, axis=-1)
    assert 10 * np.log10(err.max()) < -40.0  # only the sub-threshold lead-in is dropped


@needs_kemar
def test_kemar_measured_directions_are_reproduced_exactly(kemar):
    az, el = kemar.positions_deg[:, 0], kemar.positions_deg[:, 1]
    np.testing.assert_allclose(kemar.ear_filters(az, el, 48000), kemar.aligned, atol=1e-6)
    delays = kemar.ear_delays_s(az, el) * kemar.sr + kemar.reference_onset
    np.testing.assert_allclose(delays.T, kemar.onsets, atol=1e-9)
    pairs = kemar.hrir_pairs(az[:50], el[:50])
    np.testing.assert_allclose(pairs, np.where(np.arange(pairs.shape[-1]) <
                                               kemar.onsets[:50, :, None], 0.0,
                                               kemar.hrirs[:50]), atol=1e-6)


@needs_kemar
def test_kemar_barycentric_weights_everywhere(kemar):
    rng = np.random.default_rng(0)
    az = rng.uniform(-180, 180, 3000)
    el = np.rad2deg(np.arcsin(rng.uniform(-1, 1, 3000)))  # whole sphere, incl. below -40
    idx, w = kemar.weights(az, el)
    assert np.all(w >= 0) and np.allclose(w.sum(axis=1), 1.0)
    # the weighted vertices point exactly at the query (barycentric on the hull)
    pts = np.concatenate([sph_to_cart(kemar.positions_deg[:, 0], kemar.positions_deg[:, 1]),
                          [[0.0, 0.0, -1.0]]])
    v = np.einsum("tv,tvc->tc", w, pts[idx])
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    np.testing.assert_allclose(v, sph_to_cart(az, el), atol=1e-6)


@needs_kemar
def test_kemar_interpolates_between_neighbours(kemar):
    # half-way between (0, 0) and (5, 0) on the measured horizontal ring
    idx, w = kemar.weights([2.5], [0.0])
    pos = kemar.positions_deg[idx[0]]
    used = w[0] > 1e-9
    assert set(map(tuple, pos[used, :2].round(3))) == {(0.0, 0.0), (5.0, 0.0)}
    np.testing.assert_allclose(w[0][used], [0.5, 0.5], atol=1e-6)


@needs_kemar
@pytest.mark.parametrize("az", [30.0, 60.0, 90.0, 120.0])
def test_kemar_left_ear_leads_for_left_sources(kemar, az):
    d = kemar.ear_delays_s([az, -az], [0.0, 0.0])
    assert d[0, 0] < d[1, 0] and d[1, 1] < d[0, 1]
    assert d[1, 0] - d[0, 0] == pytest.approx(woodworth_itd_s(min(az, 180 - az)), abs=150e-6)
