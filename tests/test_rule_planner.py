"""Tests for the rule planner (planners.rule) on hand-written analysis results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from planners.captions import FrameMention, ObjectSummary, frame_caption, global_caption
from planners.rule import RulePlanner
from spa2v.conventions import Camera, motion_label
from spa2v.errors import InputError
from spa2v.layout import SceneLayout, load_layout, save_layout

HOP_S = 0.02
DURATION_S = 4.0
HORIZON_Y = 0.55


def source(
    azimuth_deg: float | tuple[float, float],
    loudness_db: float | tuple[float, float] = -30.0,
    *,
    sid: int = 0,
    elevation_deg: float | None = None,
    active: np.ndarray | None = None,
    noise_deg: float = 0.0,
    seed: int = 0,
    **extra,
) -> dict:
    """One analysed source with linear azimuth and loudness ramps (start, end)."""
    t = np.arange(0.0, DURATION_S, HOP_S)
    az0, az1 = np.broadcast_to(azimuth_deg, (2,))
    l0, l1 = np.broadcast_to(loudness_db, (2,))
    az = az0 + (az1 - az0) * t / t[-1]
    if noise_deg:
        az = az + np.random.default_rng(seed).normal(0.0, noise_deg, t.size)
    loud = l0 + (l1 - l0) * t / t[-1]
    act = np.ones(t.size, bool) if active is None else np.asarray(active, bool)
    d = {
        "id": sid,
        "times": t.round(4).tolist(),
        "azimuth_deg": az.tolist(),
        "elevation_deg": None if elevation_deg is None else [elevation_deg] * t.size,
        "loudness_db": loud.tolist(),
        "active": act.tolist(),
        "mean_azimuth_deg": float(np.mean(az)),
        "position": "center",
        # what the analysis would say of these ramps
        "motion": motion_label(float(az1 - az0), float(l1 - l0)),
        "behind": False,
        "confidence": 0.9,
    }
    d.update(extra)
    return d


def analysis(*sources: dict, fmt: str = "binaural") -> dict:
    return {"input": "scene.wav", "format": fmt, "sample_rate": 48000,
            "duration": DURATION_S, "hop_s": HOP_S, "sources": list(sources)}


def centre_x(box) -> float:
    return (box[0] + box[2]) / 2


def area(box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def boxes_of(layout: SceneLayout, object_id: int) -> list:
    return [b.box for f in layout.frames for b in f.boxes if b.id == object_id]


def overlap(a, b) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


PLANNER = RulePlanner()


# --------------------------------------------------------------------------- motion
@pytest.mark.parametrize("noise_deg", [0.0, 5.0])
def test_crossing_left_to_right(noise_deg: float):
    layout = PLANNER.plan(analysis(source((60.0, -60.0), noise_deg=noise_deg)), labels=["car"])
    assert layout.planner == "rule" and layout.fps == 4.0 and len(layout.frames) == 16
    xs = [centre_x(b) for b in boxes_of(layout, 0)]
    assert len(xs) == 16
    assert xs[0] < 0.35 and xs[-1] > 0.65
    assert np.all(np.diff(xs) > 0)
    assert layout.caption == "A car drives from the left to the right of the frame."
    assert layout.frames[0].caption == "The car is on the left of the frame, moving right."
    assert layout.meta["motions"] == ["left_to_right"]
    assert layout.background == "street"


def test_crossing_right_to_left_with_generic_source():
    layout = PLANNER.plan(analysis(source((-70.0, 70.0))))
    xs = [centre_x(b) for b in boxes_of(layout, 0)]
    assert xs[0] > 0.65 and xs[-1] < 0.35
    assert layout.objects[0].name == "sound source"
    assert "from the right to the left" in layout.caption


@pytest.mark.parametrize("label", ["car", "person", "dog", "sound source"])
def test_approach_grows_the_box(label: str):
    layout = PLANNER.plan(analysis(source(0.0, (-30.0, -22.0))), labels=[label])
    boxes = boxes_of(layout, 0)
    assert area(boxes[-1]) >= 2.0 * area(boxes[0])
    assert np.all(np.diff([area(b) for b in boxes]) >= -1e-9)
    # nearer ground objects stand lower in the frame
    assert boxes[-1][3] > boxes[0][3] > HORIZON_Y
    assert layout.meta["motions"] == ["approaching"]
    assert "approaches" in layout.caption


def test_approach_of_six_db_doubles_the_linear_size():
    src = source(0.0, -30.0, motion="approaching")
    t = np.asarray(src["times"])
    src["loudness_db"] = np.where(t < 2.0, -30.0, -24.0).tolist()
    layout = PLANNER.plan(analysis(src), labels=["cat"])
    a = np.array(boxes_of(layout, 0))
    widths, heights = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    assert widths[-1] / widths[0] == pytest.approx(2.0, rel=0.01)
    assert heights[-1] / heights[0] == pytest.approx(2.0, rel=0.01)


def test_loudness_noise_does_not_move_the_size_reference():
    src = source(0.0, -30.0, motion=None)  # unlabelled: the size follows the loudness
    rng = np.random.default_rng(3)
    src["loudness_db"] = (-30.0 + rng.normal(0.0, 2.0, len(src["times"]))).tolist()
    layout = PLANNER.plan(analysis(src), labels=["car"])
    widths = [b[2] - b[0] for b in boxes_of(layout, 0)]
    # A car is ~30% of the width over its first second (the size reference).
    assert np.median(widths[: int(layout.fps)]) == pytest.approx(0.30, abs=0.01)
    assert max(widths) / min(widths) < 1.15
    assert layout.meta["motions"] == ["static"]


def test_receding_shrinks_the_box():
    layout = PLANNER.plan(analysis(source(-30.0, (-20.0, -30.0))), labels=["truck"])
    boxes = boxes_of(layout, 0)
    assert area(boxes[-1]) <= 0.5 * area(boxes[0])
    assert boxes[-1][3] < boxes[0][3]
    assert "moves away" in layout.caption


def test_a_source_the_analysis_labels_static_keeps_its_size():
    """A 5 dB level drift that the analysis judged no change of distance (a talker's
    phrases): the box stays the same size, as the label says."""
    layout = PLANNER.plan(analysis(source(20.0, (-30.0, -25.0), motion="static")),
                          labels=["person"])
    widths = np.array([b[2] - b[0] for b in boxes_of(layout, 0)])
    assert np.ptp(widths) < 1e-9
    assert layout.meta["motions"] == ["static"]


@pytest.mark.parametrize(("motion", "loudness_db", "growth"), [
    ("approaching", (-30.0, -30.0), (1.9, 2.1)),  # a room held the level up: nothing to see
    ("approaching", (-30.0, -32.0), (1.9, 2.1)),  # the track even fell at its ends
    ("receding", (-30.0, -29.0), (0.48, 0.53)),
    ("approaching", (-30.0, -18.0), (2.5, 4.1)),  # a track that shows the change is kept
])
def test_a_labelled_change_of_distance_is_drawn(motion, loudness_db, growth):
    """The analysis' approaching/receding verdict (level trend confirmed by direct-sound
    cues) shows in the boxes even where the level track's ends do not show it: as a
    steady 6 dB change (twice the linear size), or as the track where that shows more."""
    layout = PLANNER.plan(analysis(source(-25.0, loudness_db, motion=motion)), labels=["car"])
    widths = np.array([b[2] - b[0] for b in boxes_of(layout, 0)])
    assert growth[0] <= widths[-1] / widths[0] <= growth[1]
    assert np.all(np.sign(np.diff(widths)) * np.sign(widths[-1] - widths[0]) >= -1e-9)
    assert layout.meta["motions"] == [motion]


def test_the_analysis_label_names_the_motion_over_a_glitch_at_the_ends():
    """The last 0.4 s jump 40 degrees (a track's end taken by a reflection): the
    keyframes' ends read a crossing, the analysis (medians of the track's ends) static."""
    src = source(30.0, -30.0, motion="static")
    az = np.asarray(src["azimuth_deg"])
    az[-20:] = -10.0
    src["azimuth_deg"] = az.tolist()
    layout = PLANNER.plan(analysis(src), labels=["dog"])
    assert layout.meta["motions"] == ["static"]
    assert "moving from" not in layout.caption
    unlabelled = PLANNER.plan(analysis({**src, "motion": None}), labels=["dog"])
    assert unlabelled.meta["motions"] == ["left_to_right"]  # the ends alone


def test_an_unknown_motion_label_is_an_input_error():
    with pytest.raises(InputError, match=r"sources\[0\]\.motion: 'orbiting' is not one of"):
        PLANNER.plan(analysis(source(0.0, motion="orbiting")), labels=["car"])


def test_a_quiet_onset_does_not_blow_up_the_rest_of_the_clip():
    # The first frames hold the onset (a fade-in, the travel time): 30 dB quieter.
    src = source(0.0, -20.0, motion=None)  # unlabelled: the size follows the loudness
    loud = np.asarray(src["loudness_db"])
    loud[:3] -= 30.0
    src["loudness_db"] = loud.tolist()
    layout = PLANNER.plan(analysis(src), labels=["car"])
    widths = np.array([b[2] - b[0] for b in boxes_of(layout, 0)])
    assert np.median(widths) == pytest.approx(0.30, abs=0.03)  # 0.47 with a first-frame reference
    assert layout.meta["motions"] == ["static"]


def test_distance_track_is_used_when_present():
    dist = np.linspace(1.0, 0.5, int(DURATION_S / HOP_S)).tolist()
    layout = PLANNER.plan(analysis(source(0.0, -30.0, distance_rel=dist, motion="approaching")),
                          labels=["piano"])
    a = np.array(boxes_of(layout, 0))
    assert (a[-1, 2] - a[-1, 0]) / (a[0, 2] - a[0, 0]) == pytest.approx(1.0 / 0.53, rel=0.05)
    assert layout.meta["distance_from"] == ["distance_rel"]


# --------------------------------------------------------------------------- position
@pytest.mark.parametrize("azimuth_deg", [45.0, 20.0, 0.0, -30.0, -45.0])
@pytest.mark.parametrize("label", ["car", "dog"])
def test_static_source_sits_at_the_camera_x(azimuth_deg: float, label: str):
    layout = PLANNER.plan(analysis(source(azimuth_deg)), labels=[label])
    x_expected = float(Camera().azimuth_to_x(azimuth_deg)[0])
    for box in boxes_of(layout, 0):
        assert abs(centre_x(box) - x_expected) < 0.03
    assert layout.meta["motions"] == ["static"]


@pytest.mark.parametrize("azimuth_deg", [45.0, 10.0, 3.0])
def test_two_sources_on_their_sides_without_overlap(azimuth_deg: float):
    result = analysis(source(azimuth_deg, -30.0, sid=0), source(-azimuth_deg, -31.0, sid=1))
    layout = PLANNER.plan(result, labels=["car", "truck"])
    assert [o.name for o in layout.objects] == ["car", "truck"]
    assert [o.source for o in layout.objects] == [0, 1]
    for f in layout.frames:
        boxes = {b.id: b.box for b in f.boxes}
        assert set(boxes) == {0, 1}
        assert centre_x(boxes[0]) < 0.5 < centre_x(boxes[1])
        assert overlap(boxes[0], boxes[1]) == 0.0


@pytest.mark.parametrize("static_deg", [-42.0, 40.0, 10.0])
def test_a_source_passing_a_static_one_does_not_drag_it_aside(static_deg: float):
    """Where a passing source's box overlaps a static one's, both are nudged apart, but
    never by more than half their width: each box still covers its source's x, so the
    static one keeps still (before, a truck passing a car at the frame's edge pushed the
    car's box 30 degrees towards the centre and back, a crossing of its own)."""
    result = analysis(source((-60.0, 60.0), -28.0, sid=0), source(static_deg, -29.0, sid=1))
    layout = PLANNER.plan(result, labels=["truck", "car"])
    x_own = float(Camera().azimuth_to_x(static_deg)[0])
    car = boxes_of(layout, 1)
    assert len(car) == len(layout.frames)
    for box in car:
        assert box[0] - 1e-6 <= x_own <= box[2] + 1e-6
    assert layout.meta["motions"] == ["right_to_left", "static"]
    # the passer keeps its own way too: its boxes end on the other side
    truck = [centre_x(b) for b in boxes_of(layout, 0)]
    assert truck[0] > 0.6 and truck[-1] < 0.4


@pytest.mark.parametrize("static_deg", [None, 10.0, -42.0])
def test_sources_that_pass_each_other_move_steadily(static_deg):
    """Two sources crossing each other (or one passing a static one) are not nudged
    apart: held apart, each box stopped at the other's edge, then leapt past it (a
    helicopter held still for 0.75 s and jumped 54 degrees, and the sound made back from
    the layout did the same).  They overlap as they pass, the nearer one in front."""
    other = source((60.0, -60.0), -31.0, sid=1) if static_deg is None else \
        source(static_deg, -31.0, sid=1)
    layout = PLANNER.plan(analysis(source((-60.0, 60.0), -28.0, sid=0), other),
                          labels=["helicopter", "plane"])
    x = np.array([centre_x(b) for b in boxes_of(layout, 0)])
    assert len(x) == len(layout.frames)
    steps = np.diff(x)
    # camera projection: steps shrink towards the frame's edges, never stop or leap
    assert (steps < 0).all()
    assert np.abs(steps).max() < 2.0 * np.median(np.abs(steps))
    if static_deg is None:
        y = np.array([centre_x(b) for b in boxes_of(layout, 1)])
        assert (np.diff(y) > 0).all()
        assert np.abs(np.diff(y)).max() < 2.0 * np.median(np.abs(np.diff(y)))
    else:
        y = np.array([centre_x(b) for b in boxes_of(layout, 1)])
        assert np.ptp(y) < 1e-9
    overlapping = [f for f in layout.frames
                   if overlap(*[b.box for b in sorted(f.boxes, key=lambda b: b.id)]) > 0]
    assert overlapping  # they pass through each other's boxes
    for f in overlapping:
        assert [b.id for b in f.boxes] == [1, 0]  # the quieter one drawn first, behind


def test_depth_order_puts_the_quieter_source_behind():
    result = analysis(source(5.0, -20.0, sid=0), source(-5.0, -32.0, sid=1))
    layout = PLANNER.plan(result, labels=["dog", "dog"])
    for f in layout.frames:
        assert [b.id for b in f.boxes] == [1, 0]  # back to front
    near, far = boxes_of(layout, 0)[0], boxes_of(layout, 1)[0]
    assert area(far) < area(near) and far[3] < near[3]


def test_bird_above_the_horizon_and_car_below():
    result = analysis(source(30.0, -30.0, sid=0), source(-30.0, -32.0, sid=1))
    layout = PLANNER.plan(result, labels=["bird", "car"])
    for bird in boxes_of(layout, 0):
        assert bird[3] < HORIZON_Y
    for car in boxes_of(layout, 1):
        assert car[3] > HORIZON_Y
    assert layout.caption == "A bird sings on the left while a car idles on the right."


def test_elevation_raises_a_flying_source():
    low = PLANNER.plan(analysis(source(0.0, elevation_deg=10.0)), labels=["bird"], fps=2.0)
    high = PLANNER.plan(analysis(source(0.0, elevation_deg=60.0)), labels=["bird"], fps=2.0)
    y_low = [(b[1] + b[3]) / 2 for b in boxes_of(low, 0)]
    y_high = [(b[1] + b[3]) / 2 for b in boxes_of(high, 0)]
    assert max(y_high) < min(y_low)
    assert max(b[3] for b in boxes_of(low, 0)) < HORIZON_Y


def test_behind_source_is_folded_and_flagged():
    result = analysis(source(150.0), fmt="foa")
    layout = PLANNER.plan(result, labels=["dog"])
    x_front = float(Camera().azimuth_to_x(30.0)[0])
    assert all(abs(centre_x(b) - x_front) < 0.03 for b in boxes_of(layout, 0))
    assert layout.meta["behind_objects"] == [0]
    assert "behind the camera" in layout.objects[0].description
    assert layout.caption == "A dog barks behind the camera on the left of the frame."


def test_frontal_source_is_not_flagged_behind():
    layout = PLANNER.plan(analysis(source(30.0)), labels=["dog"])
    assert layout.meta["behind_objects"] == []
    assert "behind" not in layout.objects[0].description + layout.caption


# --------------------------------------------------------------------------- names, captions
def test_labels_name_the_sources_in_order_and_extras_are_generic():
    result = analysis(source(40.0, -25.0, sid=0), source(-40.0, -30.0, sid=1))
    layout = PLANNER.plan(result, labels=["dog"])
    assert [o.name for o in layout.objects] == ["dog", "sound source"]
    assert layout.background == "nature"


def test_names_from_the_caption():
    result = analysis(source(40.0, -25.0, sid=0), source(-40.0, -30.0, sid=1))
    caption = "A dog barks in a yard while a car idles."
    layout = PLANNER.plan(result, caption=caption, background="yard")
    assert [o.name for o in layout.objects] == ["dog", "car"]
    assert layout.caption == caption and layout.background == "yard"


def test_unknown_label_uses_the_generic_class():
    layout = PLANNER.plan(analysis(source(-20.0)), labels=["theremin"])
    assert layout.objects[0].name == "theremin"
    assert layout.background == "default"
    assert layout.caption == "A theremin is heard on the right of the frame."


def test_caption_templates():
    summaries = [ObjectSummary("dog", "static", "left", "left"),
                 ObjectSummary("car", "static", "right", "right")]
    assert global_caption(summaries) == "A dog barks on the left while a car idles on the right."
    assert global_caption([ObjectSummary("siren", "approaching", "center", "center")]) == (
        "A siren approaches from the center."
    )
    three = summaries + [ObjectSummary("ambulance", "right_to_left", "right", "left")]
    assert global_caption(three) == (
        "A dog barks on the left, a car idles on the right, and an ambulance drives from the "
        "right to the left of the frame."
    )
    assert frame_caption([FrameMention("car", "left", "right")]) == (
        "The car is on the left of the frame, moving right."
    )
    assert frame_caption([]) == "Nothing is visible."


# --------------------------------------------------------------------------- activity
def test_inactive_frames_are_omitted():
    n = int(DURATION_S / HOP_S)
    t = np.arange(n) * HOP_S
    active = (t >= 0.95) & (t < 2.9)  # keyframe windows are t_k +- 1/8 s
    layout = PLANNER.plan(analysis(source(20.0, active=active)), labels=["dog"])
    present = [any(b.id == 0 for b in f.boxes) for f in layout.frames]
    assert present == [False] * 4 + [True] * 8 + [False] * 4
    assert len(layout.resample(8.0).frames) == 32
    assert layout.frames[0].caption == "Nothing is visible."


def test_never_active_source_is_dropped():
    n = int(DURATION_S / HOP_S)
    result = analysis(
        source(40.0, -25.0, sid=0),
        source(0.0, -28.0, sid=1, active=np.zeros(n, bool)),
        source(-40.0, -30.0, sid=2),
    )
    layout = PLANNER.plan(result, labels=["dog", "cat", "car"])
    assert [(o.name, o.source) for o in layout.objects] == [("dog", 0), ("car", 2)]
    assert [o.id for o in layout.objects] == [0, 1]


def test_a_source_too_brief_for_any_keyframe_is_dropped():
    """Active for 0.06 s: under ``min_active_fraction`` of every keyframe's window."""
    n = int(DURATION_S / HOP_S)
    t = np.arange(n) * HOP_S
    blip = (t >= 1.02) & (t < 1.08)
    result = analysis(source(40.0, -25.0, sid=0), source(-40.0, -28.0, sid=1, active=blip))
    layout = PLANNER.plan(result, labels=["dog", "cat"])
    assert [(o.name, o.source) for o in layout.objects] == [("dog", 0)]


def test_missing_azimuths_and_silent_frames_are_tolerated():
    src = source(30.0)
    src["azimuth_deg"][10:30] = [None] * 20
    src["loudness_db"][50:60] = [float("-inf")] * 10
    layout = PLANNER.plan(analysis(src), labels=["dog"])
    assert len(boxes_of(layout, 0)) == 16


def test_no_active_source_is_an_input_error():
    n = int(DURATION_S / HOP_S)
    with pytest.raises(InputError, match="no active sound source"):
        PLANNER.plan(analysis(source(0.0, active=np.zeros(n, bool))))
    with pytest.raises(InputError, match="no active sound source"):
        PLANNER.plan(analysis())


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda a: a["sources"][0].pop("times"), r"sources\[0\]: missing field 'times'"),
        (lambda a: a["sources"][0].update(azimuth_deg=[0.0] * 3),
         r"sources\[0\]\.azimuth_deg: expected 200 values"),
        (lambda a: a["sources"][0].update(loudness_db="loud"),
         r"sources\[0\]\.loudness_db: expected a list"),
        (lambda a: a.update(sources={}), "sources: expected a list"),
        (lambda a: a.update(duration=-1), "duration: must be a positive"),
    ],
)
def test_malformed_analysis_is_an_input_error(mutate, expected: str):
    result = analysis(source(0.0))
    mutate(result)
    with pytest.raises(InputError, match=expected):
        PLANNER.plan(result)


