"""The rule planner: analysis JSON -> Video Scene Layout by geometry (deterministic).

Each analysed source becomes an object whose box follows from three measured tracks:

- **x** from the camera model (:meth:`spa2v.conventions.Camera.azimuth_to_x`) on the
  azimuth averaged over each keyframe's window; sources behind the listener are folded
  by the camera and flagged.
- **size** from the class size prior (``spa2v.classes``) over the relative distance:
  linear size ``∝ 1 / r``, where ``r`` is the analysis' ``distance_rel`` track when it
  has one, else the direct-path law on smoothed loudness, ``r = 10^(-(L - L_ref) / 20)``
  (+6 dB halves the distance and doubles the box's width and height).  The analysis'
  motion label has the last word on a change of distance: a source it labels static
  keeps its size, and one it labels approaching or receding whose track's ends do not
  show that change gets a steady 6 dB one (``_agree_with_label``).
- **y** from a ground plane: ground objects stand below a horizon, their bottom edge
  lower the nearer they are (``bottom = horizon + offset / r``); flying ones sit above
  it, higher for a higher FOA elevation when the analysis has one.

Several sources are drawn back to front (farther first) and nudged apart horizontally
where their boxes overlap, never across the centre line and never by more than half a
box's width (each box still covers its source's own x).  Two sources that pass each
other are not nudged: they overlap as they pass, the nearer in front (held apart, each
box would stop at the other and jump past it).

Pinhole cameras: a source outside the field of view keeps its projected box, which is
clipped to the frame; where none of it is left the object is omitted from that
keyframe (it is off-screen), and an object off-screen throughout stays in ``objects``
with no boxes and is listed in ``meta["offscreen_objects"]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from planners.captions import FrameMention, ObjectSummary, frame_caption, global_caption
from spa2v._typing import FloatArray
from spa2v.classes import GENERIC, SoundClass, find_all, lookup
from spa2v.conventions import (
    DISTANCE_MIN_CHANGE_DB,
    MOTION_LABELS,
    Camera,
    fold_front,
    motion_label,
    position_label,
)
from spa2v.errors import InputError
from spa2v.layout import CameraSpec, SceneLayout, frame_count, layout_from_dict

GENERIC_NAME = GENERIC.name


@dataclass
class _Track:
    """One source's keyframe tracks (all shape ``(K,)``)."""

    index: int
    source_id: int
    active: np.ndarray
    azimuth_deg: FloatArray
    elevation_deg: FloatArray | None
    loudness_db: FloatArray
    distance_rel: FloatArray | None
    mean_loudness_db: float
    behind_flag: bool
    motion: str | None = None


