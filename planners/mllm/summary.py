"""Per-source cue summaries: the numbers the language model is given, and the retrieval features.

The analysis JSON (DESIGN.md, "Analysis result") holds tracks at the analysis hop; a
language model needs a handful of numbers per source instead.  :func:`summarize` reduces
each analysed source to a :class:`SourceCues` (azimuth at the start, end and every
``track_step_s``, loudness trend, ILD and ITD at the start and end, labels, confidence);
:func:`cue_features` turns a scene's summaries into the fixed-length vector the example
bank is searched with.  Both the request and the bank use these functions, so examples
and queries are described the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from spa2v.conventions import Camera, fold_front, motion_label, position_label, wrap_deg
from spa2v.errors import InputError

EDGE_WINDOW_S = 0.5
"""Start and end values are averaged over this much of a source's active time."""
MAX_TRACK_POINTS = 12
"""At most this many azimuth track points per source in the request."""
FEATURE_SLOTS = 2
"""Retrieval features describe the loudest this-many sources."""
FEATURE_NAMES = (
    "n_sources",
    *(
        f"slot{i}_{k}"
        for i in range(FEATURE_SLOTS)
        for k in ("present", "x_start", "x_end", "level_change")
    ),
)
_SINE = Camera()


@dataclass
class SourceCues:
    """One analysed source, summarised (angles in degrees, levels in dB, times in s)."""

    source_id: int
    confidence: float | None
    position: str
    motion: str
    behind: bool
    active_from_s: float
    active_to_s: float
    azimuth_start_deg: float
    azimuth_end_deg: float
    azimuth_mean_deg: float
    azimuth_min_deg: float
    azimuth_max_deg: float
    track_times_s: list[float]
    track_azimuth_deg: list[float]
    elevation_mean_deg: float | None
    loudness_start_db: float
    loudness_end_db: float
    loudness_change_db: float
    loudness_slope_db_per_s: float
    relative_level_db: float
    """Mean loudness minus that of the loudest source (0 for the loudest)."""
    ild_start_db: float | None = None
    ild_end_db: float | None = None
    itd_start_ms: float | None = None
    itd_end_ms: float | None = None

    def x_start_end(self, camera: Camera = _SINE) -> tuple[float, float]:
        """Image x of the start and end azimuth under ``camera`` (may leave [0, 1] for pinhole)."""
        x, _, _ = camera.azimuth_to_x(np.array([self.azimuth_start_deg, self.azimuth_end_deg]))
        return float(x[0]), float(x[1])


@dataclass
class SceneCues:
    """A recording's format, duration and source summaries (loudest first)."""

    format: str
    duration_s: float
    sources: list[SourceCues] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "duration_s": self.duration_s,
            "sources": [asdict(s) for s in self.sources],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SceneCues:
        return cls(
            format=str(d["format"]),
            duration_s=float(d["duration_s"]),
            sources=[SourceCues(**s) for s in d["sources"]],
        )


# --------------------------------------------------------------------------- summaries
def summarize(analysis: Any) -> SceneCues:
    """Summarise every plannable source of an analysis result.

    A source is plannable when it has at least one active frame with a finite azimuth
    and loudness.

    Raises
    ------
    InputError
        The analysis is malformed, or it has no plannable source.
    """
    if not isinstance(analysis, dict):
        raise InputError(f"analysis: expected a JSON object, got {type(analysis).__name__}")
    raw = analysis.get("sources")
    if not isinstance(raw, list):
        raise InputError("analysis: sources: expected a list of sources")
    cue_block = analysis.get("cues") if isinstance(analysis.get("cues"), dict) else {}
    hop_s = _float_or(analysis.get("hop_s"), 0.0)
    parsed = []
    t_end = 0.0
    for i, src in enumerate(raw):
        s = _read_source(src, i)
        if s["times"].size:
            t_end = max(t_end, float(s["times"][-1]) + hop_s)
        parsed.append(s)
    duration = _float_or(analysis.get("duration"), t_end)
    if not np.isfinite(duration) or duration <= 0:
        raise InputError("analysis: duration: must be a positive number of seconds")

    summaries = [_summarize_source(s, duration, cue_block) for s in parsed]
    sources = [s for s in summaries if s is not None]
    if not sources:
        raise InputError("the analysis has no active sound source; there is nothing to plan")
    loudest = max(s.relative_level_db for s in sources)  # still absolute here
    for s in sources:
        s.relative_level_db = round(s.relative_level_db - loudest, 1)
    return SceneCues(str(analysis.get("format", "unknown")), round(duration, 3), sources)


