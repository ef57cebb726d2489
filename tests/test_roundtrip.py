"""``spa2v roundtrip``: both directions through the real sonifier, analysis, planner,
animatic renderer and visual tracker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from spa2v.audio import write_wav
from spa2v.cli import main
from spa2v.layout import load_layout, save_layout
from spa2v.roundtrip import KINDS, KINDS_ONE, make_scene, scene_layout, suite_scenes
from spa2v.simulate import Keyframe, SceneSource, Trajectory, simulate_scene
from spa2v.sources import make_source

pytest.importorskip("generators.audio.sonify")


def test_scenes_are_what_their_kind_says():
    scenes = suite_scenes(len(KINDS), seed=3)
    assert [s.kind for s in scenes] == list(KINDS)
    for s in scenes:
        motions = [src.motion for src in s.sources]
        if s.kind in KINDS_ONE:
            expected = s.kind.removeprefix("crossing_")
            assert motions == ["static" if expected.startswith("static") else expected]
        else:
            assert len(s.sources) == 2
            assert set(motions) <= {"static", "left_to_right", "right_to_left", "approaching"}
    assert make_scene("static_left", 5).sources[0].azimuth_deg[0] >= 15.0
    assert make_scene("static_right", 5).sources[0].azimuth_deg[0] <= -15.0
    assert make_scene("crossing_left_to_right", 1) == make_scene("crossing_left_to_right", 1)
    with pytest.raises(ValueError, match="unknown scene kind"):
        make_scene("sideways", 0)


@pytest.mark.parametrize("fmt", ["binaural", "foa"])
def test_layout_roundtrip_keeps_motion_and_azimuth(tmp_path, fmt):
    layout = scene_layout(make_scene("crossing_right_to_left", 2))
    src = save_layout(layout, tmp_path / "l.json")
    out = tmp_path / "r.json"
    assert main(["roundtrip", "layout", str(src), "--format", fmt, "--json", str(out),
                 "--audio-out", str(tmp_path / "a.wav"), "--layout-out",
                 str(tmp_path / "back.json"), "-q"]) == 0
    rep = json.loads(out.read_text())
    assert rep["planned"] and rep["sources_found"] == 1
    (pair,) = rep["pairs"]
    assert pair["motion_a"] == pair["motion_b"] == "right_to_left"
    assert pair["mean_azimuth_error_deg"] < 5.0
    info = sf.info(str(tmp_path / "a.wav"))
    assert info.channels == (2 if fmt == "binaural" else 4)
    back = load_layout(tmp_path / "back.json")
    assert back.planner == "rule" and len(back.objects) == 1


def test_audio_roundtrip_video_is_aligned(tmp_path):
    traj = Trajectory((Keyframe(0.0, -60.0, 0.0, 4.0), Keyframe(3.0, 60.0, 0.0, 4.0)))
    sim = simulate_scene([SceneSource(make_source("siren", duration_s=3.0, sr=48000, seed=2),
                                      traj)], fmt="binaural", sr=48000, duration_s=3.0)
    wav = write_wav(tmp_path / "x.wav", sim.audio, 48000)
    out, video, back = tmp_path / "r.json", tmp_path / "v.mp4", tmp_path / "back.wav"
    assert main(["roundtrip", "audio", str(wav), "--json", str(out), "--video-out", str(video),
                 "--audio-back", str(back), "--label", "ambulance", "-q"]) == 0
    rep = json.loads(out.read_text())
    assert rep["aligned"] is True
    (pair,) = rep["pairs"]
    assert pair["direction_audio"] == pair["direction_video"] == "right_to_left"
    assert pair["mean_azimuth_error_deg"] < 10.0
    assert video.stat().st_size > 0
    # (c) the video turned back into audio sounds like the recording
    loop = rep["loop"]
    assert loop["objects_found"] == 1 and loop["names"] == ["ambulance"]
    (pair,) = loop["pairs"]
    assert pair["motion_reference"] == pair["motion_other"] == "right_to_left"
    assert pair["mean_azimuth_difference_deg"] < 10.0
    assert loop["summary"]["mean_azimuth_difference_deg"] < loop["baseline_centre_azimuth_deg"]
    assert sf.info(str(back)).channels == 2


def test_suite_prints_aggregate_json_lines(tmp_path, capsys):
    out = tmp_path / "suite.json"
    # the global flags may follow the mode
    assert main(["roundtrip", "suite", "--scenes", "3", "--seed", "1", "--json", str(out),
                 "-q"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    figures = {(d["figure"], d.get("kind")) for d in lines}
    assert ("roundtrip_overall", None) in figures
    assert ("roundtrip_by_kind", "static_center") in figures
    overall = next(d for d in lines if d["figure"] == "roundtrip_overall")
    assert overall["scenes"] == 3 and overall["objects"] == 3
    for key in ("a_motion_agreement", "a_mean_azimuth_error_deg", "b_aligned",
                "b_mean_azimuth_error_deg", "baseline_centre_azimuth_error_deg",
                "c_motion_agreement", "c_mean_azimuth_difference_deg",
                "c_baseline_centre_azimuth_deg"):
        assert overall[key] is not None
    # three static sources (left, center, right): the positions and stillness survive
    assert overall["a_motion_agreement"] == 1.0
    assert overall["a_mean_azimuth_error_deg"] < 8.0
    # ... and the loop audio -> video -> audio keeps them too
    assert overall["c_motion_agreement"] == 1.0 and overall["c_position_agreement"] == 1.0
    assert overall["c_mean_azimuth_difference_deg"] < 8.0
    saved = json.loads(out.read_text())
    assert [s["kind"] for s in saved["scenes"]] == ["static_left", "static_center",
                                                    "static_right"]


def test_bad_input_exits_2_and_leaves_outputs_alone(tmp_path, capsys):
    assert main(["roundtrip", "layout", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
    keep = tmp_path / "keep.json"
    keep.write_text("keep")
    assert main(["roundtrip", "suite", "--scenes", "1", "--json", str(keep)]) == 2
    assert keep.read_text() == "keep" and "--overwrite" in capsys.readouterr().err
    assert main(["roundtrip", "suite", "--scenes", "0"]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["roundtrip"])
    assert exc.value.code == 2
    assert "MODE" in capsys.readouterr().err
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["keep.json"]


PAIR_LEAK = (
    "known limitation: the pair split models each source by the head's "
    "interaural phase at its track's direction; 2 degrees off, a few percent of the other "
    "source's power per bin lands in a source's share, and a static source's level follows "
    "its neighbour's rise by 3-4 dB (seed 43: an approaching ambulance 10 dB louder by the "
    "end)")


@pytest.mark.parametrize("seed", [
    32, pytest.param(43, marks=pytest.mark.xfail(strict=True, reason=PAIR_LEAK)), 76, 109])
def test_a_static_source_beside_an_approaching_one_keeps_its_own_level(seed):
    """Layout -> audio -> analysis: the static source's level comes from the bins it holds,
    so the approaching neighbour (up to 9 dB louder by the end, and found only once it
    is loud enough) does not make it approach too."""
    from spa2v.roundtrip import roundtrip_layout

    spec = make_scene("approaching_and_static", seed)
    trip = roundtrip_layout(scene_layout(spec), fmt="binaural", seed=seed)
    moving, static = spec.sources
    assert len(trip.analysis["sources"]) == 2
    for src, label in ((moving, "approaching"), (static, "static")):
        az = src.azimuth_deg[0]
        near = min(trip.analysis["sources"],
                   key=lambda s, az=az: abs(s["mean_azimuth_deg"] - az))
        assert abs(near["mean_azimuth_deg"] - az) < 10.0
        assert near["motion"] == label, (src.name, near["motion"])


@pytest.mark.parametrize(("fmt", "kind", "seed"), [
    ("binaural", "crossing_and_static", 31),   # a truck crosses toward a static motorcycle
    ("binaural", "crossing_and_static", 108),  # a car crosses through a plane, found half way
    ("binaural", "approaching_and_static", 21),  # a car 79 degrees off grows 10 dB louder
    ("foa", "crossing_and_static", 31),  # a truck crosses toward a static motorcycle
    ("foa", "crossing_and_static", 86),  # a truck sets off 25 degrees from a motorcycle
])
def test_a_static_source_keeps_its_level_while_another_passes_or_grows(fmt, kind, seed):
    """Where two sources sound, each bin's power is split between them (binaural: by the
    head model's interaural phases; FOA: by least squares on the plane waves from their
    directions), not given whole to the nearer direction, and a crossing track found
    late or lost early is continued along its sweep: the static source neither takes the
    passing one's sound nor loses its own under a louder neighbour.  (Each of these read
    receding or approaching before.)"""
    from spa2v.roundtrip import roundtrip_layout

    spec = make_scene(kind, seed)
    trip = roundtrip_layout(scene_layout(spec), fmt=fmt, seed=seed)
    static = next(s for s in spec.sources if s.motion == "static")
    near = min(trip.analysis["sources"],
               key=lambda s: abs(s["mean_azimuth_deg"] - static.azimuth_deg[0]))
    assert abs(near["mean_azimuth_deg"] - static.azimuth_deg[0]) < 8.0
    assert near["motion"] == "static"


@pytest.mark.parametrize(("kind", "seed"), [
    ("crossing_and_static", 97),  # a truck crosses 30-40 degrees from a helicopter
    ("approaching_and_static", 10),  # a motorcycle 62 degrees from a louder helicopter
    ("two_crossing", 19),  # a plane and a helicopter setting off 55 degrees apart
])
def test_foa_finds_a_second_source_its_subspace_holds_weakly(kind, seed):
    """FOA: two sources 25-60 degrees apart have steering vectors 0.6-0.95 alike, so the
    second eigenvalue of their covariance is a few percent of the first; it is far above
    the noise's, and both are found, with their motions (each pair was one source
    before)."""
    from spa2v.roundtrip import roundtrip_layout

    spec = make_scene(kind, seed)
    trip = roundtrip_layout(scene_layout(spec), fmt="foa", seed=seed)
    motions = sorted(s["motion"] for s in trip.analysis["sources"])
    assert motions == sorted(src.motion for src in spec.sources)


@pytest.mark.parametrize(("fmt", "seed"), [
    ("binaural", 185), ("foa", 37), ("foa", 61),
])
def test_two_sources_crossing_each_other_keep_their_ways(fmt, seed):
    """Near each other two sources' window peaks merge and repel, so two crossing sources
    look like two that meet and turn back; the tracks are mended into two crossings
    (each scene here read as a bounce, or as approaching and static, without)."""
    from spa2v.roundtrip import roundtrip_layout

    spec = make_scene("two_crossing", seed)
    trip = roundtrip_layout(scene_layout(spec), fmt=fmt, seed=seed)
    motions = sorted(s["motion"] for s in trip.analysis["sources"])
    assert motions == ["left_to_right", "right_to_left"]


def test_a_source_lost_while_it_crosses_another_is_bridged():
    """FOA: a helicopter and a plane cross; for 1.2 s the subspace holds one direction
    between them, and the helicopter's track ends 25 degrees short of the crossing while
    its continuation starts 1.7 s later on the plane's other side.  The two halves are
    joined across the plane's track (the helicopter was static at its last azimuth
    before)."""
    from spa2v.roundtrip import roundtrip_layout

    spec = make_scene("two_crossing", 19)
    trip = roundtrip_layout(scene_layout(spec), fmt="foa", seed=19)
    found = trip.analysis["sources"]
    assert sorted(s["motion"] for s in found) == ["left_to_right", "right_to_left"]
    heli = next(s for s in found if s["motion"] == "right_to_left")
    az = [a for a, on in zip(heli["azimuth_deg"], heli["active"], strict=True) if on]
    assert az[0] < -35.0 and az[-1] > 25.0


@pytest.mark.parametrize(("kind", "seed", "motions"), [
    ("two_static", 73, ["static", "static"]),
    ("crossing_and_static", 75, ["left_to_right", "static"]),
])
def test_a_siren_beside_a_broadband_source_is_found(kind, seed, motions):
    """An ambulance's siren holds a few bins beside a helicopter or a plane: its sweep
    stands out of their steady level there (the foreground search).  In seed 73 the
    siren's track came and went, and the helicopter's level share followed it, until the
    siren's aliases were told from it (``tracking.ALIAS_BAND_HZ``)."""
    from spa2v.roundtrip import roundtrip_layout

    spec = make_scene(kind, seed)
    trip = roundtrip_layout(scene_layout(spec), fmt="binaural", seed=seed)
    found = trip.analysis["sources"]
    assert sorted(s["motion"] for s in found) == motions
    for src in spec.sources:  # each static one where it is
        if src.motion == "static":
            assert min(abs(s["mean_azimuth_deg"] - src.azimuth_deg[0]) for s in found) < 10.0