class RulePlanner:
    """Deterministic geometry planner, the default.

    Parameters
    ----------
    horizon_y : float
        Normalised height of the horizon.
    ground_offset : float
        Bottom edge of a ground object below the horizon at the start distance.
    air_offset : float
        Centre of a flying object above the horizon at the start distance (used when
        the analysis has no elevation).
    frame_aspect : float
        Width / height of the picture the sizes are laid out for.
    typical_width : float
        Frame fraction of a car's extent at the start; other classes scale by
        ``(extent / car extent) ** 0.35`` (compressive, so a bird stays visible and a
        plane fits).
    min_active_fraction : float
        A keyframe shows a source when at least this fraction of its window is active.
    smooth_s : float
        Length of the moving average on the loudness (distance) track.
    r_range : (float, float)
        Clamp on the relative distance.
    start_window_s : float
        The start distance (the size reference) is the median over this much of the
        source's first active time.
    """

    name = "rule"

    def __init__(
        self,
        *,
        horizon_y: float = 0.55,
        ground_offset: float = 0.18,
        air_offset: float = 0.25,
        frame_aspect: float = 16 / 9,
        typical_width: float = 0.30,
        min_active_fraction: float = 0.3,
        smooth_s: float = 1.0,
        r_range: tuple[float, float] = (0.25, 4.0),
        start_window_s: float = 1.0,
    ) -> None:
        self.horizon_y = horizon_y
        self.ground_offset = ground_offset
        self.air_offset = air_offset
        self.frame_aspect = frame_aspect
        self.typical_width = typical_width
        self.min_active_fraction = min_active_fraction
        self.smooth_s = smooth_s
        self.r_range = r_range
        self.start_window_s = start_window_s

    # ------------------------------------------------------------------ public
    def plan(
        self,
        analysis: dict,
        *,
        labels: list[str] | None = None,
        caption: str | None = None,
        fps: float = 4.0,
        camera: Camera | None = None,
        background: str | None = None,
    ) -> SceneLayout:
        """Plan a layout from an analysis result (DESIGN.md, "Analysis result").

        Parameters
        ----------
        analysis : dict
            The analysis JSON, sources loudest first.
        labels : list of str, optional
            One name per analysed source (loudest first); extra sources get
            "sound source".  Without labels, names are taken from ``caption``.
        caption : str, optional
            The video caption; by default one is written from the geometry.
        fps : float
            Keyframe rate.
        camera : Camera, optional
            Camera model (default: sine projection).
        background : str, optional
            Scene keyword; by default the first object's class background.

        Raises
        ------
        InputError
            The analysis is malformed or has no active source.
        """
        if not fps > 0:
            raise InputError(f"the keyframe rate must be positive, got {fps}")
        camera = camera or Camera()
        duration, sources = _read_analysis(analysis)
        n_key = frame_count(duration, fps)
        times = np.arange(n_key) / fps

        tracks = [
            tr
            for i, src in enumerate(sources)
            if (tr := self._keyframe_track(i, src, times, fps)) is not None
        ]
        if not tracks:
            raise InputError("the analysis has no active sound source; there is nothing to plan")

        names = _names(len(sources), labels, caption)
        classes = [lookup(names[tr.index]) for tr in tracks]

        # Geometry per source, arrays (S, K).
        loud_ref = max(tr.mean_loudness_db for tr in tracks)
        geo = [
            self._geometry(tr, cls, camera, loud_ref, fps)
            for tr, cls in zip(tracks, classes, strict=True)
        ]
        boxes = np.stack([g["box"] for g in geo])  # (S, K, 4)
        visible = np.stack([g["visible"] for g in geo])  # (S, K)
        depth = np.stack([g["r"] for g in geo])  # (S, K)
        boxes = _nudge_apart(boxes, visible)
        boxes, inside = _clip_boxes(boxes)
        visible &= inside

        objects, summaries, behind_ids, offscreen_ids = [], [], [], []
        for oid, (tr, g) in enumerate(zip(tracks, geo, strict=True)):
            name = names[tr.index]
            behind = bool(g["behind"])
            summary = ObjectSummary(name, g["motion"], g["start"], g["end"], behind)
            summaries.append(summary)
            description = _describe(summary)
            if behind:
                behind_ids.append(oid)
            if not visible[oid].any():
                offscreen_ids.append(oid)
                description += "; outside the camera's field of view"
            objects.append(
                {"id": oid, "name": name, "description": description, "source": tr.source_id}
            )

        frames = []
        for k, t in enumerate(times):
            order = [s for s in np.argsort(-depth[:, k], kind="stable") if visible[s, k]]
            mentions = [
                FrameMention(names[tracks[s].index], geo[s]["positions"][k], geo[s]["moving"][k])
                for s in sorted(order, key=lambda s: boxes[s, k, 0])
            ]
            frames.append(
                {
                    "t": float(t),
                    "caption": frame_caption(mentions),
                    "boxes": [
                        {"id": int(s), "box": [round(float(v), 4) for v in boxes[s, k]]}
                        for s in order
                    ],
                }
            )

        if background is None:
            background = classes[0].background or "default"
        layout = {
            "version": 1,
            "duration": duration,
            "fps": fps,
            "caption": caption.strip() if caption and caption.strip() else global_caption(summaries),
            "background": background,
            "camera": CameraSpec.from_camera(camera).model_dump(),
            "objects": objects,
            "frames": frames,
            "planner": self.name,
            "meta": {
                "input": analysis.get("input"),
                "format": analysis.get("format"),
                "distance_from": [
                    "distance_rel" if tr.distance_rel is not None else "loudness" for tr in tracks
                ],
                "behind_objects": behind_ids,
                "offscreen_objects": offscreen_ids,
                "motions": [g["motion"] for g in geo],
            },
        }
        return layout_from_dict(layout, source_name="rule planner")

    # ------------------------------------------------------------------ tracks
    def _keyframe_track(
        self, index: int, src: dict[str, Any], times: FloatArray, fps: float
    ) -> _Track | None:
        t = src["times"]
        n_key = len(times)
        if t.size == 0:
            return None
        # Each sample belongs to the keyframe whose window [t_k - 1/2fps, t_k + 1/2fps) holds it.
        k_of = np.clip(np.floor(t * fps + 0.5).astype(int), 0, n_key - 1)
        # Activity decides visibility; a missing azimuth is filled from its neighbours.
        ok = src["active"] & np.isfinite(src["loudness_db"])
        az_ok = ok & np.isfinite(src["azimuth_deg"])
        if not az_ok.any():
            return None
        n_all = np.bincount(k_of, minlength=n_key).astype(np.float64)
        n_ok = np.bincount(k_of, weights=ok.astype(np.float64), minlength=n_key)
        frac = np.where(n_all > 0, n_ok / np.maximum(n_all, 1.0), np.nan)
        active = _fill_nearest(frac, times) >= self.min_active_fraction
        if not active.any():
            return None  # sounding in no keyframe's window long enough to be shown

        w = ok.astype(np.float64)
        w_az = az_ok.astype(np.float64)
        az = np.deg2rad(np.where(az_ok, src["azimuth_deg"], 0.0))
        c = np.bincount(k_of, weights=w_az * np.cos(az), minlength=n_key)
        s = np.bincount(k_of, weights=w_az * np.sin(az), minlength=n_key)
        n_az = np.bincount(k_of, weights=w_az, minlength=n_key)
        azimuth = np.where(n_az > 0, np.rad2deg(np.arctan2(s, c)), np.nan)
        azimuth = _fill_nearest_angle(azimuth, times)

        # Mean power, not mean dB, per window: a near-silent frame (an onset, a gap) in a
        # window must not drag its level down by tens of dB.
        power = 10.0 ** (np.where(ok, src["loudness_db"], -200.0) / 10.0)
        loud = 10.0 * np.log10(np.maximum(_window_mean(k_of, power, w, n_key), 1e-20))
        loud = _smooth(_fill_nearest(loud, times), max(0, int(round(self.smooth_s * fps / 2))))

        elevation = None
        if src["elevation_deg"] is not None:
            el_ok = ok & np.isfinite(src["elevation_deg"])
            if el_ok.any():
                el_w = el_ok.astype(np.float64)
                elevation = _window_mean(
                    k_of, np.where(el_ok, src["elevation_deg"], 0.0), el_w, n_key
                )
                elevation = _fill_nearest(elevation, times)

        distance = None
        if src["distance_rel"] is not None:
            d_ok = ok & np.isfinite(src["distance_rel"]) & (src["distance_rel"] > 0)
            if d_ok.any():
                log_d = np.log(np.where(d_ok, src["distance_rel"], 1.0))
                distance = _window_mean(k_of, log_d, d_ok.astype(np.float64), n_key)
                distance = np.exp(
                    _smooth(_fill_nearest(distance, times), int(round(self.smooth_s * fps / 2)))
                )

        return _Track(
            index=index,
            source_id=src["id"],
            active=active,
            azimuth_deg=azimuth,
            elevation_deg=elevation,
            loudness_db=loud,
            distance_rel=distance,
            mean_loudness_db=float(np.mean(src["loudness_db"][ok])),
            behind_flag=src["behind"],
            motion=src["motion"],
        )

    def class_size(self, cls: SoundClass) -> tuple[float, float]:
        """Normalised (width, height) of a class at its start distance."""
        w_m, h_m = cls.size_m
        car_w, car_h = lookup("car").size_m
        car_extent = max(car_w, car_h * self.frame_aspect)
        extent = max(w_m, h_m * self.frame_aspect)
        frac = float(np.clip(self.typical_width * (extent / car_extent) ** 0.35, 0.08, 0.5))
        view_w_m = extent / frac  # metres spanned by the frame width at the start distance
        return w_m / view_w_m, h_m * self.frame_aspect / view_w_m

    def _geometry(
        self, tr: _Track, cls: SoundClass, camera: Camera, loud_ref: float, fps: float
    ) -> dict[str, Any]:
        lo, hi = self.r_range
        if tr.distance_rel is not None:
            r_raw = np.asarray(tr.distance_rel, dtype=np.float64)
        else:
            r_raw = 10.0 ** (-np.asarray(tr.loudness_db, dtype=np.float64) / 20.0)
        # The start distance is the median over the first second of activity, not the
        # first keyframe alone: that one often holds the onset (a fade-in, the sound's
        # travel time) and would make the rest of the clip look several times too near.
        act = np.flatnonzero(tr.active & np.isfinite(r_raw) & (r_raw > 0))
        start = act[: max(1, int(round(self.start_window_s * fps)))] if act.size else [0]
        r_rel = np.clip(r_raw / float(np.median(r_raw[start])), lo, hi)
        r_rel = _agree_with_label(r_rel, tr.active, tr.motion)
        # A quieter source than the loudest sits a little farther back (half the 1/r law).
        depth_scale = float(np.clip(10.0 ** (-(tr.mean_loudness_db - loud_ref) / 40.0), 1.0, 1.7))
        r = r_rel * depth_scale

        x, _, behind_k = camera.azimuth_to_x(tr.azimuth_deg)
        w0, h0 = self.class_size(cls)
        w, h = w0 / r, h0 / r
        if cls.placement == "air":
            if tr.elevation_deg is not None:
                el = np.deg2rad(np.clip(tr.elevation_deg, 0.0, 90.0))
                yc = self.horizon_y * (1.0 - np.sin(el))
            else:
                yc = self.horizon_y - self.air_offset / r
            sky = self.horizon_y - 0.01
            yc = np.where(h <= sky, np.clip(yc, h / 2, sky - h / 2), sky / 2)
            top, bottom = yc - h / 2, yc + h / 2
        else:
            bottom = np.minimum(self.horizon_y + self.ground_offset / r, 1.0)
            top = bottom - h
        box = np.stack([x - w / 2, top, x + w / 2, bottom], axis=-1)

        folded, _ = fold_front(tr.azimuth_deg)
        act = tr.active
        behind = tr.behind_flag or bool(behind_k[act].mean() > 0.5)
        positions = [position_label(a) for a in folded]
        ka = np.flatnonzero(act)
        sweep = float(folded[ka[-1]] - folded[ka[0]])
        level_change = float(-20.0 * np.log10(r_rel[ka[-1]] / r_rel[ka[0]]))
        # the analysis' label judges the whole track (medians of its ends, a tested level
        # trend); the keyframes' ends alone are noisier, so they only stand in for it
        motion = tr.motion or motion_label(sweep, level_change)
        if motion in ("left_to_right", "right_to_left"):
            start, end = positions[ka[0]], positions[ka[-1]]
        else:
            side = position_label(float(np.median(folded[ka])))
            start = end = side
        return {
            "box": box,
            "visible": act.copy(),
            "r": r,
            "behind": behind,
            "positions": positions,
            "moving": _local_motion(folded, r_rel, fps),
            "motion": motion,
            "start": start,
            "end": end,
        }


