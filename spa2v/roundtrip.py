"""Round trips: both directions of spa2v checked against each other.

- (a) layout -> spatial audio (``generators.audio.sonify``) -> analysis -> rule planner ->
  layout, compared with the first (:func:`spa2v.evaluate.compare_layouts`): motion labels
  of the boxes and per-frame azimuth (box centre x through the camera).
- (b) audio -> analysis -> layout -> animatic video, whose objects are tracked in the
  frames (:mod:`spa2v.visual`) and evaluated against the audio
  (:func:`spa2v.evaluate.evaluate_alignment`).
- (c) the loop audio -> video -> audio: the video of (b) turned back into audio
  (:mod:`spa2v.video2audio`: its objects tracked, laid out and sonified), analysed
  again and compared with the original's analysis
  (:func:`spa2v.video2audio.compare_analyses`): motion labels and per-frame azimuth.
- The suite: generated scenes (static left, center, right; crossing both ways;
  approaching; receding; one and two sources) through (a), then (b) and (c) on the audio
  of (a), with aggregate figures.

Part of the application face (like :mod:`spa2v.pipeline`): it finds planners and
generators by name and imports the layout sonifier.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spa2v.errors import InputError

KINDS_ONE = ("static_left", "static_center", "static_right", "crossing_left_to_right",
             "crossing_right_to_left", "approaching", "receding")
KINDS_TWO = ("two_static", "two_crossing", "crossing_and_static", "approaching_and_static")
KINDS = KINDS_ONE + KINDS_TWO
NAMES = ("car", "truck", "motorcycle", "ambulance", "helicopter", "plane")
"""Classes whose procedural sounds are continuous and steady (a bark or a chirp comes in
bursts, a train rumble swells: a level-based distance cue reads the swell as an approach)."""
SUITE_SIZE = (256, 144)
SUITE_FPS = 8


# =========================================================================== scenes
@dataclass
class SourceSpec:
    """A source moving linearly in azimuth and distance from ``t = 0`` to the end."""

    name: str
    azimuth_deg: tuple[float, float]
    distance_m: tuple[float, float]

    @property
    def motion(self) -> str:
        from spa2v.conventions import motion_label

        a0, a1 = self.azimuth_deg
        r0, r1 = self.distance_m
        return motion_label(a1 - a0, 20.0 * np.log10(r0 / r1))


@dataclass
class SceneSpec:
    kind: str
    sources: list[SourceSpec]
    duration_s: float = 3.0
    seed: int = 0
    meta: dict = field(default_factory=dict)


def _one(kind: str, rng: np.random.Generator, name: str) -> SourceSpec:
    u = rng.uniform
    if kind == "static_left":
        az = u(30.0, 70.0)
        return SourceSpec(name, (az, az), (r := u(2.5, 4.0), r))
    if kind == "static_center":
        az = u(-7.0, 7.0)
        return SourceSpec(name, (az, az), (r := u(2.5, 4.0), r))
    if kind == "static_right":
        az = -u(30.0, 70.0)
        return SourceSpec(name, (az, az), (r := u(2.5, 4.0), r))
    if kind in ("crossing_left_to_right", "crossing_right_to_left"):
        a0, a1 = u(50.0, 75.0), -u(50.0, 75.0)
        if kind == "crossing_right_to_left":
            a0, a1 = a1, a0
        return SourceSpec(name, (a0, a1), (r := u(3.0, 5.0), r))
    if kind in ("approaching", "receding"):
        az = u(-45.0, 45.0)
        r0, r1 = u(6.0, 8.0), u(1.5, 2.5)
        if kind == "receding":
            r0, r1 = r1, r0
        return SourceSpec(name, (az, az), (r0, r1))
    raise ValueError(f"unknown single-source kind {kind!r}")


def make_scene(kind: str, seed: int, duration_s: float = 3.0) -> SceneSpec:
    """A random scene of one of ``KINDS`` (the same seed gives the same scene)."""
    if kind not in KINDS:
        raise ValueError(f"unknown scene kind {kind!r}; choose one of {', '.join(KINDS)}")
    rng = np.random.default_rng([KINDS.index(kind), seed])
    names = [str(n) for n in rng.choice(NAMES, size=2, replace=False)]
    if kind in KINDS_ONE:
        sources = [_one(kind, rng, names[0])]
    elif kind == "two_static":
        sources = [_one("static_left", rng, names[0]), _one("static_right", rng, names[1])]
    elif kind == "two_crossing":
        sources = [_one("crossing_left_to_right", rng, names[0]),
                   _one("crossing_right_to_left", rng, names[1])]
    elif kind == "crossing_and_static":
        cross = "crossing_left_to_right" if rng.random() < 0.5 else "crossing_right_to_left"
        side = "static_left" if rng.random() < 0.5 else "static_right"
        sources = [_one(cross, rng, names[0]), _one(side, rng, names[1])]
    else:  # approaching_and_static
        a = _one("approaching", rng, names[0])
        left = rng.random() < 0.5
        az = rng.uniform(15.0, 40.0) * (1 if left else -1)
        a.azimuth_deg = (az, az)
        b = _one("static_right" if left else "static_left", rng, names[1])
        sources = [a, b]
    return SceneSpec(kind, sources, duration_s, seed)


def suite_scenes(n: int, seed: int = 0, duration_s: float = 3.0) -> list[SceneSpec]:
    """``n`` scenes cycling through ``KINDS`` (each kind equally often, up to one)."""
    return [make_scene(KINDS[i % len(KINDS)], seed * 100003 + i, duration_s) for i in range(n)]


def scene_layout(spec: SceneSpec, *, fps: float = 4.0, camera=None):
    """The layout of a scene: its true tracks (azimuth, and the direct-path level of its
    distance) planned by the rule planner, so that sizes follow the planner's conventions.
    """
    from spa2v.registry import load
    from spa2v.simulate import Keyframe, Trajectory

    hop = 0.02
    times = np.arange(int(np.floor(spec.duration_s / hop + 1e-9)) + 1) * hop
    sources = []
    for i, s in enumerate(spec.sources):
        traj = Trajectory((Keyframe(0.0, s.azimuth_deg[0], 0.0, s.distance_m[0]),
                           Keyframe(spec.duration_s, s.azimuth_deg[1], 0.0, s.distance_m[1])))
        az, _, r = traj.at(times)
        sources.append({"id": i, "times": times.tolist(), "azimuth_deg": az.tolist(),
                        "elevation_deg": None, "loudness_db": (-20.0 * np.log10(r)).tolist(),
                        "distance_rel": (r / r[0]).tolist(), "active": [True] * len(times),
                        "behind": False})
    truth = {"input": spec.kind, "format": "truth", "duration": spec.duration_s, "hop_s": hop,
             "sources": sources}
    planner = load("planners", "rule")()
    return planner.plan(truth, labels=[s.name for s in spec.sources], fps=fps, camera=camera)


# =========================================================================== legs
def _sonify():
    try:
        from generators.audio.sonify import sonify_layout
    except ImportError as exc:
        raise InputError(f"the layout -> audio generator is not available ({exc})") from None
    return sonify_layout


def _labels_by_azimuth(analysis: dict, layout) -> list[str]:
    """Name each analysed source after the layout object nearest to it in azimuth (what a
    user who knows what is heard would pass as ``--label``); names only set box sizes."""
    from spa2v.conventions import angle_diff_deg, fold_front

    cam = layout.camera.to_camera()
    names = []
    for s in analysis["sources"]:
        times = np.asarray(s["times"], dtype=np.float64)
        az = np.array([np.nan if v is None else v for v in s["azimuth_deg"]], np.float64)
        act = np.asarray(s["active"], dtype=bool) & np.isfinite(az)
        az, _ = fold_front(np.nan_to_num(az))
        best, best_err = "sound source", np.inf
        for o in layout.objects:
            boxes, vis = layout.track(o.id, times)
            ok = act & vis
            if ok.any():
                obj_az = cam.x_to_azimuth(0.5 * (boxes[ok, 0] + boxes[ok, 2]))
                err = float(np.mean(np.abs(angle_diff_deg(az[ok], obj_az))))
                if err < best_err:
                    best, best_err = o.name, err
        names.append(best)
    return names


@dataclass
class LayoutTrip:
    """Leg (a): the audio made from a layout, its analysis, the layout planned back from
    it (None when the analysis found nothing to plan) and the comparison."""

    audio: np.ndarray
    sr: int
    fmt: str
    analysis: dict
    layout_back: object | None
    report: dict


def roundtrip_layout(layout, *, fmt: str = "binaural", sr: int = 48000, seed: int = 0,
                     name: str = "layout") -> LayoutTrip:
    """Layout -> spatial audio -> analysis -> rule planner -> layout, compared."""
    from spa2v.analysis import analyze_array
    from spa2v.evaluate import compare_layouts
    from spa2v.registry import load

    sim = _sonify()(layout, fmt=fmt, sr=sr, seed=seed)
    analysis = analyze_array(sim.audio, sim.sr, fmt, input_name=f"{name} ({fmt})",
                             max_sources=max(4, len(layout.objects)))
    back = None
    try:
        back = load("planners", "rule")().plan(
            analysis, labels=_labels_by_azimuth(analysis, layout), fps=layout.fps,
            camera=layout.camera.to_camera(), background=layout.background)
    except InputError as exc:
        report = {"planned": False, "reason": str(exc), "objects_a": len(layout.objects),
                  "pairs": [], "summary": {"motion_agreement": 0.0}}
    if back is not None:
        report = {"planned": True, **compare_layouts(layout, back)}
    report = {"direction": "layout -> audio -> layout", "format": fmt,
              "sources_found": len(analysis["sources"]), **report}
    return LayoutTrip(sim.audio, sim.sr, fmt, analysis, back, report)


def render_video(layout, out_path: Path, *, size: tuple[int, int], fps: int,
                 audio: tuple[np.ndarray, int] | None = None, overwrite: bool = False,
                 seed: int = 0) -> Path:
    from spa2v.registry import load

    gen = load("video_generators", "animatic")()
    return gen.render(layout, out_path, audio=audio, fps=fps, size=size, seed=seed,
                      overwrite=overwrite)


def roundtrip_video(analysis: dict, layout, video_path: Path, *, size=SUITE_SIZE,
                    fps: int = SUITE_FPS, audio: tuple[np.ndarray, int] | None = None,
                    overwrite: bool = False) -> dict:
    """Leg (b) from a planned layout: render it, track its objects, evaluate them against
    the audio's analysis."""
    from spa2v.evaluate import evaluate_alignment
    from spa2v.visual import track_objects

    render_video(layout, video_path, size=size, fps=fps, audio=audio, overwrite=overwrite)
    camera = layout.camera.to_camera()
    tracks = track_objects(video_path)
    report = evaluate_alignment(analysis, tracks, camera=camera)
    report["tracks"] = [t.to_dict(camera) for t in tracks]
    for t in report["tracks"]:  # the per-frame boxes are long; keep the summary
        t.pop("times")
        t.pop("boxes")
    return {"direction": "audio -> layout -> video -> audio", **report}


