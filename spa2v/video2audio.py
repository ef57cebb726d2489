"""Video -> spatial audio, SEE-2-SOUND's direction: find the sound sources in the picture,
give each a sound, place it where it is seen.

The steps, each a library call (the ``spa2v video2audio`` command runs them in turn):

1. :func:`find_objects`: the objects of the video's frames, as picture tracks.  By default
   with no learned detector, the visual tracker ``spa2v eval`` uses
   (:func:`spa2v.visual.track_objects`: colour and motion blobs); optionally with an
   open-vocabulary detector from a local checkpoint (:mod:`spa2v.owlvit`, queried with
   the labels or the sound-class names), whose per-frame boxes are linked by
   :func:`spa2v.visual.link_detections`.  A track that stays on a more prominent one
   (the light on an ambulance's roof) is a part of it, not a source of its own
   (:func:`merge_parts`).
2. :func:`objects_layout`: a Video Scene Layout with one object per track.  Tracks are
   ordered by screen prominence (box area summed over the frames the object is seen,
   largest first, as both finders return them) and the labels name them in that order;
   tracks beyond the labels are called "sound source" (an object's description is its
   name: a text-to-audio model is prompted with it).  With the detector, a track is
   named by the query that found it and the labels are the queries.  The layout carries
   the picture tracks' motion labels (``meta["motions"]``), so that the audio is made to
   carry the motion ``spa2v eval`` sees.
3. :func:`layout_audio`: the layout sonified (``generators.audio.sonify``): azimuth from
   the box centre through the camera model, distance from the box size, a source per
   name (a user's file, a text-to-audio model, or the class's procedural source).

:func:`mux_audio` puts a soundtrack into a copy of the video (the video stream is copied,
not re-encoded).  :func:`compare_analyses` compares two analyses of the same scene (the
original recording and the audio made back from its video), for the round trip
audio -> video -> audio.

Part of the application face (like :mod:`spa2v.pipeline`): it imports the layout
sonifier from ``generators``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from spa2v._typing import PathType
from spa2v.classes import GENERIC, class_names
from spa2v.conventions import Camera, angle_diff_deg, fold_front
from spa2v.errors import InputError
from spa2v.layout import SceneLayout
from spa2v.visual import VisualTrack, endpoint_change, mark_overlaps

DEFAULT_NAME = GENERIC.name
"""The name of a track no label names ("sound source": a noise source)."""
KEYFRAME_FPS = 8.0
"""Keyframe rate of the layout made from the picture tracks."""
TRACKER_MAX_WIDTH = 320
"""Frames are decoded at most this wide for the visual tracker (it needs no more)."""
DETECTOR_MAX_WIDTH = 640
"""... and at most this wide for the detector (which resizes to its own input anyway)."""
DETECTOR_MAX_FPS = 8.0
"""The detector runs on every k-th frame, k chosen so that it sees at most this rate."""
EDGE_MARGIN = 0.01
"""A box within this of the left or right frame edge is cut by it (``hold_cut_sizes``)."""
PART_GROW = 0.15
"""A track whose centre stays within another's box grown by this is a part of it."""
MIN_COMMON_FRAMES = 5
"""Two analysed sources need this many frames active together to be paired."""


# =========================================================================== objects
@dataclass
class VideoObjects:
    """The objects found in a video.

    Attributes
    ----------
    tracks : list of VisualTrack
        Most prominent first.
    names : list of str
        One per track (the detector's query, or the label given for it, or "sound source").
    duration_s : float
        Length of the video (frames / fps).
    fps : float
        The video's frame rate.
    finder : str
        ``"tracker"`` or ``"detector"``.
    """

    tracks: list[VisualTrack]
    names: list[str]
    duration_s: float
    fps: float
    finder: str


def track_names(n_tracks: int, labels: list[str] | None) -> list[str]:
    """Names of ``n_tracks`` tracks in order: the labels, then "sound source"."""
    labels = [str(x).strip() for x in labels or []]
    return [labels[k] if k < len(labels) and labels[k] else DEFAULT_NAME
            for k in range(n_tracks)]


