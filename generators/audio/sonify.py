"""A Video Scene Layout back to spatial audio: the rule planner's reverse.

Each object of the layout becomes a moving source (``spa2v.simulate.SceneSource``):

- **azimuth** from the box's horizontal centre through the layout's camera model
  (:meth:`spa2v.conventions.Camera.x_to_azimuth`), where a box cut by the frame edge is
  first given back the width its height implies; objects the planner flagged as heard
  behind the camera (``meta["behind_objects"]``) are unfolded to the back
  (``az -> 180 - az``).
- **distance** from the box size, inverting ``planners.rule``: the planner draws a class
  at its typical size (its class-size prior over ``spa2v.classes``) at the relative
  distance 1 and scales the box by ``1 / r``; here ``r = typical size / box size``
  (height and width where the frame edge does not cut the box, geometric mean; where
  it cuts both, the straight line in log r through the uncut times), and the distance
  is ``REFERENCE_DISTANCE_M * r``.  A box twice as large is half as far, i.e. 6 dB
  louder, which the planner reads back as the same ``r``.
- **elevation** (FOA only, flying classes): the inverse of the planner's FOA rule
  ``y_centre = horizon (1 - sin el)``; two ears do not tell elevation, so binaural
  output keeps every source on the horizontal plane.
- **signal** by the object's name: ``sources[name]`` (an array or a file) first, then a
  text-to-audio model when one is given, then the class's procedural source
  (``spa2v.sources`` through ``spa2v.classes``), else noise.  An object is silent
  (with 20 ms fades) wherever the layout does not show it, except in absences shorter
  than ``MIN_GAP_S`` between two appearances (pauses of its own sound).

Labels survive the trip (``keep_labels``, on by default).  A signal's own slow level
changes are divided out (``even_out_level``: a horn at the end of a recording would read
as an approach).  Then the layout's motion label of an object (``meta["motions"]`` from
the rule planner, else read from the boxes with the planner's thresholds,
``layout_motions``) is made unmistakable: a crossing object sweeps at least
``CROSSING_TARGET_DEG`` between the first and last fifth of its visible time (the
analysis' measure), a non-crossing one at most ``STATIC_MAX_SWEEP_DEG``; an approaching
or receding one changes level by at least ``LEVEL_TARGET_DB`` (a linear fit, as the
analysis measures it), a static one by at most ``STATIC_MAX_LEVEL_DB``; and the level's
ups and downs around its trend are scaled to at most ``MAX_LEVEL_RESIDUAL_DB`` (standard
deviation), since the analysis discounts a trend that does not stand out from them.
Each correction adds a linear ramp to a track, so a layout that already carries its
label clearly is rendered as it is.  ``keep_labels=False`` (``spa2v sonify --exact``)
renders the boxes exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np

from generators.audio.signals import (
    SignalSpec,
    TextToAudioFn,
    class_signal,
    generated_signal,
    load_signal,
)
from spa2v._typing import PathType
from spa2v.classes import SoundClass, lookup
from spa2v.conventions import MOTION_LABELS, Camera, motion_label, wrap_deg
from spa2v.errors import InputError
from spa2v.layout import SceneLayout
from spa2v.simulate import Keyframe, SceneSource, Simulation, Trajectory, simulate_scene

REFERENCE_DISTANCE_M = 2.0
"""Distance of an object drawn at its class's typical size (the rule planner's r = 1)."""
CONTROL_HOP_S = 0.05
"""Keyframe spacing of the rendered trajectories (boxes are interpolated between)."""
MIN_DISTANCE_M = 0.3
R_MIN = 0.25
"""The rule planner's nearest relative distance."""
MAX_DISTANCE_M = 40.0
EDGE_EPS = 1e-3
GATE_FADE_S = 0.02
CROSSING_TARGET_DEG = 42.0
STATIC_MAX_SWEEP_DEG = 18.0
LEVEL_TARGET_DB = 10.0
STATIC_MAX_LEVEL_DB = 1.0
MAX_LEVEL_RESIDUAL_DB = 1.0
END_FRACTION = 0.2
"""The analysis compares the medians of the first and last fifth of a track."""
MAX_FRONTAL_DEG = 89.0
MIN_GAP_S = 0.5
"""Shorter absences between two appearances are bridged (``layout_to_scene``)."""


@lru_cache(maxsize=1)
def _planner():
    from planners.rule import RulePlanner

    return RulePlanner()


