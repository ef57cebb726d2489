"""Objects in video frames without a learned detector: colour and motion blobs, tracked.

Two cues find an object in a frame, both classic OpenCV image processing:

- **Colour**: pixels of high chroma (``max(R, G, B) - min(R, G, B)``) that belong to one of
  the video's colour modes (peaks of the hue histogram of its colourful pixels).  A mode
  that covers a large part of the frame (grass, sky) is scenery and is dropped.  Each mode
  is segmented on its own (morphological closing, connected components), so that two
  objects of different colours stay apart even where they overlap.  This also finds an
  object that never moves.
- **Motion**: background subtraction against the per-pixel temporal median of the clip,
  for objects without a colourful part.  A motion blob next to a colour blob is taken to
  belong to it (a label, a shadow) and is not an object of its own.

Detections are linked from frame to frame per colour mode (and among motion blobs) by an
optimal assignment on the distance between their centres, with a gate that grows with
the object's size and the frames missed.  Tracks that are short, tiny, or a part of a
bigger track (a siren light on a vehicle) are dropped; the most prominent
``max_objects`` are kept, biggest first.

Centres are the centroids of the blob's pixels (the animatic renderer puts the centroid of
an object's body colour on its box's horizontal centre); boxes are the blobs' bounding
boxes.  Both are normalised to [0, 1], origin top-left.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.signal import find_peaks

from spa2v._typing import FloatArray, PathType
from spa2v.conventions import Camera, motion_label, position_label, unwrap_deg
from spa2v.errors import InputError
from spa2v.layout import CameraSpec, SceneLayout, frame_count, layout_from_dict

MIN_CHROMA = 120
"""A pixel is colourful when ``max(R, G, B) - min(R, G, B)`` reaches this (of 255)."""
WEAK_CHROMA = 50
"""Weakly coloured pixels join a colour blob when they lie next to colourful ones."""
SCENERY_AREA_FRACTION = 0.2
"""A colour mode covering more of the frame than this, on average, is scenery."""
MOTION_THRESHOLD = 40
"""Largest channel difference to the median background (of 255) that counts as motion."""
MAX_WIDTH_PX = 320
"""Frames wider than this are downscaled first (the tracker needs no more detail)."""


@dataclass
class VisualTrack:
    """One object found in the frames of a video.

    Attributes
    ----------
    id : int
        0 for the most prominent object, then in order of prominence.
    times : ndarray, shape (T,)
        Frame times in seconds (``i / fps``).
    boxes : ndarray, shape (T, 4)
        Normalised ``[x1, y1, x2, y2]``; NaN where the object is not seen.
    centers : ndarray, shape (T, 2)
        Normalised pixel centroid ``(x, y)``; NaN where the object is not seen.
    active : ndarray of bool, shape (T,)
        Where the object is seen (short gaps are bridged by interpolation).
    color_rgb : (int, int, int) or None
        The colour of the object's colourful part, None for a motion blob.
    overlapped : ndarray of bool, shape (T,), optional
        Frames where the box touches another track's box: the object may be partly
        hidden there, so its size is not read from them.
    """

    id: int
    times: FloatArray
    boxes: FloatArray
    centers: FloatArray
    active: np.ndarray
    color_rgb: tuple[int, int, int] | None = None
    overlapped: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def azimuth_deg(self, camera: Camera | None = None) -> FloatArray:
        """Azimuth of the centre through the camera model, shape (T,), NaN where not seen."""
        camera = camera or Camera()
        az = camera.x_to_azimuth(self.centers[:, 0])
        return np.where(self.active, az, np.nan)

    def heights(self) -> FloatArray:
        """Normalised box height, shape (T,), NaN where not seen, and where overlapped by
        another track when some frames are clear of it."""
        seen = self.active
        if self.overlapped is not None and (seen & ~self.overlapped).any():
            seen = seen & ~self.overlapped
        return np.where(seen, self.boxes[:, 3] - self.boxes[:, 1], np.nan)

    def labels(self, camera: Camera | None = None) -> tuple[str, str]:
        """(position, motion) labels of the track, as DESIGN.md defines them."""
        return track_labels(self.azimuth_deg(camera), self.heights(), self.active,
                            cut_at_side(self.boxes))

    def to_dict(self, camera: Camera | None = None) -> dict:
        """JSON-ready summary (the per-frame boxes at 4 decimals, None where not seen)."""
        position, motion = self.labels(camera)
        az = self.azimuth_deg(camera)
        return {
            "id": int(self.id),
            "color_rgb": None if self.color_rgb is None else list(self.color_rgb),
            "frames_seen": int(self.active.sum()),
            "mean_azimuth_deg": _round(float(np.nanmean(az))) if self.active.any() else None,
            "position": position,
            "motion": motion,
            "times": [round(float(t), 4) for t in self.times],
            "boxes": [
                [round(float(v), 4) for v in b] if a else None
                for b, a in zip(self.boxes, self.active, strict=True)
            ],
        }


def _round(v: float, nd: int = 2) -> float | None:
    return round(v, nd) if np.isfinite(v) else None


# --------------------------------------------------------------------------- labels
EDGE_FRACTION = 0.2
"""A track's start and end, for its net change: this fraction of its samples each."""


