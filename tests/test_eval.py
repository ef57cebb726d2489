"""``spa2v eval`` and the layout comparison, on real recordings, videos and layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from spa2v.audio import write_wav
from spa2v.cli import main
from spa2v.evaluate import box_iou, compare_layouts, directions_agree, evaluate_alignment
from spa2v.layout import layout_from_dict, load_layout
from spa2v.simulate import Keyframe, SceneSource, Trajectory, simulate_scene
from spa2v.sources import make_source
from spa2v.video import write_mp4
from spa2v.visual import VisualTrack

SR = 48000
GEN = ["--size", "256x144", "--fps", "12", "-q"]


@pytest.fixture(scope="module")
def crossing(tmp_path_factory) -> dict[str, Path]:
    """A car crossing left to right (binaural), the same recording with its channels
    swapped, and the video ``spa2v generate`` makes of the first."""
    d = tmp_path_factory.mktemp("crossing")
    traj = Trajectory((Keyframe(0.0, 70.0, 0.0, 5.0), Keyframe(3.0, -70.0, 0.0, 5.0)))
    sim = simulate_scene([SceneSource(make_source("engine", duration_s=3.0, sr=SR, seed=3), traj)],
                         fmt="binaural", sr=SR, duration_s=3.0, seed=1)
    paths = {"audio": write_wav(d / "cross.wav", sim.audio, SR),
             "swapped": write_wav(d / "swapped.wav", sim.audio[::-1], SR)}
    assert main(["generate", str(paths["audio"]), "-o", str(d / "cross.mp4"), "--layout-out",
                 str(d / "cross.json"), "--label", "car", *GEN]) == 0
    paths["video"], paths["layout"] = d / "cross.mp4", d / "cross.json"
    return paths


def run_eval(*args: str) -> tuple[int, dict | None]:
    rc = main(["eval", *args])
    out = [a for i, a in enumerate(args) if i and args[i - 1] == "--json"]
    report = json.loads(Path(out[0]).read_text()) if rc == 0 and out else None
    return rc, report


def test_generated_video_is_aligned_and_swapped_audio_is_not(crossing, tmp_path):
    rc, good = run_eval("--audio", str(crossing["audio"]), "--video", str(crossing["video"]),
                        "--json", str(tmp_path / "good.json"), "--plot", str(tmp_path / "g.png"))
    assert rc == 0
    assert good["aligned"] is True
    assert good["threshold"]["max_mean_azimuth_error_deg"] == 20.0
    assert "mean absolute azimuth error" in good["threshold"]["rule"]
    (pair,) = good["pairs"]
    assert pair["mean_azimuth_error_deg"] < 10.0
    assert pair["direction_audio"] == pair["direction_video"] == "left_to_right"
    assert pair["correlation"] > 0.95
    assert pair["motion_agrees"] and pair["position_agrees"]
    assert good["tracks"][0]["motion"] == "left_to_right"
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"

    rc, bad = run_eval("--audio", str(crossing["swapped"]), "--video", str(crossing["video"]),
                       "--json", str(tmp_path / "bad.json"))
    assert rc == 0
    assert bad["aligned"] is False
    (pair,) = bad["pairs"]
    assert pair["direction_audio"] == "right_to_left" and not pair["direction_agrees"]
    assert pair["mean_azimuth_error_deg"] > 20.0
    assert pair["correlation"] < -0.9
    assert "right_to_left" in bad["reason"]


def test_layout_boxes_instead_of_the_tracker(crossing, tmp_path):
    for audio, expect in ((crossing["audio"], True), (crossing["swapped"], False)):
        out = tmp_path / f"{expect}.json"
        rc, rep = run_eval("--audio", str(audio), "--layout", str(crossing["layout"]),
                           "--json", str(out))
        assert rc == 0 and rep["visual_source"] == "layout"
        assert rep["aligned"] is expect


def test_video_with_no_frames_exits_2_without_output(crossing, tmp_path, capsys):
    path = tmp_path / "five.mp4"
    write_mp4(path, [np.zeros((144, 256, 3), np.uint8)] * 5, fps=12, size=(256, 144))
    data = path.read_bytes()
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(data[: data.find(b"mdat") + 4])  # the header, no frame data
    capsys.readouterr()
    rc, _ = run_eval("--audio", str(crossing["audio"]), "--video", str(empty),
                     "--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.png"))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and "empty.mp4" in err[0] and "frames" in err[0]
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "r.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.mp4", "five.mp4"]


def test_existing_output_is_refused(crossing, tmp_path, capsys):
    out = tmp_path / "r.json"
    out.write_text("keep")
    rc, _ = run_eval("--audio", str(crossing["audio"]), "--video", str(crossing["video"]),
                     "--json", str(out))
    assert rc == 2 and out.read_text() == "keep"
    assert "--overwrite" in capsys.readouterr().err


def test_directions_agree_rule():
    assert directions_agree(-100.0, -90.0)
    assert not directions_agree(-100.0, 95.0)
    assert directions_agree(5.0, -8.0)  # both still
    assert not directions_agree(-60.0, -3.0)  # moving in one, still in the other
    assert directions_agree(-35.0, -20.0)


def test_alignment_without_picture_tracks_is_not_aligned():
    times = np.arange(50) * 0.02
    analysis = {"sources": [{"id": 0, "times": times.tolist(), "azimuth_deg": [30.0] * 50,
                             "active": [True] * 50, "position": "left", "motion": "static"}]}
    rep = evaluate_alignment(analysis, [])
    assert rep["aligned"] is False and "no object" in rep["reason"]
    track = VisualTrack(0, np.arange(12) / 12, np.tile([0.2, 0.4, 0.3, 0.6], (12, 1)),
                        np.tile([0.25, 0.5], (12, 1)), np.ones(12, bool))
    rep = evaluate_alignment(analysis, [track])
    # x = 0.25 is azimuth 30 deg through the sine camera
    assert rep["aligned"] is True
    assert rep["pairs"][0]["mean_azimuth_error_deg"] == pytest.approx(0.0, abs=0.01)


def layout(boxes_per_object: dict[int, list[float]], duration: float = 2.0) -> object:
    frames = [{"t": t, "boxes": [{"id": k, "box": b} for k, b in boxes_per_object.items()]}
              for t in (0.0, 1.0, 2.0)]
    return layout_from_dict({"version": 1, "duration": duration, "fps": 1, "caption": "",
                             "objects": [{"id": k, "name": "car"} for k in boxes_per_object],
                             "frames": frames})


def test_compare_layouts_identical_shifted_and_missing(crossing):
    real = load_layout(crossing["layout"])
    same = compare_layouts(real, real)
    assert same["max_iou"] == same["matched_iou"] == 1.0
    assert same["summary"]["mean_azimuth_error_deg"] == 0.0
    assert same["summary"]["motion_agreement"] == 1.0

    a = layout({0: [0.1, 0.4, 0.3, 0.6], 1: [0.6, 0.4, 0.8, 0.6]})
    b = layout({5: [0.7, 0.4, 0.9, 0.6], 7: [0.15, 0.4, 0.35, 0.6]})
    rep = compare_layouts(a, b)
    iou = box_iou([0.1, 0.4, 0.3, 0.6], [0.15, 0.4, 0.35, 0.6])
    assert iou == pytest.approx(0.15 / 0.25)
    pairs = {p["object_a"]: p["object_b"] for p in rep["pairs"]}
    assert pairs == {0: 7, 1: 5}
    other = box_iou([0.6, 0.4, 0.8, 0.6], [0.7, 0.4, 0.9, 0.6])
    assert other == pytest.approx(1 / 3)
    assert rep["max_iou"] == pytest.approx((iou + other) / 2, abs=1e-4)
    assert rep["pairs"][0]["mean_center_x_error"] == pytest.approx(0.05, abs=1e-4)

    one = layout({0: [0.1, 0.4, 0.3, 0.6]})
    rep = compare_layouts(a, one)
    assert rep["unpaired_a"] == [1]
    assert rep["matched_iou"] == pytest.approx(0.5)  # one of two objects found exactly
    assert rep["summary"]["motion_agreement"] == 0.5
