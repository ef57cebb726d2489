"""The spatial audio simulator: trajectories, FOA encoding, binaural cues, Doppler, room, CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import signal as sps
from scipy.optimize import brentq

from spa2v.conventions import SPEED_OF_SOUND_M_S, ambix_gains, sph_to_cart
from spa2v.errors import InputError
from spa2v.hrtf import SofaHrtf, SphericalHead, woodworth_itd_s
from spa2v.simulate import (
    DelayLine,
    Keyframe,
    SceneSource,
    Trajectory,
    fractional_delay,
    room_for_rt60,
    simulate_scene,
    time_varying_fir,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KEMAR = DATA / "hrtf" / "mit_kemar_normal_pinna.sofa"
needs_kemar = pytest.mark.skipif(not KEMAR.exists(), reason="shared KEMAR SOFA file absent")
SR = 48000
C = SPEED_OF_SOUND_M_S


def _noise(seconds: float, seed: int = 0, sr: int = SR) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(int(seconds * sr)).astype(np.float32)


def _tone(freq_hz: float, seconds: float, sr: int = SR) -> np.ndarray:
    return np.sin(2 * np.pi * freq_hz * np.arange(int(seconds * sr)) / sr).astype(np.float32)


def gcc_phat_itd_s(left: np.ndarray, right: np.ndarray, sr: int, max_s: float = 1e-3,
                   upsample: int = 16) -> float:
    """Delay of the right channel behind the left (seconds) by GCC-PHAT, sub-sample peak."""
    n = len(left) + len(right)
    cross = np.fft.rfft(right, n) * np.conj(np.fft.rfft(left, n))
    cross /= np.abs(cross) + 1e-12
    cc = np.fft.irfft(cross, n * upsample)
    m = int(max_s * sr * upsample)
    lags = np.concatenate([cc[-m:], cc[: m + 1]])
    return (np.argmax(lags) - m) / (sr * upsample)


def ild_db(left: np.ndarray, right: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(left.astype(np.float64) ** 2)
                               / np.sum(right.astype(np.float64) ** 2)))


def _render(sig, traj, fmt="binaural", seconds=None, **kw) -> np.ndarray:
    seconds = seconds if seconds is not None else len(sig) / SR
    sim = simulate_scene([SceneSource(sig, traj)], fmt=fmt, sr=SR, duration_s=seconds,
                         normalize=False, **kw)
    return sim.audio


# --------------------------------------------------------------------------- trajectories
def test_trajectory_is_linear_in_time_and_holds_outside():
    tr = Trajectory((Keyframe(1.0, 10.0, 0.0, 2.0), Keyframe(3.0, 50.0, 20.0, 6.0)))
    az, el, r = tr.at([0.0, 1.0, 2.0, 2.5, 3.0, 9.0])
    np.testing.assert_allclose(az, [10, 10, 30, 40, 50, 50])
    np.testing.assert_allclose(el, [0, 0, 10, 15, 20, 20])
    np.testing.assert_allclose(r, [2, 2, 4, 5, 6, 6])


@pytest.mark.parametrize(
    ("a", "b", "mid"),
    [(170.0, -170.0, 180.0),   # across the back, the short way
     (-170.0, 170.0, 180.0),
     (10.0, -30.0, -10.0),
     (0.0, 180.0, 90.0),       # exactly opposite: counter-clockwise, through +90
     (90.0, -90.0, 180.0),
     (-90.0, 90.0, 0.0)],
)
def test_trajectory_azimuth_takes_the_shortest_signed_path(a, b, mid):
    tr = Trajectory((Keyframe(0.0, a), Keyframe(2.0, b)))
    az, _, _ = tr.at([1.0])
    assert az[0] == pytest.approx(mid if mid != -180 else 180.0)
    assert -180.0 < az[0] <= 180.0


def test_trajectory_keyframes_are_sorted_and_validated():
    tr = Trajectory((Keyframe(2.0, 20.0), Keyframe(0.0, 0.0)))
    assert [k.t for k in tr.keyframes] == [0.0, 2.0]
    with pytest.raises(ValueError):
        Trajectory(())
    with pytest.raises(ValueError):
        Trajectory((Keyframe(1.0, 0.0), Keyframe(1.0, 5.0)))
    with pytest.raises(ValueError):
        Trajectory((Keyframe(0.0, 0.0, 0.0, -1.0),))


def test_trajectory_line_moves_at_constant_speed():
    tr = Trajectory.line((10.0, 4.0, 1.0), (-10.0, 4.0, 1.0), 4.0)
    t = np.linspace(0.0, 4.0, 41)
    xyz = tr.xyz_at(t)
    np.testing.assert_allclose(xyz[:, 0], 10.0 - 5.0 * t, atol=1e-9)
    np.testing.assert_allclose(xyz[:, 1:], np.tile([4.0, 1.0], (41, 1)), atol=1e-9)
    az, el, r = tr.at([2.0])
    assert az[0] == pytest.approx(90.0) and r[0] == pytest.approx(math.hypot(4.0, 1.0))


def test_trajectory_static():
    tr = Trajectory.static(-30.0, 10.0, 3.0)
    assert tr.is_static
    az, el, r = tr.at(np.array([0.0, 5.0]))
    np.testing.assert_allclose([az, el, r], [[-30, -30], [10, 10], [3, 3]])


def test_trajectory_parse():
    tr = Trajectory.parse("90,0,2@0; -90, 10, 4 @ 4")
    assert [k.to_dict() for k in tr.keyframes] == [
        {"t": 0.0, "azimuth_deg": 90.0, "elevation_deg": 0.0, "distance_m": 2.0},
        {"t": 4.0, "azimuth_deg": -90.0, "elevation_deg": 10.0, "distance_m": 4.0},
    ]
    assert Trajectory.parse("45").keyframes[0] == Keyframe(0.0, 45.0, 0.0, 2.0)


@pytest.mark.parametrize("text", ["", "a,b@0", "10@x", "10,0,2@0; 20,0,2", "1,2,3,4@0",
                                  "10,0,-2@0", "0@1; 5@1", "0,95,2@0"])
def test_trajectory_parse_rejects_bad_text(text):
    with pytest.raises(InputError):
        Trajectory.parse(text)


# --------------------------------------------------------------------------- DSP pieces
def test_fractional_delay_integer_is_exact_and_fraction_is_accurate():
    x = _tone(300.0, 0.2)
    n = np.arange(len(x), dtype=np.float64)
    np.testing.assert_array_equal(fractional_delay(x, n - 7.0)[7:], x[:-7])
    y = fractional_delay(x, n - 7.3)
    want = np.sin(2 * np.pi * 300.0 * (n - 7.3) / SR)
    np.testing.assert_allclose(y[20:-20], want[20:-20], atol=2e-4)
    assert np.all(fractional_delay(x, np.array([-10.0, len(x) + 5.0])) == 0)


def _crossfade_reference(x, filters, hop):
    """The crossfaded-filter definition, written as a plain loop over frames."""
    n_ch, n = x.shape
    taps = filters.shape[2]
    win = np.sin(np.pi * (np.arange(2 * hop) + 0.5) / (2 * hop)) ** 2
    out = np.zeros((n_ch, n + taps - 1 + 3 * hop))
    xp = np.concatenate([np.zeros((n_ch, hop)), x, np.zeros((n_ch, 2 * hop))], axis=1)
    for b in range((n - 1) // hop + 2):
        seg = xp[:, b * hop: b * hop + 2 * hop] * win
        for c in range(n_ch):
            out[c, b * hop: b * hop + 2 * hop + taps - 1] += np.convolve(seg[c], filters[b, c])
    return out[:, hop: hop + n + taps - 1]


def test_time_varying_fir_matches_the_crossfade_definition():
    rng = np.random.default_rng(1)
    hop, taps = 16, 21
    x = rng.standard_normal((2, 300)).astype(np.float32)
    filters = rng.standard_normal((299 // hop + 2, 2, taps)).astype(np.float32)
    got = time_varying_fir(x, filters, hop, chunk_frames=4)
    np.testing.assert_allclose(got, _crossfade_reference(x, filters, hop), atol=1e-4)
    const = np.broadcast_to(filters[:1], filters.shape)
    np.testing.assert_allclose(time_varying_fir(x, const, hop),
                               [np.convolve(x[c], filters[0, c]) for c in range(2)], atol=1e-4)


# --------------------------------------------------------------------------- FOA
def sn3d_first_order(az_deg, el_deg):
    """First-order real SH with SN3D normalisation, no Condon-Shortley phase, ACN order.

    ``Y_l^m = N_l^|m| P_l^|m|(sin el) trig(m az)``, ``N = sqrt((2 - d_m0) (l-|m|)! / (l+|m|)!)``,
    ``P_1^0(x) = x``, ``P_1^1(x) = sqrt(1 - x^2)``, trig = cos for m >= 0, sin for m < 0.
    """
    az, el = np.deg2rad(az_deg), np.deg2rad(el_deg)
    x = np.sin(el)
    out = [np.ones_like(az)]
    for m in (-1, 0, 1):  # ACN 1, 2, 3
        am = abs(m)
        norm = math.sqrt((2 - (m == 0)) * math.factorial(1 - am) / math.factorial(1 + am))
        legendre = x if am == 0 else np.sqrt(1 - x**2)
        trig = np.cos(am * az) if m >= 0 else np.sin(am * az)
        out.append(norm * legendre * trig)
    return np.stack(out)


def sn3d_from_scipy(az_deg, el_deg):
    """SN3D real SH from scipy's complex orthonormal ones (which carry the CS phase)."""
    from scipy.special import sph_harm_y

    theta = np.deg2rad(90.0 - np.asarray(el_deg, dtype=float))  # polar angle
    phi = np.deg2rad(np.asarray(az_deg, dtype=float))
    out = []
    for l_ in (0, 1):
        for m in range(-l_, l_ + 1):
            y = sph_harm_y(l_, abs(m), theta, phi)
            if m > 0:
                real = math.sqrt(2) * (-1) ** m * y.real
            elif m < 0:
                real = math.sqrt(2) * (-1) ** m * y.imag
            else:
                real = y.real
            out.append(real * math.sqrt(4 * math.pi / (2 * l_ + 1)))
    return np.stack(out)


