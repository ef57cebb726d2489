"""The animatic renderer: objects follow their boxes in the decoded video, determinism,
icons for every class, overlay, backgrounds that never contain an object colour."""

from __future__ import annotations

import numpy as np
import pytest

from generators.video.animatic import PALETTE, AnimaticRenderer, object_color
from generators.video.backgrounds import SCENES, draw_background, scene_kind
from generators.video.icons import ICONS, render_icon
from spa2v.classes import SOUND_CLASSES, lookup
from spa2v.errors import InputError
from spa2v.layout import layout_from_dict
from spa2v.video import probe_video, read_video

W, H = 512, 288
COLOR_TOL = 60.0  # RGB distance that still counts as the object's colour after H.264


def scene(
    duration_s=2.0,
    *,
    moving="car",
    still="person",
    direction=1,
    background="street",
    keyframe_fps=4,
):
    """A crossing object (id 0) and a static one (id 1, drawn behind it)."""
    frames = []
    n = int(round(duration_s * keyframe_fps)) + 1
    for k in range(n):
        t = k / keyframe_fps
        a = t / duration_s if direction > 0 else 1.0 - t / duration_s
        x = 0.02 + 0.70 * a
        frames.append(
            {
                "t": t,
                "caption": f"keyframe {k}",
                "boxes": [
                    {"id": 1, "box": [0.60, 0.40, 0.70, 0.80]},
                    {"id": 0, "box": [x, 0.56, x + 0.26, 0.86]},
                ],
            }
        )
    return layout_from_dict(
        {
            "version": 1,
            "duration": duration_s,
            "fps": keyframe_fps,
            "caption": "test scene",
            "background": background,
            "objects": [{"id": 0, "name": moving}, {"id": 1, "name": still}],
            "frames": frames,
        }
    )


def single(name: str, box=(0.3, 0.3, 0.7, 0.8), background="default"):
    return layout_from_dict(
        {
            "version": 1,
            "duration": 0.5,
            "fps": 2,
            "caption": name,
            "background": background,
            "objects": [{"id": 0, "name": name}],
            "frames": [{"t": 0.0, "boxes": [{"id": 0, "box": list(box)}]}],
        }
    )


def color_mask(frame: np.ndarray, color) -> np.ndarray:
    return (
        np.linalg.norm(frame.astype(np.float32) - np.asarray(color, np.float32), axis=-1)
        < COLOR_TOL
    )


def first_frame(layout, **kw) -> np.ndarray:
    kw.setdefault("fps", 4)
    kw.setdefault("size", (W, H))
    return next(iter(AnimaticRenderer().frames(layout, **kw)))


@pytest.mark.parametrize("direction", [1, -1])
@pytest.mark.parametrize(
    ("moving", "still"), [("car", "person"), ("dog", "piano"), ("truck", "guitar")]
)
def test_objects_follow_their_boxes_in_the_decoded_video(tmp_path, direction, moving, still):
    layout = scene(moving=moving, still=still, direction=direction)
    fps = 12
    out = AnimaticRenderer().render(layout, tmp_path / "clip.mp4", fps=fps)
    frames, got_fps = read_video(out)
    times = layout.frame_times(fps)
    assert got_fps == pytest.approx(fps) and len(frames) == len(times) == 24
    for index, oid in ((0, 0), (1, 1)):
        boxes, visible = layout.track(oid, times)
        centers = []
        for i in (0, 6, 12, 18, 23):
            mask = color_mask(frames[i], object_color(index))
            assert visible[i] and mask.sum() > 200, f"object {oid} not found in frame {i}"
            ys, xs = np.nonzero(mask)
            x1, y1, x2, y2 = boxes[i] * [W, H, W, H]
            assert abs(xs.mean() - 0.5 * (x1 + x2)) < 0.03 * W
            assert y1 - 2 <= ys.mean() <= y2 + 2
            centers.append(xs.mean())
        if index == 0:  # the crossing object really crosses
            assert direction * (centers[-1] - centers[0]) > 0.5 * W
        else:
            assert np.ptp(centers) < 0.02 * W  # moves only where the crossing object hides it


def test_frame_count_and_size_follow_the_request(tmp_path):
    layout = scene(duration_s=2.5)
    sr = 22050
    audio = 0.1 * np.random.default_rng(0).standard_normal((2, 3 * sr)).astype(np.float32)
    out = AnimaticRenderer().render(
        layout, tmp_path / "c.mp4", fps=10, size=(320, 180), audio=(audio, sr)
    )
    info = probe_video(out)
    assert info["frames"] == 25 and (info["width"], info["height"]) == (320, 180)
    assert abs(info["audio_duration"] - 2.5) <= 0.1
    assert info["audio_codec"] == "aac"


