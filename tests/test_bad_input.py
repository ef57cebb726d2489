"""Bad input through the real command line: exit 2, one line naming the file, no output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SR = 16000


def spa2v(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spa2v", *args], capture_output=True, text=True,
                          timeout=120)


def make_bad(kind: str, d: Path) -> Path:
    rng = np.random.default_rng(0)
    if kind == "missing":
        return d / "nowhere.wav"
    if kind == "not_audio":
        p = d / "notes.wav"
        p.write_text("this is not audio\n" * 20)
        return p
    if kind == "empty_file":
        p = d / "empty.wav"
        p.write_bytes(b"")
        return p
    if kind == "zero_samples":
        p = d / "zero.wav"
        sf.write(p, np.zeros((0, 2), np.float32), SR, subtype="FLOAT")
        return p
    if kind in ("nan", "inf"):
        y = rng.standard_normal((SR, 2)).astype(np.float32) * 0.1
        y[100, 1] = np.nan if kind == "nan" else np.inf
        p = d / f"{kind}.wav"
        sf.write(p, y, SR, subtype="FLOAT")
        return p
    if kind in ("three_channels", "five_channels"):
        n = 3 if kind == "three_channels" else 5
        p = d / f"{kind}.wav"
        sf.write(p, rng.standard_normal((SR, n)).astype(np.float32) * 0.1, SR, subtype="FLOAT")
        return p
    if kind == "video_without_audio":
        import av

        p = d / "silent_film.mp4"
        with av.open(str(p), "w") as c:
            s = c.add_stream("libx264", rate=10)
            s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
            for _ in range(5):
                frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
                for pkt in s.encode(frame):
                    c.mux(pkt)
            for pkt in s.encode():
                c.mux(pkt)
        return p
    if kind == "truncated":
        p = d / "cut.wav"
        sf.write(p, rng.standard_normal((SR, 2)).astype(np.float32) * 0.1, SR, subtype="FLOAT")
        p.write_bytes(p.read_bytes()[:30])
        return p
    raise AssertionError(kind)


KINDS = ["missing", "not_audio", "empty_file", "zero_samples", "nan", "inf", "three_channels",
         "five_channels", "video_without_audio", "truncated"]


def assert_clean_failure(r: subprocess.CompletedProcess, name: str, out_dir: Path, before: set):
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert name in lines[0]
    assert "Traceback" not in r.stderr
    assert set(out_dir.iterdir()) == before, "a failed command left output behind"


@pytest.mark.parametrize("kind", KINDS)
def test_analyze_bad_input(tmp_path, kind):
    bad = make_bad(kind, tmp_path)
    before = set(tmp_path.iterdir())
    r = spa2v("analyze", str(bad), "--json", str(tmp_path / "out.json"),
              "--plot", str(tmp_path / "out.png"))
    assert_clean_failure(r, bad.name, tmp_path, before)


@pytest.mark.parametrize("kind", KINDS)
def test_simulate_bad_source_file(tmp_path, kind):
    bad = make_bad(kind, tmp_path)
    before = set(tmp_path.iterdir())
    r = spa2v("simulate", "-o", str(tmp_path / "out.wav"), "--format", "binaural", "--source",
              str(bad), "--duration", "1", "--truth", str(tmp_path / "truth.json"))
    if kind in ("three_channels", "five_channels"):
        # a source file is downmixed to mono, so any channel count is usable as a source;
        # spa2v still refuses counts it cannot interpret as a scene
        assert r.returncode in (0, 2)
        return
    assert_clean_failure(r, bad.name, tmp_path, before)


@pytest.mark.parametrize("command", ["simulate", "analyze"])
def test_unreadable_sofa(tmp_path, command):
    sofa = tmp_path / "broken.sofa"
    sofa.write_bytes(b"\x89HDF\r\n" + b"\0" * 100)
    before = set(tmp_path.iterdir())
    if command == "simulate":
        r = spa2v("simulate", "-o", str(tmp_path / "o.wav"), "--format", "binaural", "--hrtf",
                  str(sofa), "--duration", "1")
    else:
        wav = tmp_path / "ok.wav"
        sf.write(wav, np.random.default_rng(1).standard_normal((SR, 2)).astype(np.float32) * 0.1,
                 SR, subtype="FLOAT")
        before = set(tmp_path.iterdir())
        r = spa2v("analyze", str(wav), "--format", "binaural", "--hrtf", str(sofa), "--json",
                  str(tmp_path / "o.json"))
    assert_clean_failure(r, sofa.name, tmp_path, before)