@pytest.mark.parametrize("seed", [52, 107, 700183])
def test_a_siren_crossing_a_broadband_source_is_told_from_its_aliases(seed):
    """A siren and a plane or a helicopter cross.  The siren's harmonics fit its delay and
    that delay plus or minus one period: GCC-PHAT gave ghosts 30-60 degrees to its other
    side that took its track (52: static; 107: receding, and a third source), or, where
    the broadband source held the onsets, no siren at all (700183, hold-out seed 7).  Its
    bins' level differences fit only the siren."""
    from spa2v.roundtrip import roundtrip_layout

    spec = make_scene("two_crossing", seed)
    assert "ambulance" in [s.name for s in spec.sources]
    trip = roundtrip_layout(scene_layout(spec), fmt="binaural", seed=seed)
    motions = sorted(s["motion"] for s in trip.analysis["sources"])
    assert motions == ["left_to_right", "right_to_left"]


def test_a_lone_siren_crossing_keeps_one_track():
    """Hold-out seed 7 scene 4: the siren's side lobes (a fifth of its height) lay nearer
    its young track than its next peak; it read as a static source and a second one."""
    from spa2v.roundtrip import roundtrip_layout

    spec = make_scene("crossing_right_to_left", 700025)
    trip = roundtrip_layout(scene_layout(spec), fmt="binaural", seed=700025)
    assert [s["motion"] for s in trip.analysis["sources"]] == ["right_to_left"]