_GRID = [(az, el) for az in (-180.0, -135.0, -90.0, -30.0, 0.0, 45.0, 90.0, 150.0)
         for el in (-60.0, -20.0, 0.0, 35.0, 80.0)]


def test_ambix_gains_agree_with_independent_spherical_harmonics():
    az, el = np.array(_GRID).T
    np.testing.assert_allclose(ambix_gains(az, el), sn3d_first_order(az, el), atol=1e-12)
    np.testing.assert_allclose(ambix_gains(az, el), sn3d_from_scipy(az, el), atol=1e-12)


@pytest.mark.parametrize(("az", "el"), _GRID)
def test_foa_static_source_has_the_ambix_channel_gains(az, el):
    audio = _render(_noise(0.1), Trajectory.static(az, el, 1.0), fmt="foa")
    w = audio[0].astype(np.float64)
    ratios = audio[1:].astype(np.float64) @ w / (w @ w)
    np.testing.assert_allclose(ratios, sn3d_first_order(az, el)[1:], atol=1e-6)
    # 1 m away: unit gain, r / c of delay
    sig = _noise(0.1)
    lag = gcc_phat_itd_s(sig, w, SR, max_s=0.01)
    assert lag == pytest.approx(1.0 / C, abs=0.5 / SR)
    assert ild_db(w[200:], sig[: len(sig) - 200]) == pytest.approx(0.0, abs=0.05)


