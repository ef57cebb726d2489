"""``spa2v video2audio``: videos made by ``spa2v generate`` from simulated recordings, turned
back into spatial audio and analysed for real; the open-vocabulary detector with tiny
random weights."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from spa2v.analysis import analyze_file
from spa2v.audio import read_audio, write_wav
from spa2v.cli import main
from spa2v.layout import load_layout
from spa2v.simulate import Keyframe, SceneSource, Trajectory, simulate_scene
from spa2v.sources import make_source
from spa2v.video import probe_video, read_video, write_mp4
from spa2v.video2audio import compare_analyses, find_objects, objects_layout, track_names
from spa2v.visual import link_detections

pytest.importorskip("generators.audio.sonify")

SR = 48000
SIZE = (256, 144)
SCENES = {  # start az, end az, start distance, end distance
    "left_to_right": (70.0, -70.0, 5.0, 5.0),
    "right_to_left": (-65.0, 65.0, 4.0, 4.0),
    "approaching": (25.0, 25.0, 8.0, 2.0),
}
# Source and noise seeds whose crossings the analysis hears as one source (with others
# it can split one crossing car into two sources, one per side: spa2v.tracking).
SOURCE_SEED, SIM_SEED = 3, 1


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, dict[str, Path]]:
    """Per scene: a simulated binaural recording of a car and the video spa2v generate
    makes of it (256x144, 12 fps, 3 s)."""
    d = tmp_path_factory.mktemp("generated")
    out = {}
    for k, (a0, a1, r0, r1) in SCENES.items():
        traj = Trajectory((Keyframe(0.0, a0, 0.0, r0), Keyframe(3.0, a1, 0.0, r1)))
        engine = make_source("engine", duration_s=3.0, sr=SR, seed=SOURCE_SEED)
        sim = simulate_scene([SceneSource(engine, traj)], fmt="binaural", sr=SR, duration_s=3.0,
                             seed=SIM_SEED)
        wav = write_wav(d / f"{k}.wav", sim.audio, SR)
        video = d / f"{k}.mp4"
        assert main(["generate", str(wav), "-o", str(video), "--label", "car", "--size",
                     "256x144", "--fps", "12", "-q"]) == 0
        out[k] = {"audio": wav, "video": video}
    return out


def _frames(boxes: list[tuple[tuple[int, int, int], tuple[float, float, float, float]]],
            n: int = 36) -> np.ndarray:
    """``n`` grey frames with filled rectangles (colour, normalised box), all static."""
    w, h = SIZE
    img = np.full((h, w, 3), 110, np.uint8)
    for colour, (x1, y1, x2, y2) in boxes:
        img[int(y1 * h):int(y2 * h), int(x1 * w):int(x2 * w)] = colour
    return np.repeat(img[None], n, axis=0)


def _write_video(path: Path, frames: np.ndarray) -> Path:
    return write_mp4(path, iter(frames), fps=12, size=SIZE)


def _lag_ms(pair: np.ndarray, sr: int, max_ms: float = 1.0) -> float:
    """How much later the right channel is than the left (ms), by cross-correlation."""
    left, right = pair.astype(np.float64)
    m = int(max_ms * 1e-3 * sr)
    n = len(left) - 2 * m
    corr = [np.dot(left[m:m + n], right[m + k:m + k + n]) for k in range(-m, m + 1)]
    return (int(np.argmax(corr)) - m) / sr * 1e3


def _run(*args: str) -> int:
    return main(["video2audio", *args, "-q"])


# --------------------------------------------------------------------------- the loop
@pytest.mark.parametrize("kind", list(SCENES))
def test_generated_video_sounds_like_its_recording(generated, tmp_path, kind):
    src = generated[kind]
    out, lay, truth = tmp_path / "back.wav", tmp_path / "back.json", tmp_path / "truth.json"
    assert _run(str(src["video"]), "-o", str(out), "--format", "binaural", "--label", "car",
                "--layout-out", str(lay), "--truth", str(truth)) == 0
    original, back = analyze_file(src["audio"]), analyze_file(out)
    assert [s["motion"] for s in original["sources"]] == [kind]
    cmp = compare_analyses(original, back)
    (pair,) = cmp["pairs"]
    assert pair["motion_reference"] == pair["motion_other"] == kind
    assert pair["mean_azimuth_difference_deg"] < 10.0
    assert pair["frames"] > 100  # most of the 150 frames of 3 s
    if kind == "approaching":
        assert pair["level_change_other_db"] > 3.0  # the loudness rises
    else:
        assert abs(pair["level_change_other_db"]) < 3.0  # a crossing keeps its distance
    layout = load_layout(lay)
    assert [o.name for o in layout.objects] == ["car"]
    assert layout.planner == "video2audio" and layout.meta["motions"] == [kind]
    t = json.loads(truth.read_text())
    assert t["found_by"] == "tracker" and t["video"] == str(src["video"])
    assert [s["motion"] for s in t["sources"]] == [kind]


def test_foa_output_and_binaural_soundtrack(generated, tmp_path):
    video = generated["left_to_right"]["video"]
    out, muxed = tmp_path / "foa.wav", tmp_path / "with_sound.mp4"
    assert _run(str(video), "-o", str(out), "--format", "foa", "--mux", str(muxed),
                "--label", "car") == 0
    y, sr = read_audio(out)
    assert y.shape[0] == 4 and sr == SR
    (src,) = analyze_file(out)["sources"]
    assert src["motion"] == "left_to_right"
    # the soundtrack is a binaural rendering (a stereo decode of the FOA would have no
    # time difference between the channels): the right ear lags first, the left at the end
    info = probe_video(muxed)
    assert info["audio_channels"] == 2 and info["frames"] == probe_video(video)["frames"]
    assert abs(info["audio_duration"] - 3.0) < 0.1
    track, tsr = read_audio(muxed)
    q = track.shape[1] // 5
    lags_ms = [_lag_ms(track[:, s], tsr) for s in (slice(0, q), slice(-q, None))]
    assert lags_ms[0] > 0.25 and lags_ms[1] < -0.25
    # the pictures are copied, not re-encoded
    assert np.array_equal(read_video(muxed)[0], read_video(video)[0])


def test_static_object_in_left_third_sounds_left(tmp_path):
    video = _write_video(tmp_path / "left.mp4", _frames([((220, 30, 30), (0.1, 0.5, 0.24, 0.75))]))
    out, lay = tmp_path / "left.wav", tmp_path / "left.json"
    assert _run(str(video), "-o", str(out), "--format", "binaural", "--layout-out",
                str(lay)) == 0
    (src,) = analyze_file(out)["sources"]
    assert src["position"] == "left" and src["motion"] == "static"
    assert src["mean_azimuth_deg"] > 30.0
    assert [o.name for o in load_layout(lay).objects] == ["sound source"]


def test_labels_name_tracks_largest_first(tmp_path):
    frames = _frames([((30, 60, 220), (0.6, 0.35, 0.9, 0.8)),   # big, right
                      ((220, 30, 30), (0.08, 0.5, 0.2, 0.7))])  # small, left
    video = _write_video(tmp_path / "two.mp4", frames)
    objects = find_objects(video, labels=["truck"])
    assert objects.finder == "tracker" and objects.names == ["truck", "sound source"]
    layout = objects_layout(objects)
    boxes = {o.name: layout.track(o.id, [1.5])[0][0] for o in layout.objects}
    assert boxes["truck"][0] > 0.5 > boxes["sound source"][2]
    assert track_names(3, ["a", "", "c", "d"]) == ["a", "sound source", "c"]


def test_layout_input_and_user_source(tmp_path, generated):
    lay = tmp_path / "l.json"
    assert _run(str(generated["right_to_left"]["video"]), "-o", str(tmp_path / "x.wav"),
                "--format", "binaural", "--layout-out", str(lay)) == 0
    tone = 0.3 * np.sin(2 * np.pi * 500.0 * np.arange(SR) / SR)
    wav = write_wav(tmp_path / "tone.wav", tone[None].astype(np.float32), SR)
    out, truth = tmp_path / "y.wav", tmp_path / "y.json"
    # no VIDEO: the layout says where the objects are; --label renames them
    assert _run("--layout", str(lay), "-o", str(out), "--format", "binaural", "--label",
                "horn", "--source", f"horn={wav}", "--truth", str(truth)) == 0
    t = json.loads(truth.read_text())
    assert t["found_by"] == "layout" and [s["name"] for s in t["sources"]] == ["horn"]
    assert t["sources"][0]["motion"] == "right_to_left"
    y, _ = read_audio(out)
    spec = np.abs(np.fft.rfft(y[0]))
    assert abs(np.argmax(spec) * SR / (2 * (len(spec) - 1)) - 500.0) < 5.0


# --------------------------------------------------------------------------- bad input
def test_video_without_objects_exits_2_without_output(tmp_path, capsys):
    video = _write_video(tmp_path / "empty.mp4", _frames([]))
    outs = [tmp_path / "o.wav", tmp_path / "o.json", tmp_path / "o.mp4"]
    assert _run(str(video), "-o", str(outs[0]), "--format", "binaural", "--layout-out",
                str(outs[1]), "--mux", str(outs[2])) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "empty.mp4" in err and "no object was found" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.mp4"]


def test_bad_options_exit_2_before_any_work(tmp_path, capsys, generated):
    video = str(generated["left_to_right"]["video"])
    out = str(tmp_path / "o.wav")
    keep = tmp_path / "keep.wav"
    keep.write_text("keep")
    cases = [
        ([video, "-o", out, "--format", "binaural", "--source", "car=missing.wav"],
         "missing.wav"),
        ([video, "-o", out, "--format", "binaural", "--label", "car", "--source",
          f"dog={video}"], "no object is named 'dog'"),
        ([video, "-o", str(keep), "--format", "binaural"], "--overwrite"),
        (["-o", out, "--format", "binaural"], "give a VIDEO"),
        (["--layout", video, "-o", out, "--format", "binaural", "--mux",
          str(tmp_path / "m.mp4")], "--mux needs the VIDEO"),
        ([video, "-o", out, "--format", "binaural", "--mux", str(tmp_path / "m.wav")],
         "--mux must be"),
        ([video, "-o", out, "--format", "foa", "--hrtf", video], "--hrtf applies"),
        ([video, "-o", out, "--format", "binaural", "--truth", out], "same file"),
        ([video, "-o", out, "--format", "binaural", "--detector", str(tmp_path)],
         "missing config.json"),
        ([video, "-o", out, "--format", "binaural", "--threshold", "2"], "--threshold"),
        ([str(tmp_path / "nope.mp4"), "-o", out, "--format", "binaural"], "no such file"),
    ]
    for args, expect in cases:
        assert _run(*args) == 2, args
        err = capsys.readouterr().err.strip()
        assert expect in err and len(err.splitlines()) == 1, (args, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.wav"]
    assert keep.read_text() == "keep"


def test_text_to_audio_model(tmp_path, generated, capsys):
    out = tmp_path / "t.wav"
    args = [str(generated["approaching"]["video"]), "-o", str(out), "--format", "binaural",
            "--label", "car", "--model", "tiny", "--steps", "2"]
    if importlib.util.find_spec("generators.audio.t2a") is None:
        assert _run(*args) == 2
        assert "no text-to-audio model is available" in capsys.readouterr().err
        assert not out.exists()
    else:
        assert _run(*args) == 0
        assert read_audio(out)[0].shape[0] == 2


# --------------------------------------------------------------------------- detector
def test_link_detections_follows_objects_across_class_flips():
    times = np.arange(24) / 8.0
    dets = []
    for i in range(24):
        u = i / 23
        big = (0.1 + 0.6 * u, 0.3, 0.3 + 0.6 * u, 0.7)  # moving right, class 0 mostly
        small = (0.8 - 0.5 * u, 0.1, 0.9 - 0.5 * u, 0.2)  # moving left, class 2
        dets.append([(1 if i % 5 == 0 else 0, big), (2, small)] if i != 7 else [(2, small)])
    tracks = link_detections(dets, times, size=(320, 180))
    assert len(tracks) == 2
    big, small = tracks
    assert big.meta == {"cue": "detector", "query": 0} and small.meta["query"] == 2
    assert big.active.all()  # the frame it was missed in is bridged
    assert big.labels()[1] == "left_to_right" and small.labels()[1] == "right_to_left"
    assert link_detections([[]] * 24, times, size=(320, 180)) == []


def test_tiny_detector_end_to_end(tmp_path, generated):
    from spa2v.owlvit import OwlVitDetector

    det = OwlVitDetector.load("tiny")
    frames, _ = read_video(generated["left_to_right"]["video"])
    found = det.detect(frames[::6], ["a photo of a car", "a photo of a dog"], threshold=0.0,
                       max_per_frame=3)
    assert len(found) == 6 and all(1 <= len(f) <= 3 for f in found)
    for f in found:
        for d in f:
            assert d.query in (0, 1) and 0.0 <= d.score <= 1.0
            assert 0.0 <= d.box[0] < d.box[2] <= 1.0 and 0.0 <= d.box[1] < d.box[3] <= 1.0
    ckpt = det.save_pretrained(tmp_path / "owl")
    again = OwlVitDetector.load(ckpt).detect(frames[::6], ["a photo of a car",
                                                           "a photo of a dog"], threshold=0.0,
                                              max_per_frame=3)
    assert [[(d.query, round(d.score, 4)) for d in f] for f in again] == \
        [[(d.query, round(d.score, 4)) for d in f] for f in found]
    out, lay = tmp_path / "d.wav", tmp_path / "d.json"
    assert _run(str(generated["left_to_right"]["video"]), "-o", str(out), "--format",
                "binaural", "--detector", str(ckpt), "--label", "car", "--label", "dog",
                "--threshold", "0", "--layout-out", str(lay)) == 0
    layout = load_layout(lay)
    assert layout.meta["from"] == "spa2v.video2audio (detector)"
    assert layout.objects and {o.name for o in layout.objects} <= {"car", "dog"}
    assert read_audio(out)[0].shape[0] == 2


def test_cut_boxes_keep_their_height_and_parts_join_their_object():
    from spa2v.video2audio import hold_cut_sizes, merge_parts
    from spa2v.visual import VisualTrack

    t = np.arange(6) / 4.0
    # a car driving in from the left edge: only its lower front is seen at first
    boxes = np.array([[0.0, 0.60, 0.05, 0.70], [0.0, 0.55, 0.15, 0.75], [0.05, 0.5, 0.35, 0.8],
                      [0.2, 0.5, 0.5, 0.8], [0.35, 0.5, 0.65, 0.8], [0.5, 0.5, 0.8, 0.8]])
    car = VisualTrack(0, t, boxes, 0.5 * (boxes[:, :2] + boxes[:, 2:]), np.ones(6, bool))
    held = hold_cut_sizes(car)
    assert np.allclose(held.boxes[:, 3] - held.boxes[:, 1], 0.3)
    assert np.allclose(held.boxes[:, [0, 2]], boxes[:, [0, 2]])  # only the height changes
    assert np.allclose(held.boxes[:2, [1, 3]], [[0.5, 0.8], [0.5, 0.8]])  # about its centre
    # a light on its roof, centred just above the box, moves with it: a part of the car;
    # a dog elsewhere is not
    light = boxes[:, [0, 1, 0, 1]] + [0.02, -0.03, 0.06, 0.01]
    dog = np.tile([0.85, 0.7, 0.95, 0.8], (6, 1))
    tracks = [car, VisualTrack(1, t, light, 0.5 * (light[:, :2] + light[:, 2:]),
                               np.ones(6, bool)),
              VisualTrack(2, t, dog, 0.5 * (dog[:, :2] + dog[:, 2:]), np.ones(6, bool))]
    kept = merge_parts(tracks)
    assert [k.id for k in kept] == [0, 1] and kept[1].boxes[0, 0] == 0.85
    assert not kept[0].overlapped.any()  # nothing left that hides the car's size
