"""Tests for the Video Scene Layout (spa2v.layout)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from spa2v.conventions import Camera
from spa2v.errors import InputError
from spa2v.layout import (
    CameraSpec,
    LayoutBox,
    LayoutFrame,
    LayoutObject,
    SceneLayout,
    clamp_box,
    layout_from_dict,
    layout_json_schema,
    load_layout,
    parse_text,
    save_layout,
    to_pixel_boxes,
    to_text,
)


def _example() -> SceneLayout:
    """Car crossing left to right; a dog appears in the last two keyframes."""
    frames = []
    for k in range(5):
        x1 = 0.02 + 0.15 * k
        boxes = [LayoutBox(id=0, box=(x1, 0.55, x1 + 0.25, 0.80))]
        if k >= 3:
            boxes.insert(0, LayoutBox(id=1, box=(0.70, 0.60, 0.80, 0.70)))
        frames.append(LayoutFrame(t=k * 0.5, caption=f"Frame number {k}.", boxes=boxes))
    return SceneLayout(
        duration=2.5,
        fps=2.0,
        caption="A car drives past from left to right; a dog barks.",
        background="street",
        camera=CameraSpec(projection="sine"),
        objects=[
            LayoutObject(id=0, name="car", description="a red hatchback", source=0),
            LayoutObject(id=1, name="dog", source=1),
        ],
        frames=frames,
        planner="test",
    )


def _good_dict() -> dict:
    return json.loads(_example().model_dump_json())


# --------------------------------------------------------------------------- schema and JSON
def test_schema_export_lists_the_contract_fields():
    schema = layout_json_schema()
    json.dumps(schema)  # serialisable
    assert set(schema["required"]) >= {"duration", "fps", "caption", "objects", "frames"}
    assert {"version", "camera", "background", "planner", "meta"} <= set(schema["properties"])
    box_schema = schema["$defs"]["LayoutBox"]["properties"]["box"]
    assert box_schema["type"] == "array" and len(box_schema["prefixItems"]) == 4


def test_json_round_trip(tmp_path: Path):
    layout = _example()
    out = tmp_path / "layout.json"
    save_layout(layout, out)
    again = load_layout(out)
    assert again == layout
    data = json.loads(out.read_text())
    assert data["version"] == 1 and data["frames"][0]["boxes"][0]["id"] == 0
    # the box is written on one line
    assert '"box": [0.02, 0.55, 0.27, 0.8]' in out.read_text()
    assert list(tmp_path.iterdir()) == [out]


def test_save_refuses_to_overwrite_unless_asked(tmp_path: Path):
    out = tmp_path / "layout.json"
    save_layout(_example(), out)
    other = _example().model_copy(update={"caption": "Changed."})
    with pytest.raises(InputError, match="already exists"):
        save_layout(other, out)
    assert load_layout(out).caption != "Changed."
    save_layout(other, out, overwrite=True)
    assert load_layout(out).caption == "Changed."
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layout.json"]


def test_design_example_validates():
    d = {
        "version": 1, "duration": 4.0, "fps": 4,
        "caption": "A car drives past from left to right on a quiet street.",
        "background": "street", "camera": {"projection": "sine", "hfov_deg": 90.0},
        "objects": [{"id": 0, "name": "car", "description": "a red hatchback", "source": 0}],
        "frames": [
            {"t": 0.0, "caption": "A car enters from the left.",
             "boxes": [{"id": 0, "box": [0.02, 0.55, 0.27, 0.80]}]},
            {"t": 0.25, "caption": "...", "boxes": [{"id": 0, "box": [0.06, 0.55, 0.31, 0.80]}]},
        ],
    }
    layout = layout_from_dict(d)
    assert layout.camera.to_camera() == Camera("sine", 90.0)
    assert layout.frames[1].boxes[0].box == (0.06, 0.55, 0.31, 0.80)


def _mutate(path: str, value=None, delete: bool = False) -> dict:
    d = _good_dict()
    *parents, last = path.split("/")
    node = d
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    key = int(last) if last.isdigit() else last
    if delete:
        del node[key]
    else:
        node[key] = value
    return d


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_mutate("fps", delete=True), "layout.json: fps: missing required field"),
        (_mutate("duration", "long"), "layout.json: duration: input should be a valid number"),
        (_mutate("frames/3/boxes/1/box", [0.5, 0.55, 0.2, 0.8]),
         "layout.json: frames[3].boxes[1].box: x2 must be greater than x1"),
        (_mutate("frames/0/boxes/0/box", [0.1, 0.9, 0.2, 0.8]),
         "layout.json: frames[0].boxes[0].box: y2 must be greater than y1"),
        (_mutate("frames/2/boxes/0/box", [0.1, 0.5, 1.2, 0.8]),
         "layout.json: frames[2].boxes[0].box: x2 = 1.2 lies outside [0, 1]"),
        (_mutate("frames/1/boxes/0/box", [0.1, 0.5, 0.2]),
         "layout.json: frames[1].boxes[0].box: expected 4 numbers"),
        (_mutate("frames/4/boxes/0/id", 7),
         "layout.json: frames[4].boxes[0].id: box id 7 refers to no object"),
        (_mutate("objects", []), "layout.json: objects: a layout needs at least one object"),
        (_mutate("frames", []), "layout.json: frames: a layout needs at least one frame"),
        (_mutate("frames/2/t", 0.2),
         "layout.json: frames[2].t: frame times must increase strictly"),
        (_mutate("frames/4/t", 3.0), "layout.json: frames[4].t: t = 3 lies after the end"),
        (_mutate("objects/1/id", 0), "layout.json: objects[1].id: object id 0 is used twice"),
        (_mutate("objects/0/name", delete=True),
         "layout.json: objects[0].name: missing required field"),
        (_mutate("camera/projection", "fisheye"), "layout.json: camera.projection: input should be"),
        (_mutate("version", 2), "layout.json: version: input should be 1"),
        (_mutate("frames/0/boxes", "car"), "layout.json: frames[0].boxes: input should be a valid list"),
    ],
)
def test_json_path_error_messages(tmp_path: Path, data: dict, expected: str):
    path = tmp_path / "layout.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as info:
        load_layout(path)
    msg = str(info.value)
    assert msg.startswith(str(tmp_path)), msg
    assert expected in msg, msg
    assert "\n" not in msg


def test_duplicate_box_in_a_frame_is_rejected():
    d = _mutate("frames/0/boxes", [{"id": 0, "box": [0.1, 0.1, 0.2, 0.2]}] * 2)
    with pytest.raises(InputError, match=r"frames\[0\]\.boxes\[1\]\.id: object 0 appears twice"):
        layout_from_dict(d, source_name="reply")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_coordinates_are_rejected(value: float):
    d = _mutate("frames/0/boxes/0/box", [0.1, value, 0.2, 0.8])
    with pytest.raises(InputError, match=r"frames\[0\]\.boxes\[0\]\.box\[1\]: input should be a finite"):
        layout_from_dict(d)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such layout file"),
        ("", "empty"),
        ('{"version": 1,', "not valid JSON (line 1"),
        ("[1, 2, 3]", "expected a JSON object"),
        ("hello there", "not valid JSON"),
    ],
)
def test_unreadable_files(tmp_path: Path, content: str | None, expected: str):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=re.escape(expected)) as info:
        load_layout(path)
    assert str(path) in str(info.value)


def test_layout_from_dict_rejects_non_objects():
    with pytest.raises(InputError, match="reply: expected a JSON object"):
        layout_from_dict([1, 2], source_name="reply")


# --------------------------------------------------------------------------- text form
def test_text_round_trip():
    layout = _example()
    text = to_text(layout)
    assert text.startswith("Video caption: A car drives past")
    assert "Frame 1:\nLayout: [{id: 0, name: car, box: [0.020, 0.550, 0.270, 0.800]}]" in text
    back = parse_text(text, fps=layout.fps, duration=layout.duration)
    assert back.caption == layout.caption
    assert [(o.id, o.name) for o in back.objects] == [(0, "car"), (1, "dog")]
    assert len(back.frames) == len(layout.frames)
    for fa, fb in zip(layout.frames, back.frames, strict=True):
        assert fb.t == pytest.approx(fa.t)
        assert fb.caption == fa.caption
        assert [b.id for b in fb.boxes] == [b.id for b in fa.boxes]
        for ba, bb in zip(fa.boxes, fb.boxes, strict=True):
            np.testing.assert_allclose(bb.box, ba.box, atol=5e-4)


@pytest.mark.parametrize("name", ["dog, small", "car {red}", 'the "bird"', "man: tall", "dog's bowl"])
def test_text_round_trip_quotes_awkward_names(name: str):
    layout = _example()
    objects = [layout.objects[0].model_copy(update={"name": name}), layout.objects[1]]
    back = parse_text(to_text(layout.model_copy(update={"objects": objects})), fps=2.0)
    assert back.objects[0].name == name


def test_text_file_is_loaded_by_load_layout(tmp_path: Path):
    path = tmp_path / "layout.txt"
    path.write_text(to_text(_example()))
    layout = load_layout(path, fps=2.0)
    assert len(layout.frames) == 5 and layout.duration == pytest.approx(2.5)


_TOLERANT = [
    # SpA2V's own form, no frame captions
    "Video caption: A dog barks.\nFrame 1:\nLayout: [{id: 0, name: dog, box: [0.1, 0.5, 0.3, 0.8]}]\n"
    "Frame 2:\nLayout: [{id: 0, name: dog, box: [0.2, 0.5, 0.4, 0.8]}]\n",
    # JSON-like quotes, extra spaces, markdown emphasis, a reasoning preface
    "Reasoning: the bark is on the left.\n\n**Video caption:**  A dog barks.\n"
    "**Frame 1:**\n  Layout:  [ { \"id\" : 0 , \"name\" : \"dog\" , \"box\" : [ 0.1 , 0.5 , 0.3 , 0.8 ] } ]\n"
    "Frame caption: \"The dog is on the left.\"\n"
    "**Frame 2:**\nLayout: [{'id': 0, 'name': 'dog', 'box': [0.2, 0.5, 0.4, 0.8]}]\n",
    # layout on the frame line, lower case, list split over lines
    "video caption: A dog barks.\nframe 1: layout: [{id: 0, name: dog,\n box: [0.1, 0.5, 0.3, 0.8]}\n]\n"
    "frame 2: [{box: [0.2, 0.5, 0.4, 0.8], name: dog, id: 0}]\n",
]


@pytest.mark.parametrize("text", _TOLERANT)
def test_tolerant_text_parse(text: str):
    layout = parse_text(text, fps=4.0)
    assert layout.caption == "A dog barks."
    assert [(o.id, o.name) for o in layout.objects] == [(0, "dog")]
    assert [f.t for f in layout.frames] == [0.0, 0.25]
    assert layout.duration == pytest.approx(0.5)
    assert layout.frames[0].boxes[0].box == (0.1, 0.5, 0.3, 0.8)
    assert layout.frames[1].boxes[0].box == (0.2, 0.5, 0.4, 0.8)


def test_text_parse_names_with_spaces_and_empty_frames():
    text = (
        "Video caption: Two things.\nFrame 1:\nLayout: []\nFrame 2:\n"
        "Layout: [{id: 3, name: red car, box: [0.1, 0.5, 0.3, 0.8]}, "
        "{id: 1, name: \"dog, small\", box: [0.5, 0.6, 0.6, 0.7]}]\nFrame caption: Both.\n"
    )
    layout = parse_text(text.replace("red car", "Sam's red car"), fps=2.0, duration=4.0)
    assert [(o.id, o.name) for o in layout.objects] == [(3, "Sam's red car"), (1, "dog, small")]
    assert layout.frames[0].boxes == [] and layout.frames[1].caption == "Both."
    assert layout.duration == 4.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Just a sentence about a car.", "no 'Frame N:' lines found; expected SpA2V's text form"),
        ("Video caption: x\nFrame 1:\nFrame caption: y\n", "Frame 1: no 'Layout: [...]' line"),
        ("Frame 1:\nLayout: [{id: 0, name: car, box: [12, 55, 27, 80]}]\n",
         "Frame 1: object 0: box [12, 55, 27, 80] is not normalised (it looks like percentages"),
        ("Frame 1:\nLayout: [{id: 0, name: car, box: [0.1, 0.5, 0.3]}]\n",
         "box has 3 numbers; expected 4"),
        ("Frame 1:\nLayout: [{name: car, box: [0.1, 0.5, 0.3, 0.6]}]\n", "has no id"),
        ("Frame 1:\nLayout: [{id: 0, name: car, box: [0.3, 0.5, 0.1, 0.6]}]\n",
         "Frame 1.boxes[0].box: x2 must be greater than x1"),
        ("Frame 1:\nLayout: []\n", "objects: a layout needs at least one object"),
        ("Frame 1:\nLayout: [{id: 0, name: car, box: [0.1, 0.5, 0.3, 0.6]}\n",
         "Frame 1: the layout list is not closed"),
        ("Frame 1:\nLayout: car on the left\n", "Frame 1: cannot read the layout"),
    ],
)
def test_invalid_text_explains_what_was_expected(text: str, expected: str):
    with pytest.raises(InputError) as info:
        parse_text(text, source_name="reply.txt")
    assert str(info.value).startswith("reply.txt: ")
    assert expected in str(info.value)


def test_text_frames_beyond_duration_are_rejected():
    text = "".join(
        f"Frame {k}:\nLayout: [{{id: 0, name: car, box: [0.1, 0.5, 0.3, 0.6]}}]\n" for k in (1, 2, 3)
    )
    with pytest.raises(InputError, match="Frame 3.t: t = 1 lies after the end"):
        parse_text(text, fps=2.0, duration=0.75)


# --------------------------------------------------------------------------- interpolation
def _two_key() -> SceneLayout:
    return SceneLayout(
        duration=2.0, fps=1.0, caption="c",
        objects=[LayoutObject(id=0, name="car"), LayoutObject(id=1, name="dog"),
                 LayoutObject(id=2, name="bird")],
        frames=[
            LayoutFrame(t=0.0, boxes=[LayoutBox(id=0, box=(0.0, 0.4, 0.2, 0.6)),
                                      LayoutBox(id=1, box=(0.5, 0.5, 0.7, 0.7))]),
            LayoutFrame(t=1.0, boxes=[LayoutBox(id=0, box=(0.4, 0.4, 0.6, 0.8)),
                                      LayoutBox(id=2, box=(0.1, 0.1, 0.2, 0.2))]),
        ],
    )


def test_track_interpolates_linearly_between_keyframes():
    boxes, visible = _two_key().track(0, [0.0, 0.25, 0.5, 1.0])
    assert visible.all()
    np.testing.assert_allclose(boxes[1], [0.1, 0.4, 0.3, 0.65])
    np.testing.assert_allclose(boxes[2], [0.2, 0.4, 0.4, 0.7])
    np.testing.assert_allclose(boxes[3], [0.4, 0.4, 0.6, 0.8])


def test_track_disappearance_and_appearance_at_the_midpoint():
    layout = _two_key()
    times = [0.0, 0.3, 0.49, 0.5, 0.7, 1.0, 1.5]
    _, dog_visible = layout.track(1, times)  # only in the first keyframe
    np.testing.assert_array_equal(dog_visible, [1, 1, 1, 0, 0, 0, 0])
    bird_boxes, bird_visible = layout.track(2, times)  # only in the second
    np.testing.assert_array_equal(bird_visible, [0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_allclose(bird_boxes[3], [0.1, 0.1, 0.2, 0.2])


def test_track_holds_before_the_first_and_after_the_last_keyframe():
    layout = _example().model_copy(update={"duration": 3.0})
    shifted = [f.model_copy(update={"t": f.t + 0.4}) for f in layout.frames]
    layout = layout.model_copy(update={"frames": shifted})
    boxes, visible = layout.track(0, [0.0, 0.2, 2.4, 2.9])
    assert visible.all()
    np.testing.assert_allclose(boxes[0], layout.frames[0].boxes[0].box)
    np.testing.assert_allclose(boxes[1], layout.frames[0].boxes[0].box)
    np.testing.assert_allclose(boxes[3], layout.frames[-1].boxes[-1].box)
    _, dog_visible = layout.track(1, [0.0, 2.9])  # absent from the first keyframe
    np.testing.assert_array_equal(dog_visible, [False, True])


def test_track_unknown_object():
    with pytest.raises(KeyError):
        _two_key().track(9, [0.0])


@pytest.mark.parametrize(("duration", "fps", "n"), [(2.5, 2.0, 5), (2.5, 24.0, 60), (4.0, 4.0, 16),
                                                    (0.1, 1.0, 1), (2.5, 1.0, 3), (3.5, 1.0, 4)])
def test_frame_times(duration: float, fps: float, n: int):
    layout = _example().model_copy(update={"duration": duration})
    times = layout.frame_times(fps)
    assert len(times) == n
    np.testing.assert_allclose(np.diff(times), 1.0 / fps)
    assert times[0] == 0.0


def test_resample_matches_track_and_keeps_captions():
    layout = _example()
    fine = layout.resample(8.0)
    assert fine.fps == 8.0 and len(fine.frames) == 20
    assert fine.frames[5].caption == "Frame number 1."  # t = 0.625, after keyframe 1 at 0.5
    assert fine.frames[4].caption == "Frame number 1."  # exactly on a keyframe
    times = fine.frame_times(8.0)
    car, _ = layout.track(0, times)
    np.testing.assert_allclose([f.boxes[-1].box for f in fine.frames], car, atol=1e-6)
    dog_frames = [k for k, f in enumerate(fine.frames) if any(b.id == 1 for b in f.boxes)]
    assert dog_frames[0] == 10  # t = 1.25: midpoint of keyframes 2 and 3, nearer 3
    # draw order is kept: the dog is behind the car
    assert [b.id for b in fine.frames[15].boxes] == [1, 0]
    coarse = layout.resample(1.0)
    assert [f.t for f in coarse.frames] == [0.0, 1.0, 2.0]  # 2.5 s at 1 fps rounds up
    assert [len(f.boxes) for f in coarse.frames] == [1, 1, 2]


def test_pixel_boxes():
    layout = _two_key()
    pix = to_pixel_boxes(layout, 200, 100, fps=4.0)
    assert len(pix) == 8
    assert pix[0] == {0: [0, 40, 40, 20], 1: [100, 50, 40, 20]}
    assert pix[2] == {0: [40, 40, 40, 30], 2: [20, 10, 20, 10]}
    assert pix[7] == {0: [80, 40, 40, 40], 2: [20, 10, 20, 10]}


def test_pixel_boxes_are_at_least_one_pixel():
    layout = layout_from_dict(
        {"duration": 1, "fps": 1, "caption": "",
         "objects": [{"id": 0, "name": "bird"}],
         "frames": [{"t": 0, "boxes": [{"id": 0, "box": [0.5, 0.5, 0.501, 0.5001]}]}]}
    )
    assert to_pixel_boxes(layout, 64, 64, fps=1.0) == [{0: [32, 32, 1, 1]}]


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ((-0.1, 0.2, 0.3, 1.4), (0.0, 0.2, 0.3, 1.0)),
        ((0.2, 0.2, 0.3, 0.4), (0.2, 0.2, 0.3, 0.4)),
        ((1.1, 0.2, 1.5, 0.4), None),
        ((-0.5, -0.5, -0.1, 0.5), None),
    ],
)
def test_clamp_box(box, expected):
    assert clamp_box(box) == expected


def test_camera_spec():
    spec = CameraSpec(projection="pinhole", hfov_deg=60.0)
    cam = spec.to_camera()
    assert cam == Camera("pinhole", 60.0)
    assert CameraSpec.from_camera(cam) == spec
    with pytest.raises(ValueError):
        CameraSpec(hfov_deg=180.0)