@pytest.mark.parametrize("distance", [0.5, 2.0, 8.0])
def test_foa_level_falls_as_one_over_distance(distance):
    # band-limited noise, rendered long enough that every delayed sample is kept
    sig = sps.sosfilt(sps.butter(8, 8000 / (SR / 2), output="sos"), _noise(0.2)).astype(np.float32)
    near = _render(sig, Trajectory.static(20.0, 0.0, 1.0), fmt="foa", seconds=0.3)
    far = _render(sig, Trajectory.static(20.0, 0.0, distance), fmt="foa", seconds=0.3)
    assert ild_db(far[0], near[0]) == pytest.approx(-20 * np.log10(distance), abs=0.05)
    # r / c later, 1 / r as loud
    n = np.arange(far.shape[1])
    want = DelayLine.of(sig).read(n - distance / C * SR) / distance
    np.testing.assert_allclose(far[0], want, atol=1e-6)
    xc = np.correlate(far[0].astype(np.float64), sig.astype(np.float64), "full")
    assert np.argmax(xc) - (len(sig) - 1) == round(distance / C * SR)


def test_foa_moving_source_gains_follow_the_trajectory():
    sig = _noise(2.0)
    tr = Trajectory.parse("-120,0,2@0; 120,30,2@2")
    audio = _render(sig, tr, fmt="foa").astype(np.float64)
    for t0 in (0.3, 1.0, 1.7):
        i = int(t0 * SR)
        seg = slice(i - 240, i + 240)
        w = audio[0, seg]
        ratios = audio[1:, seg] @ w / (w @ w)
        az, el, _ = tr.at([t0 - 2.0 / C])  # emitted r / c earlier
        np.testing.assert_allclose(ratios, ambix_gains(az, el)[1:, 0], atol=0.02)