# --------------------------------------------------------------------------- cameras, output
def test_pinhole_source_outside_the_field_of_view_is_omitted():
    cam = Camera("pinhole", 60.0)
    layout = PLANNER.plan(analysis(source(80.0)), labels=["car"], camera=cam)
    assert layout.camera.projection == "pinhole" and layout.camera.hfov_deg == 60.0
    assert [o.name for o in layout.objects] == ["car"]
    assert all(not f.boxes for f in layout.frames)
    assert layout.meta["offscreen_objects"] == [0]
    assert "outside the camera's field of view" in layout.objects[0].description


def test_pinhole_crossing_enters_and_leaves_the_frame():
    cam = Camera("pinhole", 60.0)
    layout = PLANNER.plan(analysis(source((80.0, -80.0))), labels=["dog"], camera=cam)
    present = [any(b.id == 0 for b in f.boxes) for f in layout.frames]
    assert not present[0] and not present[-1] and present[7] and present[8]
    xs = [centre_x(b) for b in boxes_of(layout, 0)]
    assert np.all(np.diff(xs) > 0)
    assert layout.meta["offscreen_objects"] == []


@pytest.mark.parametrize("fps", [1.0, 2.0, 8.0])
def test_keyframe_rate(fps: float):
    layout = PLANNER.plan(analysis(source(10.0)), fps=fps)
    assert layout.fps == fps
    np.testing.assert_allclose([f.t for f in layout.frames], np.arange(DURATION_S * fps) / fps)
    assert layout.duration == DURATION_S


def test_plan_is_deterministic_and_saves(tmp_path: Path):
    result = analysis(source((50.0, -10.0), (-30.0, -26.0), sid=0), source(-60.0, -35.0, sid=1))
    a = PLANNER.plan(result, labels=["motorcycle", "person"])
    b = PLANNER.plan(result, labels=["motorcycle", "person"])
    assert a == b
    out = tmp_path / "plan.json"
    save_layout(a, out)
    assert load_layout(out) == a