def test_same_seed_gives_identical_frames_and_other_seed_another_background(tmp_path):
    r = AnimaticRenderer()
    layout = scene(duration_s=1.0)
    a = np.stack(list(r.frames(layout, fps=8, size=(W, H), seed=3)))
    b = np.stack(list(r.frames(layout, fps=8, size=(W, H), seed=3)))
    assert np.array_equal(a, b)
    fa, _ = read_video(r.render(layout, tmp_path / "a.mp4", fps=8, seed=3))
    fb, _ = read_video(r.render(layout, tmp_path / "b.mp4", fps=8, seed=3))
    assert np.array_equal(fa, fb)
    c = np.stack(list(r.frames(layout, fps=8, size=(W, H), seed=4)))
    top = (slice(None), slice(0, H // 3))  # the sky and buildings, above every object
    changed = np.any(a[top] != c[top], axis=-1).mean()
    assert changed > 0.2


@pytest.mark.parametrize("kind", SCENES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_backgrounds_never_contain_an_object_colour(kind, seed):
    bg = draw_background(kind, (W, H), seed).astype(np.float32)
    palette = np.asarray(PALETTE, np.float32)
    d = np.linalg.norm(bg[:, :, None, :] - palette[None, None], axis=-1)
    assert d.min() > COLOR_TOL + 10


@pytest.mark.parametrize("kind", SCENES)
def test_backgrounds_differ_by_scene_and_seed(kind):
    a = draw_background(kind, (W, H), 0)
    assert a.shape == (H, W, 3) and a.dtype == np.uint8
    assert np.array_equal(a, draw_background(kind, (W, H), 0))
    assert not np.array_equal(a, draw_background(kind, (W, H), 1))
    others = [k for k in SCENES if k != kind]
    for other in others:
        assert np.abs(a.astype(int) - draw_background(other, (W, H), 0)).mean() > 5


@pytest.mark.parametrize(
    ("keyword", "kind"),
    [
        ("street", "street"),
        ("a busy city road", "street"),
        ("living room", "indoor"),
        ("forest clearing", "nature"),
        ("clear sky", "sky"),
        ("concert stage", "stage"),
        ("", "default"),
        (None, "default"),
        ("somewhere odd", "default"),
    ],
)
def test_scene_kind(keyword, kind):
    assert scene_kind(keyword) == kind


def test_palette_colours_are_distinct():
    p = np.asarray(PALETTE, np.float32)
    d = np.linalg.norm(p[:, None] - p[None], axis=-1) + np.eye(len(p)) * 1e3
    assert d.min() >= 70
    assert object_color(0) == object_color(len(PALETTE))


@pytest.mark.parametrize("cls", SOUND_CLASSES, ids=lambda c: c.name)
def test_every_class_icon_renders_and_differs_from_generic(cls):
    assert cls.icon in ICONS
    sprite = render_icon(cls.icon, object_color(0))
    generic = render_icon("generic", object_color(0))
    assert sprite.shape[2] == 4 and (sprite[..., 3] == 255).mean() > 0.1
    frame = first_frame(single(cls.name))
    frame_generic = first_frame(single("zzz unknown"))
    x1, y1, x2, y2 = int(0.3 * W), int(0.3 * H), int(0.7 * W), int(0.8 * H)
    crop, crop_generic = frame[y1:y2, x1:x2], frame_generic[y1:y2, x1:x2]
    assert np.any(crop != crop_generic, axis=-1).mean() > 0.05
    assert color_mask(crop, object_color(0)).sum() > 150
    assert generic.shape != sprite.shape or not np.array_equal(generic, sprite)


def test_unknown_label_draws_the_generic_icon():
    assert lookup("flibbertigibbet").icon == "generic"
    a = first_frame(single("flibbertigibbet"))
    b = first_frame(single("sound source"))
    car = first_frame(single("car"))
    box = (slice(int(0.3 * H), int(0.8 * H)), slice(int(0.3 * W), int(0.7 * W)))
    assert np.array_equal(a[box], b[box])  # labels differ, but they lie below the box
    assert not np.array_equal(a[box], car[box])


def test_overlay_draws_the_box_outline():
    layout = scene(duration_s=1.0)
    plain = first_frame(layout)
    over = first_frame(layout, overlay=True)
    boxes, _ = layout.track(1, [0.0])
    x1, y1, x2, y2 = (int(round(v)) for v in boxes[0] * [W, H, W, H])
    left_edge = np.any(plain[y1 + 20 : y2 - 5, x1] != over[y1 + 20 : y2 - 5, x1], axis=-1).mean()
    top_edge = np.any(plain[y1, x1:x2] != over[y1, x1:x2], axis=-1).mean()
    assert left_edge > 0.8 and top_edge > 0.8
    assert np.array_equal(plain[: y1 - 30, x2 + 40 :], over[: y1 - 30, x2 + 40 :])


def test_hidden_objects_are_not_drawn():
    layout = layout_from_dict(
        {
            "version": 1,
            "duration": 2.0,
            "fps": 1,
            "caption": "",
            "background": "nature",
            "objects": [{"id": 0, "name": "bird"}],
            "frames": [
                {"t": 0.0, "boxes": [{"id": 0, "box": [0.4, 0.1, 0.6, 0.3]}]},
                {"t": 1.0, "boxes": []},
                {"t": 2.0, "boxes": []},
            ],
        }
    )
    frames = list(AnimaticRenderer().frames(layout, fps=4, size=(W, H)))
    assert color_mask(frames[0], object_color(0)).sum() > 100
    assert color_mask(frames[-1], object_color(0)).sum() == 0


@pytest.mark.parametrize(
    "box",
    [(0.0, 0.5, 0.3, 1.0), (0.75, 0.0, 1.0, 0.3), (0.0, 0.0, 1.0, 1.0), (0.5, 0.5, 0.501, 0.501)],
)
def test_boxes_at_the_edges_and_tiny_boxes_render(box):
    frame = first_frame(single("helicopter", box=box, background="sky"))
    assert frame.shape == (H, W, 3)


def test_render_refuses_existing_output_and_bad_sizes(tmp_path):
    out = tmp_path / "x.mp4"
    out.write_bytes(b"keep")
    r = AnimaticRenderer()
    with pytest.raises(InputError, match="exists"):
        r.render(scene(duration_s=1.0), out)
    assert out.read_bytes() == b"keep"
    with pytest.raises(InputError, match="even"):
        r.render(scene(duration_s=1.0), tmp_path / "odd.mp4", size=(511, 288))
    with pytest.raises(InputError, match="too small"):
        first_frame(scene(duration_s=1.0), size=(8, 8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.mp4"]


def test_render_accepts_a_layout_file_and_a_dict(tmp_path):
    import json

    d = scene(duration_s=1.0).to_dict()
    path = tmp_path / "layout.json"
    path.write_text(json.dumps(d))
    r = AnimaticRenderer()
    from_file = list(r.frames(path, fps=4, size=(128, 72)))
    from_dict = list(r.frames(d, fps=4, size=(128, 72)))
    assert len(from_file) == 4
    assert all(np.array_equal(a, b) for a, b in zip(from_file, from_dict, strict=True))


@pytest.mark.parametrize("moving", ["car", "truck", "dog"])
def test_moving_objects_face_their_direction(moving):
    r = AnimaticRenderer()
    right = list(
        r.frames(scene(direction=1, moving=moving, background="default"), fps=12, size=(W, H))
    )
    left = list(
        r.frames(scene(direction=-1, moving=moving, background="default"), fps=12, size=(W, H))
    )
    # at t = 1 s both cars are in the same box: one is the mirror image of the other
    boxes, _ = scene().track(0, [1.0])
    cx = int(round(0.5 * (boxes[0, 0] + boxes[0, 2]) * W))
    crop = (slice(None), slice(cx - W // 5, cx + W // 5))
    mr = color_mask(right[12], object_color(0))[crop]
    ml = color_mask(left[12], object_color(0))[crop]

    def iou(a, b):
        return (a & b).sum() / (a | b).sum()

    assert iou(ml, mr[:, ::-1]) > 0.88
    assert iou(ml, mr[:, ::-1]) > iou(ml, mr) + 0.05


@pytest.mark.parametrize(
    ("name", "animated"),
    [("bird", True), ("helicopter", True), ("piano", False), ("guitar", False)],
)
def test_clock_animations(name, animated):
    frames = list(AnimaticRenderer().frames(single(name), fps=16, size=(W, H)))
    masks = [color_mask(f, object_color(0)) for f in frames[:4]]
    changed = max(int((masks[0] != m).sum()) for m in masks[1:])
    assert (changed > 20) == animated
