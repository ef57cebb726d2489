"""The compiled kernels (numba) against their numpy twins, on real audio.

spa2v.cues runs the kernels when numba is importable; each has a numpy twin that serves
elsewhere.  Both must give the same cues (to float32 rounding) and the same analysis.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spa2v import cues, kernels, tracking
from spa2v.hrtf import SofaHrtf
from spa2v.simulate import Keyframe, SceneSource, Trajectory, simulate_scene
from spa2v.sources import make_source

pytest.importorskip("numba")

SR = 48000
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """A talker passing an engine in a room through the measured KEMAR head, with a
    stretch of digital silence and a stretch of one silent ear."""
    sofa = SHARED_DATA / "hrtf" / "mit_kemar_normal_pinna.sofa"
    if not sofa.exists():
        pytest.skip("shared KEMAR SOFA file absent")
    head = SofaHrtf.from_file(sofa, SR)
    dur = 3.0
    srcs = [
        SceneSource(make_source("babble", duration_s=dur, sr=SR, seed=3),
                    Trajectory([Keyframe(0, 50, 0, 2), Keyframe(dur, -40, 0, 2)])),
        SceneSource(make_source("engine", duration_s=dur, sr=SR, seed=4),
                    Trajectory.static(-30, 0, 3)),
    ]
    y = simulate_scene(srcs, fmt="binaural", sr=SR, duration_s=dur, head=head, rt60_s=0.5,
                       noise_snr_db=25.0, seed=5).audio.astype(np.float32)
    y[:, SR // 2: SR // 2 + SR // 5] = 0.0  # silence: no onsets, no phase
    y[1, 2 * SR: 2 * SR + SR // 10] = 0.0  # one ear silent
    return y


@pytest.fixture
def jit(monkeypatch):
    """The kernels in use whatever ``SPA2V_JIT`` says; ``_numpy`` then turns them off."""
    monkeypatch.setattr(kernels, "JIT", True)


def _numpy(monkeypatch):
    monkeypatch.setattr(kernels, "JIT", False)


def test_the_kernels_are_in_use_where_numba_is_installed():
    assert kernels.JIT == (os.environ.get("SPA2V_JIT", "1") != "0")
    for name in ("window_frames", "two_channel_block", "row_peaks", "coherence_near",
                 "window_sums", "set_aside"):
        assert callable(getattr(kernels, name))


def test_stft_windowing_kernel_matches_numpy(scene, monkeypatch, jit):
    S_jit = cues.stft(scene, SR)
    # a view that is not contiguous (channels last, as read from a file) gives the same
    S_t = cues.stft(np.ascontiguousarray(scene.T).T, SR)
    _numpy(monkeypatch)
    S_np = cues.stft(scene, SR)
    assert np.allclose(S_jit.X, S_np.X, rtol=1e-5, atol=1e-5)
    assert np.allclose(S_jit.frame_power, S_np.frame_power, rtol=1e-5, atol=1e-9)
    assert np.allclose(S_t.X, S_np.X, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_window_sums_kernel_matches_numpy(scene, monkeypatch, jit, dtype):
    """Half-overlapping windows of the analysis (the last ones cut at the end), over the
    frames' power of KEMAR room audio: per frame, per bin, and the complex bins' parts."""
    S = cues.stft(scene, SR)
    T = S.X.shape[1]
    starts, win = np.arange(0, T - 5, 12), 25  # (the last windows reach past the end)
    inputs = [S.frame_power[0].astype(dtype), S.power[0, :, :64].astype(dtype),
              np.ascontiguousarray(S.X[:, :, :8].transpose(1, 0, 2)).view(np.float32)
              .astype(dtype)]
    got = [cues.window_sums(x, starts, win) for x in inputs]
    _numpy(monkeypatch)
    for x, g in zip(inputs, got, strict=True):
        want = cues.window_sums(x, starts, win)
        assert g.shape == want.shape == (starts.size,) + x.shape[1:]
        assert g.dtype == want.dtype == np.float64
        assert np.allclose(g, want, rtol=1e-6, atol=1e-9 * float(np.abs(x).max()))
        last = x[starts[-1]:].sum(axis=0, dtype=np.float64)
        assert np.allclose(g[-1], last, rtol=1e-6, atol=1e-9 * float(np.abs(x).max()))
    # no windows, and a strided (non-contiguous) input
    x = inputs[1]
    assert cues.window_sums(x, starts[:0], win).shape == (0, x.shape[1])
    monkeypatch.setattr(kernels, "JIT", True)
    assert cues.window_sums(x, starts[:0], win).shape == (0, x.shape[1])
    strided = cues.window_sums(x[:, ::2], starts, win)
    _numpy(monkeypatch)
    assert np.allclose(strided, cues.window_sums(x[:, ::2], starts, win), rtol=1e-6,
                       atol=1e-9 * float(np.abs(x).max()))


@pytest.mark.parametrize("weighted", [True, False])
def test_two_channel_kernel_matches_numpy(scene, monkeypatch, jit, weighted):
    S = cues.stft(scene, SR)
    T = S.X.shape[1]
    starts, win = tracking._windows(T, S.hop_s)
    active = np.ones(T, dtype=bool)
    active[T // 4: T // 4 + 8] = False
    kw = (dict(onset_floor=tracking.ONSET_FLOOR, active=active, starts=starts, win=win,
               ild_band_hz=(1500.0, 12000.0), keep_onset_hz=3000.0) if weighted else {})
    a = cues.two_channel_cues(S, **kw)
    _numpy(monkeypatch)
    b = cues.two_channel_cues(S, **kw)
    for name in a.__dataclass_fields__:
        x, z = getattr(a, name), getattr(b, name)
        if z is None:
            assert x is None, name
            continue
        assert x.shape == z.shape, name
        if name in ("itd_s",):  # frames whose two highest lags tie may pick either
            same = np.argmax(a.gcc, axis=-1) == np.argmax(b.gcc, axis=-1)
            assert same.mean() > 0.99
            assert np.allclose(x[same], z[same], atol=1e-8), name
        elif name == "coherence":
            assert np.allclose(x, z, atol=2e-3), name
        else:
            assert np.allclose(x, z, rtol=1e-4, atol=2e-4), name
    if weighted:  # silence carries no onsets in either
        quiet = S.frame_power.max(axis=0) == 0
        assert quiet.any() and np.all(a.onset[quiet] == 0)


def test_row_peaks_kernel_matches_parabolic_peak(rng):
    r = rng.standard_normal((400, 49)).astype(np.float32)
    r[0, 0] = r[1, -1] = 10.0  # maxima at the ends: no refinement
    r[2] = 0.5  # a flat row: the first column, as np.argmax
    r[3, 10:13] = [2.0, 3.0, 2.0]  # a symmetric peak: exactly on the column
    pos, height = kernels.row_peaks(r, cues.EPS)
    p_ref, h_ref = cues.parabolic_peak(r, np.argmax(r, axis=-1))
    assert np.allclose(pos, p_ref, atol=1e-6)
    assert np.array_equal(height, h_ref)
    assert pos[0] == 1 and pos[1] == 47 and pos[2] == 1 and pos[3] == 11.0


@pytest.mark.parametrize("circular", [False, True])
def test_peak_picking_kernel_matches_numpy(rng, monkeypatch, jit, circular):
    """Window responses (smooth rows with a few bumps) and the rows that test the rules:
    plateaus, peaks at the ends, peaks closer than the separation, a flat, a negative and
    a NaN row."""
    x = np.arange(-90.0, 90.5, 1.0) if not circular else np.arange(-180.0, 180.0, 5.0)
    n = x.size
    H = np.zeros((60, n))
    for w in range(50):
        for _ in range(rng.integers(1, 6)):
            H[w] += rng.uniform(0.1, 1.0) * np.exp(-0.5 * ((x - rng.uniform(x[0], x[-1]))
                                                          / rng.uniform(3, 20)) ** 2)
        H[w] += 0.02 * rng.standard_normal(n)
    H[50, 5:9] = 1.0  # a plateau
    H[51, 0], H[51, -1] = 1.0, 0.9  # maxima at both ends
    H[52, [20, 22, 40]] = [1.0, 0.95, 0.5]  # a peak within the separation of a higher one
    H[53] = 0.5  # flat
    H[54] = -rng.uniform(0.1, 1.0, n)  # nothing above zero
    H[55] = rng.uniform(0.0, 1.0, n)
    H[55, 7] = np.nan
    H[56, 3::6] = rng.uniform(0.2, 1.0, (n - 3 + 5) // 6)  # many peaks: max_sources of them
    kw = dict(circular=circular, min_sep_deg=15.0, rel_height=0.2, min_height=0.05)
    for max_sources in (1, 4):
        a = tracking._pick_peaks(H, x, max_sources=max_sources, **kw)
        _numpy(monkeypatch)
        b = tracking._pick_peaks(H, x, max_sources=max_sources, **kw)
        monkeypatch.setattr(kernels, "JIT", True)
        assert a == b
        assert sum(map(len, a)) > (60 if max_sources > 1 else 50)
        assert not a[53] and not a[54] and not a[55] and len(a[56]) == max_sources
    assert [az for az, _h in a[52]] == [x[20], x[40]]
    assert [az for az, _h in a[50]] == [x[8]]  # a plateau's last bin
    # the ends: never peaks on a line; on a circle, neighbours (and 5 degrees apart)
    assert [az for az, _h in a[51]] == ([x[0]] if circular else [])


def test_coherence_kernel_matches_numpy(scene, monkeypatch, jit):
    S = cues.stft(scene, SR)
    itd, _ = cues.gcc_phat(S)
    jit = cues.interaural_coherence(S, itd)
    far = cues.interaural_coherence(S, itd + 3e-3)  # beyond the head: the numpy path
    _numpy(monkeypatch)
    ref = cues.interaural_coherence(S, itd)
    assert np.allclose(jit, ref, atol=2e-3)
    assert np.allclose(far, cues.interaural_coherence(S, itd + 3e-3))
    assert 0.0 <= jit.min() and jit.max() <= 1.0 and jit.max() > 0.5


def test_analysis_is_the_same_with_and_without_the_kernels(scene, monkeypatch, jit):
    a = tracking.to_json(tracking.analyze_signal(scene, SR, "binaural"), "scene")
    _numpy(monkeypatch)
    b = tracking.to_json(tracking.analyze_signal(scene, SR, "binaural"), "scene")
    assert len(a["sources"]) == len(b["sources"]) >= 2
    for sa, sb in zip(a["sources"], b["sources"], strict=True):
        assert sa["position"] == sb["position"] and sa["motion"] == sb["motion"]
        assert np.allclose(sa["azimuth_deg"], sb["azimuth_deg"], atol=0.5, equal_nan=True)


def test_spa2v_jit_0_turns_the_kernels_off():
    env = dict(os.environ, SPA2V_JIT="0")
    out = subprocess.run([sys.executable, "-c", "from spa2v import kernels; print(kernels.JIT)"],
                         capture_output=True, text=True, env=env, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


def test_residual_search_kernel_matches_numpy(monkeypatch, jit):
    """A talker beside broadband noise as loud is found by the residual search, whose
    set-aside step runs as a kernel: the same sources with the numpy twin."""
    dur = 3.0
    y = simulate_scene(
        [SceneSource(make_source("babble", duration_s=dur, sr=SR, seed=1), Trajectory.static(40)),
         SceneSource(make_source("noise", duration_s=dur, sr=SR, seed=11), Trajectory.static(-40))],
        fmt="binaural", sr=SR, duration_s=dur, noise_snr_db=30.0, seed=1).audio
    calls = []
    real = kernels.set_aside

    def counted(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(kernels, "set_aside", counted)
    a = tracking.to_json(tracking.analyze_signal(y, SR, "binaural"), "pair")
    assert calls  # the kernel ran
    _numpy(monkeypatch)
    b = tracking.to_json(tracking.analyze_signal(y, SR, "binaural"), "pair")
    assert sorted(round(s["mean_azimuth_deg"]) for s in a["sources"]) == pytest.approx(
        [-40, 40], abs=8)
    assert a["sources"] == b["sources"]


def test_a_numba_that_does_not_import_says_how_to_go_on(tmp_path):
    """A numba that no longer imports (say, after numpy was upgraded past it) stops the
    first kernel call with a line naming the way out, not a bare ImportError."""
    fake = tmp_path / "numba"
    fake.mkdir()
    (fake / "__init__.py").write_text('raise ImportError("Numba needs NumPy 1.0")\n')
    code = ("import numpy as np\nfrom spa2v import kernels\nassert kernels.JIT\n"
            "kernels.row_peaks(np.zeros((2, 5), np.float32), 1e-12)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    env.pop("SPA2V_JIT", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=tmp_path)
    assert out.returncode != 0
    assert "SPA2V_JIT=0" in out.stderr and "Numba needs NumPy 1.0" in out.stderr
