"""Spatial alignment checks: audio against picture, and layout against layout.

:func:`evaluate_alignment` compares the source tracks of an analysis (``spa2v analyze``)
with picture tracks (from :func:`spa2v.visual.track_objects`, or a layout's boxes),
mapped to azimuth through the camera model.  Audio sources and picture tracks are paired
by an optimal assignment on their mean azimuth difference; each pair gets its mean
azimuth error, the agreement of its motion direction, the correlation of the two
azimuth tracks and the agreement of the position and motion labels.  The verdict is
``aligned`` when every audio source has a partner, every pair's mean azimuth error is at
most ``max_error_deg`` and every pair's motion direction agrees.

:func:`compare_layouts` compares two layouts: MaxIoU (SpA2V's layout score), the IoU of
objects paired across the clip, their centre error and the agreement of their labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from spa2v._typing import FloatArray
from spa2v.conventions import (
    CROSSING_MIN_SWEEP_DEG,
    Camera,
    angle_diff_deg,
    fold_front,
    unwrap_deg,
)
from spa2v.errors import InputError
from spa2v.layout import SceneLayout
from spa2v.visual import VisualTrack, cut_at_side, endpoint_change, layout_tracks, track_labels

MAX_MEAN_AZIMUTH_ERROR_DEG = 20.0
"""Default verdict threshold: a pair is aligned when its mean azimuth error is at most this."""
MIN_COMMON_FRAMES = 5
"""Audio and picture tracks need this many frames seen together to be paired."""

VERDICT_RULE = (
    "aligned when every audio source is paired with a picture track, and for every pair "
    "the mean absolute azimuth error is at most {max:g} deg and the motion direction agrees "
    "(both sweep less than {sweep:g} deg, or both sweep the same way with at least half that)"
)


@dataclass
class _AudioTrack:
    id: int
    times: FloatArray
    azimuth_deg: FloatArray  # folded to the front, NaN where inactive
    active: np.ndarray
    position: str
    motion: str


def _audio_tracks(analysis: dict) -> list[_AudioTrack]:
    if not isinstance(analysis, dict) or not isinstance(analysis.get("sources"), list):
        raise InputError("the analysis has no list of sources")
    out = []
    for i, s in enumerate(analysis["sources"]):
        try:
            t = np.asarray(s["times"], dtype=np.float64)
            az = np.asarray([np.nan if v is None else v for v in s["azimuth_deg"]], np.float64)
            act = np.asarray(s["active"], dtype=bool) & np.isfinite(az)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"analysis: sources[{i}]: malformed track ({exc})") from None
        if not (t.shape == az.shape == act.shape):
            raise InputError(f"analysis: sources[{i}]: times, azimuth_deg and active differ "
                             "in length")
        folded, _ = fold_front(np.where(np.isfinite(az), az, 0.0))
        out.append(_AudioTrack(int(s.get("id", i)), t, np.where(act, folded, np.nan), act,
                               str(s.get("position", "")), str(s.get("motion", ""))))
    return out


def resample_track(track: VisualTrack, times: FloatArray, camera: Camera
                   ) -> tuple[FloatArray, np.ndarray]:
    """A picture track's azimuth at other ``times``: linear between its frames, seen where
    its nearest frame is seen (NaN elsewhere)."""
    t = np.asarray(times, dtype=np.float64)
    az = track.azimuth_deg(camera)
    ok = track.active & np.isfinite(az)
    if ok.sum() == 0:
        return np.full(t.shape, np.nan), np.zeros(t.shape, bool)
    nearest = np.clip(np.rint(np.interp(t, track.times, np.arange(len(track.times)))), 0,
                      len(track.times) - 1).astype(int)
    inside = (t >= track.times[0] - 0.5 / _rate(track)) & (t <= track.times[-1]
                                                           + 0.5 / _rate(track))
    seen = ok[nearest] & inside
    idx = np.flatnonzero(ok)
    out = np.interp(t, track.times[idx], az[idx])
    return np.where(seen, out, np.nan), seen


def _rate(track: VisualTrack) -> float:
    if len(track.times) < 2:
        return 1.0
    return float(1.0 / np.median(np.diff(track.times)))


def direction_of(sweep_deg: float) -> str:
    """``left_to_right`` (azimuth falls), ``right_to_left`` or ``none`` for a sweep."""
    if sweep_deg <= -CROSSING_MIN_SWEEP_DEG:
        return "left_to_right"
    if sweep_deg >= CROSSING_MIN_SWEEP_DEG:
        return "right_to_left"
    return "none"


def directions_agree(sweep_a_deg: float, sweep_b_deg: float) -> bool:
    """Motion directions agree: both (nearly) still, or both moving the same way.

    A track counts as moving at a sweep of ``CROSSING_MIN_SWEEP_DEG``; the other one
    then needs at least half that sweep in the same direction.
    """
    big = max(abs(sweep_a_deg), abs(sweep_b_deg))
    if big < CROSSING_MIN_SWEEP_DEG:
        return True
    small = min(abs(sweep_a_deg), abs(sweep_b_deg))
    return bool(np.sign(sweep_a_deg) == np.sign(sweep_b_deg)
                and small >= 0.5 * CROSSING_MIN_SWEEP_DEG)


def _pearson(a: FloatArray, b: FloatArray, min_std: float = 2.0) -> float | None:
    if a.size < 3 or np.std(a) < min_std or np.std(b) < min_std:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def _r(v: float | None, nd: int = 2) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), nd)


def _pair_metrics(a: _AudioTrack, v: VisualTrack, az_v: FloatArray, seen_v: np.ndarray,
                  camera: Camera, max_error_deg: float) -> dict:
    both = a.active & seen_v
    err = np.abs(angle_diff_deg(a.azimuth_deg[both], az_v[both]))
    ua = np.full(len(both), np.nan)
    uv = np.full(len(both), np.nan)
    ua[both] = unwrap_deg(a.azimuth_deg[both])
    uv[both] = unwrap_deg(az_v[both])
    sweep_a = endpoint_change(ua, both)
    sweep_v = endpoint_change(uv, both)
    position_v, motion_v = v.labels(camera)
    agree_dir = directions_agree(sweep_a, sweep_v)
    mean_err = float(np.mean(err))
    return {
        "audio_source": a.id,
        "visual_track": int(v.id),
        "frames": int(both.sum()),
        "mean_azimuth_error_deg": _r(mean_err),
        "median_azimuth_error_deg": _r(float(np.median(err))),
        "audio_sweep_deg": _r(sweep_a, 1),
        "video_sweep_deg": _r(sweep_v, 1),
        "direction_audio": direction_of(sweep_a),
        "direction_video": direction_of(sweep_v),
        "direction_agrees": agree_dir,
        "correlation": _r(_pearson(ua[both], uv[both]), 3),
        "position_audio": a.position,
        "position_video": position_v,
        "position_agrees": a.position == position_v,
        "motion_audio": a.motion,
        "motion_video": motion_v,
        "motion_agrees": a.motion == motion_v,
        "aligned": bool(mean_err <= max_error_deg and agree_dir),
    }


def evaluate_alignment(
    analysis: dict,
    visual: list[VisualTrack] | SceneLayout,
    *,
    camera: Camera | None = None,
    max_error_deg: float = MAX_MEAN_AZIMUTH_ERROR_DEG,
    with_series: bool = False,
) -> dict:
    """Spatial alignment of an analysis' audio tracks with picture tracks.

    Parameters
    ----------
    analysis : dict
        The analysis JSON (DESIGN.md, "Analysis result").
    visual : list of VisualTrack, or SceneLayout
        Picture tracks, or a layout whose boxes are used as tracks.
    camera : Camera, optional
        Maps picture x to azimuth; default: the layout's camera, else the sine camera.
    max_error_deg : float
        The verdict's threshold on a pair's mean absolute azimuth error.
    with_series : bool
        Add each pair's time series (``times``, ``audio_azimuth_deg``,
        ``video_azimuth_deg``) under ``series``, for plots.

    Returns
    -------
    dict
        ``aligned``, ``threshold``, ``reason``, ``pairs`` (per-pair metrics), the unpaired
        sources and tracks, ``summary`` and the camera.
    """
    if isinstance(visual, SceneLayout):
        camera = camera or visual.camera.to_camera()
        tracks = layout_tracks(visual)
        visual_source = "layout"
    else:
        tracks = list(visual)
        visual_source = "tracker"
    camera = camera or Camera()
    audio = [a for a in _audio_tracks(analysis) if a.active.any()]

    resampled = {}
    cost = np.full((len(audio), len(tracks)), np.inf)
    for j, v in enumerate(tracks):
        for i, a in enumerate(audio):
            az_v, seen = resample_track(v, a.times, camera)
            resampled[i, j] = (az_v, seen)
            both = a.active & seen
            if both.sum() >= MIN_COMMON_FRAMES:
                cost[i, j] = float(np.mean(np.abs(angle_diff_deg(a.azimuth_deg[both],
                                                                 az_v[both]))))
    pairs, series = [], []
    paired_a, paired_v = set(), set()
    if audio and tracks:
        finite = np.where(np.isfinite(cost), cost, 1e6)
        for i, j in zip(*linear_sum_assignment(finite), strict=True):
            if not np.isfinite(cost[i, j]):
                continue
            az_v, seen = resampled[i, j]
            pairs.append(_pair_metrics(audio[i], tracks[j], az_v, seen, camera, max_error_deg))
            paired_a.add(i)
            paired_v.add(j)
            if with_series:
                a = audio[i]
                series.append({"audio_source": a.id, "visual_track": int(tracks[j].id),
                               "times": a.times, "audio_azimuth_deg": a.azimuth_deg,
                               "video_azimuth_deg": az_v})
    pairs.sort(key=lambda p: p["audio_source"])
    unpaired_audio = [audio[i].id for i in range(len(audio)) if i not in paired_a]
    unpaired_video = [int(tracks[j].id) for j in range(len(tracks)) if j not in paired_v]

    if not audio:
        aligned, reason = False, "the audio has no active source"
    elif not tracks:
        aligned, reason = False, "no object was found in the picture"
    elif unpaired_audio:
        aligned, reason = False, (f"audio source(s) {unpaired_audio} have no picture track "
                                  "seen at the same time")
    else:
        bad = [p for p in pairs if not p["aligned"]]
        aligned = not bad
        reason = "every pair is within the threshold" if aligned else "; ".join(
            f"source {p['audio_source']} / track {p['visual_track']}: "
            + ", ".join(
                ([f"mean azimuth error {p['mean_azimuth_error_deg']:.1f} deg > "
                  f"{max_error_deg:g}"] if p["mean_azimuth_error_deg"] > max_error_deg else [])
                + ([f"moves {p['direction_audio']} in the audio but {p['direction_video']} "
                    "in the picture"] if not p["direction_agrees"] else []))
            for p in bad)

    def frac(key: str) -> float | None:
        return round(float(np.mean([p[key] for p in pairs])), 3) if pairs else None

    weights = [p["frames"] for p in pairs]
    report = {
        "aligned": bool(aligned),
        "threshold": {
            "max_mean_azimuth_error_deg": float(max_error_deg),
            "direction_must_agree": True,
            "every_audio_source_paired": True,
            "crossing_min_sweep_deg": CROSSING_MIN_SWEEP_DEG,
            "rule": VERDICT_RULE.format(max=max_error_deg, sweep=CROSSING_MIN_SWEEP_DEG),
        },
        "reason": reason,
        "visual_source": visual_source,
        "camera": camera.to_dict(),
        "audio_sources": len(audio),
        "visual_tracks": len(tracks),
        "pairs": pairs,
        "unpaired_audio_sources": unpaired_audio,
        "unpaired_visual_tracks": unpaired_video,
        "summary": {
            "mean_azimuth_error_deg": _r(float(np.average(
                [p["mean_azimuth_error_deg"] for p in pairs], weights=weights)))
            if pairs else None,
            "direction_agreement": frac("direction_agrees"),
            "position_agreement": frac("position_agrees"),
            "motion_agreement": frac("motion_agrees"),
        },
    }
    if with_series:
        report["series"] = series
    return report


# --------------------------------------------------------------------------- layouts
def box_iou(a: FloatArray, b: FloatArray) -> FloatArray:
    """IoU of boxes ``[x1, y1, x2, y2]``, broadcast over leading axes (0 where NaN)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / (area_a + area_b - inter)
    return np.nan_to_num(iou, nan=0.0)