# --------------------------------------------------------------------------- binaural
@pytest.mark.parametrize("az", [-60.0, -30.0, 30.0, 60.0])
def test_spherical_head_itd_and_ild(az):
    audio = _render(_noise(0.5), Trajectory.static(az, 0.0, 2.0))
    itd = gcc_phat_itd_s(audio[0, 1000:], audio[1, 1000:], SR)
    ild = ild_db(audio[0], audio[1])
    # a left source (az > 0) reaches the left ear first and louder
    assert np.sign(itd) == np.sign(az) and np.sign(ild) == np.sign(az)
    assert itd == pytest.approx(woodworth_itd_s(az), abs=30e-6)
    assert abs(ild) > 3.0


def test_spherical_head_front_is_balanced():
    audio = _render(_noise(0.3), Trajectory.static(0.0, 0.0, 2.0))
    np.testing.assert_allclose(audio[0], audio[1], atol=1e-7)


@pytest.fixture(scope="module")
def kemar() -> SofaHrtf:
    return SofaHrtf.from_file(KEMAR, SR)


@needs_kemar
@pytest.mark.parametrize(("az", "el"), [(0.0, 0.0), (30.0, 0.0), (-30.0, 0.0), (90.0, 0.0),
                                        (-60.0, 0.0), (135.0, 0.0), (-150.0, 20.0),
                                        (40.0, -30.0), (10.0, 50.0)])