def test_a_chance_foreground_window_makes_no_third_source():
    """Two crossing sources leave foreground bins that no found direction explains in a
    window here and there; a foreground source must hold its place in the next window
    or the previous one too.  (Without the foreground search a third source came from
    elsewhere in this scene: the test guards both.)"""
    from spa2v.roundtrip import roundtrip_layout

    spec = make_scene("two_crossing", 30)
    trip = roundtrip_layout(scene_layout(spec), fmt="binaural", seed=30)
    assert len(trip.analysis["sources"]) == 2


@pytest.mark.parametrize("seed", [40, 51, 62])
def test_a_steady_source_beside_an_impulsive_one_is_found(seed):
    """A helicopter's blade pulses hold the onsets; the steady engine beside it has few
    onsets of its own but is found from the all-frames GCC-PHAT, where its bins stay
    coherent (a wall's image leaves diffuse ones: tests/test_distance_trend.py)."""
    from spa2v.roundtrip import roundtrip_layout

    spec = make_scene("two_static", seed)
    trip = roundtrip_layout(scene_layout(spec), fmt="binaural", seed=seed)
    found = [s["mean_azimuth_deg"] for s in trip.analysis["sources"]]
    assert len(found) == 2
    for src in spec.sources:
        assert min(abs(a - src.azimuth_deg[0]) for a in found) < 8.0, (src.name, found)


