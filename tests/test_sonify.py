"""Layout -> spatial audio (generators.audio.sonify): the rule planner's reverse."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from generators.audio.sonify import (
    CROSSING_TARGET_DEG,
    LEVEL_TARGET_DB,
    REFERENCE_DISTANCE_M,
    frontal_sweep_deg,
    layout_motions,
    layout_to_scene,
    scene_object_ids,
    sonify_layout,
)
from planners.rule import RulePlanner
from spa2v.analysis import analyze_array
from spa2v.cli import main
from spa2v.conventions import Camera, fold_front, motion_label
from spa2v.errors import InputError
from spa2v.layout import layout_from_dict, save_layout

HOP_S = 0.02
D = 4.0
SR = 16000


def source(azimuth_deg, loudness_db=(-30.0, -30.0), **extra) -> dict:
    """One analysed source with linear azimuth and loudness ramps (start, end)."""
    t = np.arange(0.0, D, HOP_S)
    az0, az1 = np.broadcast_to(azimuth_deg, (2,))
    l0, l1 = loudness_db
    d = {"id": 0, "times": t.round(4).tolist(),
         "azimuth_deg": (az0 + (az1 - az0) * t / t[-1]).tolist(), "elevation_deg": None,
         "loudness_db": (l0 + (l1 - l0) * t / t[-1]).tolist(), "active": [True] * t.size,
         "mean_azimuth_deg": float((az0 + az1) / 2), "position": "center",
         "motion": motion_label(float(az1 - az0), float(loudness_db[1] - loudness_db[0])),
         "behind": False, "confidence": 0.9}
    d.update(extra)
    return d


def plan(*sources: dict, labels: list[str], camera: Camera | None = None):
    analysis = {"input": "x.wav", "format": "binaural", "sample_rate": 48000, "duration": D,
                "hop_s": HOP_S, "sources": list(sources)}
    return RulePlanner().plan(analysis, labels=labels, camera=camera)


def simple_layout(boxes: list[list[float] | None], name: str = "car", **extra) -> dict:
    frames = [{"t": i * 0.5, "boxes": [] if b is None else [{"id": 0, "box": b}]}
              for i, b in enumerate(boxes)]
    d = {"version": 1, "duration": 0.5 * len(boxes), "fps": 2, "caption": "test",
         "objects": [{"id": 0, "name": name}], "frames": frames}
    d.update(extra)
    return d


def tracked(an: dict) -> tuple[np.ndarray, np.ndarray]:
    s = an["sources"][0]
    t = np.asarray(s["times"])
    az = np.array([np.nan if v is None else v for v in s["azimuth_deg"]])
    ok = np.asarray(s["active"]) & np.isfinite(az)
    return t[ok], fold_front(az[ok])[0]


@pytest.mark.parametrize("camera", [Camera(), Camera("pinhole", 100.0)], ids=["sine", "pinhole"])
def test_scene_inverts_the_planner(camera):
    """Exact reverse (no label margins): azimuth and level change come back."""
    lay = plan(source((50.0, -40.0), (-36.0, -27.0)), labels=["car"], camera=camera)
    scene, duration = layout_to_scene(lay, sr=SR, keep_labels=False)
    assert duration == D and len(scene) == 1
    traj = scene[0].trajectory
    tk = lay.keyframe_times
    az, _, r = traj.at(tk)
    expected = 50.0 + (-90.0) * np.clip(tk / (D - HOP_S), 0, 1)
    # the planner averages each keyframe's window: the end keyframes see half a window
    assert np.max(np.abs(az - expected)[1:-1]) < 0.5
    assert np.max(np.abs(az - expected)) < 2.0
    # 9 dB louder at the end: the planner's smoothing aside, 20 log10(r0 / r1) comes back
    change = 20 * np.log10(r[0] / r[-1])
    assert change == pytest.approx(9.0 * (tk[-1] - tk[0]) / (D - HOP_S), abs=1.0)
    assert scene[0].name == "car"


def test_a_box_drawn_at_the_class_size_is_at_the_reference_distance():
    lay = plan(source(20.0), labels=["dog"])
    scene, _ = layout_to_scene(lay, sr=SR, keep_labels=False)
    _, _, r = scene[0].trajectory.at(np.array([1.0]))
    assert r[0] == pytest.approx(REFERENCE_DISTANCE_M, rel=0.02)


@pytest.mark.parametrize("fmt", ["binaural", "foa"])
@pytest.mark.parametrize(
    ("name", "azimuth_deg", "loudness_db", "motion"),
    [
        ("car", (60.0, -60.0), (-30.0, -30.0), "left_to_right"),
        ("dog", (-40.0, -40.0), (-36.0, -26.0), "approaching"),
        ("person", (30.0, 30.0), (-26.0, -36.0), "receding"),
        ("piano", (-20.0, -20.0), (-30.0, -30.0), "static"),
    ],
)
def test_round_trip_labels_and_azimuth(fmt, name, azimuth_deg, loudness_db, motion):
    lay = plan(source(azimuth_deg, loudness_db), labels=[name])
    assert layout_motions(lay) == {0: motion}
    sim = sonify_layout(lay, fmt=fmt, sr=SR, seed=3)
    assert sim.audio.shape == ((4 if fmt == "foa" else 2), int(D * SR))
    assert sim.truth["sources"][0]["object_id"] == 0
    assert sim.truth["sources"][0]["layout_motion"] == motion
    an = analyze_array(sim.audio, SR, fmt)
    assert an["sources"][0]["motion"] == motion
    t, az = tracked(an)
    az0, az1 = azimuth_deg
    expected = az0 + (az1 - az0) * np.clip(t / (D - HOP_S), 0, 1)
    assert np.mean(np.abs(az - expected)) < 5.0


def test_labels_are_made_unmistakable():
    # a 4 dB approach (over the 3 dB threshold) and a 34 degree crossing (over 30)
    lay = plan(source((-40.0, -40.0), (-30.0, -26.0)), labels=["car"])
    assert layout_motions(lay)[0] == "approaching"
    exact, _ = layout_to_scene(lay, sr=SR, keep_labels=False)
    kept, _ = layout_to_scene(lay, sr=SR)
    t = np.linspace(0.0, D, 201)
    r_exact = exact[0].trajectory.at(t)[2]
    r_kept = kept[0].trajectory.at(t)[2]
    assert 20 * np.log10(r_exact[0] / r_exact[-1]) < 5.0
    assert 20 * np.log10(r_kept[0] / r_kept[-1]) >= LEVEL_TARGET_DB - 0.5

    lay = plan(source((17.0, -17.0)), labels=["car"])
    assert layout_motions(lay)[0] == "left_to_right"
    exact, _ = layout_to_scene(lay, sr=SR, keep_labels=False)
    kept, _ = layout_to_scene(lay, sr=SR)
    assert -frontal_sweep_deg(exact[0].trajectory.at(t)[0]) < 30.0
    assert -frontal_sweep_deg(kept[0].trajectory.at(t)[0]) >= CROSSING_TARGET_DEG - 0.5


def test_absent_objects_are_silent_and_named_sources_play():
    box = [0.6, 0.5, 0.8, 0.7]
    lay = layout_from_dict(simple_layout([box, box, box, None, None, None, None, None]))
    tone = 0.3 * np.sin(2 * np.pi * 1000 * np.arange(int(4 * SR)) / SR).astype(np.float32)
    sim = sonify_layout(lay, fmt="binaural", sr=SR, sources={"car": tone})
    y = sim.audio
    first = np.mean(y[:, : int(1.0 * SR)] ** 2)
    last = np.mean(y[:, int(2.0 * SR):] ** 2)
    assert 10 * np.log10(last / first + 1e-30) < -60.0
    spec = np.abs(np.fft.rfft(y[0, : SR]))
    freqs = np.fft.rfftfreq(SR, 1.0 / SR)
    assert abs(freqs[np.argmax(spec)] - 1000.0) < 2.0  # the given tone plays
    assert sim.truth["sources"][0]["position"] == "right"


def test_foa_elevation_for_flying_objects_and_behind():
    lay = layout_from_dict(simple_layout([[0.45, 0.02, 0.55, 0.12]] * 4, name="bird",
                                         meta={"behind_objects": [0]}))
    foa, _ = layout_to_scene(lay, sr=SR, elevation=True)
    az, el, _ = foa[0].trajectory.at(np.array([1.0]))
    assert el[0] > 45.0 and abs(az[0]) > 170.0
    binaural, _ = layout_to_scene(lay, sr=SR)
    assert binaural[0].trajectory.at(np.array([1.0]))[1][0] == 0.0
    sim = sonify_layout(lay, fmt="foa", sr=SR)
    an = analyze_array(sim.audio, SR, "foa")
    assert an["sources"][0]["behind"] is True


def test_two_objects_keep_their_order_and_places():
    lay = plan(source(50.0, (-30.0, -30.0)), source(-50.0, (-33.0, -33.0), id=1),
               labels=["dog", "car"])
    scene, _ = layout_to_scene(lay, sr=SR)
    assert [s.name for s in scene] == ["dog", "car"] and scene_object_ids(lay) == [0, 1]
    sim = sonify_layout(lay, fmt="foa", sr=SR)
    an = analyze_array(sim.audio, SR, "foa")
    assert sorted(s["position"] for s in an["sources"][:2]) == ["left", "right"]


def test_nothing_visible_raises():
    lay = layout_from_dict(simple_layout([None, None]))
    with pytest.raises(InputError, match="no object"):
        layout_to_scene(lay, sr=SR)


def test_cli(tmp_path, capsys, write_audio):
    lay = plan(source((60.0, -60.0)), labels=["car"])
    path = save_layout(lay, tmp_path / "l.json")
    tone = write_audio("t.wav", 0.2 * np.sin(np.arange(SR) * 0.3).astype(np.float32), SR)
    out, truth = tmp_path / "o.wav", tmp_path / "o.json"
    assert main(["sonify", str(path), "-o", str(out), "--format", "foa", "--sr", str(SR),
                 "--source", f"car={tone}", "--truth", str(truth)]) == 0
    y, sr = sf.read(str(out), always_2d=True)
    assert y.shape == (int(D * SR), 4) and sr == SR
    t = json.loads(truth.read_text())
    assert t["sources"][0]["motion"] == "left_to_right" and t["layout"] == str(path)
    assert "car" in capsys.readouterr().out


def test_cli_bad_input(tmp_path, capsys):
    out = tmp_path / "o.wav"
    empty = tmp_path / "e.json"
    d = simple_layout([[0.1, 0.1, 0.2, 0.2]])
    d["objects"], d["frames"] = [], [{"t": 0.0, "boxes": []}]
    empty.write_text(json.dumps(d))
    assert main(["sonify", str(empty), "-o", str(out), "--format", "foa"]) == 2
    assert "at least one object" in capsys.readouterr().err
    hidden = tmp_path / "h.json"
    hidden.write_text(json.dumps(simple_layout([None, None])))
    assert main(["sonify", str(hidden), "-o", str(out), "--format", "binaural"]) == 2
    assert "no object of the layout is visible" in capsys.readouterr().err
    good = tmp_path / "g.json"
    good.write_text(json.dumps(simple_layout([[0.1, 0.4, 0.3, 0.6]] * 2)))
    assert main(["sonify", str(good), "-o", str(out), "--format", "foa",
                 "--source", "cow=x.wav"]) == 2
    assert "no object 'cow'" in capsys.readouterr().err
    assert main(["sonify", str(good), "-o", str(out), "--format", "foa", "--hrtf", "x"]) == 2
    assert main(["sonify", str(tmp_path / "none.json"), "-o", str(out), "--format", "foa"]) == 2
    assert not out.exists()