def class_box_size(cls: SoundClass) -> tuple[float, float]:
    """Normalised (width, height) the rule planner draws ``cls`` at relative distance 1."""
    return _planner().class_size(cls)


# --------------------------------------------------------------------------- geometry
def relative_distance(boxes: np.ndarray, cls: SoundClass, times: np.ndarray | None = None,
                      use: np.ndarray | None = None) -> np.ndarray:
    """Relative distance ``r`` (the rule planner's) of boxes ``(T, 4)`` of one class.

    Height and width each give ``typical / observed``; a dimension cut by the frame edge
    is left out.  Where both are cut, ``r`` follows the straight line (in log r over
    ``times``) through the uncut samples, but never farther than the cut box says (a
    cut only shrinks a box); without ``times`` or uncut samples, the cut estimate.
    """
    w0, h0 = class_box_size(cls)
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    r_w = w0 / np.maximum(x2 - x1, 1e-4)
    r_h = h0 / np.maximum(y2 - y1, 1e-4)
    w_ok = (x1 > EDGE_EPS) & (x2 < 1.0 - EDGE_EPS)
    h_ok = y1 > EDGE_EPS
    if cls.placement != "ground":  # the planner stands near ground objects on the bottom edge
        h_ok &= y2 < 1.0 - EDGE_EPS
    cut = np.minimum(r_w, r_h)
    r = np.where(w_ok & h_ok, np.sqrt(r_w * r_h), np.where(w_ok, r_w, np.where(h_ok, r_h, cut)))
    good = w_ok | h_ok
    if use is not None:
        good &= use
    if times is not None and good.sum() >= 2 and not (w_ok | h_ok).all():
        tg = times[good]
        if tg[-1] > tg[0]:
            slope, icpt = np.polyfit(tg, np.log(r[good]), 1)
            line = np.exp(slope * times + icpt)
            r = np.where(w_ok | h_ok, r, np.clip(line, R_MIN, cut))
    return r


def box_centre_x(boxes: np.ndarray, cls: SoundClass, r: np.ndarray | None = None) -> np.ndarray:
    """Horizontal centre of boxes ``(T, 4)``, undoing the frame edge's cut.

    The planner centres a box on the source's x and then clips it to the frame; where one
    side is cut, the centre is put back half the full width (the class's width at the
    relative distance ``r``, by default ``relative_distance``) from the uncut side.
    """
    w0, _ = class_box_size(cls)
    r = relative_distance(boxes, cls) if r is None else r
    x1, x2 = boxes[:, 0], boxes[:, 2]
    full_w = w0 / r
    wider = full_w > (x2 - x1) + 1e-6
    left_cut = (x1 <= EDGE_EPS) & (x2 < 1.0 - EDGE_EPS) & wider
    right_cut = (x2 >= 1.0 - EDGE_EPS) & (x1 > EDGE_EPS) & wider
    xc = np.where(left_cut, x2 - full_w / 2.0, (x1 + x2) / 2.0)
    return np.where(right_cut, x1 + full_w / 2.0, xc)


def frontal_sweep_deg(azimuth_deg: np.ndarray) -> float:
    """Median of the last fifth minus median of the first fifth (the analysis' sweep)."""
    n = max(1, min(len(azimuth_deg), max(3, int(round(END_FRACTION * len(azimuth_deg))))))
    return float(np.median(azimuth_deg[-n:]) - np.median(azimuth_deg[:n]))


def level_change_db(times: np.ndarray, level_db: np.ndarray) -> float:
    """Net level change of a track: slope of a linear fit times its span."""
    if len(times) < 2 or times[-1] <= times[0]:
        return 0.0
    slope = np.polyfit(times, level_db, 1)[0]
    return float(slope * (times[-1] - times[0]))