# --------------------------------------------------------------------------- helpers
LABELLED_CHANGE_DB = 2.0 * DISTANCE_MIN_CHANGE_DB
"""The distance change drawn for a source the analysis labels approaching or receding
where its distance track does not show one as large as the label's threshold (in a room
the reverberation holds the level up, so the track moves less than the direct sound)."""


def _agree_with_label(r_rel: FloatArray, active: np.ndarray, motion: str | None) -> FloatArray:
    """Make a relative-distance track tell the analysis' motion label.

    The analysis judges a change of distance on the whole track (a level trend that stands
    out from the level's ups and downs, confirmed by direct-sound cues in a room); the
    distance track's first and last keyframes alone can disagree with it.  A source
    labelled static keeps its size; one labelled approaching or receding whose track
    does not change by ``DISTANCE_MIN_CHANGE_DB`` that way gets a steady change of
    ``LABELLED_CHANGE_DB`` over its active keyframes instead.  Crossings (and unlabelled
    sources) keep their track.
    """
    ka = np.flatnonzero(active)
    if motion == "static":
        return np.ones_like(r_rel)
    if motion not in ("approaching", "receding") or ka.size < 2:
        return r_rel
    sign = 1.0 if motion == "approaching" else -1.0
    change_db = -20.0 * np.log10(r_rel[ka[-1]] / r_rel[ka[0]])
    if sign * change_db >= DISTANCE_MIN_CHANGE_DB:
        return r_rel
    frac = np.clip((np.arange(r_rel.size) - ka[0]) / (ka[-1] - ka[0]), 0.0, 1.0)
    return 10.0 ** (-sign * LABELLED_CHANGE_DB * frac / 20.0)