def names_from_layout(tracks, layout) -> list[str]:
    """Name each picture track after the layout object whose box centre is nearest to it
    over the frames both are seen (what a user who knows what is shown would pass as
    ``--label``)."""
    names = []
    for tr in tracks:
        best, best_err = "sound source", np.inf
        for o in layout.objects:
            boxes, vis = layout.track(o.id, tr.times)
            ok = vis & tr.active
            if ok.any():
                err = float(np.mean(np.abs(0.5 * (boxes[ok, 0] + boxes[ok, 2])
                                           - tr.centers[ok, 0])))
                if err < best_err:
                    best, best_err = o.name, err
        names.append(best)
    return names


def roundtrip_loop(analysis: dict, video_path: Path, *, fmt: str = "binaural", layout=None,
                   seed: int = 0, sr: int = 48000) -> dict:
    """Leg (c), the loop's way back: a video (made from ``analysis``' audio) -> its objects
    -> layout -> spatial audio -> analysis, compared with ``analysis``.

    ``layout``, when given (the layout the video was rendered from), names the tracks.
    Returns the comparison (:func:`spa2v.video2audio.compare_analyses`) with the objects
    found, the centre baseline and the audio made (``audio``, ``sr``; not JSON).
    """
    from spa2v.analysis import analyze_array
    from spa2v.video2audio import (
        centre_baseline_deg,
        compare_analyses,
        find_objects,
        layout_audio,
        objects_layout,
    )

    head = {"direction": "audio -> video -> audio", "format": fmt,
            "baseline_centre_azimuth_deg": centre_baseline_deg(analysis)}
    try:
        objects = find_objects(video_path)
    except InputError as exc:
        return {**head, "objects_found": 0, "reason": str(exc),
                **compare_analyses(analysis, {"sources": []})}
    if layout is not None:
        objects.names = names_from_layout(objects.tracks, layout)
    camera = layout.camera.to_camera() if layout is not None else None
    back_layout = objects_layout(objects, camera=camera)
    sim = layout_audio(back_layout, fmt=fmt, sr=sr, seed=seed)
    back = analyze_array(sim.audio, sim.sr, fmt, input_name=f"{Path(video_path).name} ({fmt})",
                         max_sources=max(4, len(objects.tracks)))
    return {**head, "objects_found": len(objects.tracks), "names": objects.names,
            "reason": None, **compare_analyses(analysis, back), "audio": sim.audio,
            "sr": sim.sr}


