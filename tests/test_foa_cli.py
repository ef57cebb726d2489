"""``spa2v foa``: text -> FOA, checked with the intensity vector of the written file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from spa2v import cues
from spa2v.analysis import analyze_array
from spa2v.cli import main

PIANO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "audio" / "piano_mono.flac"


def read(path: Path) -> tuple[np.ndarray, int]:
    y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return y.T, sr


def intensity_direction(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame broadband intensity-vector azimuth and elevation (deg), frame times (s)."""
    S = cues.stft(y, sr)
    (ix, iy, iz), energy = cues.foa_intensity_vectors(S)
    ix, iy, iz = ix.sum(-1), iy.sum(-1), iz.sum(-1)
    az = np.rad2deg(np.arctan2(iy, ix))
    el = np.rad2deg(np.arctan2(iz, np.hypot(ix, iy)))
    loud = energy.sum(-1)
    az[loud < loud.max() * 1e-3] = np.nan  # silent frames have no direction
    t = np.arange(len(az)) * cues.DEFAULT_HOP_S
    return az, el, t


def test_siren_moves_from_left_to_right(tmp_path, capsys):
    out = tmp_path / "s.wav"
    assert main(["foa", "--text", "a police siren moves from the left to the right",
                 "-o", str(out)]) == 0
    y, sr = read(out)
    assert y.shape[0] == 4 and sr == 48000 and y.shape[1] == 4 * sr
    az, _, t = intensity_direction(y, sr)
    first, last = az[t < 1.0], az[t > t[-1] - 1.0]
    assert np.nanmin(first) > 30.0
    assert np.nanmax(last) < -30.0
    assert "police siren" in capsys.readouterr().out


def test_bird_above_the_listener(tmp_path):
    out = tmp_path / "b.wav"
    assert main(["foa", "--text", "a bird chirps above the listener", "-o", str(out), "-q"]) == 0
    y, sr = read(out)
    _, el, _ = intensity_direction(y, sr)
    S = cues.stft(y, sr)
    loud = cues.foa_intensity_vectors(S)[1].sum(-1)
    assert np.median(el[loud > loud.max() * 1e-2]) > 45.0


def test_behind_stays_behind_and_truth_is_written(tmp_path):
    out, truth = tmp_path / "c.wav", tmp_path / "c.json"
    assert main(["foa", "--text", "a car idles behind the listener", "-o", str(out),
                 "--truth", str(truth), "--sr", "16000", "--duration", "2", "-q"]) == 0
    y, sr = read(out)
    assert sr == 16000 and y.shape[1] == 32000
    az, _, _ = intensity_direction(y, sr)
    assert np.nanmedian(np.abs(az)) > 150.0
    t = json.loads(truth.read_text())
    assert t["format"] == "foa" and t["text"] == "a car idles behind the listener"
    src = t["sources"][0]
    assert src["class"] == "car" and src["behind"] is True and src["signal"] == "procedural: engine"


def test_explicit_keyframes_replace_the_path(tmp_path):
    out, truth = tmp_path / "d.wav", tmp_path / "d.json"
    assert main(["foa", "--text", "a dog barks", "--trajectory", "-90,0,2@0; 90,0,2@3",
                 "--source", "noise",
                 "--duration", "3", "--sr", "16000", "-o", str(out), "--truth", str(truth),
                 "-q"]) == 0
    t = json.loads(truth.read_text())
    kf = t["sources"][0]["keyframes"]
    assert [k["azimuth_deg"] for k in kf] == [-90.0, 90.0]
    assert t["sources"][0]["motion"] == "right_to_left"
    y, sr = read(out)
    an = analyze_array(y, sr, "foa")
    assert an["sources"][0]["motion"] == "right_to_left"


def test_a_file_source_and_two_sources(tmp_path, write_audio):
    tone = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32) * 0.3
    src = write_audio("tone.wav", tone, 16000)
    out, truth = tmp_path / "two.wav", tmp_path / "two.json"
    assert main(["foa", "--text", "a dog barks on the left while a car idles on the right",
                 "--source", str(src), "--duration", "3", "--sr", "16000", "-o", str(out),
                 "--truth", str(truth), "-q"]) == 0
    t = json.loads(truth.read_text())
    assert [s["name"] for s in t["sources"]] == ["dog", "car"]
    assert t["sources"][0]["signal"] == str(src)
    assert t["sources"][1]["signal"] == "procedural: engine"
    assert [s["position"] for s in t["sources"]] == ["left", "right"]
    y, sr = read(out)
    S = cues.stft(y, sr)
    (ix, iy, _), _ = cues.foa_intensity_vectors(S)
    k = int(np.argmin(np.abs(S.freqs - 440.0)))  # the tone's bin: the dog's place
    az_tone = np.rad2deg(np.arctan2(iy[:, k].sum(), ix[:, k].sum()))
    assert az_tone == pytest.approx(60.0, abs=5.0)


@pytest.mark.skipif(not PIANO.exists(), reason="shared piano recording absent")
def test_the_length_follows_a_source_file(tmp_path):
    out = tmp_path / "p.wav"
    assert main(["foa", "--text", "on the left", "--source", str(PIANO), "--sr", "16000",
                 "-o", str(out), "-q"]) == 0
    y, sr = read(out)
    assert y.shape[1] / sr == pytest.approx(sf.info(str(PIANO)).duration, abs=0.01)
    az, _, _ = intensity_direction(y, sr)
    assert np.nanmedian(az) == pytest.approx(60.0, abs=3.0)


@pytest.mark.parametrize("text", ["xyz", "a dog barks", "   "])
def test_bad_text_exits_2_without_output(tmp_path, capsys, text):
    out, truth = tmp_path / "x.wav", tmp_path / "x.json"
    assert main(["foa", "--text", text, "-o", str(out), "--truth", str(truth)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spa2v foa: error:") and len(err.splitlines()) == 1
    assert not out.exists() and not truth.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--trajectory", "1,2,3@0; 4,5,6@0"], "trajectory"),
        (["--trajectory", "0@0", "--trajectory", "10@0"], "2 trajectories"),
        (["--duration", "-1"], "--duration"),
        (["--sr", "100"], "--sr"),
        (["--reverb", "50"], "--reverb"),
        (["--source", "no/such/file.wav"], "no such"),
        (["--source", "banjo"], "unknown source"),
        (["--source", "noise", "--source", "noise"], "2 signals for 1 source"),
        (["--model", "/no/such/model"], "no such model directory"),
    ],
)
def test_bad_options_exit_2(tmp_path, capsys, args, needle):
    out = tmp_path / "o.wav"
    assert main(["foa", "--text", "a dog barks on the left", "-o", str(out), *args]) == 2
    assert needle in capsys.readouterr().err
    assert not out.exists()


def test_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "o.wav"
    out.write_bytes(b"keep")
    assert main(["foa", "--text", "on the left", "-o", str(out), "--duration", "1"]) == 2
    assert out.read_bytes() == b"keep"
    assert main(["foa", "--text", "on the left", "-o", str(out), "--duration", "1",
                 "--overwrite", "-q"]) == 0
    assert read(out)[0].shape[0] == 4