def _describe(s: ObjectSummary) -> str:
    if s.motion in ("left_to_right", "right_to_left"):
        text = f"{s.name}, moving from the {s.start} to the {s.end}"
    elif s.motion == "approaching":
        text = f"{s.name} on the {s.start}, approaching"
    elif s.motion == "receding":
        text = f"{s.name} on the {s.start}, moving away"
    else:
        text = f"{s.name} on the {s.start}"
    text = text.replace("on the center", "in the center").replace("the center to", "center to")
    if s.behind:
        text += "; heard behind the camera, shown folded to the front"
    return text


def _local_motion(folded_deg: FloatArray, r_rel: FloatArray, fps: float) -> list[str | None]:
    """Per keyframe: ``left``, ``right``, ``approaching``, ``receding`` or None."""
    n = len(folded_deg)
    if n < 2:
        return [None] * n
    az_rate = np.gradient(folded_deg) * fps  # deg / s
    level_rate = np.gradient(-20.0 * np.log10(r_rel)) * fps  # dB / s
    out: list[str | None] = []
    for a, lv in zip(az_rate, level_rate, strict=True):
        if abs(a) >= 8.0:
            out.append("right" if a < 0 else "left")
        elif lv >= 1.5:
            out.append("approaching")
        elif lv <= -1.5:
            out.append("receding")
        else:
            out.append(None)
    return out


