"""``spa2v spatialize``: mono recording(s) placed by a text, rendered binaurally."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from generators.audio.binaural import EmphasisedHead, spatialize
from spa2v import cues
from spa2v.analysis import analyze_array
from spa2v.cli import main
from spa2v.hrtf import SphericalHead

PIANO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "audio" / "piano_mono.flac"
needs_piano = pytest.mark.skipif(not PIANO.exists(), reason="shared piano recording absent")
SR = 16000


def read(path: Path) -> tuple[np.ndarray, int]:
    y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return y.T, sr


def ild_db(y: np.ndarray) -> float:
    """Broadband level difference, left minus right."""
    e = np.sum(y.astype(np.float64) ** 2, axis=-1)
    return float(10 * np.log10(e[0] / e[1]))


def itd_s(y: np.ndarray, sr: int, max_s: float = 1e-3) -> float:
    """Delay of the right ear behind the left (GCC-PHAT); negative = the right ear leads."""
    n = 2 * y.shape[1]
    cross = np.fft.rfft(y[1], n) * np.conj(np.fft.rfft(y[0], n))
    cross /= np.abs(cross) + 1e-12
    up = 8
    cc = np.fft.irfft(cross, n * up)
    m = int(max_s * sr * up)
    lags = np.concatenate([cc[-m:], cc[: m + 1]])
    return (int(np.argmax(lags)) - m) / (sr * up)


def noise(seconds: float, seed: int, band: tuple[float, float] | None = None) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(int(seconds * SR))
    if band is not None:
        spec = np.fft.rfft(x)
        f = np.fft.rfftfreq(len(x), 1 / SR)
        spec[(f < band[0]) | (f > band[1])] = 0
        x = np.fft.irfft(spec, len(x))
    return (0.1 * x / np.std(x)).astype(np.float32)


@needs_piano
def test_piano_on_the_far_right(tmp_path, capsys):
    out = tmp_path / "b.wav"
    assert main(["spatialize", str(PIANO), "--text", "on the far right", "-o", str(out)]) == 0
    y, sr = read(out)
    assert y.shape[0] == 2 and sr == sf.info(str(PIANO)).samplerate
    assert ild_db(y) < -6.0
    assert itd_s(y, sr) < -0.3e-3  # the right ear leads
    an = analyze_array(y, sr, "binaural")
    ild_track = np.asarray(an["cues"]["ild_db"], dtype=float)
    assert np.nanmean(ild_track) < -6.0
    assert np.nanmedian(np.asarray(an["cues"]["itd_ms"], dtype=float)) < 0.0
    assert an["sources"][0]["position"] == "right"
    assert "-80" in capsys.readouterr().out


def test_emphasis_adds_level_difference_only():
    x = noise(1.0, 0, band=(100.0, 900.0))  # low frequencies: a sphere barely shadows them
    bare, _ = spatialize([x], SR, "on the far right", lateral_emphasis_db=0.0)
    emph, _ = spatialize([x], SR, "on the far right")
    assert ild_db(emph.audio) == pytest.approx(ild_db(bare.audio) - 6.0 * np.sin(np.deg2rad(80)),
                                               abs=0.3)
    assert itd_s(emph.audio, SR) == pytest.approx(itd_s(bare.audio, SR), abs=1e-5)
    assert bare.truth["hrtf"] == "spherical"
    head = EmphasisedHead(SphericalHead(), 6.0)
    g = head.ear_gains(np.array([90.0, 0.0, -90.0]))
    assert 20 * np.log10(g[:, 0] / g[:, 1]) == pytest.approx([6.0, 0.0, -6.0])


def test_measured_hrtf_on_the_left(kemar_sofa, tmp_path, write_audio):
    src = write_audio("n.wav", noise(1.0, 1), SR)
    out, truth = tmp_path / "k.wav", tmp_path / "k.json"
    assert main(["spatialize", str(src), "--text", "a voice on the far left", "--hrtf",
                 str(kemar_sofa), "-o", str(out), "--truth", str(truth), "-q"]) == 0
    y, sr = read(out)
    assert ild_db(y) > 6.0 and itd_s(y, sr) > 0.3e-3
    t = json.loads(truth.read_text())
    assert t["hrtf"] == kemar_sofa.name and t["sources"][0]["signal"] == "n.wav"


def test_two_inputs_follow_the_text(tmp_path, write_audio):
    low = write_audio("dog.wav", noise(1.5, 2, band=(200.0, 1500.0)), SR)
    high = write_audio("car.wav", noise(1.5, 3, band=(3000.0, 7000.0)), SR)
    out, truth = tmp_path / "two.wav", tmp_path / "two.json"
    assert main(["spatialize", str(low), str(high), "--text", "a dog to the left of a car",
                 "-o", str(out), "--truth", str(truth), "-q"]) == 0
    t = json.loads(truth.read_text())
    assert [s["signal"] for s in t["sources"]] == ["dog.wav", "car.wav"]
    dog_az, car_az = (s["mean_azimuth_deg"] for s in t["sources"])
    assert dog_az > car_az
    y, sr = read(out)
    S = cues.stft(y, sr)
    lv = 10 * np.log10(S.power + 1e-20)
    f = S.freqs
    ild_low = np.mean(lv[0][:, (f > 300) & (f < 1400)] - lv[1][:, (f > 300) & (f < 1400)])
    ild_high = np.mean(lv[0][:, (f > 3200) & (f < 6800)] - lv[1][:, (f > 3200) & (f < 6800)])
    assert ild_low > 1.0 and ild_high < -1.0  # the dog's band leans left, the car's right


def test_moving_source(tmp_path, write_audio):
    src = write_audio("n.wav", noise(3.0, 4), SR)
    out = tmp_path / "m.wav"
    assert main(["spatialize", str(src), "--text", "moves from the left to the right",
                 "-o", str(out), "-q"]) == 0
    y, sr = read(out)
    an = analyze_array(y, sr, "binaural")
    assert an["sources"][0]["motion"] == "left_to_right"


def test_stereo_input_is_mixed_down(tmp_path, write_audio, capsys):
    x = noise(1.0, 5)
    src = write_audio("st.wav", np.stack([x, x]), SR)
    out = tmp_path / "s.wav"
    assert main(["spatialize", str(src), "--text", "behind", "-o", str(out)]) == 0
    assert "mixed down" in capsys.readouterr().err
    assert read(out)[0].shape == (2, SR)


@pytest.mark.parametrize(
    ("text", "n_inputs", "needle"),
    [
        ("xyz", 1, "could not place: 'xyz'"),
        ("a dog barks", 1, "could not place: 'dog'"),
        ("a dog to the left of a car", 1, "places 2 source(s)"),
        ("on the left", 2, "places 1 source(s)"),
    ],
)
def test_bad_text_or_inputs_exit_2(tmp_path, write_audio, capsys, text, n_inputs, needle):
    inputs = [str(write_audio(f"i{k}.wav", noise(0.5, k), SR)) for k in range(n_inputs)]
    out = tmp_path / "o.wav"
    assert main(["spatialize", *inputs, "--text", text, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_missing_or_silent_input_exits_2(tmp_path, write_audio, capsys):
    out = tmp_path / "o.wav"
    assert main(["spatialize", str(tmp_path / "none.wav"), "--text", "left", "-o", str(out)]) == 2
    silent = write_audio("z.wav", np.zeros(SR, np.float32), SR)
    assert main(["spatialize", str(silent), "--text", "on the left", "-o", str(out)]) == 2
    assert "silent" in capsys.readouterr().err
    assert main(["spatialize", str(silent), "--text", "on the left", "-o", str(out),
                 "--emphasis", "99"]) == 2
    assert not out.exists()