# =========================================================================== suite
def run_scene(spec: SceneSpec, *, fmt: str = "binaural", video: bool = True,
              workdir: Path | None = None) -> dict:
    """One suite scene through (a), then (b) and (c) on the audio of (a); per-object
    figures."""
    t0 = time.perf_counter()
    layout = scene_layout(spec)
    trip = roundtrip_layout(layout, fmt=fmt, seed=spec.seed, name=spec.kind)
    rep = trip.report
    cmp_pairs = {p["object_a"]: p for p in rep.get("pairs", [])}
    objects = []
    cam = layout.camera.to_camera()
    for o, s in zip(layout.objects, spec.sources, strict=True):
        p = cmp_pairs.get(o.id)
        # baseline: every object drawn in the centre of the picture (no spatial hearing)
        boxes, vis = layout.track(o.id, layout.keyframe_times)
        centre_err = np.abs(cam.x_to_azimuth(0.5 * (boxes[vis, 0] + boxes[vis, 2])))
        objects.append({
            "name": s.name, "truth_motion": s.motion,
            "centre_baseline_error_deg": round(float(np.mean(centre_err)), 3),
            "motion_layout": p["motion_a"] if p else None,
            "motion_back": p["motion_b"] if p else None,
            "motion_agrees": bool(p and p["motion_agrees"]),
            "azimuth_error_deg": p["mean_azimuth_error_deg"] if p else None,
            "frames": p["frames"] if p else 0,
        })
    out = {"kind": spec.kind, "seed": spec.seed, "sources": len(spec.sources),
           "sources_found": rep["sources_found"], "objects": objects,
           "max_iou": rep.get("max_iou"), "matched_iou": rep.get("matched_iou")}
    if video and trip.layout_back is not None:
        with tempfile.TemporaryDirectory(dir=workdir) as d:
            b = roundtrip_video(trip.analysis, trip.layout_back, Path(d) / "v.mp4")
            c = roundtrip_loop(trip.analysis, Path(d) / "v.mp4", fmt=fmt,
                               layout=trip.layout_back, seed=spec.seed)
        out["b"] = {"aligned": b["aligned"], "pairs": [
            {k: p[k] for k in ("mean_azimuth_error_deg", "frames", "direction_agrees",
                               "motion_agrees", "position_agrees")} for p in b["pairs"]],
            "visual_tracks": b["visual_tracks"], "reason": b["reason"]}
        out["c"] = _loop_summary(c)
    elif video:
        out["b"] = {"aligned": False, "pairs": [], "visual_tracks": 0,
                    "reason": "nothing was planned"}
        out["c"] = {"sources_reference": rep["sources_found"], "sources_other": 0,
                    "objects_found": 0, "pairs": [], "baseline_centre_azimuth_deg": None,
                    "reason": "nothing was planned"}
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def _loop_summary(c: dict) -> dict:
    """The JSON part of a leg (c) result, per pair the figures the aggregate needs."""
    keys = ("frames", "mean_azimuth_difference_deg", "motion_reference", "motion_other",
            "motion_agrees", "position_agrees", "level_change_reference_db",
            "level_change_other_db")
    return {"sources_reference": c["sources_reference"], "sources_other": c["sources_other"],
            "objects_found": c["objects_found"],
            "pairs": [{k: p[k] for k in keys} for p in c["pairs"]],
            "baseline_centre_azimuth_deg": c["baseline_centre_azimuth_deg"],
            "reason": c["reason"]}