@pytest.mark.parametrize("fmt", ["binaural", "foa"])
def test_an_approaching_plane_at_the_picture_side_stays_approaching(fmt):
    """At -44 degrees the plane's box is cut by the picture's right edge all along, and
    the planned-back box grows a little more than the true one: its visible centre moved
    by more than a crossing's sweep, and the comparison read right_to_left."""
    from spa2v.roundtrip import roundtrip_layout

    trip = roundtrip_layout(scene_layout(make_scene("approaching", 60)), fmt=fmt, seed=60)
    (pair,) = trip.report["pairs"]
    assert (pair["motion_a"], pair["motion_b"]) == ("approaching", "approaching")


def test_a_steady_source_keeps_its_windows_where_the_other_grows_louder():
    """Two crossing sources, an engine and a helicopter: the helicopter's all-frames peak
    grows as the clip goes on, and the engine's, a third of it, fell under the onset
    windows' threshold there; the engine's track broke in two (three sources, one 17
    degrees off).  The all-frames peaks have their own threshold and onset-unit heights."""
    from spa2v.roundtrip import roundtrip_layout

    spec = make_scene("two_crossing", 85)
    trip = roundtrip_layout(scene_layout(spec), fmt="binaural", seed=85)
    found = trip.analysis["sources"]
    assert len(found) == 2, [s["mean_azimuth_deg"] for s in found]
    assert sorted(s["motion"] for s in found) == ["left_to_right", "right_to_left"]
    assert trip.report["summary"]["mean_azimuth_error_deg"] < 5.0