def test_sofa_rendering_matches_the_measured_pair(kemar, az, el):
    m = np.argmin(np.linalg.norm(sph_to_cart(*kemar.positions_deg[:, :2].T)
                                 - sph_to_cart(az, el), axis=1))
    az_m, el_m = kemar.positions_deg[m, :2]
    assert np.linalg.norm(sph_to_cart(az_m, el_m) - sph_to_cart(az, el)) < 0.1  # measured nearby
    sig = _noise(0.5, seed=3)
    audio = _render(sig, Trajectory.static(az_m, el_m, 1.4), head=kemar)
    direct = np.stack([np.convolve(sig, kemar.hrirs[m, e].astype(np.float64)) for e in range(2)])
    s = slice(2000, len(sig) - 2000)
    itd_sim = gcc_phat_itd_s(audio[0, s], audio[1, s], SR)
    itd_ref = gcc_phat_itd_s(direct[0, s], direct[1, s], SR)
    assert itd_sim == pytest.approx(itd_ref, abs=1.0 / SR)
    assert ild_db(audio[0, s], audio[1, s]) == pytest.approx(ild_db(direct[0, s], direct[1, s]),
                                                             abs=0.5)
    # the same pair up to the propagation delay: a flat transfer function of 1/r at 1.4 m
    lag = int(round(1.4 / C * SR - kemar.reference_onset))  # onsets count from the centre
    for e in range(2):
        ref = direct[e, s.start - lag: s.stop - lag]
        f, p_ref = sps.welch(ref, SR, nperseg=1024)
        _, p_cross = sps.csd(ref, audio[e, s], SR, nperseg=1024)
        band = (f > 100) & (f < 16000)
        gain_db = 20 * np.log10(np.abs(p_cross[band]) / p_ref[band])
        np.testing.assert_allclose(gain_db, -20 * np.log10(1.4), atol=0.5)


@needs_kemar
@pytest.mark.parametrize("az", [-60.0, -30.0, 30.0, 60.0])
def test_sofa_interpolated_direction_has_the_right_sign(kemar, az):
    audio = _render(_noise(0.5), Trajectory.static(az + 2.0, 3.0, 2.0), head=kemar)
    itd = gcc_phat_itd_s(audio[0, 1000:], audio[1, 1000:], SR)
    assert np.sign(itd) == np.sign(az) and np.sign(ild_db(audio[0], audio[1])) == np.sign(az)


def test_binaural_renders_at_other_rates_with_a_sofa_head(tmp_path):
    if not KEMAR.exists():
        pytest.skip("shared KEMAR SOFA file absent")
    head = SofaHrtf.from_file(KEMAR)  # 44.1 kHz; the scene is 16 kHz
    sim = simulate_scene([SceneSource(_noise(0.5, sr=16000), Trajectory.static(60.0))],
                         fmt="binaural", sr=16000, duration_s=0.5, head=head)
    assert sim.audio.shape == (2, 8000) and sim.truth["hrtf"] == KEMAR.name
    assert gcc_phat_itd_s(sim.audio[0], sim.audio[1], 16000) > 300e-6


# --------------------------------------------------------------------------- Doppler
def _emission_time(t: float, tr: Trajectory) -> float:
    return brentq(lambda tau: tau + np.linalg.norm(tr.xyz_at(tau)) / C - t, t - 1.0, t)


def _mean_frequency(x: np.ndarray, t0: float, t1: float) -> float:
    phase = np.unwrap(np.angle(sps.hilbert(x.astype(np.float64))))
    i0, i1 = int(t0 * SR), int(t1 * SR)
    return (phase[i1] - phase[i0]) / (2 * np.pi * (t1 - t0))


@pytest.mark.parametrize("fmt", ["foa", "binaural"])
def test_doppler_shift_of_a_passing_source(fmt):
    f0, speed = 1000.0, 20.0
    tr = Trajectory.line((40.0, 3.0, 0.0), (-40.0, 3.0, 0.0), 80.0 / speed)
    audio = _render(_tone(f0, 4.0), tr, fmt=fmt, seconds=4.0)
    x = audio[0]
    for t0, t1 in ((0.4, 1.2), (2.9, 3.7)):  # approaching, then receding
        expected = f0 * (_emission_time(t1, tr) - _emission_time(t0, tr)) / (t1 - t0)
        measured = _mean_frequency(x, t0, t1)
        assert measured - f0 == pytest.approx(expected - f0, rel=0.05)
        # and the shift has the size v / c predicts for a moving source: f0 / (1 -+ v_r / c)
        mid = (t0 + t1) / 2
        tau = _emission_time(mid, tr)
        p = tr.xyz_at(tau)
        radial = np.dot(p / np.linalg.norm(p), [-speed, 0.0, 0.0])  # > 0: receding
        assert measured == pytest.approx(f0 / (1 + radial / C), abs=0.05 * abs(f0 * speed / C))