def _mean(v: list[float]) -> float | None:
    return round(float(np.mean(v)), 4) if v else None


def aggregate(scenes: list[dict]) -> dict:
    """Suite figures: (a) motion-label agreement per object and frame-weighted mean
    azimuth error of paired objects; (b) aligned fraction, azimuth error, agreements;
    (c) motion and position agreement per source of the original analysis (an unpaired
    source disagrees), frame-weighted mean azimuth difference, and the centre baseline
    (the mean absolute azimuth of the original: the difference of audio with every source
    in the centre)."""
    objs = [o for s in scenes for o in s["objects"]]
    paired = [o for o in objs if o["frames"]]
    frames = sum(o["frames"] for o in paired)
    out = {
        "scenes": len(scenes),
        "objects": len(objs),
        "a_motion_agreement": _mean([o["motion_agrees"] for o in objs]),
        "a_mean_azimuth_error_deg": round(sum(o["azimuth_error_deg"] * o["frames"]
                                              for o in paired) / frames, 3) if frames else None,
        "a_objects_paired": _mean([bool(o["frames"]) for o in objs]),
        "a_source_count_right": _mean([s["sources_found"] == s["sources"] for s in scenes]),
        "a_layout_matches_truth": _mean([o["motion_layout"] == o["truth_motion"]
                                         for o in paired]),
        "a_max_iou": _mean([s["max_iou"] for s in scenes if s["max_iou"] is not None]),
        "baseline_centre_azimuth_error_deg": _mean([o["centre_baseline_error_deg"]
                                                    for o in objs]),
        "baseline_static_motion_agreement": _mean([o["truth_motion"] == "static"
                                                   for o in objs]),
    }
    with_b = [s for s in scenes if "b" in s]
    if with_b:
        pairs = [p for s in with_b for p in s["b"]["pairs"]]
        bf = sum(p["frames"] for p in pairs)
        out.update({
            "b_aligned": _mean([s["b"]["aligned"] for s in with_b]),
            "b_mean_azimuth_error_deg": round(sum(p["mean_azimuth_error_deg"] * p["frames"]
                                                  for p in pairs) / bf, 3) if bf else None,
            "b_direction_agreement": _mean([p["direction_agrees"] for p in pairs]),
            "b_motion_agreement": _mean([p["motion_agrees"] for p in pairs]),
            "b_position_agreement": _mean([p["position_agrees"] for p in pairs]),
        })
    with_c = [s["c"] for s in scenes if "c" in s]
    if with_c:
        pairs = [p for c in with_c for p in c["pairs"]]
        n_ref = sum(c["sources_reference"] for c in with_c)
        cf = sum(p["frames"] for p in pairs)
        base = [c["baseline_centre_azimuth_deg"] for c in with_c
                if c["baseline_centre_azimuth_deg"] is not None]
        out.update({
            "c_motion_agreement": round(sum(p["motion_agrees"] for p in pairs) / n_ref, 4)
            if n_ref else None,
            "c_mean_azimuth_difference_deg": round(sum(
                p["mean_azimuth_difference_deg"] * p["frames"] for p in pairs) / cf, 3)
            if cf else None,
            "c_position_agreement": round(sum(p["position_agrees"] for p in pairs) / n_ref, 4)
            if n_ref else None,
            "c_sources_paired": round(len(pairs) / n_ref, 4) if n_ref else None,
            "c_source_count_right": _mean([c["sources_other"] == c["sources_reference"]
                                           for c in with_c]),
            "c_baseline_centre_azimuth_deg": _mean(base),
        })
    out["seconds_per_scene"] = _mean([s["seconds"] for s in scenes])
    return out


def run_suite(n: int, *, seed: int = 0, fmt: str = "binaural", duration_s: float = 3.0,
              video: bool = True, emit=None) -> dict:
    """Run ``n`` generated scenes; ``emit(dict)`` is called with each scene's result."""
    scenes = []
    for spec in suite_scenes(n, seed, duration_s):
        res = run_scene(spec, fmt=fmt, video=video)
        scenes.append(res)
        if emit is not None:
            emit(res)
    by_kind = {k: aggregate([s for s in scenes if s["kind"] == k]) for k in KINDS
               if any(s["kind"] == k for s in scenes)}
    return {"format": fmt, "duration_s": duration_s, "seed": seed,
            "overall": aggregate(scenes),
            "one_source": aggregate([s for s in scenes if s["sources"] == 1]),
            "two_sources": aggregate([s for s in scenes if s["sources"] == 2]),
            "by_kind": by_kind, "scenes": scenes}


# =========================================================================== CLI