def detector_queries(labels: list[str] | None) -> tuple[list[str], list[str]]:
    """The detector's text queries and the name each stands for: the labels (deduplicated),
    else every sound-class name of :mod:`spa2v.classes`."""
    names = list(dict.fromkeys(x.strip() for x in labels or [] if x.strip())) or class_names()
    return [f"a photo of a {n}" for n in names], names


def _decode(video: PathType, max_width: int) -> tuple[np.ndarray, float]:
    from spa2v.video import probe_video, read_video

    info = probe_video(video)
    w, h = info["width"] or 0, info["height"] or 0
    size = None
    if w > max_width and h > 0:
        size = (max_width, max(2, int(round(h * max_width / w))))
    frames, fps = read_video(video, size=size)
    if not fps > 0:
        raise InputError("the video does not state its frame rate", video)
    return frames, fps


def find_objects(
    video: PathType,
    *,
    labels: list[str] | None = None,
    detector=None,
    threshold: float = 0.1,
    max_objects: int = 4,
) -> VideoObjects:
    """Find and track the objects of a video.

    Parameters
    ----------
    video : path
        A video file.
    labels : list of str, optional
        Without a detector: names of the tracks, most prominent first.  With one: the
        text queries (default: every sound-class name).
    detector : spa2v.owlvit.OwlVitDetector, optional
        An open-vocabulary detector; default the visual tracker (no learned model).
    threshold : float
        The detector's minimum score.
    max_objects : int
        Keep at most this many tracks.

    Raises
    ------
    InputError
        Unreadable video, or no object found in it.
    """
    from spa2v.visual import link_detections, track_objects

    if max_objects < 1:
        raise InputError("max_objects must be at least 1")
    if detector is None:
        frames, fps = _decode(video, TRACKER_MAX_WIDTH)
        # a few spare tracks: some may turn out to be parts of others
        tracks = merge_parts(track_objects(frames, fps, max_objects=max_objects + 2))
        tracks = tracks[:max_objects]
        names = track_names(len(tracks), labels)
        finder = "tracker"
    else:
        frames, fps = _decode(video, DETECTOR_MAX_WIDTH)
        step = max(1, int(np.ceil(fps / DETECTOR_MAX_FPS - 1e-9)))
        index = np.arange(0, len(frames), step)
        queries, qnames = detector_queries(labels)
        dets = detector.detect(frames[index], queries, threshold=threshold,
                               max_per_frame=max_objects)
        boxes = [[(d.query, d.box) for d in frame] for frame in dets]
        h, w = frames.shape[1:3]
        tracks = merge_parts(link_detections(boxes, index / fps, size=(w, h),
                                             max_objects=max_objects + 2))[:max_objects]
        names = [qnames[t.meta["query"]] for t in tracks]
        finder = "detector"
    if not tracks:
        how = ("the visual tracker found no object that stands out by colour or motion"
               if detector is None else
               f"the detector found no object above the score threshold {threshold:g}")
        raise InputError(f"no object was found in the video ({how}); there is nothing to "
                         "sonify", video)
    return VideoObjects(tracks, names, len(frames) / fps, float(fps), finder)


def hold_cut_sizes(track: VisualTrack, edge: float = EDGE_MARGIN) -> VisualTrack:
    """A track whose boxes cut by the left or right frame edge take the height the object
    has in the nearest frame where it is seen whole (about the same vertical centre).

    Only part of an object entering or leaving the picture is seen, and the sonifier
    reads distance from box size: without this a car driving in would sound as if it
    approached.  A track never seen whole is returned as it is.
    """
    b = track.boxes
    seen = track.active & np.isfinite(b[:, 0])
    cut = seen & ((b[:, 0] <= edge) | (b[:, 2] >= 1.0 - edge))
    whole = np.flatnonzero(seen & ~cut)
    if not cut.any() or whole.size == 0:
        return track
    boxes = b.copy()
    for i in np.flatnonzero(cut):
        j = whole[np.argmin(np.abs(whole - i))]
        half = 0.5 * (b[j, 3] - b[j, 1])
        yc = float(np.clip(0.5 * (b[i, 1] + b[i, 3]), half, 1.0 - half))
        boxes[i, 1], boxes[i, 3] = max(0.0, yc - half), min(1.0, yc + half)
    return replace(track, boxes=boxes)