def test_head_on_approach_at_20_m_s():
    f0, v = 500.0, 20.0
    tr = Trajectory.line((100.0, 0.0, 0.0), (20.0, 0.0, 0.0), 80.0 / v)
    x = _render(_tone(f0, 4.0), tr, fmt="foa", seconds=4.0)[0]
    measured = _mean_frequency(x, 1.0, 3.0)
    shift = f0 / (1 - v / C) - f0
    assert measured - f0 == pytest.approx(shift, rel=0.05)


# --------------------------------------------------------------------------- smoothness
def _click_db(x: np.ndarray, cutoff_hz: float = 2000.0) -> float:
    """Largest high-passed sample of a low tone relative to its RMS: clicks stick out."""
    sos = sps.butter(8, cutoff_hz / (SR / 2), "highpass", output="sos")
    hp = sps.sosfiltfilt(sos, x.astype(np.float64))
    mid = slice(int(0.2 * SR), len(x) - int(0.2 * SR))
    return float(20 * np.log10(np.abs(hp[mid]).max() / np.sqrt(np.mean(x[mid] ** 2.0))))


@pytest.mark.parametrize("head_kind", ["spherical", "sofa"])
def test_moving_tone_has_no_clicks(head_kind, request):
    if head_kind == "sofa" and not KEMAR.exists():
        pytest.skip("shared KEMAR SOFA file absent")
    head = request.getfixturevalue("kemar") if head_kind == "sofa" else SphericalHead()
    tr = Trajectory.parse("-80,0,2@0; 80,10,1.5@2")
    tone = _tone(400.0, 2.0)
    audio = _render(tone, tr, head=head)
    for e in range(2):
        assert _click_db(audio[e]) < -65.0
    # the measure does catch clicks: a 0.1 dB gain step, or switching between statically
    # rendered directions every 250 ms without a crossfade
    step = audio[0].copy()
    step[SR:] *= 0.99
    assert _click_db(step) > -65.0
    hop = SR // 4
    switched = np.concatenate([
        _render(tone, Trajectory.static(*[float(v) for v in tr.at((k + 0.5) * hop / SR)]),
                head=head)[0, k * hop:(k + 1) * hop] for k in range(8)])
    assert _click_db(switched) > -30.0


def test_crossing_source_truth_matches_keyframes_and_cues():
    tr = Trajectory.parse("60,0,2@0; -60,0,2@3")
    sim = simulate_scene([SceneSource(_noise(3.0), tr, name="walker")], fmt="binaural", sr=SR,
                         duration_s=3.0)
    s = sim.truth["sources"][0]
    times = np.array(s["times"])
    for k in s["keyframes"]:
        i = int(np.argmin(np.abs(times - k["t"])))
        assert s["azimuth_deg"][i] == pytest.approx(k["azimuth_deg"], abs=1e-6)
    assert s["motion"] == "left_to_right" and s["position"] == "center" and not s["behind"]
    early, late = slice(int(0.1 * SR), int(0.5 * SR)), slice(int(2.5 * SR), int(2.9 * SR))
    assert gcc_phat_itd_s(sim.audio[0, early], sim.audio[1, early], SR) > 200e-6
    assert gcc_phat_itd_s(sim.audio[0, late], sim.audio[1, late], SR) < -200e-6