def _float_or(v: Any, default: float) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def _series(src: dict[str, Any], key: str, n: int, where: str) -> np.ndarray | None:
    v = src.get(key)
    if v is None:
        return None
    try:
        arr = np.array([np.nan if x is None else x for x in v], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(f"{where}.{key}: expected a list of numbers") from None
    if arr.size != n:
        raise InputError(f"{where}.{key}: expected {n} values (one per time), got {arr.size}")
    return arr


def _read_source(src: Any, i: int) -> dict[str, Any]:
    where = f"analysis: sources[{i}]"
    if not isinstance(src, dict):
        raise InputError(f"{where}: expected an object")
    for key in ("times", "azimuth_deg", "loudness_db"):
        if key not in src:
            raise InputError(f"{where}: missing field {key!r}")
    try:
        times = np.asarray(src["times"], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(f"{where}.times: expected a list of numbers") from None
    n = times.size
    if n > 1 and np.any(np.diff(times) <= 0):
        raise InputError(f"{where}.times: times must increase")
    az = _series(src, "azimuth_deg", n, where)
    loud = _series(src, "loudness_db", n, where)
    act = _series(src, "active", n, where)
    active = np.ones(n, bool) if act is None else np.nan_to_num(act) > 0.5
    ok = active & np.isfinite(az) & np.isfinite(loud) & np.isfinite(times)
    conf = src.get("confidence")
    return {
        "id": int(src.get("id", i)),
        "times": times,
        "azimuth_deg": az,
        "elevation_deg": _series(src, "elevation_deg", n, where),
        "loudness_db": loud,
        "ok": ok,
        "behind": bool(src.get("behind", False)),
        "position": src.get("position"),
        "motion": src.get("motion"),
        "confidence": None if conf is None else round(_float_or(conf, 0.0), 3),
    }


def _circular_mean_deg(a: np.ndarray) -> float:
    r = np.deg2rad(a)
    return float(wrap_deg(np.rad2deg(np.arctan2(np.mean(np.sin(r)), np.mean(np.cos(r))))))


def _edge_masks(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the first and last ``EDGE_WINDOW_S`` (at most a fifth of the span) of ``t``."""
    span = float(t[-1] - t[0])
    w = min(EDGE_WINDOW_S, max(span / 5.0, 0.0))
    return t <= t[0] + w, t >= t[-1] - w


def _cue_at(cue_block: dict[str, Any], key: str, times: np.ndarray) -> np.ndarray | None:
    """A scene cue track (``ild_db``, ``itd_ms``) read at ``times`` (nearest frame)."""
    ct, cv = cue_block.get("times"), cue_block.get(key)
    if not isinstance(ct, list) or not isinstance(cv, list) or len(ct) != len(cv) or not ct:
        return None
    try:
        ct_a = np.asarray(ct, dtype=np.float64)
        cv_a = np.array([np.nan if v is None else v for v in cv], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    idx = np.clip(np.searchsorted(ct_a, times), 0, ct_a.size - 1)
    prev = np.clip(idx - 1, 0, ct_a.size - 1)
    idx = np.where(np.abs(ct_a[prev] - times) < np.abs(ct_a[idx] - times), prev, idx)
    return cv_a[idx]


def _nanmean_or_none(x: np.ndarray | None, nd: int) -> float | None:
    if x is None or not np.isfinite(x).any():
        return None
    return round(float(np.nanmean(x)), nd)


def _summarize_source(
    s: dict[str, Any], duration_s: float, cue_block: dict[str, Any]
) -> SourceCues | None:
    ok = s["ok"]
    if not ok.any():
        return None
    t = s["times"][ok]
    az = s["azimuth_deg"][ok]
    loud = s["loudness_db"][ok]
    first, last = _edge_masks(t)
    az_start, az_end = _circular_mean_deg(az[first]), _circular_mean_deg(az[last])
    az_mean = _circular_mean_deg(az)
    folded, _ = fold_front(az)
    l_start, l_end = float(np.mean(loud[first])), float(np.mean(loud[last]))
    slope = float(np.polyfit(t, loud, 1)[0]) if t.size >= 3 and np.ptp(t) > 0 else 0.0

    n_points = min(MAX_TRACK_POINTS, max(2, int(round(duration_s / EDGE_WINDOW_S))))
    edges = np.linspace(float(t[0]), float(t[-1]), n_points + 1)
    track_t, track_az = [], []
    for k in range(n_points):
        sel = (t >= edges[k]) & ((t < edges[k + 1]) if k < n_points - 1 else (t <= edges[k + 1]))
        if sel.any():
            track_t.append(round(float(np.mean(t[sel])), 2))
            track_az.append(round(_circular_mean_deg(az[sel]), 1))

    el = s["elevation_deg"]
    el_mean = None
    if el is not None and np.isfinite(el[ok]).any():
        el_mean = round(float(np.nanmean(el[ok])), 1)

    ild = _cue_at(cue_block, "ild_db", t)
    itd = _cue_at(cue_block, "itd_ms", t)
    unfolded_sweep = float(np.unwrap(np.deg2rad(folded))[-1] - np.unwrap(np.deg2rad(folded))[0])
    motion = s["motion"] if isinstance(s["motion"], str) else motion_label(
        np.rad2deg(unfolded_sweep), l_end - l_start
    )
    position = s["position"] if isinstance(s["position"], str) else position_label(az_mean)
    return SourceCues(
        source_id=s["id"],
        confidence=s["confidence"],
        position=position,
        motion=motion,
        behind=s["behind"],
        active_from_s=round(float(t[0]), 2),
        active_to_s=round(float(t[-1]), 2),
        azimuth_start_deg=round(az_start, 1),
        azimuth_end_deg=round(az_end, 1),
        azimuth_mean_deg=round(az_mean, 1),
        azimuth_min_deg=round(float(np.min(folded)), 1),
        azimuth_max_deg=round(float(np.max(folded)), 1),
        track_times_s=track_t,
        track_azimuth_deg=track_az,
        elevation_mean_deg=el_mean,
        loudness_start_db=round(l_start, 1),
        loudness_end_db=round(l_end, 1),
        loudness_change_db=round(l_end - l_start, 1),
        loudness_slope_db_per_s=round(slope, 2),
        relative_level_db=float(np.mean(loud)),
        ild_start_db=_nanmean_or_none(None if ild is None else ild[first], 1),
        ild_end_db=_nanmean_or_none(None if ild is None else ild[last], 1),
        itd_start_ms=_nanmean_or_none(None if itd is None else itd[first], 3),
        itd_end_ms=_nanmean_or_none(None if itd is None else itd[last], 3),
    )


# --------------------------------------------------------------------------- features
def cue_features(scene: SceneCues) -> np.ndarray:
    """Retrieval features of a scene, shape ``(len(FEATURE_NAMES),)``.

    The number of sources, and for each of the loudest ``FEATURE_SLOTS`` sources,
    taken from left to right in the picture (so that which of two sources is louder
    does not matter): present (0/1), image x at the start and end under the sine
    camera (so left/right, crossing direction and extent count alike for every
    format), and the loudness change over 12 dB (approach and recession), clipped to
    [-1, 1].  Absent slots are a centred, steady source with present = 0.
    """
    slots = [(*s.x_start_end(), s.loudness_change_db) for s in scene.sources[:FEATURE_SLOTS]]
    slots.sort(key=lambda v: v[0] + v[1])
    out = [min(len(scene.sources), 3) / 2.0]
    for i in range(FEATURE_SLOTS):
        if i < len(slots):
            x0, x1, change_db = slots[i]
            out += [1.0, x0, x1, float(np.clip(change_db / 12.0, -1.0, 1.0))]
        else:
            out += [0.0, 0.5, 0.5, 0.0]
    return np.asarray(out, dtype=np.float64)