def _nudge_apart(
    boxes: FloatArray, visible: np.ndarray, *, gap: float = 0.01, passes: int = 3
) -> FloatArray:
    """Push overlapping boxes apart horizontally, shape ``(S, K, 4)``.

    Each box moves away from the other, by at most as far as the frame edge, never
    across the centre line (x = 0.5) when its centre is on the other side of it, and
    never by more than half its own width: the box still covers its source's own x, so
    that a source passing another (or standing next to one at the frame's edge) does not
    drag it aside and give it a motion of its own.  Two boxes at the same x part until
    they touch; where a box has no room left they keep some overlap, drawn back to front.
    A pair whose sources pass each other (their own centres swap sides) is left as it
    is: held apart, each box would wait at the other's edge and then jump past it, a
    stop and a leap that the video would show and the sound made from it would follow.
    """
    out = boxes.copy()
    n_src = out.shape[0]
    # (S, K): a box's centre stays within its own box's span, between these two
    x_min, x_max = boxes[..., 0], boxes[..., 2]
    crosses = _crossing_pairs((x_min + x_max) / 2, visible)
    for _ in range(passes):
        for i in range(n_src):
            for j in range(i + 1, n_src):
                if crosses[i, j]:
                    continue
                bi, bj = out[i], out[j]
                ci, cj = (bi[:, 0] + bi[:, 2]) / 2, (bj[:, 0] + bj[:, 2]) / 2
                i_left = ci <= cj
                a = np.where(i_left[:, None], bi, bj)
                b = np.where(i_left[:, None], bj, bi)
                ov_x = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
                ov_y = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
                need = np.where(visible[i] & visible[j] & (ov_x > 0) & (ov_y > 0), ov_x + gap, 0.0)
                if not need.any():
                    continue
                ca, cb = (a[:, 0] + a[:, 2]) / 2, (b[:, 0] + b[:, 2]) / 2
                # a moves left, b right: how far each may still go
                a0 = np.where(i_left, x_min[i], x_min[j])
                b0 = np.where(i_left, x_max[j], x_max[i])
                room_a = np.maximum(np.minimum.reduce(
                    [a[:, 0], np.where(ca > 0.5, ca - 0.5, np.inf), ca - a0]), 0)
                room_b = np.maximum(np.minimum.reduce(
                    [1.0 - b[:, 2], np.where(cb < 0.5, 0.5 - cb, np.inf), b0 - cb]), 0)
                shift_a = np.minimum(need / 2, room_a)
                shift_b = np.minimum(need - shift_a, room_b)
                shift_a = np.minimum(need - shift_b, room_a)
                a = a - shift_a[:, None] * np.array([1.0, 0.0, 1.0, 0.0])
                b = b + shift_b[:, None] * np.array([1.0, 0.0, 1.0, 0.0])
                out[i] = np.where(i_left[:, None], a, b)
                out[j] = np.where(i_left[:, None], b, a)
    return out