# --------------------------------------------------------------------------- truth and mixing
def test_truth_is_json_and_labels_follow_conventions():
    sources = [
        SceneSource(_noise(2.0, 1), Trajectory.static(40.0, 0.0, 3.0), name="dog"),
        SceneSource(_noise(2.0, 2), Trajectory.parse("-20,0,8@0; -20,0,2@2"), name="car"),
        SceneSource(_noise(2.0, 3), Trajectory.static(160.0, 0.0, 2.0), name="bird"),
    ]
    sim = simulate_scene(sources, fmt="foa", sr=SR, duration_s=2.0, rt60_s=0.4)
    truth = json.loads(json.dumps(sim.truth))
    assert truth["format"] == "foa" and truth["sample_rate"] == SR and truth["hop_s"] == 0.02
    assert truth["duration"] == 2.0 and truth["rt60_s"] == 0.4
    assert len(truth["sources"][0]["times"]) == 101
    dog, car, bird = truth["sources"]
    assert (dog["position"], dog["motion"], dog["behind"]) == ("left", "static", False)
    assert (car["position"], car["motion"]) == ("right", "approaching")
    assert bird["behind"] and bird["position"] == "left"  # 160 folds to 20
    assert bird["mean_azimuth_deg"] == pytest.approx(160.0)
    assert [s["id"] for s in truth["sources"]] == [0, 1, 2]
    peak_db = 20 * np.log10(np.abs(sim.audio).max())
    assert peak_db == pytest.approx(-3.0, abs=1e-3)
    assert truth["gain_db"] != 0.0


def test_sources_mix_linearly():
    a = SceneSource(_noise(0.5, 1), Trajectory.static(30.0))
    b = SceneSource(_noise(0.5, 2), Trajectory.parse("-50,0,3@0; 10,0,2@0.5"), gain_db=-6.0)
    kw = dict(fmt="binaural", sr=SR, duration_s=0.5, normalize=False)
    both = simulate_scene([a, b], **kw).audio
    np.testing.assert_allclose(both, simulate_scene([a], **kw).audio
                               + simulate_scene([b], **kw).audio, atol=1e-5)


@pytest.mark.parametrize("fmt", ["foa", "binaural"])
def test_background_noise_at_the_requested_snr(fmt):
    src = [SceneSource(_noise(1.0), Trajectory.static(10.0))]
    kw = dict(fmt=fmt, sr=SR, duration_s=1.0, normalize=False, seed=4)
    clean = simulate_scene(src, **kw).audio.astype(np.float64)
    noisy = simulate_scene(src, noise_snr_db=10.0, **kw).audio.astype(np.float64)
    noise = noisy - clean
    ref = (lambda y: y[0]) if fmt == "foa" else (lambda y: y)
    assert 10 * np.log10(np.mean(ref(clean) ** 2) / np.mean(ref(noise) ** 2)) == pytest.approx(
        10.0, abs=0.01)
    if fmt == "foa":  # diffuse: X, Y, Z each carry a third of W's power, uncorrelated
        np.testing.assert_allclose(np.mean(noise[1:] ** 2, axis=1) / np.mean(noise[0] ** 2),
                                   1 / 3, rtol=0.05)
        assert abs(np.corrcoef(noise)[0, 1:]).max() < 0.1


def _schroeder_rt60(x: np.ndarray, sr: int) -> float:
    edc = np.cumsum((x.astype(np.float64) ** 2)[::-1])[::-1]
    edc_db = 10 * np.log10(edc / edc[0])
    i5, i25 = np.argmax(edc_db < -5), np.argmax(edc_db < -25)
    return 3.0 * (i25 - i5) / sr


@pytest.mark.parametrize("rt60", [0.3, 0.8])
def test_room_reverberation_decays_at_the_requested_rt60(rt60):
    click = np.zeros(int(2.5 * SR), np.float32)
    click[0] = 1.0
    kw = dict(fmt="foa", sr=SR, duration_s=2.5, normalize=False, rt60_s=rt60, seed=1)
    audio = simulate_scene([SceneSource(click, Trajectory.static(30.0, 0.0, 3.0))], **kw).audio
    lo = sps.sosfilt(sps.butter(4, 2000 / (SR / 2), output="sos"), audio[0])  # the RT60 band
    assert _schroeder_rt60(lo, SR) == pytest.approx(rt60, rel=0.2)
    room = room_for_rt60(rt60)
    assert 0.02 < room.absorption < 0.95
    # direct sound first, then six first-order reflections before the tail
    onset = np.flatnonzero(np.abs(audio[0]) > 1e-4)[0]
    assert onset == pytest.approx(3.0 / C * SR, abs=3)