def merge_parts(tracks: list[VisualTrack], *, grow: float = PART_GROW,
                min_fraction: float = 0.8) -> list[VisualTrack]:
    """Drop the tracks that are a part of a more prominent one (renumbered, order kept).

    A track is a part (the light on an ambulance's roof, the wheel of a car) when, in
    at least ``min_fraction`` of its frames, the other track is seen too and its box
    centre lies inside the other's box grown by ``grow`` times that box's width and
    height on every side: a part that sits on an object's edge moves with it.  One
    object then sounds once.
    """
    kept: list[VisualTrack] = []
    for tr in tracks:  # most prominent first
        c = 0.5 * (tr.boxes[:, :2] + tr.boxes[:, 2:])
        n = max(1, int(tr.active.sum()))
        part = False
        for big in kept:
            both = tr.active & big.active
            if both.sum() < min_fraction * n:
                continue
            b = big.boxes[both]
            gw, gh = grow * (b[:, 2] - b[:, 0]), grow * (b[:, 3] - b[:, 1])
            cb = c[both]
            inside = ((cb[:, 0] >= b[:, 0] - gw) & (cb[:, 0] <= b[:, 2] + gw)
                      & (cb[:, 1] >= b[:, 1] - gh) & (cb[:, 1] <= b[:, 3] + gh))
            if inside.sum() >= min_fraction * n:
                part = True
                break
        if not part:
            kept.append(tr)
    out = [replace(t, id=i) for i, t in enumerate(kept)]
    if len(out) < len(tracks):  # a dropped part no longer hides its object's size
        mark_overlaps(out, len(out[0].times))
    return out


def objects_layout(
    objects: VideoObjects,
    *,
    camera: Camera | None = None,
    keyframe_fps: float = KEYFRAME_FPS,
    caption: str | None = None,
) -> SceneLayout:
    """A Video Scene Layout with one object per track (see the module docstring)."""
    from spa2v.visual import visual_tracks_to_layout

    camera = camera or Camera()
    tracks = [hold_cut_sizes(t) for t in objects.tracks]
    layout = visual_tracks_to_layout(tracks, objects.duration_s, keyframe_fps,
                                     names=objects.names, camera=camera, caption=caption)
    meta = {**layout.meta, "from": f"spa2v.video2audio ({objects.finder})",
            "motions": [t.labels(camera)[1] for t in objects.tracks]}
    # the description prompts a text-to-audio model: the sound's name, not its path
    objs = [o.model_copy(update={"description": o.name}) for o in layout.objects]
    return layout.model_copy(update={"planner": "video2audio", "meta": meta,
                                     "objects": objs})


def rename_objects(layout: SceneLayout, labels: list[str] | None) -> SceneLayout:
    """The layout with its first objects (in id order) renamed after ``labels``."""
    if not labels:
        return layout
    names = {oid: lab.strip() for oid, lab in zip(sorted(layout.object_ids), labels,
                                                    strict=False) if lab.strip()}
    objs = [o.model_copy(update={"name": names.get(o.id, o.name)}) for o in layout.objects]
    return layout.model_copy(update={"objects": objs})


# =========================================================================== audio
def layout_audio(layout: SceneLayout, *, fmt: str = "binaural", sr: int = 48000,
                 sources: dict[str, PathType | np.ndarray] | None = None,
                 hrtf: PathType | None = None, rt60_s: float = 0.0, seed: int = 0,
                 text_to_audio=None, keep_labels: bool = True):
    """Sonify a layout (``generators.audio.sonify.sonify_layout``); returns its Simulation.

    ``sources`` maps object names (or ids as strings) to signals; a name the layout does
    not have is an ``InputError``.
    """
    try:
        from generators.audio.sonify import sonify_layout
    except ImportError as exc:
        raise InputError(f"the layout -> audio generator is not available ({exc})") from None
    known = {o.name for o in layout.objects} | {str(o.id) for o in layout.objects}
    for name in sources or {}:
        if name not in known:
            listed = ", ".join(dict.fromkeys(o.name for o in layout.objects))
            raise InputError(f"--source {name}=...: no object is named {name!r} "
                             f"(objects: {listed})")
    return sonify_layout(layout, fmt=fmt, sr=sr, sources=sources or None, hrtf=hrtf,
                         rt60_s=rt60_s, seed=seed, text_to_audio=text_to_audio,
                         keep_labels=keep_labels)


