"""Reading model replies (planners.mllm.reply): repair, completion, clamping, matching."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from planners.mllm.prompt import FrameRequest, layout_reply
from planners.mllm.reply import Expectation, ReplyError, read_reply, repair_json
from planners.mllm.summary import summarize
from planners.rule import RulePlanner
from spa2v.conventions import Camera
from spa2v.layout import to_text

HOP_S = 0.02
DURATION_S = 4.0


def _analysis() -> dict:
    """Source 0 crosses from +60 to -60 deg; source 1 stays at -45 deg, 6 dB quieter."""
    t = np.arange(0.0, DURATION_S, HOP_S)
    az0 = 60.0 - 120.0 * t / t[-1]

    def src(sid, az, loud):
        az = np.broadcast_to(az, t.shape)
        return {"id": sid, "times": t.round(4).tolist(), "azimuth_deg": az.tolist(),
                "elevation_deg": None, "loudness_db": [loud] * t.size,
                "active": [True] * t.size, "confidence": 0.9}

    return {"format": "binaural", "duration": DURATION_S, "hop_s": HOP_S,
            "sources": [src(0, az0, -30.0), src(1, np.array(-45.0), -36.0)]}


ANALYSIS = _analysis()
SCENE = summarize(ANALYSIS)
EXP = Expectation(SCENE, FrameRequest(DURATION_S, 4.0), Camera(), ["car", "dog"])
GOOD = RulePlanner().plan(ANALYSIS, labels=["car", "dog"])


def good_dict() -> dict:
    return json.loads(layout_reply(GOOD))


def boxes(layout) -> np.ndarray:
    return np.array([[b.box for b in sorted(f.boxes, key=lambda b: b.id)] for f in layout.frames])


@pytest.mark.parametrize(("broken", "expected"), [
    ('{"a": [1, 2, 3,], "b": {"c": 1,},}', {"a": [1, 2, 3], "b": {"c": 1}}),
    ("{'name': 'car', 'ok': True, 'x': None}", {"name": "car", "ok": True, "x": None}),
    ('{id: 0, box: [0.1, 0.2, 0.3, 0.4]}', {"id": 0, "box": [0.1, 0.2, 0.3, 0.4]}),
    ('{"a": 1, // the first\n "b": /* second */ 2}', {"a": 1, "b": 2}),
    ('{"boxes": [{"id": 0} {"id": 1}]}', {"boxes": [{"id": 0}, {"id": 1}]}),
    ('{"a": "x, y: z",\n "b": [1, 2', {"a": "x, y: z", "b": [1, 2]}),
    ('{"a": 1\n "b": 2}', {"a": 1, "b": 2}),
])
def test_repair_json(broken, expected):
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken)
    assert json.loads(repair_json(broken)) == expected


def test_a_valid_reply_keeps_the_model_boxes():
    parsed = read_reply(layout_reply(GOOD), EXP)
    assert parsed.form == "json" and parsed.clamped_boxes == 0
    np.testing.assert_allclose(boxes(parsed.layout), boxes(GOOD), atol=1e-3)
    assert [o.source for o in parsed.layout.objects] == [0, 1]


def test_reasoning_blocks_and_wrappers_are_dropped():
    decoy = json.dumps({"frames": [{"t": 0, "boxes": []}], "objects": []})
    reply = f"<think>Maybe {decoy}? No.</think>\n" + json.dumps({"layout": good_dict()})
    parsed = read_reply(reply, EXP)
    np.testing.assert_allclose(boxes(parsed.layout), boxes(GOOD), atol=1e-3)


def test_repaired_reply_with_python_literals_is_used():
    text = layout_reply(GOOD).replace('"', "'").replace("}]}]", "},]},],")
    assert read_reply(text, EXP).layout.caption == GOOD.caption


def test_missing_fields_are_completed_from_the_request():
    d = good_dict()
    for key in ("version", "duration", "fps", "background"):
        d.pop(key)
    for o in d["objects"]:
        o.pop("source")
    for f in d["frames"]:
        f.pop("t")
        for b in f["boxes"]:
            b["bbox"] = dict(zip(("x1", "y1", "x2", "y2"), b.pop("box"), strict=True))
    layout = read_reply(json.dumps(d), EXP).layout
    assert layout.fps == 4.0 and layout.duration == DURATION_S and layout.background == "default"
    assert [o.source for o in layout.objects] == [0, 1]
    np.testing.assert_allclose(boxes(layout), boxes(GOOD), atol=1e-3)


def test_other_keyframe_rates_are_resampled_to_the_request():
    half = GOOD.resample(2.0)
    layout = read_reply(layout_reply(half), EXP).layout
    assert len(layout.frames) == 16 and layout.fps == 4.0
    np.testing.assert_allclose(layout.keyframe_times, np.arange(16) / 4.0)


def test_one_based_ids_without_sources_map_in_order():
    d = good_dict()
    for o in d["objects"]:
        o["id"] += 1
        o.pop("source")
    for f in d["frames"]:
        for b in f["boxes"]:
            b["id"] += 1
    layout = read_reply(json.dumps(d), EXP).layout
    assert [(o.id, o.source) for o in layout.objects] == [(1, 0), (2, 1)]


def test_text_form_with_boxes_slightly_outside_is_clamped():
    def stretch(m: re.Match) -> str:  # y1 up by 0.6 and y2 down by 0.3: outside the frame
        x1, y1, x2, y2 = (float(v) for v in m.group(1).split(","))
        return f"box: [{x1 - 0.05:.3f}, {y1 - 0.6:.3f}, {x2 + 0.05:.3f}, {y2 + 0.3:.3f}]"

    text = re.sub(r"box: \[([^\]]*)\]", stretch, to_text(GOOD))
    parsed = read_reply("Here you go:\n" + text, EXP)
    assert parsed.form == "text" and [o.name for o in parsed.layout.objects] == ["car", "dog"]
    b = boxes(parsed.layout)
    assert b[..., 1].min() == 0.0 and b[..., 3].max() == 1.0 and b.min() >= 0.0


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["frames"][0]["boxes"][0].update(box=[10, 200, 140, 300]), "pixels"),
    (lambda d: d["objects"].append({"id": 7, "name": "bird", "source": 5}),
     "matches no analysed source"),
    (lambda d: d["objects"][1].update(source=0), "both stand for source 0"),
    (lambda d: d.update(frames=d["frames"][:3]), "the frames span 0 to 0.5 s"),
    (lambda d: [b.update(box=[1 - b["box"][2], b["box"][1], 1 - b["box"][0], b["box"][3]])
                for f in d["frames"] for b in f["boxes"]], "+azimuth is the left of the frame"),
    (lambda d: [f.update(boxes=[b for b in f["boxes"] if b["id"] != 1]) for f in d["frames"]],
     "object 1 (source 1) appears in no frame"),
    (lambda d: d.pop("frames"), "frames: expected a non-empty list"),
])
def test_unusable_replies_name_their_fault(mutate, message):
    d = good_dict()
    mutate(d)
    with pytest.raises(ReplyError, match=re.escape(message)):
        read_reply(json.dumps(d), EXP)


def test_a_reply_cut_off_mid_way_is_repaired_but_too_short():
    text = layout_reply(GOOD)
    with pytest.raises(ReplyError, match="the frames span"):
        read_reply(text[: len(text) // 3], EXP)


@pytest.mark.parametrize(("reply", "message"), [
    ("", "the reply is empty"),
    ("The car moves from left to right.", "no JSON object found"),
    ('{"frames": [{"t": 0.0, "boxes": [}', "invalid JSON"),
])
def test_replies_without_a_layout(reply, message):
    with pytest.raises(ReplyError, match=message):
        read_reply(reply, EXP)


def test_pinhole_sources_out_of_view_need_no_box():
    exp = Expectation(SCENE, FrameRequest(DURATION_S, 4.0), Camera("pinhole", 40.0))
    d = good_dict()
    for f in d["frames"]:  # the quiet source at -45 deg lies outside a 40-degree view
        f["boxes"] = [b for b in f["boxes"] if b["id"] != 1]
    for f, t in zip(d["frames"], np.arange(16) / 4.0, strict=True):
        x = float(Camera("pinhole", 40.0).azimuth_to_x(60.0 - 120.0 * t / 3.98)[0])
        f["boxes"] = [{"id": 0, "box": [min(max(x - 0.05, 0.0), 0.9), 0.5,
                                        min(max(x + 0.05, 0.1), 1.0), 0.7]}]
    layout = read_reply(json.dumps(d), exp).layout
    assert all(b.id == 0 for f in layout.frames for b in f.boxes)
    assert layout.camera.projection == "pinhole"