def _edge_count(n_samples: int, edge_fraction: float = EDGE_FRACTION) -> int:
    """How many samples make each end of a track of ``n_samples``."""
    return max(1, int(round(edge_fraction * n_samples)))


def endpoint_change(values: FloatArray, active: np.ndarray, *,
                    edge_fraction: float = EDGE_FRACTION) -> float:
    """Robust net change of a track: median of its last minus median of its first
    ``edge_fraction`` of active samples (0 with fewer than two active samples)."""
    v = np.asarray(values, dtype=np.float64)[np.asarray(active, dtype=bool)]
    v = v[np.isfinite(v)]
    if v.size < 2:
        return 0.0
    n = _edge_count(v.size, edge_fraction)
    return float(np.median(v[-n:]) - np.median(v[:n]))


CUT_EDGE = 1e-3
"""A normalised box edge within this of the picture's left or right edge is cut there."""


def cut_at_side(boxes: FloatArray) -> np.ndarray:
    """Which side of the picture cuts each box ``(T, 4)`` (normalised ``[x1, y1, x2,
    y2]``): -1 the left, 1 the right, 2 both (the box spans the picture), 0 neither; a
    cut box's centre is not the object's."""
    b = np.asarray(boxes, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        left, right = b[:, 0] <= CUT_EDGE, b[:, 2] >= 1.0 - CUT_EDGE
    return np.where(left & right, 2, right.astype(np.int64) - left.astype(np.int64))


def track_labels(azimuth_deg: FloatArray, size: FloatArray, active: np.ndarray,
                 cut: np.ndarray | None = None) -> tuple[str, str]:
    """Position and motion labels of a picture track.

    The azimuth sweep is the robust end-minus-start change of the (unwrapped) azimuth;
    the level change is read from the apparent size: size is inversely proportional to
    distance, so ``20 log10(size_end / size_start)`` is the direct-path level change in dB.

    A box cut by the picture's side (``cut``) has its centre inside the picture while
    the object's is farther out, and a cut box that grows moves its centre away from the
    edge: an object approaching at the side of the picture would pass for one crossing
    it.  Where the track starts and ends cut by the same side, the sweep is read from the
    frames whose box is whole, and where fewer than two are, no sweep is measured (the
    label comes from the size).  An object that enters at one side and leaves at the
    other keeps the sweep of its centre.  A box cut by both sides (an object so near that
    it spans the picture) has the picture's centre: its frames give no sweep at all.

    Parameters
    ----------
    azimuth_deg, size : ndarray, shape (T,)
        NaN where not seen.
    active : ndarray of bool, shape (T,)
    cut : ndarray of int, shape (T,), optional
        The side that cuts each frame's box (:func:`cut_at_side`).
    """
    act = np.asarray(active, dtype=bool) & np.isfinite(azimuth_deg)
    if not act.any():
        return "center", "static"
    az = np.full(len(act), np.nan)
    az[act] = unwrap_deg(np.asarray(azimuth_deg)[act])
    use = act
    if cut is not None:
        cut = np.asarray(cut)
        use = act & (cut != 2)
        side = cut[use]
        n = _edge_count(side.size)  # the ends endpoint_change reads
        ends = np.concatenate([side[:n], side[-n:]])
        if ends.size and ends[0] != 0 and np.all(ends == ends[0]):
            use = use & (cut == 0)
    sweep = endpoint_change(az, use)
    s = np.asarray(size, dtype=np.float64)
    ok = act & np.isfinite(s) & (s > 0)
    level_db = endpoint_change(20.0 * np.log10(np.where(ok, s, 1.0)), ok)
    return position_label(float(np.nanmean(az))), motion_label(sweep, level_db)


# --------------------------------------------------------------------------- detection
@dataclass
class _Detection:
    frame: int
    stream: int  # colour mode index, or -1 for motion
    box: np.ndarray  # (4,) x1, y1, x2, y2 in pixels (x2, y2 exclusive)
    center: np.ndarray  # (2,) pixel centroid
    area: float


def _as_frames(video: PathType | np.ndarray, fps: float | None) -> tuple[np.ndarray, float]:
    if isinstance(video, np.ndarray):
        frames = video
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise InputError(f"frames must have shape (T, H, W, 3), got {frames.shape}")
        if frames.shape[0] == 0:
            raise InputError("the video has no frames")
        if fps is None or not fps > 0:
            raise InputError("frames need a positive fps")
        if frames.dtype != np.uint8:
            frames = np.clip(frames, 0, 255).astype(np.uint8)
        return frames, float(fps)
    from spa2v.video import read_video

    frames, file_fps = read_video(video)
    fps = float(fps) if fps else file_fps
    if not fps > 0:
        raise InputError("the video does not state its frame rate", video)
    return frames, fps


def _downscale(frames: np.ndarray, max_width: int) -> np.ndarray:
    h, w = frames.shape[1:3]
    if w <= max_width:
        return frames
    size = (max_width, max(2, int(round(h * max_width / w))))
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


def _hue_chroma(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV hue (0..179) and chroma (0..255) of RGB frames, each (T, H, W) uint8."""
    hue = np.empty(frames.shape[:3], np.uint8)
    for i, f in enumerate(frames):
        hue[i] = cv2.cvtColor(f, cv2.COLOR_RGB2HSV)[..., 0]
    chroma = (frames.max(axis=-1) - frames.min(axis=-1)).astype(np.uint8)
    return hue, chroma


def colour_modes(hue: np.ndarray, colourful: np.ndarray, *, min_pixels: float,
                 scenery_fraction: float = SCENERY_AREA_FRACTION) -> list[int]:
    """Peaks of the hue histogram (OpenCV hue units, 0..179) of the colourful pixels.

    A peak needs ``min_pixels`` colourful pixels in all (a small object in some of the
    frames); one whose pixels cover more than ``scenery_fraction`` of the frame on average
    is scenery and is left out.
    """
    h = hue[colourful]
    if h.size == 0:
        return []
    hist = np.bincount(h.astype(np.int64), minlength=180).astype(np.float64)[:180]
    k = np.exp(-0.5 * (np.arange(-4, 5) / 1.2) ** 2)
    padded = np.concatenate([hist[-4:], hist, hist[:4]])
    smooth = np.convolve(padded, k / k.sum(), mode="same")[4:-4]
    wrapped = np.concatenate([smooth[-10:], smooth, smooth[:10]])
    peaks, _ = find_peaks(wrapped, height=min_pixels / 40.0, distance=4)
    modes = sorted({int((p - 10) % 180) for p in peaks})
    mass = {m: np.count_nonzero(_hue_near(h, m, modes)) for m in modes}
    n_px = hue.size
    return [m for m in modes if min_pixels <= mass[m] <= scenery_fraction * n_px]


def _hue_dist(h: np.ndarray, m: int) -> np.ndarray:
    d = np.abs(h.astype(np.int16) - m)
    return np.minimum(d, 180 - d)


def _hue_near(h: np.ndarray, m: int, modes: list[int], max_dist: int = 8) -> np.ndarray:
    """Pixels whose hue is nearer to mode ``m`` than to any other mode, within ``max_dist``."""
    d = _hue_dist(h, m)
    ok = d <= max_dist
    for other in modes:
        if other != m:
            ok &= d < _hue_dist(h, other)
    return ok


def _mode_mask(hue: np.ndarray, chroma: np.ndarray, mode: int, modes: list[int],
               reach_px: int) -> np.ndarray:
    """Pixels of one colour mode, (T, H, W) bool, by hysteresis: colourful pixels of the
    mode, and weakly coloured pixels of about its hue within ``reach_px`` of them (video
    codecs halve the colour resolution, which bleaches the thin parts of an object)."""
    seeds = (chroma >= MIN_CHROMA) & _hue_near(hue, mode, modes)
    weak = (chroma >= WEAK_CHROMA) & _hue_near(hue, mode, modes, max_dist=12)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach_px + 1, 2 * reach_px + 1))
    near = np.stack([cv2.dilate(f, kernel) for f in seeds.astype(np.uint8)]).astype(bool)
    return seeds | (weak & near)


def _blobs(mask: np.ndarray, close_px: int, min_area_px: float, frame: int, stream: int
           ) -> list[_Detection]:
    if close_px > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (close_px, close_px))
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    out = []
    for j in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[j])
        if area < min_area_px:
            continue
        ys, xs = np.nonzero(labels[y:y + h, x:x + w] == j)
        center = np.array([x + xs.mean() + 0.5, y + ys.mean() + 0.5])
        out.append(_Detection(frame, stream, np.array([x, y, x + w, y + h], float), center,
                              float(area)))
    return out


def _group(dets: list[_Detection], grow: float = 0.3) -> list[_Detection]:
    """Merge blobs whose boxes, grown by ``grow`` times their size, touch (union-find):
    the parts of one object that its outlines or gaps split apart."""
    n = len(dets)
    if n < 2:
        return dets
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    grown = []
    for d in dets:
        x1, y1, x2, y2 = d.box
        g = grow * max(x2 - x1, y2 - y1) + 1.0
        grown.append((x1 - g, y1 - g, x2 + g, y2 + g))
    for i in range(n):
        for j in range(i + 1, n):
            a, b = grown[i], grown[j]
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                parent[root(i)] = root(j)
    groups: dict[int, list[_Detection]] = {}
    for i, d in enumerate(dets):
        groups.setdefault(root(i), []).append(d)
    out = []
    for members in groups.values():
        areas = np.array([m.area for m in members])
        boxes = np.stack([m.box for m in members])
        center = (np.stack([m.center for m in members]) * areas[:, None]).sum(0) / areas.sum()
        box = np.concatenate([boxes[:, :2].min(0), boxes[:, 2:].max(0)])
        out.append(_Detection(members[0].frame, members[0].stream, box, center,
                              float(areas.sum())))
    return out


def _near_any(d: _Detection, others: list[_Detection], grow: float) -> bool:
    cx, cy = d.center
    for o in others:
        x1, y1, x2, y2 = o.box
        w, h = x2 - x1, y2 - y1
        if x1 - grow * w <= cx <= x2 + grow * w and y1 - grow * h <= cy <= y2 + grow * h:
            return True
    return False


def median_background(frames: np.ndarray, object_masks: list[np.ndarray], grow_px: int,
                      max_samples: int = 48) -> np.ndarray:
    """Per-pixel temporal median of the frames, leaving out the pixels of the colourful
    objects (grown by ``grow_px``), so that an object that lingers leaves no ghost.

    Returns ``(H, W, 3)`` int16; where a pixel is covered in every sampled frame, the plain
    median.
    """
    step = max(1, frames.shape[0] // max_samples)
    sample = frames[::step]
    plain = np.median(sample, axis=0)
    if not object_masks:
        return plain.astype(np.int16)
    covered = np.zeros(sample.shape[:3], np.uint8)
    for m in object_masks:
        covered |= m[::step].astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow_px + 1, 2 * grow_px + 1))
    covered = np.stack([cv2.dilate(c, kernel) for c in covered]).astype(bool)
    if not covered.any():
        return plain.astype(np.int16)
    masked = np.where(covered[..., None], np.nan, sample.astype(np.float32))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels: the plain median
        bg = np.nanmedian(masked, axis=0)
    return np.where(np.isfinite(bg), bg, plain).astype(np.int16)


def _detect(frames: np.ndarray, *, min_area_fraction: float = 3e-4, use_motion: bool = True
           ) -> tuple[list[list[_Detection]], list[tuple[int, int, int]]]:
    """Colour and motion blobs in each frame.

    Returns the detections per frame and the RGB colour of each colour mode.
    """
    t, h, w = frames.shape[:3]
    hue, chroma = _hue_chroma(frames)
    colourful = chroma >= MIN_CHROMA
    close_px = max(3, int(round(0.02 * w)) | 1)
    min_area_px = max(6.0, min_area_fraction * h * w)
    modes = colour_modes(hue, colourful, min_pixels=min_area_px * max(2.0, 0.2 * t))
    mode_masks = [_mode_mask(hue, chroma, m, modes, close_px) for m in modes]
    colours = []
    for mask in mode_masks:
        px = frames[mask]
        colours.append(tuple(int(v) for v in np.median(px, axis=0)) if px.size else (0, 0, 0))

    if use_motion:
        background = median_background(frames, mode_masks, close_px)
    per_frame: list[list[_Detection]] = []
    for i in range(t):
        dets: list[_Detection] = []
        for s, mask in enumerate(mode_masks):
            parts = _blobs(mask[i].astype(np.uint8), close_px, 0.25 * min_area_px, i, s)
            dets += [d for d in _group(parts) if d.area >= min_area_px]
        if use_motion and t >= 3:
            blurred = cv2.GaussianBlur(frames[i], (3, 3), 0).astype(np.int16)
            moving = (np.abs(blurred - background).max(axis=-1) > MOTION_THRESHOLD)
            moving = cv2.morphologyEx(moving.astype(np.uint8), cv2.MORPH_OPEN,
                                      np.ones((3, 3), np.uint8))
            colour_dets = list(dets)
            for d in _blobs(moving, close_px, 4 * min_area_px, i, -1):
                if not _near_any(d, colour_dets, grow=1.0):
                    dets.append(d)
        per_frame.append(dets)
    return per_frame, colours


# --------------------------------------------------------------------------- tracking
@dataclass
class _Raw:
    stream: int
    dets: list[_Detection]

    @property
    def last(self) -> _Detection:
        return self.dets[-1]

    def predict(self, frame: int) -> np.ndarray:
        last = self.dets[-1]
        if len(self.dets) < 2:
            return last.center
        prev = self.dets[-2]
        v = (last.center - prev.center) / max(1, last.frame - prev.frame)
        return last.center + v * (frame - last.frame)


def _link(per_frame: list[list[_Detection]], width: int, max_gap: int) -> list[_Raw]:
    """Frame-to-frame assignment of detections to tracks, per stream."""
    done: list[_Raw] = []
    live: list[_Raw] = []
    for i, dets in enumerate(per_frame):
        still = []
        for tr in live:
            (still if i - tr.last.frame <= max_gap + 1 else done).append(tr)
        live = still
        taken = np.zeros(len(dets), bool)
        for stream in sorted({d.stream for d in dets} | {tr.stream for tr in live}):
            tr_idx = [k for k, tr in enumerate(live) if tr.stream == stream]
            d_idx = [k for k, d in enumerate(dets) if d.stream == stream]
            if tr_idx and d_idx:
                cost = np.full((len(tr_idx), len(d_idx)), 1e9)
                for a, k in enumerate(tr_idx):
                    tr = live[k]
                    p = tr.predict(i)
                    lb = tr.last.box
                    size = max(lb[2] - lb[0], lb[3] - lb[1])
                    gap = i - tr.last.frame
                    gate = 0.08 * width * gap + 0.75 * size
                    for b, j in enumerate(d_idx):
                        dist = float(np.hypot(*(dets[j].center - p)))
                        if dist <= gate:
                            cost[a, b] = dist + 0.1 * abs(np.sqrt(dets[j].area)
                                                          - np.sqrt(tr.last.area))
                rows, cols = linear_sum_assignment(cost)
                for a, b in zip(rows, cols, strict=True):
                    if cost[a, b] < 1e9:
                        live[tr_idx[a]].dets.append(dets[d_idx[b]])
                        taken[d_idx[b]] = True
        for j, d in enumerate(dets):
            if not taken[j]:
                live.append(_Raw(d.stream, [d]))
    return done + live


def _to_arrays(raw: _Raw, n_frames: int, max_gap: int, size: tuple[int, int]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    w, h = size
    scale = np.array([w, h, w, h], float)
    boxes = np.full((n_frames, 4), np.nan)
    centers = np.full((n_frames, 2), np.nan)
    areas = np.full(n_frames, np.nan)
    for d in raw.dets:
        boxes[d.frame] = d.box / scale
        centers[d.frame] = d.center / scale[:2]
        areas[d.frame] = d.area / (w * h)
    seen = np.isfinite(boxes[:, 0])
    idx = np.flatnonzero(seen)
    active = seen.copy()
    for a, b in zip(idx[:-1], idx[1:], strict=True):
        if 1 < b - a <= max_gap + 1:
            active[a + 1:b] = True
    fill = active & ~seen
    if fill.any():
        f = np.flatnonzero(fill)
        for arr in (boxes, centers):
            for c in range(arr.shape[1]):
                arr[f, c] = np.interp(f, idx, arr[idx, c])
        areas[f] = np.interp(f, idx, areas[idx])
    return boxes, centers, active, areas


def _inside_fraction(small: np.ndarray, big: np.ndarray, both: np.ndarray) -> float:
    """Fraction of co-active frames where ``small``'s centre lies in ``big``'s box."""
    if not both.any():
        return 0.0
    c = 0.5 * (small[both, :2] + small[both, 2:])
    b = big[both]
    inside = (c[:, 0] >= b[:, 0]) & (c[:, 0] <= b[:, 2]) & (c[:, 1] >= b[:, 1]) & (
        c[:, 1] <= b[:, 3])
    return float(inside.mean())


def _keep_prominent(cands: list[tuple], max_objects: int) -> list[tuple]:
    """The most prominent candidates ``(prominence, key, boxes, centers, active)``, at most
    ``max_objects``; a track inside a bigger one most of the time is a part of it."""
    kept: list[tuple] = []
    for c in sorted(cands, key=lambda c: -c[0]):
        if any(_inside_fraction(c[2], k[2], c[4] & k[4]) >= 0.8
               and (c[4] & k[4]).sum() >= 0.8 * c[4].sum() for k in kept):
            continue
        kept.append(c)
        if len(kept) == max_objects:
            break
    return kept


def track_objects(
    video: PathType | np.ndarray,
    fps: float | None = None,
    *,
    max_objects: int = 4,
    min_duration_s: float = 0.4,
    max_gap_s: float = 0.5,
    min_area_fraction: float = 3e-4,
    use_motion: bool = True,
    max_width: int = MAX_WIDTH_PX,
) -> list[VisualTrack]:
    """Find and track the objects of a video, most prominent first.

    Parameters
    ----------
    video : path or ndarray, shape (T, H, W, 3) uint8 RGB
        A video file, or its decoded frames.
    fps : float, optional
        Frame rate; required with frames, read from the file otherwise.
    max_objects : int
        Keep at most this many tracks (by prominence: area summed over frames).
    min_duration_s : float
        Drop tracks seen for less than this (or less than half the clip, if shorter);
        motion-only tracks must last at least a second (or a third of the clip).
    max_gap_s : float
        A track survives this long unseen; shorter gaps are bridged by interpolation.
    min_area_fraction : float
        Smallest blob, as a fraction of the frame area (motion blobs need 4 times this).
    use_motion : bool
        Also find objects by background subtraction (objects without colourful parts).
    max_width : int
        Frames are downscaled to at most this width first.

    Returns
    -------
    list of VisualTrack

    Raises
    ------
    InputError
        Unreadable video, or one with no frames.
    """
    if max_objects < 1:
        raise InputError("max_objects must be at least 1")
    frames, fps = _as_frames(video, fps)
    frames = _downscale(frames, max_width)
    n, h, w = frames.shape[:3]
    times = np.arange(n) / fps
    per_frame, colours = _detect(frames, min_area_fraction=min_area_fraction,
                                use_motion=use_motion)
    max_gap = max(1, int(round(max_gap_s * fps)))
    raws = _link(per_frame, w, max_gap)
    duration = n / fps
    min_frames = max(2, int(np.ceil(min(min_duration_s, 0.5 * duration) * fps)))
    # motion blobs are weaker evidence (ghosts, flicker): they must last longer
    min_motion_frames = max(min_frames, int(np.ceil(min(1.0, duration / 3.0) * fps)))

    cands = []
    for raw in raws:
        boxes, centers, active, areas = _to_arrays(raw, n, max_gap, (w, h))
        if active.sum() < (min_frames if raw.stream >= 0 else min_motion_frames):
            continue
        prominence = float(np.nansum(np.where(active, areas, 0.0)))
        cands.append((prominence, raw.stream, boxes, centers, active))
    kept = _keep_prominent(cands, max_objects)
    out = [
        VisualTrack(id=i, times=times, boxes=np.where(active[:, None], boxes, np.nan),
                    centers=np.where(active[:, None], centers, np.nan), active=active,
                    color_rgb=colours[stream] if stream >= 0 else None,
                    meta={"cue": "colour" if stream >= 0 else "motion"})
        for i, (_, stream, boxes, centers, active) in enumerate(kept)
    ]
    mark_overlaps(out, n)
    return out


def mark_overlaps(tracks: list[VisualTrack], n: int) -> None:
    """Set each track's ``overlapped`` frames: where its box touches another track's."""
    for tr in tracks:
        tr.overlapped = np.zeros(n, bool)
        for other in tracks:
            if other is not tr:
                tr.overlapped |= _touching(tr.boxes, other.boxes)


def _touching(a: FloatArray, b: FloatArray) -> np.ndarray:
    """Per frame: do boxes ``a`` and ``b`` (T, 4) overlap (False where either is NaN)?"""
    with np.errstate(invalid="ignore"):
        return ((a[:, 0] < b[:, 2]) & (b[:, 0] < a[:, 2]) & (a[:, 1] < b[:, 3])
                & (b[:, 1] < a[:, 3]))


# --------------------------------------------------------------------------- layout
def visual_tracks_to_layout(
    tracks: list[VisualTrack],
    duration: float,
    fps: float = 4.0,
    names: list[str] | None = None,
    camera: Camera | None = None,
    *,
    caption: str | None = None,
    background: str = "default",
) -> SceneLayout:
    """A Video Scene Layout from picture tracks (keyframes at ``fps``).

    Each track becomes an object (named from ``names`` in track order, else "object");
    its keyframe box is its box at the keyframe time, interpolated between seen frames,
    moved sideways so that its centre is the track's centroid (kept inside the frame).
    An object is missing from a keyframe where its track is not seen at the nearest frame.

    Raises
    ------
    InputError
        No tracks, or a non-positive duration or fps.
    """
    if not tracks:
        raise InputError("no object was found in the video; there is nothing to lay out")
    if not duration > 0 or not fps > 0:
        raise InputError("duration and fps must be positive")
    camera = camera or Camera()
    times = np.arange(frame_count(duration, fps)) / fps
    objects, per_key = [], [[] for _ in times]
    summaries = []
    for k, tr in enumerate(tracks):
        name = names[k] if names and k < len(names) and names[k] else "object"
        position, motion = tr.labels(camera)
        objects.append({"id": k, "name": name, "description": f"{position}, {motion}"})
        summaries.append(f"{name} ({position}, {motion.replace('_', ' ')})")
        idx = np.flatnonzero(tr.active)
        if idx.size == 0:
            continue
        nearest = np.clip(np.rint(np.interp(times, tr.times, np.arange(len(tr.times)))), 0,
                          len(tr.times) - 1).astype(int)
        for j, t in enumerate(times):
            if not tr.active[nearest[j]]:
                continue
            box = np.array([np.interp(t, tr.times[idx], tr.boxes[idx, c]) for c in range(4)])
            cx = float(np.interp(t, tr.times[idx], tr.centers[idx, 0]))
            half = 0.5 * (box[2] - box[0])
            cx = min(max(cx, half), 1.0 - half)
            box[0], box[2] = cx - half, cx + half
            box = np.clip(box, 0.0, 1.0)
            if box[2] - box[0] < 1e-3 or box[3] - box[1] < 1e-3:
                continue
            area = (box[2] - box[0]) * (box[3] - box[1])
            per_key[j].append((area, {"id": k, "box": [round(float(v), 4) for v in box]}))
    frames = [
        {"t": float(t), "caption": "", "boxes": [b for _, b in sorted(entries, key=lambda e: e[0])]}
        for t, entries in zip(times, per_key, strict=True)
    ]
    layout = {
        "version": 1,
        "duration": float(duration),
        "fps": float(fps),
        "caption": caption or ("Objects seen: " + "; ".join(summaries) + "."),
        "background": background,
        "camera": CameraSpec.from_camera(camera).model_dump(),
        "objects": objects,
        "frames": frames,
        "planner": "visual",
        "meta": {"from": "spa2v.visual"},
    }
    return layout_from_dict(layout, source_name="visual tracks")


def layout_tracks(layout: SceneLayout, fps: float | None = None) -> list[VisualTrack]:
    """A layout's objects as picture tracks (box centres as centres), sampled at ``fps``
    (default: the layout's keyframe rate times 4)."""
    fps = float(fps) if fps else 4.0 * layout.fps
    times = layout.frame_times(fps)
    out = []
    for k, oid in enumerate(layout.object_ids):
        boxes, visible = layout.track(oid, times)
        boxes = np.where(visible[:, None], boxes, np.nan)
        centers = np.stack([0.5 * (boxes[:, 0] + boxes[:, 2]), 0.5 * (boxes[:, 1] + boxes[:, 3])],
                           axis=1)
        out.append(VisualTrack(id=int(oid), times=times, boxes=boxes, centers=centers,
                               active=visible.astype(bool), meta={"object_index": k}))
    return out


# --------------------------------------------------------------------------- detections
def link_detections(
    detections: list[list[tuple[int, tuple[float, float, float, float]]]],
    times: FloatArray,
    *,
    size: tuple[int, int],
    max_objects: int = 4,
    min_duration_s: float = 0.4,
    max_gap_s: float = 0.5,
) -> list[VisualTrack]:
    """Link per-frame detections (e.g. from an open-vocabulary detector) into tracks.

    The same frame-to-frame assignment as :func:`track_objects`, over all classes at once
    (a detector may call one object a car in one frame and a truck in the next); each
    track takes the class that most of its detections have.  Tracks seen for less than ``min_duration_s`` (or half the clip, if shorter) are
    dropped, and so is a track whose box centre lies inside a more prominent track's box
    in most of their common frames (a part of it: a wheel of a car); the most prominent
    ``max_objects`` are kept (area summed over frames), biggest first.

    Parameters
    ----------
    detections : list (one per frame) of list of (class index, box)
        Normalised ``[x1, y1, x2, y2]`` boxes.
    times : ndarray, shape (T,)
        The frames' times in seconds (evenly spaced).
    size : (W, H)
        The frames' size in pixels (the linking gate is set in pixels).

    Returns
    -------
    list of VisualTrack
        ``meta["query"]`` is the class index of each track, ``meta["cue"]`` "detector".
    """
    times = np.asarray(times, dtype=np.float64)
    n = len(detections)
    if n != len(times):
        raise ValueError(f"{n} frames of detections for {len(times)} times")
    if max_objects < 1:
        raise InputError("max_objects must be at least 1")
    w, h = size
    scale = np.array([w, h, w, h], float)
    per_frame: list[list[_Detection]] = []
    query_of: dict[int, int] = {}
    for i, dets in enumerate(detections):
        frame = []
        for query, box in dets:
            b = np.clip(np.asarray(box, dtype=np.float64), 0.0, 1.0) * scale
            area = float((b[2] - b[0]) * (b[3] - b[1]))
            if area > 0:
                d = _Detection(i, 0, b, 0.5 * (b[:2] + b[2:]), area)
                query_of[id(d)] = int(query)
                frame.append(d)
        per_frame.append(frame)
    dt = float(np.median(np.diff(times))) if n > 1 else 1.0
    fps = 1.0 / dt if dt > 0 else 1.0
    max_gap = max(1, int(round(max_gap_s * fps)))
    duration = n / fps
    min_frames = max(2, int(np.ceil(min(min_duration_s, 0.5 * duration) * fps)))
    cands = []
    for raw in _link(per_frame, w, max_gap):
        boxes, centers, active, areas = _to_arrays(raw, n, max_gap, (w, h))
        if active.sum() < min(min_frames, n):
            continue
        prominence = float(np.nansum(np.where(active, areas, 0.0)))
        votes = np.bincount([query_of[id(d)] for d in raw.dets])
        cands.append((prominence, int(np.argmax(votes)), boxes, centers, active))
    kept = _keep_prominent(cands, max_objects)
    out = [
        VisualTrack(id=i, times=times, boxes=np.where(active[:, None], boxes, np.nan),
                    centers=np.where(active[:, None], centers, np.nan), active=active,
                    meta={"cue": "detector", "query": int(query)})
        for i, (_, query, boxes, centers, active) in enumerate(kept)
    ]
    mark_overlaps(out, n)
    return out