def mux_audio(video: PathType, audio: np.ndarray, sr: int, out_path: PathType, *,
              overwrite: bool = False, inputs: tuple[PathType, ...] = ()) -> Path:
    """Copy a video with ``audio`` as its only soundtrack (stereo AAC).

    The video stream is copied as it is (no re-encoding, any frame rate); the audio is
    made stereo (:func:`spa2v.video.to_stereo`: FOA by two virtual cardioids), resampled
    to 48 kHz where AAC does not take its rate, and trimmed or padded to the video's
    duration.  Written atomically.

    Raises
    ------
    InputError
        Unreadable video, or a video codec the output container cannot hold.
    """
    from fractions import Fraction

    import av

    from spa2v.audio import resample
    from spa2v.fsutil import atomic_output
    from spa2v.video import AAC_SAMPLE_RATES, probe_video, to_stereo

    info = probe_video(video)
    stereo = to_stereo(audio)
    if int(sr) not in AAC_SAMPLE_RATES:
        stereo, sr = resample(stereo, int(sr), 48000), 48000
    duration = info["duration"] or stereo.shape[1] / sr
    n = int(round(duration * sr))
    stereo = np.pad(stereo, ((0, 0), (0, max(0, n - stereo.shape[1]))))[:, :n]
    stereo = np.ascontiguousarray(np.clip(np.nan_to_num(stereo), -1.0, 1.0), np.float32)
    out_path = Path(out_path)
    fmt = {".mov": "mov", ".mkv": "matroska"}.get(out_path.suffix.lower(), "mp4")
    opts = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
    with atomic_output(out_path, overwrite, inputs=(video, *inputs)) as tmp:
        try:
            with av.open(str(video)) as src, av.open(str(tmp), "w", format=fmt,
                                                      container_options=opts) as dst:
                vin = src.streams.video[0]
                vout = dst.add_stream_from_template(vin)
                aout = dst.add_stream("aac", rate=sr, layout="stereo")
                aout.time_base = Fraction(1, sr)
                for packet in src.demux(vin):
                    if packet.dts is None:  # the flush packet
                        continue
                    packet.stream = vout
                    dst.mux(packet)
                for start in range(0, n, 1024):
                    chunk = np.ascontiguousarray(stereo[:, start:start + 1024])
                    frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                    frame.sample_rate, frame.pts, frame.time_base = sr, start, Fraction(1, sr)
                    dst.mux(aout.encode(frame))
                dst.mux(aout.encode(None))
        except (av.FFmpegError, ValueError) as exc:
            raise InputError(f"cannot copy the video stream into {out_path.name}: "
                             f"{str(exc).splitlines()[0]}", video) from None
    return out_path


# =========================================================================== comparison
def _tracks(analysis: dict) -> list[dict]:
    out = []
    for i, s in enumerate(analysis.get("sources") or []):
        t = np.asarray(s["times"], dtype=np.float64)
        az = np.asarray([np.nan if v is None else v for v in s["azimuth_deg"]], np.float64)
        act = np.asarray(s["active"], dtype=bool) & np.isfinite(az)
        folded, _ = fold_front(np.where(act, az, 0.0))
        loud = np.asarray([np.nan if v is None else v for v in s.get("loudness_db", [])],
                          np.float64)
        out.append({"id": int(s.get("id", i)), "times": t, "az": np.where(act, folded, np.nan),
                    "active": act, "loudness_db": loud if loud.shape == t.shape else None,
                    "motion": s.get("motion"), "position": s.get("position")})
    return out


