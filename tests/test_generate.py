"""The main job end to end: simulated recordings -> layout -> video, through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from generators.video.animatic import object_color
from spa2v.audio import write_wav
from spa2v.conventions import Camera
from spa2v.layout import load_layout
from spa2v.pipeline import PlanOptions, plan
from spa2v.simulate import Keyframe, SceneSource, Trajectory, simulate_scene
from spa2v.sources import make_source
from spa2v.video import probe_video, read_video

SR = 48000


def spa2v(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spa2v", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def write_scene(path: Path, trajectories, sources=("engine",), dur=4.0, fmt="binaural") -> Path:
    ss = [SceneSource(make_source(n, duration_s=dur, sr=SR, seed=11 + i), t, name=n)
          for i, (n, t) in enumerate(zip(sources, trajectories, strict=True))]
    sim = simulate_scene(ss, fmt=fmt, sr=SR, duration_s=dur, seed=1)
    write_wav(path, sim.audio, SR)
    return path


def centre_x(box) -> float:
    return 0.5 * (box.box[0] + box.box[2])


def area(box) -> float:
    return (box.box[2] - box.box[0]) * (box.box[3] - box.box[1])


@pytest.mark.parametrize("fmt", ["binaural", "foa"])
def test_crossing_left_to_right_moves_across(tmp_path, fmt):
    wav = write_scene(tmp_path / "x.wav", [Trajectory([Keyframe(0, 70, 0, 5), Keyframe(4, -70, 0, 5)])],
                      fmt=fmt)
    layout, analysis = plan(wav, PlanOptions(labels=["car"]))
    assert analysis["sources"][0]["motion"] == "left_to_right"
    boxes = [b for f in layout.frames for b in f.boxes if b.id == layout.objects[0].id]
    assert centre_x(boxes[0]) < 0.35
    assert centre_x(boxes[-1]) > 0.65
    assert "left" in layout.caption and "right" in layout.caption


def test_approaching_box_grows(tmp_path):
    wav = write_scene(tmp_path / "a.wav", [Trajectory([Keyframe(0, 20, 0, 8), Keyframe(4, 20, 0, 2)])])
    layout, analysis = plan(wav, PlanOptions(labels=["car"]))
    assert analysis["sources"][0]["motion"] == "approaching"
    boxes = [b for f in layout.frames for b in f.boxes]
    assert area(boxes[-1]) >= 2.0 * area(boxes[0])


def test_static_source_sits_at_camera_x(tmp_path):
    wav = write_scene(tmp_path / "s.wav", [Trajectory.static(45, 0, 3)])
    layout, _ = plan(wav, PlanOptions(labels=["dog"]))
    x_expected = float(Camera().azimuth_to_x(45.0)[0])
    xs = [centre_x(b) for f in layout.frames for b in f.boxes]
    assert abs(float(np.median(xs)) - x_expected) <= 0.03


def test_two_sources_each_on_its_side(tmp_path):
    wav = write_scene(tmp_path / "two.wav",
                      [Trajectory.static(45, 0, 3), Trajectory.static(-45, 0, 3)],
                      sources=("engine", "engine"))
    layout, analysis = plan(wav, PlanOptions(labels=["car", "truck"]))
    assert len(layout.objects) == 2
    sides = {}
    for obj in layout.objects:
        xs = [centre_x(b) for f in layout.frames for b in f.boxes if b.id == obj.id]
        sides[obj.id] = float(np.median(xs))
    src_az = {s["id"]: s["mean_azimuth_deg"] for s in analysis["sources"]}
    for obj in layout.objects:
        on_left = src_az[obj.source] > 0
        assert (sides[obj.id] < 0.5) == on_left


def test_generate_cli_video_and_layout(tmp_path):
    wav = write_scene(tmp_path / "car.wav", [Trajectory([Keyframe(0, 70, 0, 5), Keyframe(4, -70, 0, 5)])])
    out = tmp_path / "car.mp4"
    lay = tmp_path / "car.json"
    r = spa2v("generate", str(wav), "-o", str(out), "--label", "car", "--layout-out", str(lay),
              "--fps", "12", "--size", "320x180", "-q")
    assert r.returncode == 0, r.stderr
    info = probe_video(out)
    assert info["video_codec"] == "h264" and info["audio_codec"] == "aac"
    assert (info["width"], info["height"]) == (320, 180)
    assert info["frames"] == 48
    assert abs(info["duration"] - 4.0) <= 1.0 / 12 + 1e-6
    assert abs(info["audio_duration"] - 4.0) <= 1.0 / 12 + 1e-6
    layout = load_layout(lay)
    frames, fps = read_video(out)
    colour = np.asarray(object_color(0), dtype=float)
    times = layout.frame_times(12)
    boxes, visible = layout.track(layout.objects[0].id, times)
    checked = 0
    for i in range(4, 48, 8):
        if not visible[i]:
            continue
        dist = np.linalg.norm(frames[i].astype(float) - colour, axis=-1)
        ys, xs = np.nonzero(dist < 40)
        assert xs.size > 20, f"object colour not found in frame {i}"
        cx = xs.mean() / frames.shape[2]
        assert abs(cx - 0.5 * (boxes[i, 0] + boxes[i, 2])) <= 0.03
        checked += 1
    assert checked >= 4


def test_plan_then_render_with_unknown_label(tmp_path):
    wav = write_scene(tmp_path / "s.wav", [Trajectory.static(-30, 0, 3)])
    lay = tmp_path / "l.json"
    assert spa2v("plan", str(wav), "-o", str(lay), "--label", "zorblax", "-q").returncode == 0
    data = json.loads(lay.read_text())
    assert data["objects"][0]["name"] == "zorblax"
    out = tmp_path / "v.mp4"
    r = spa2v("render", str(lay), "-o", str(out), "--audio", str(wav), "--size", "256x144", "-q")
    assert r.returncode == 0, r.stderr
    assert probe_video(out)["frames"] == 96


def test_invalid_layout_names_json_path(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({
        "version": 1, "duration": 2.0, "fps": 4, "caption": "x",
        "objects": [{"id": 0, "name": "car"}],
        "frames": [{"t": 0.0, "boxes": [{"id": 0, "box": [0.6, 0.5, 0.2, 0.8]}]}],
    }))
    out = tmp_path / "v.mp4"
    r = spa2v("render", str(bad), "-o", str(out))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "frames[0].boxes[0].box" in lines[0] and "bad.json" in lines[0]
    assert not out.exists()


def test_silence_gives_exit_2_and_no_output(tmp_path):
    wav = tmp_path / "quiet.wav"
    write_wav(wav, np.zeros((2, SR * 2), np.float32), SR)
    out = tmp_path / "v.mp4"
    lay = tmp_path / "l.json"
    r = spa2v("generate", str(wav), "-o", str(out), "--layout-out", str(lay))
    assert r.returncode == 2
    assert "quiet.wav" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() and not lay.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quiet.wav"]


def test_generate_refuses_to_overwrite(tmp_path):
    wav = write_scene(tmp_path / "s.wav", [Trajectory.static(10, 0, 3)], dur=2.0)
    out = tmp_path / "v.mp4"
    out.write_bytes(b"precious")
    r = spa2v("generate", str(wav), "-o", str(out))
    assert r.returncode == 2 and "--overwrite" in r.stderr
    assert out.read_bytes() == b"precious"
    r = spa2v("generate", str(wav), "-o", str(wav), "--overwrite")
    assert r.returncode == 2 and "input" in r.stderr


@pytest.mark.parametrize("size", ["511x288", "big", "0x0"])
def test_bad_size(tmp_path, size):
    wav = write_scene(tmp_path / "s.wav", [Trajectory.static(10, 0, 3)], dur=1.0)
    r = spa2v("generate", str(wav), "-o", str(tmp_path / "v.mp4"), "--size", size)
    assert r.returncode == 2 and "--size" in r.stderr
