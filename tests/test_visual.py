"""The visual tracker on drawn frames and on real animatic videos (no learned detector)."""

from __future__ import annotations

import numpy as np
import pytest

from generators.video.animatic import AnimaticRenderer
from spa2v.conventions import CROSSING_MIN_SWEEP_DEG, Camera
from spa2v.errors import InputError
from spa2v.layout import layout_from_dict
from spa2v.video import write_mp4
from spa2v.visual import (
    cut_at_side,
    endpoint_change,
    track_labels,
    track_objects,
    visual_tracks_to_layout,
)

W, H, FPS = 256, 144, 12


def scenery(rng: np.random.Generator, n: int) -> np.ndarray:
    """Muted scenery: a sky-to-ground gradient with a fixed texture and a little sensor noise."""
    y = np.linspace(0.0, 1.0, H)[:, None, None]
    base = (1 - y) * np.array([170, 178, 190]) + y * np.array([110, 120, 100])
    texture = rng.normal(0.0, 6.0, (H, W, 1))
    frames = base[None] + texture[None] + rng.normal(0.0, 2.0, (n, H, W, 1))
    return np.clip(frames, 0, 255).astype(np.uint8)


def draw_box(frame: np.ndarray, cx: float, cy: float, w: float, h: float, rgb) -> None:
    x1, x2 = int(round((cx - w / 2) * W)), int(round((cx + w / 2) * W))
    y1, y2 = int(round((cy - h / 2) * H)), int(round((cy + h / 2) * H))
    frame[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = rgb
    frame[max(y1, 0):max(y2, 0), max(x1, 0):max(x1 + 2, 0)] = (30, 30, 30)  # an outline


def test_static_object_in_left_third_found_there(rng):
    frames = scenery(rng, 24)
    for f in frames:
        draw_box(f, 0.18, 0.6, 0.12, 0.2, (30, 90, 235))
    tracks = track_objects(frames, FPS)
    assert len(tracks) == 1
    tr = tracks[0]
    assert tr.active.all()
    assert np.nanmedian(tr.centers[:, 0]) == pytest.approx(0.18, abs=0.02)
    assert np.nanmedian(tr.centers[:, 1]) == pytest.approx(0.6, abs=0.02)
    position, motion = tr.labels(Camera())
    assert (position, motion) == ("left", "static")


def test_approaching_object_box_grows(rng):
    frames = scenery(rng, 36)
    for i, f in enumerate(frames):
        s = 0.06 + 0.2 * i / 35
        draw_box(f, 0.6, 0.6, 1.4 * s, s, (240, 200, 0))
    tr = track_objects(frames, FPS)[0]
    h = tr.heights()
    assert h[-1] >= 3.0 * h[0]
    assert tr.labels()[1] == "approaching"


def test_object_approaching_at_the_picture_side_is_not_crossing(rng):
    """The box is cut by the right edge all along: as it grows, its visible part's centre
    moves left by more than a crossing's 30 degrees of azimuth.  The cut boxes' centres
    are not the object's, so no sweep is read from them."""
    frames = scenery(rng, 36)
    for i, f in enumerate(frames):
        s = 0.1 + 0.7 * i / 35
        draw_box(f, 0.97, 0.5, 1.4 * s, s, (240, 200, 0))
    tr = track_objects(frames, FPS)[0]
    sweep = endpoint_change(tr.azimuth_deg(Camera()), tr.active)
    assert sweep > CROSSING_MIN_SWEEP_DEG  # the visible centre does move
    assert tr.labels() == ("right", "approaching")


def test_an_object_near_enough_to_span_the_picture_gives_no_sweep():
    """An approaching plane at the right side: its box is cut by the right edge, and in the
    last frames it spans the picture (cut by both sides), whose centre is the picture's.
    The sweep from a cut box's centre to the picture's read right_to_left (round trip,
    hold-out seed 7 scene 38)."""
    x1 = np.array([0.59, 0.56, 0.53, 0.49, 0.46, 0.42, 0.36, 0.29, 0.21, 0.15, 0.07, 0.0, 0.0])
    y1 = np.maximum(0.0, 0.24 - 0.05 * np.arange(13))
    boxes = np.stack([x1, y1, np.ones(13), 0.44 + 0.02 * np.arange(13)], axis=1)
    cut = cut_at_side(boxes)
    assert cut.tolist() == [1] * 11 + [2, 2]
    cam = Camera()
    az = cam.x_to_azimuth(0.5 * (boxes[:, 0] + boxes[:, 2]))
    size = boxes[:, 3] - boxes[:, 1]
    active = np.ones(13, dtype=bool)
    assert track_labels(az, size, active) == ("right", "right_to_left")  # the centres alone
    assert track_labels(az, size, active, cut) == ("right", "approaching")
    # one approaching left of the centre that ends spanning the picture: its centre jumps
    # to the picture's (37 -> 0 degrees) in the last frames
    x_c = np.where(np.arange(13) < 10, 0.2, 0.5)
    half = np.where(np.arange(13) < 10, 0.02 + 0.01 * np.arange(13), 0.5)
    left = np.stack([x_c - half, 0.4 - half, x_c + half, 0.4 + half], axis=1)
    cut = cut_at_side(left)
    assert cut.tolist() == [0] * 10 + [2] * 3
    az = cam.x_to_azimuth(x_c)
    size = left[:, 3] - left[:, 1]
    assert track_labels(az, size, active)[1] == "left_to_right"
    assert track_labels(az, size, active, cut)[1] == "approaching"


def test_object_crossing_through_the_picture_sides_is_crossing(rng):
    """Cut by the left edge as it enters and by the right as it leaves: a crossing."""
    frames = scenery(rng, 36)
    for i, f in enumerate(frames):
        draw_box(f, -0.05 + 1.1 * i / 35, 0.5, 0.2, 0.15, (30, 90, 235))
    tr = track_objects(frames, FPS)[0]
    assert tr.labels()[1] == "left_to_right"


def test_grey_mover_found_by_background_subtraction(rng):
    """No colourful pixel at all: only the motion cue can find it."""
    frames = scenery(rng, 36)
    xs = np.linspace(0.85, 0.15, 36)
    for f, x in zip(frames, xs, strict=True):
        draw_box(f, x, 0.65, 0.1, 0.16, (40, 40, 40))
    tracks = track_objects(frames, FPS)
    assert len(tracks) == 1 and tracks[0].meta["cue"] == "motion"
    tr = tracks[0]
    assert tr.color_rgb is None
    assert np.nanmean(np.abs(tr.centers[:, 0] - xs)) < 0.03
    assert tr.labels()[1] == "right_to_left"
    assert track_objects(frames, FPS, use_motion=False) == []


def test_two_objects_crossing_keep_their_identity(rng):
    frames = scenery(rng, 48)
    t = np.linspace(0.0, 1.0, 48)
    red_x, blue_x = 0.1 + 0.8 * t, 0.9 - 0.8 * t
    for f, rx, bx in zip(frames, red_x, blue_x, strict=True):
        draw_box(f, bx, 0.62, 0.14, 0.2, (25, 95, 235))
        draw_box(f, rx, 0.6, 0.12, 0.16, (230, 30, 45))
    tracks = track_objects(frames, FPS)
    assert len(tracks) == 2
    by_colour = {("red" if tr.color_rgb[0] > 150 else "blue"): tr for tr in tracks}
    assert set(by_colour) == {"red", "blue"}
    for name, xs in (("red", red_x), ("blue", blue_x)):
        tr = by_colour[name]
        assert tr.active.mean() > 0.9
        err = np.abs(tr.centers[:, 0] - xs)
        assert np.nanmedian(err) < 0.02
    assert by_colour["red"].labels()[1] == "left_to_right"
    assert by_colour["blue"].labels()[1] == "right_to_left"


def test_no_frames_is_bad_input():
    with pytest.raises(InputError, match="no frames"):
        track_objects(np.zeros((0, H, W, 3), np.uint8), FPS)
    with pytest.raises(InputError, match="fps"):
        track_objects(np.zeros((3, H, W, 3), np.uint8))


def test_animatic_video_tracks_follow_layout(tmp_path):
    """Render a real layout (a car crossing, a dog standing right) through H.264 and back."""
    times = np.arange(13) / 4.0
    frames = []
    for t in times:
        cx = 0.15 + 0.7 * t / 3.0
        frames.append({"t": float(t), "boxes": [
            {"id": 1, "box": [0.7, 0.5, 0.86, 0.72]},
            {"id": 0, "box": [round(cx - 0.13, 4), 0.5, round(cx + 0.13, 4), 0.75]},
        ]})
    layout = layout_from_dict({
        "version": 1, "duration": 3.0, "fps": 4, "caption": "a car passes a dog",
        "background": "street", "objects": [{"id": 0, "name": "car"}, {"id": 1, "name": "dog"}],
        "frames": frames})
    video = AnimaticRenderer().render(layout, tmp_path / "v.mp4", fps=FPS, size=(W, H))
    tracks = track_objects(video)
    assert len(tracks) == 2
    car = min(tracks, key=lambda tr: np.nanmean(tr.centers[:36, 0]))
    dog = max(tracks, key=lambda tr: np.nanmean(tr.centers[:12, 0]))
    assert car.labels()[1] == "left_to_right" and dog.labels() == ("right", "static")
    truth, _ = layout.track(0, car.times)
    truth_x = 0.5 * (truth[:, 0] + truth[:, 2])
    assert np.nanmedian(np.abs(car.centers[:, 0] - truth_x)) < 0.02
    assert np.nanmedian(dog.centers[:, 0]) == pytest.approx(0.78, abs=0.02)

    back = visual_tracks_to_layout([car, dog], 3.0, 4.0, names=["car", "dog"])
    assert [o.name for o in back.objects] == ["car", "dog"]
    assert len(back.frames) == 12
    car_x = [0.5 * (b.box[0] + b.box[2]) for f in back.frames for b in f.boxes if b.id == 0]
    dog_x = [0.5 * (b.box[0] + b.box[2]) for f in back.frames for b in f.boxes if b.id == 1]
    assert len(car_x) == 12 and np.all(np.diff(car_x) > 0)
    assert car_x[0] == pytest.approx(0.15, abs=0.03)
    assert np.median(dog_x) == pytest.approx(0.78, abs=0.02)
    assert "left_to_right" in back.objects[0].description


def test_empty_video_file_is_bad_input(tmp_path):
    path = tmp_path / "five.mp4"
    write_mp4(path, [np.zeros((H, W, 3), np.uint8)] * 5, fps=FPS, size=(W, H))
    data = path.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: data.find(b"mdat") + 4])  # header only, no frame data
    with pytest.raises(InputError, match="truncated.mp4"):
        track_objects(truncated)