def _on_times(src: dict, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A source's folded azimuth at other frame times (its nearest frame), NaN where inactive."""
    t = src["times"]
    if len(t) == 0:
        return np.full(times.shape, np.nan), np.zeros(times.shape, bool)
    k = np.clip(np.rint(np.interp(times, t, np.arange(len(t)))), 0, len(t) - 1).astype(int)
    hop = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
    ok = src["active"][k] & (np.abs(t[k] - times) <= hop)
    return np.where(ok, src["az"][k], np.nan), ok


def _level_change_db(src: dict) -> float | None:
    if src["loudness_db"] is None:
        return None
    ok = src["active"] & np.isfinite(src["loudness_db"])
    return round(endpoint_change(src["loudness_db"], ok), 2) if ok.sum() >= 2 else None


def compare_analyses(reference: dict, other: dict) -> dict:
    """Compare the analysis of audio made back (``other``) with the original's.

    Sources are paired by an optimal assignment on their mean azimuth difference over the
    frames both are active (``other`` sampled at the reference's frame times; azimuths
    folded to the front, as a picture cannot tell front from back).

    Returns
    -------
    dict
        ``pairs``: per pair, the frames, mean and median absolute azimuth difference,
        both motion and position labels and their agreement, both level changes (end
        minus start of the active loudness, dB); ``unpaired_reference``,
        ``unpaired_other``; ``summary``: motion and position agreement over the
        reference's sources (an unpaired source disagrees) and the frame-weighted mean
        azimuth difference.
    """
    ref, oth = _tracks(reference), _tracks(other)
    ref = [s for s in ref if s["active"].any()]
    oth = [s for s in oth if s["active"].any()]
    cost = np.full((len(ref), len(oth)), np.inf)
    cache = {}
    for i, a in enumerate(ref):
        for j, b in enumerate(oth):
            az_b, ok_b = _on_times(b, a["times"])
            both = a["active"] & ok_b
            cache[i, j] = (az_b, both)
            if both.sum() >= MIN_COMMON_FRAMES:
                cost[i, j] = float(np.mean(np.abs(angle_diff_deg(a["az"][both], az_b[both]))))
    pairs = []
    if ref and oth:
        for i, j in zip(*linear_sum_assignment(np.where(np.isfinite(cost), cost, 1e6)),
                        strict=True):
            if not np.isfinite(cost[i, j]):
                continue
            a, b = ref[i], oth[j]
            az_b, both = cache[i, j]
            diff = np.abs(angle_diff_deg(a["az"][both], az_b[both]))
            pairs.append({
                "source_reference": a["id"], "source_other": b["id"],
                "frames": int(both.sum()),
                "mean_azimuth_difference_deg": round(float(np.mean(diff)), 2),
                "median_azimuth_difference_deg": round(float(np.median(diff)), 2),
                "motion_reference": a["motion"], "motion_other": b["motion"],
                "motion_agrees": a["motion"] == b["motion"],
                "position_reference": a["position"], "position_other": b["position"],
                "position_agrees": a["position"] == b["position"],
                "level_change_reference_db": _level_change_db(a),
                "level_change_other_db": _level_change_db(b),
            })
    pairs.sort(key=lambda p: p["source_reference"])
    frames = sum(p["frames"] for p in pairs)
    n_ref = len(ref)
    return {
        "sources_reference": n_ref,
        "sources_other": len(oth),
        "pairs": pairs,
        "unpaired_reference": sorted({s["id"] for s in ref}
                                     - {p["source_reference"] for p in pairs}),
        "unpaired_other": sorted({s["id"] for s in oth} - {p["source_other"] for p in pairs}),
        "summary": {
            "motion_agreement": round(sum(p["motion_agrees"] for p in pairs) / n_ref, 3)
            if n_ref else None,
            "position_agreement": round(sum(p["position_agrees"] for p in pairs) / n_ref, 3)
            if n_ref else None,
            "mean_azimuth_difference_deg": round(sum(
                p["mean_azimuth_difference_deg"] * p["frames"] for p in pairs) / frames, 2)
            if frames else None,
        },
    }


def centre_baseline_deg(analysis: dict) -> float | None:
    """Mean absolute (front-folded) azimuth over the active frames of every source: the
    azimuth difference of audio that puts every source in the centre."""
    vals = [np.abs(s["az"][s["active"]]) for s in _tracks(analysis) if s["active"].any()]
    return round(float(np.mean(np.concatenate(vals))), 2) if vals else None