def test_reverb_makes_far_sources_more_reverberant():
    def drr(distance):
        click = np.zeros(SR, np.float32)
        click[0] = 1.0
        a = simulate_scene([SceneSource(click, Trajectory.static(0.0, 0.0, distance))],
                           fmt="foa", sr=SR, duration_s=1.0, normalize=False, rt60_s=0.5).audio[0]
        i = int(distance / C * SR)
        return 10 * np.log10(np.sum(a[: i + 48] ** 2) / np.sum(a[i + 48:] ** 2))
    assert drr(1.0) > drr(4.0) + 6.0


# --------------------------------------------------------------------------- command line
def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spa2v", "simulate", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_cli_writes_audio_and_truth(tmp_path):
    r = _cli("-o", "out.wav", "--format", "binaural", "--source", "siren", "--azimuth", "70",
             "--to-azimuth", "-70", "--duration", "1.5", "--sample-rate", "16000",
             "--truth", "truth.json", "--seed", "3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    y, sr = sf.read(tmp_path / "out.wav", always_2d=True)
    assert sr == 16000 and y.shape == (24000, 2)
    truth = json.loads((tmp_path / "truth.json").read_text())
    s = truth["sources"][0]
    assert s["motion"] == "left_to_right" and s["name"] == "siren"
    assert s["azimuth_deg"][0] == 70.0 and s["azimuth_deg"][-1] == -70.0
    assert ild_db(y[:4000, 0], y[:4000, 1]) > 3.0  # starts on the left ...
    assert ild_db(y[-4000:, 0], y[-4000:, 1]) < -3.0  # ... ends on the right
    # an existing output is refused, and replaced with --overwrite
    again = _cli("-o", "out.wav", "--format", "foa", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
    forced = _cli("-o", "out.wav", "--format", "foa", "--overwrite", "--duration", "0.5",
                  "--sample-rate", "16000", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert sf.info(str(tmp_path / "out.wav")).channels == 4


def test_cli_opposite_azimuths_cross_the_front(tmp_path):
    r = _cli("-o", "o.wav", "--format", "foa", "--azimuth", "90", "--to-azimuth", "-90",
             "--duration", "1", "--sample-rate", "16000", "--truth", "t.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    az = json.loads((tmp_path / "t.json").read_text())["sources"][0]["azimuth_deg"]
    assert max(abs(a) for a in az) <= 90.0 and not any(abs(a) > 90 for a in az)


def test_cli_file_source_is_looped_to_the_duration(tmp_path):
    sf.write(tmp_path / "short.wav", np.stack([_tone(440, 0.3, 22050)] * 2, axis=1), 22050)
    r = _cli("-o", "o.wav", "--format", "foa", "--source", "short.wav", "--duration", "1",
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    y, sr = sf.read(tmp_path / "o.wav", always_2d=True)
    assert sr == 48000 and y.shape == (48000, 4)
    assert np.abs(y[-4800:, 0]).max() > 0.1  # still sounding at the end


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--source", "missing.wav"], "missing.wav: no such file"),
     (["--source", "notes.txt"], "notes.txt"),
     (["--hrtf", "notes.txt"], "not a readable SOFA file"),
     (["--hrtf", "absent.sofa"], "absent.sofa: no such file"),
     (["--distance", "-1"], "--distance must be positive"),
     (["--duration", "0"], "--duration"),
     (["--source", "violin"], "unknown source"),
     (["--trajectory", "10,0@x"], "bad trajectory"),
     (["--reverb", "-0.5"], "--reverb")],
)
def test_cli_bad_input_exits_2_with_one_line_and_no_output(tmp_path, args, message):
    (tmp_path / "notes.txt").write_text("this is not audio\n")
    r = _cli("-o", "out.wav", "--format", "binaural", "--truth", "t.json", *args, cwd=tmp_path)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out.wav").exists() and not (tmp_path / "t.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