def _crossing_pairs(centre_x: FloatArray, visible: np.ndarray) -> np.ndarray:
    """``(S, S)``: whether two sources' own centres swap sides while both are seen."""
    n = centre_x.shape[0]
    out = np.zeros((n, n), dtype=bool)
    for i in range(n):
        for j in range(i + 1, n):
            both = visible[i] & visible[j]
            d = centre_x[i, both] - centre_x[j, both]
            out[i, j] = out[j, i] = bool((d > 0).any() and (d < 0).any())
    return out


def _clip_boxes(boxes: FloatArray, min_size: float = 1e-3) -> tuple[FloatArray, np.ndarray]:
    """Clip boxes ``(..., 4)`` to the frame; the mask says which keep some area."""
    clipped = np.clip(boxes, 0.0, 1.0)
    inside = ((clipped[..., 2] - clipped[..., 0]) >= min_size) & (
        (clipped[..., 3] - clipped[..., 1]) >= min_size
    )
    return clipped, inside


def _window_mean(k_of: np.ndarray, values: FloatArray, weights: FloatArray, n: int) -> FloatArray:
    num = np.bincount(k_of, weights=weights * values, minlength=n)
    den = np.bincount(k_of, weights=weights, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _fill_nearest(values: FloatArray, times: FloatArray) -> FloatArray:
    """Fill NaNs by linear interpolation between, and holding beyond, the known values."""
    ok = np.isfinite(values)
    if ok.all() or not ok.any():
        return values
    return np.interp(times, times[ok], values[ok])


def _fill_nearest_angle(azimuth_deg: FloatArray, times: FloatArray) -> FloatArray:
    ok = np.isfinite(azimuth_deg)
    if ok.all() or not ok.any():
        return azimuth_deg
    unwrapped = np.rad2deg(np.unwrap(np.deg2rad(azimuth_deg[ok])))
    filled = np.interp(times, times[ok], unwrapped)
    return np.mod(filled + 180.0, 360.0) - 180.0


def _smooth(values: FloatArray, half: int) -> FloatArray:
    """Local linear fit over ``2 half + 1`` points (shifted inward at the ends).

    Keeps linear trends exactly and smooths the first and last values as much as
    the middle ones (the first is the size reference).
    """
    n = len(values)
    width = 2 * half + 1
    if half <= 0 or n < 3:
        return values
    if n <= width:
        lo = np.zeros(n, dtype=int)
        width = n
    else:
        lo = np.clip(np.arange(n) - half, 0, n - width)
    x = np.arange(n, dtype=np.float64)

    def window_sum(v: FloatArray) -> FloatArray:
        c = np.concatenate([[0.0], np.cumsum(v)])
        return c[lo + width] - c[lo]

    sx, sy = window_sum(x), window_sum(values)
    sxx, sxy = window_sum(x * x), window_sum(x * values)
    var = width * sxx - sx * sx
    slope = (width * sxy - sx * sy) / var
    return (sy - slope * sx) / width + slope * x


def _names(n_sources: int, labels: Sequence[str] | None, caption: str | None) -> list[str]:
    if labels:
        names = [str(lb).strip() or GENERIC_NAME for lb in labels[:n_sources]]
    elif caption:
        names = [cls.name for _, _, cls in find_all(caption)][:n_sources]
    else:
        names = []
    return names + [GENERIC_NAME] * (n_sources - len(names))


def _read_analysis(analysis: Any) -> tuple[float, list[dict[str, Any]]]:
    """Check the parts of the analysis JSON the planner reads; arrays as float64."""
    where = "analysis"
    if not isinstance(analysis, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(analysis).__name__}")
    raw = analysis.get("sources")
    if not isinstance(raw, list):
        raise InputError(f"{where}: sources: expected a list of sources")
    sources = []
    t_end = 0.0
    for i, src in enumerate(raw):
        p = f"{where}: sources[{i}]"
        if not isinstance(src, dict):
            raise InputError(f"{p}: expected an object")
        try:
            times = np.asarray(src["times"], dtype=np.float64).reshape(-1)
            n = times.size
            arrays = {}
            for key in ("azimuth_deg", "loudness_db"):
                arrays[key] = _series(src[key], n, key)
            active = src.get("active")
            arrays["active"] = (
                np.ones(n, dtype=bool)
                if active is None
                else np.nan_to_num(_series(active, n, "active")) > 0.5
            )
            for key in ("elevation_deg", "distance_rel"):
                v = src.get(key)
                arrays[key] = None if v is None else _series(v, n, key)
            motion = src.get("motion")
            if motion is not None and motion not in MOTION_LABELS:
                raise ValueError(f"motion: {motion!r} is not one of {', '.join(MOTION_LABELS)}")
        except KeyError as exc:
            raise InputError(f"{p}: missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise InputError(f"{p}.{exc}") from None
        if n and not np.all(np.isfinite(times)):
            raise InputError(f"{p}.times: times must be finite numbers")
        if n > 1 and np.any(np.diff(times) <= 0):
            raise InputError(f"{p}.times: times must increase")
        # Digital silence reads as -inf dB: not a usable level.
        arrays["loudness_db"] = np.where(
            np.isfinite(arrays["loudness_db"]), arrays["loudness_db"], np.nan
        )
        arrays["active"] = arrays["active"] & np.isfinite(arrays["loudness_db"])
        sources.append(
            {
                "id": int(src.get("id", i)),
                "times": times,
                "behind": bool(src.get("behind", False)),
                "motion": motion,
                **arrays,
            }
        )
        if n:
            t_end = max(t_end, float(times[-1]) + float(analysis.get("hop_s") or 0.0))
    duration = analysis.get("duration")
    if duration is None:
        duration = t_end
    try:
        duration = float(duration)
    except (TypeError, ValueError):
        raise InputError(f"{where}: duration: expected a number, got {duration!r}") from None
    if not np.isfinite(duration) or duration <= 0:
        raise InputError(f"{where}: duration: must be a positive number of seconds")
    return duration, sources


def _series(values: Any, n: int, key: str) -> FloatArray:
    """A per-frame series as float64 (None -> NaN); errors start with ``key``."""
    if not isinstance(values, list | tuple | np.ndarray):
        raise TypeError(f"{key}: expected a list, got {type(values).__name__}")
    try:
        arr = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{key}: expected a list of numbers") from None
    if arr.ndim != 1 or arr.size != n:
        raise ValueError(f"{key}: expected {n} values (one per time), got {arr.size}")
    return arr