@pytest.mark.parametrize(("kind", "seed"), [("crossing_and_static", 42),
                                            ("crossing_left_to_right", 25),
                                            ("crossing_right_to_left", 48)])
def test_a_crossing_source_is_searched_along_its_sweep(kind, seed):
    """A source crossing at 45 deg/s sweeps 20 degrees in an analysis window, a radian of
    interaural phase at 1 kHz: steered at one direction its bins look incoherent.  The
    residual search steers along sweeps, so the crossing source beside a static one is
    found, and the leading edge of a lone crossing is not taken for a second source."""
    from spa2v.roundtrip import roundtrip_layout

    spec = make_scene(kind, seed)
    trip = roundtrip_layout(scene_layout(spec), fmt="binaural", seed=seed)
    found = trip.analysis["sources"]
    assert len(found) == len(spec.sources), [s["mean_azimuth_deg"] for s in found]
    for src in spec.sources:
        mid = 0.5 * sum(src.azimuth_deg)
        near = min(found, key=lambda s, mid=mid: abs(s["mean_azimuth_deg"] - mid))
        assert near["motion"] == src.motion, (src.name, near["motion"])


@pytest.mark.parametrize("seed", [7, 29, 84])
def test_two_static_sources_in_foa_are_found_where_they_are(seed):
    """The intensity vector of a bin that two sources share points between them, and a
    histogram of bin directions made a phantom there (or lost the source holding fewer
    bins); the window covariance's signal subspace holds both steering vectors, so its
    spectrum peaks at each source and not between them.  (A source found only in the
    residual, beside a louder one, is still drawn up to 10 degrees towards it.)"""
    from spa2v.roundtrip import roundtrip_layout

    spec = make_scene("two_static", seed)
    trip = roundtrip_layout(scene_layout(spec), fmt="foa", seed=seed)
    found = [s["mean_azimuth_deg"] for s in trip.analysis["sources"]]
    assert len(found) == 2, found
    for src in spec.sources:
        assert min(abs(a - src.azimuth_deg[0]) for a in found) < 12.0, (src.name, found)