def compare_layouts(
    a: SceneLayout,
    b: SceneLayout,
    *,
    fps: float | None = None,
) -> dict:
    """Compare layout ``b`` with the reference layout ``a``.

    Both are sampled at ``fps`` (default: the higher keyframe rate) over the shorter
    duration.  Objects are paired across the clip by an optimal assignment on
    ``1 - mean IoU + mean centre distance`` over the frames both are visible.

    Returns
    -------
    dict
        ``max_iou``: SpA2V's MaxIoU, the mean over every visible box of ``a`` of its
        best IoU with a box of ``b`` in the same frame (0..1); ``matched_iou``: per frame,
        the IoU summed over the visible pairs divided by the objects visible in either
        layout, averaged; ``pairs``: per pair, mean IoU, centre error (normalised),
        azimuth error (each layout's camera), position and motion labels of both;
        ``summary``: pair-averaged figures and label agreement (unpaired objects of
        ``a`` count as disagreeing).
    """
    fps = float(fps) if fps else float(max(a.fps, b.fps))
    duration = min(a.duration, b.duration)
    n = max(1, int(np.floor(duration * fps + 1e-9)) + 1)
    times = np.arange(n) / fps
    times = times[times <= duration + 1e-9]
    cam_a, cam_b = a.camera.to_camera(), b.camera.to_camera()

    def sample(layout: SceneLayout) -> list[tuple[int, FloatArray, np.ndarray]]:
        return [(oid, *layout.track(oid, times)) for oid in layout.object_ids]

    ta, tb = sample(a), sample(b)
    iou = np.zeros((len(ta), len(tb), len(times)))
    for i, (_, ba, va) in enumerate(ta):
        for j, (_, bb, vb) in enumerate(tb):
            iou[i, j] = np.where(va & vb, box_iou(ba, bb), 0.0)

    # MaxIoU: every visible box of a against the boxes of b in the same frame.
    best = []
    for i, (_, _, va) in enumerate(ta):
        for k in np.flatnonzero(va):
            best.append(float(iou[i, :, k].max()) if len(tb) else 0.0)
    max_iou = float(np.mean(best)) if best else 0.0

    def centers(boxes: FloatArray) -> FloatArray:
        return np.stack([0.5 * (boxes[:, 0] + boxes[:, 2]), 0.5 * (boxes[:, 1] + boxes[:, 3])],
                        axis=1)

    cost = np.full((len(ta), len(tb)), np.inf)
    for i, (_, ba, va) in enumerate(ta):
        for j, (_, bb, vb) in enumerate(tb):
            both = va & vb
            if both.any():
                dist = np.linalg.norm(centers(ba[both]) - centers(bb[both]), axis=1)
                cost[i, j] = 1.0 - float(iou[i, j, both].mean()) + float(dist.mean())
    pairs = []
    matched_frame_iou = np.zeros(len(times))
    paired_both = np.zeros(len(times))
    if len(ta) and len(tb):
        rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, 1e6))
        for i, j in zip(rows, cols, strict=True):
            if not np.isfinite(cost[i, j]):
                continue
            oid_a, ba, va = ta[i]
            oid_b, bb, vb = tb[j]
            both = va & vb
            matched_frame_iou += iou[i, j]
            paired_both += both
            ca, cb = centers(ba), centers(bb)
            az_a = cam_a.x_to_azimuth(ca[:, 0])
            az_b = cam_b.x_to_azimuth(cb[:, 0])
            err = np.abs(angle_diff_deg(az_a[both], az_b[both]))
            pos_a, mot_a = track_labels(np.where(va, az_a, np.nan), ba[:, 3] - ba[:, 1], va,
                                        cut_at_side(ba))
            pos_b, mot_b = track_labels(np.where(vb, az_b, np.nan), bb[:, 3] - bb[:, 1], vb,
                                        cut_at_side(bb))
            pairs.append({
                "object_a": int(oid_a),
                "object_b": int(oid_b),
                "frames": int(both.sum()),
                "mean_iou": _r(float(iou[i, j, both].mean()), 4),
                "mean_center_error": _r(float(np.linalg.norm(ca[both] - cb[both], axis=1)
                                              .mean()), 4),
                "mean_center_x_error": _r(float(np.abs(ca[both, 0] - cb[both, 0]).mean()), 4),
                "mean_azimuth_error_deg": _r(float(err.mean())),
                "max_azimuth_error_deg": _r(float(err.max())),
                "position_a": pos_a,
                "position_b": pos_b,
                "position_agrees": pos_a == pos_b,
                "motion_a": mot_a,
                "motion_b": mot_b,
                "motion_agrees": mot_a == mot_b,
            })
    # objects visible in either layout, a visible pair counted once
    n_vis = sum(va.astype(float) for _, _, va in ta) + sum(vb.astype(float) for _, _, vb in tb)
    n_vis = n_vis - paired_both if len(ta) + len(tb) else np.zeros(len(times))
    per_frame = np.where(n_vis > 0, matched_frame_iou / np.maximum(n_vis, 1.0), np.nan)
    matched_iou = float(np.nanmean(per_frame)) if np.isfinite(per_frame).any() else 0.0

    n_a = len(ta)
    weights = [p["frames"] for p in pairs]
    return {
        "fps": fps,
        "frames": len(times),
        "objects_a": n_a,
        "objects_b": len(tb),
        "max_iou": round(max_iou, 4),
        "matched_iou": round(matched_iou, 4),
        "pairs": pairs,
        "unpaired_a": sorted(set(a.object_ids) - {p["object_a"] for p in pairs}),
        "unpaired_b": sorted(set(b.object_ids) - {p["object_b"] for p in pairs}),
        "summary": {
            "mean_azimuth_error_deg": _r(float(np.average(
                [p["mean_azimuth_error_deg"] for p in pairs], weights=weights)))
            if pairs else None,
            "mean_center_error": _r(float(np.average(
                [p["mean_center_error"] for p in pairs], weights=weights)), 4)
            if pairs else None,
            "motion_agreement": round(sum(p["motion_agrees"] for p in pairs) / n_a, 3)
            if n_a else None,
            "position_agreement": round(sum(p["position_agrees"] for p in pairs) / n_a, 3)
            if n_a else None,
        },
    }