def _ramp(times: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """0 at the first visible time, 1 at the last, held outside."""
    tv = times[visible]
    if len(tv) < 2 or tv[-1] <= tv[0]:
        return np.zeros_like(times)
    return np.clip((times - tv[0]) / (tv[-1] - tv[0]), 0.0, 1.0)


def layout_motions(layout: SceneLayout) -> dict[int, str]:
    """The motion label of each object: ``meta["motions"]`` where the layout has it (the
    rule planner writes it), else read from the boxes with the planner's thresholds."""
    meta = layout.meta.get("motions") if isinstance(layout.meta, dict) else None
    ids = layout.object_ids
    if (isinstance(meta, list) and len(meta) == len(ids)
            and all(m in MOTION_LABELS for m in meta)):
        return dict(zip(ids, meta, strict=True))
    camera = layout.camera.to_camera()
    out = {}
    tk = layout.keyframe_times
    for obj in layout.objects:
        boxes, vis = layout.track(obj.id, tk)
        if not vis.any():
            out[obj.id] = "static"
            continue
        b = boxes[vis]
        cls = lookup(obj.name)
        r = relative_distance(b, cls, tk[vis])
        az = camera.x_to_azimuth(box_centre_x(b, cls, r))
        out[obj.id] = motion_label(float(az[-1] - az[0]), float(-20.0 * np.log10(r[-1] / r[0])))
    return out


def _keep_labels(label: str, times: np.ndarray, visible: np.ndarray, az: np.ndarray,
                 level_db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ramp corrections so that the audio carries ``label`` with a margin."""
    ramp = _ramp(times, visible)
    centred = ramp - 0.5
    if visible.sum() >= 2:
        sweep = frontal_sweep_deg(az[visible])
        unit = frontal_sweep_deg(centred[visible]) or 1.0
        if label in ("left_to_right", "right_to_left"):
            target = -CROSSING_TARGET_DEG if label == "left_to_right" else CROSSING_TARGET_DEG
            if (sweep > target) if label == "left_to_right" else (sweep < target):
                az = az + (target - sweep) / unit * centred
                az = _fit_frontal(az)
        elif abs(sweep) > STATIC_MAX_SWEEP_DEG:
            target = np.sign(sweep) * STATIC_MAX_SWEEP_DEG
            az = az + (target - sweep) / unit * centred
        tv, lv = times[visible], level_db[visible]
        slope, icpt = np.polyfit(tv, lv, 1)
        trend = slope * times + icpt
        resid = level_db - trend
        spread = float(np.std(resid[visible]))
        if spread > MAX_LEVEL_RESIDUAL_DB:  # wiggles would hide the trend from the analysis
            level_db = trend + resid * (MAX_LEVEL_RESIDUAL_DB / spread)
        change = level_change_db(tv, level_db[visible])
        unit_l = level_change_db(tv, ramp[visible]) or 1.0
        if label == "approaching" and change < LEVEL_TARGET_DB:
            level_db = level_db + (LEVEL_TARGET_DB - change) / unit_l * ramp
        elif label == "receding" and change > -LEVEL_TARGET_DB:
            level_db = level_db + (-LEVEL_TARGET_DB - change) / unit_l * ramp
        elif label == "static" and abs(change) > STATIC_MAX_LEVEL_DB:
            target = np.sign(change) * STATIC_MAX_LEVEL_DB
            level_db = level_db + (target - change) / unit_l * ramp
    return az, level_db


def _fit_frontal(az: np.ndarray) -> np.ndarray:
    """Keep a frontal track inside +/-89 degrees by shifting it (not clipping its sweep)."""
    hi, lo = float(np.max(az)), float(np.min(az))
    if hi - lo > 2 * MAX_FRONTAL_DEG:
        return np.clip(az, -MAX_FRONTAL_DEG, MAX_FRONTAL_DEG)
    if hi > MAX_FRONTAL_DEG:
        az = az - (hi - MAX_FRONTAL_DEG)
    elif lo < -MAX_FRONTAL_DEG:
        az = az + (-MAX_FRONTAL_DEG - lo)
    return az


def even_out_level(y: np.ndarray, sr: int, active: np.ndarray | None = None, *,
                   window_s: float = 0.5, max_db: float = 15.0) -> np.ndarray:
    """Divide out a signal's slow level changes, as the analysis would measure them.

    The level envelope is a sliding 80th percentile of 20 ms frame levels over
    ``window_s`` (sounding frames of the ``active`` part only); its deviation from the
    median, limited to ``max_db``, is taken off.  A horn at the end of a train recording,
    or a bar of drums with only hi-hats, then no longer reads as a change of distance;
    the sound within a window keeps its dynamics.
    """
    hop = max(1, int(0.02 * sr))
    n_frames = len(y) // hop
    half = max(1, int(round(window_s / 0.04)))
    if n_frames < 4 * half:
        return y
    frames = y[: n_frames * hop].reshape(n_frames, hop).astype(np.float64)
    lvl = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    ok = np.ones(n_frames, bool) if active is None else active[::hop][:n_frames] > 0.5
    if not ok.any():
        return y
    ok &= lvl > max(lvl[ok].max() - 40.0, np.percentile(lvl[ok], 10) + 6.0)
    env = np.full(n_frames, np.nan)
    for k in range(n_frames):
        sel = lvl[max(0, k - half):k + half + 1][ok[max(0, k - half):k + half + 1]]
        if len(sel) >= max(2, half // 3):
            env[k] = np.percentile(sel, 80)
    good = np.isfinite(env)
    if good.sum() < 2:
        return y
    t = (np.arange(n_frames) + 0.5) * hop / sr
    dev = env[good] - np.median(env[good])
    gain_db = -np.clip(np.interp(np.arange(len(y)) / sr, t[good], dev), -max_db, max_db)
    return (y * 10.0 ** (gain_db / 20.0)).astype(np.float32)


def bridge_gaps(visible: np.ndarray, times: np.ndarray, min_gap_s: float) -> np.ndarray:
    """Visibility with absences shorter than ``min_gap_s`` between two visible times filled."""
    out = visible.copy()
    idx = np.flatnonzero(visible)
    for a, b in zip(idx[:-1], idx[1:], strict=True):
        if b - a > 1 and times[b] - times[a] < min_gap_s + 1e-9:
            out[a:b] = True
    return out


def _gate(visible: np.ndarray, times: np.ndarray, n: int, sr: int) -> np.ndarray:
    """Sample envelope: 1 where the object is visible, 0 elsewhere, 20 ms fades."""
    t = np.arange(n) / sr
    g = np.interp(t, times, visible.astype(np.float64))
    g = (g >= 0.5).astype(np.float64)
    k = max(1, int(GATE_FADE_S * sr))
    if k > 1 and not g.all():
        kernel = np.ones(k) / k
        g = np.convolve(g, kernel, mode="same")
    return g.astype(np.float32)


# --------------------------------------------------------------------------- public API
def scene_object_ids(layout: SceneLayout) -> list[int]:
    """Ids of the objects ``layout_to_scene`` renders, in its order (visible at some time)."""
    times = _control_times(layout.duration)
    return [o.id for o in layout.objects if layout.track(o.id, times)[1].any()]


def _control_times(duration_s: float) -> np.ndarray:
    n = max(2, int(np.ceil(duration_s / CONTROL_HOP_S - 1e-9)) + 1)
    return np.linspace(0.0, duration_s, n)


def _signal_for(name: str, oid: int, cls: SoundClass, prompt: str, *, duration_s: float,
                sr: int, seed: int, sources: Mapping[str, SignalSpec] | None,
                text_to_audio: TextToAudioFn | None) -> tuple[np.ndarray, str]:
    if sources:
        spec = sources.get(name, sources.get(str(oid)))
        if spec is not None:
            y, label = load_signal(spec, duration_s=duration_s, sr=sr, seed=seed)
            return y, label if isinstance(spec, np.ndarray) else str(spec)
    if text_to_audio is not None:
        return (generated_signal(text_to_audio, prompt, duration_s=duration_s, sr=sr, seed=seed),
                f"text-to-audio: {prompt}")
    return class_signal(cls, duration_s=duration_s, sr=sr, seed=seed), f"procedural: {cls.source}"


def layout_to_scene(
    layout: SceneLayout,
    *,
    sr: int = 48000,
    sources: dict[str, np.ndarray | PathType] | None = None,
    seed: int = 0,
    text_to_audio: TextToAudioFn | None = None,
    elevation: bool = False,
    keep_labels: bool = True,
    min_gap_s: float = MIN_GAP_S,
) -> tuple[list[SceneSource], float]:
    """Each VSL object -> a ``SceneSource`` (see the module docstring).

    Parameters
    ----------
    layout : SceneLayout
    sr : int
        Sample rate of the signals.
    sources : dict, optional
        Signals by object name (or object id as a string): arrays ``(samples,)`` at ``sr``
        or audio files.  Others get a text-to-audio or procedural source of their class.
    seed : int
        Seeds the procedural sources (each object gets its own take).
    text_to_audio : callable, optional
        ``model(prompt, *, duration_s, sr, seed) -> (samples,)``; prompted with the
        object's description or name.
    elevation : bool
        Give flying classes the elevation their height in the frame stands for (FOA).
    keep_labels : bool
        Make each object's motion label unmistakable in the audio (module docstring).
    min_gap_s : float
        Absences shorter than this between two appearances are the source pausing
        within its own sound (a planner hides an object in a keyframe whose window was
        mostly quiet): the object keeps sounding through them.  0 silences every gap.

    Returns
    -------
    sources : list of SceneSource
        One per object visible at some time, in the order of ``scene_object_ids``.
    duration_s : float

    Raises
    ------
    InputError
        No object of the layout is visible in any frame.
    """
    camera: Camera = layout.camera.to_camera()
    duration = float(layout.duration)
    times = _control_times(duration)
    n = max(int(round(duration * sr)), 1)
    behind_ids = set(layout.meta.get("behind_objects", []) or []) if isinstance(
        layout.meta, dict) else set()
    labels = layout_motions(layout)
    horizon = _planner().horizon_y
    out: list[SceneSource] = []
    for obj in layout.objects:
        boxes, visible = layout.track(obj.id, times)
        if not visible.any():
            continue
        visible = bridge_gaps(visible, times, min_gap_s)
        cls = lookup(obj.name)
        r = relative_distance(boxes, cls, times, visible)
        az = camera.x_to_azimuth(box_centre_x(boxes, cls, r))
        level_db = -20.0 * np.log10(r)
        if keep_labels:
            az, level_db = _keep_labels(labels.get(obj.id, "static"), times, visible, az,
                                        level_db)
        dist = np.clip(REFERENCE_DISTANCE_M * 10.0 ** (-level_db / 20.0), MIN_DISTANCE_M,
                       MAX_DISTANCE_M)
        if obj.id in behind_ids:
            az = 180.0 - az
        el = np.zeros_like(az)
        if elevation and cls.placement == "air":
            yc = (boxes[:, 1] + boxes[:, 3]) / 2.0
            el = np.rad2deg(np.arcsin(np.clip(1.0 - yc / horizon, 0.0, 1.0)))
        kfs = tuple(Keyframe(float(t), float(wrap_deg(a)), float(e), float(d))
                    for t, a, e, d in zip(times, az, el, dist, strict=True))
        prompt = obj.description.strip() or obj.name
        sig, _ = _signal_for(obj.name, obj.id, cls, prompt, duration_s=duration, sr=sr,
                             seed=seed + 7919 * obj.id, sources=sources,
                             text_to_audio=text_to_audio)
        gate = _gate(visible, times, n, sr)[: len(sig)]
        if keep_labels:
            sig = even_out_level(sig[:n], sr, gate)
        sig = sig[:n] * gate
        out.append(SceneSource(sig.astype(np.float32), Trajectory(kfs), name=obj.name))
    if not out:
        raise InputError("no object of the layout is visible in any frame; there is nothing "
                         "to sonify")
    return out, duration


def sonify_layout(
    layout: SceneLayout,
    *,
    fmt: str = "binaural",
    sr: int = 48000,
    sources: dict[str, np.ndarray | PathType] | None = None,
    hrtf: PathType | None = None,
    rt60_s: float = 0.0,
    seed: int = 0,
    text_to_audio: TextToAudioFn | None = None,
    keep_labels: bool = True,
) -> Simulation:
    """Render a layout to binaural or FOA (AmbiX) audio with its ground truth.

    ``rt60_s`` > 0 adds a room; ``hrtf`` (a SOFA file) replaces the spherical head
    (binaural).  The truth's sources carry ``object_id`` and ``layout_motion`` (the
    label the audio was made to carry).
    """
    if fmt not in ("binaural", "foa"):
        raise InputError(f"unknown format {fmt!r}; use binaural or foa")
    if hrtf is not None and fmt != "binaural":
        raise InputError("an HRTF applies to binaural output only")
    if rt60_s and not 0.05 <= rt60_s <= 10.0:
        raise InputError(f"the reverberation time must be within [0.05, 10] s, got {rt60_s}")
    scene, duration = layout_to_scene(layout, sr=sr, sources=sources, seed=seed,
                                      text_to_audio=text_to_audio, elevation=fmt == "foa",
                                      keep_labels=keep_labels)
    head = None
    if hrtf is not None:
        from spa2v.hrtf import SofaHrtf

        head = SofaHrtf.from_file(hrtf, sr)
    sim = simulate_scene(scene, fmt=fmt, sr=sr, duration_s=duration, head=head,
                         rt60_s=rt60_s or None, seed=seed)
    labels = layout_motions(layout)
    for entry, oid in zip(sim.truth["sources"], scene_object_ids(layout), strict=True):
        entry["object_id"] = int(oid)
        entry["layout_motion"] = labels.get(oid, "static")
    sim.truth["layout_caption"] = layout.caption
    return sim
