"""The Video Scene Layout (VSL), version 1: the contract between planners and renderers.

A layout is a global caption, a list of objects and keyframes at ``fps``; each keyframe
holds normalised boxes ``[x1, y1, x2, y2]`` (origin top-left, y down) of the objects
visible in it, back to front.  Renderers interpolate keyframes to their own frame rate
with :meth:`SceneLayout.track`.  See DESIGN.md, "Video Scene Layout".

The same layout can be written in SpA2V's text form (:func:`to_text`, :func:`parse_text`)::

    Video caption: A car drives past from left to right on a quiet street.
    Frame 1:
    Layout: [{id: 0, name: car, box: [0.02, 0.55, 0.27, 0.80]}]
    Frame caption: A car enters from the left.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from spa2v._typing import ArrayLike, FloatArray, PathType
from spa2v.conventions import Camera
from spa2v.errors import InputError
from spa2v.fsutil import atomic_output

Box = tuple[float, float, float, float]

_TIME_TOL_S = 1e-6


class _Fault(ValueError):
    """A validation fault that knows its JSON path below the model that raised it."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(message)


_CONFIG = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=False)


class LayoutBox(BaseModel):
    """One object's box in one keyframe: normalised ``[x1, y1, x2, y2]`` inside [0, 1]."""

    model_config = _CONFIG

    id: int = Field(ge=0)
    box: Box

    @field_validator("box", mode="before")
    @classmethod
    def _four_numbers(cls, v: Any) -> Any:
        if isinstance(v, list | tuple) and len(v) != 4:
            raise ValueError(f"expected 4 numbers [x1, y1, x2, y2], got {len(v)}")
        return v

    @field_validator("box")
    @classmethod
    def _check_box(cls, v: Box) -> Box:
        # Six decimals (a micro-pixel) keep saved layouts readable.
        x1, y1, x2, y2 = v = tuple(round(float(c), 6) for c in v)
        for name, c in zip(("x1", "y1", "x2", "y2"), v, strict=True):
            if not 0.0 <= c <= 1.0:
                raise ValueError(
                    f"{name} = {c:g} lies outside [0, 1]; boxes are normalised "
                    "[x1, y1, x2, y2] with the origin at the top left"
                )
        if not x2 > x1:
            raise ValueError("x2 must be greater than x1")
        if not y2 > y1:
            raise ValueError("y2 must be greater than y1")
        return (float(x1), float(y1), float(x2), float(y2))


class LayoutFrame(BaseModel):
    """A keyframe: its time, a caption, and the visible objects' boxes, back to front."""

    model_config = _CONFIG

    t: float = Field(ge=0.0)
    caption: str = ""
    boxes: list[LayoutBox] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> LayoutFrame:
        seen: set[int] = set()
        for i, b in enumerate(self.boxes):
            if b.id in seen:
                raise _Fault(f"boxes[{i}].id", f"object {b.id} appears twice in this frame")
            seen.add(b.id)
        return self


class LayoutObject(BaseModel):
    """An object of the scene; ``source`` links it to the analysed source it came from."""

    model_config = _CONFIG

    id: int = Field(ge=0)
    name: str = Field(min_length=1)
    description: str = ""
    source: int | None = Field(default=None, ge=0)


class CameraSpec(BaseModel):
    """The camera model of the layout (see :class:`spa2v.conventions.Camera`)."""

    model_config = _CONFIG

    projection: Literal["sine", "pinhole"] = "sine"
    hfov_deg: float = Field(default=90.0, gt=0.0, lt=180.0)

    def to_camera(self) -> Camera:
        return Camera(self.projection, float(self.hfov_deg))

    @classmethod
    def from_camera(cls, camera: Camera) -> CameraSpec:
        return cls(projection=camera.projection, hfov_deg=float(camera.hfov_deg))


class SceneLayout(BaseModel):
    """A Video Scene Layout, version 1."""

    model_config = _CONFIG

    version: Literal[1] = 1
    duration: float = Field(gt=0.0)
    fps: float = Field(gt=0.0)
    caption: str
    background: str = "default"
    camera: CameraSpec = Field(default_factory=CameraSpec)
    objects: list[LayoutObject]
    frames: list[LayoutFrame]
    planner: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_consistency(self) -> SceneLayout:
        if not self.objects:
            raise _Fault("objects", "a layout needs at least one object")
        if not self.frames:
            raise _Fault("frames", "a layout needs at least one frame")
        ids: set[int] = set()
        for i, o in enumerate(self.objects):
            if o.id in ids:
                raise _Fault(f"objects[{i}].id", f"object id {o.id} is used twice")
            ids.add(o.id)
        prev = -math.inf
        for i, f in enumerate(self.frames):
            if f.t <= prev:
                raise _Fault(
                    f"frames[{i}].t",
                    f"frame times must increase strictly (t = {f.t:g} after {prev:g})",
                )
            if f.t > self.duration + _TIME_TOL_S:
                raise _Fault(
                    f"frames[{i}].t", f"t = {f.t:g} lies after the end (duration {self.duration:g})"
                )
            prev = f.t
            for j, b in enumerate(f.boxes):
                if b.id not in ids:
                    raise _Fault(
                        f"frames[{i}].boxes[{j}].id", f"box id {b.id} refers to no object"
                    )
        return self

    # ------------------------------------------------------------------ queries
    @property
    def object_ids(self) -> list[int]:
        return [o.id for o in self.objects]

    def get_object(self, object_id: int) -> LayoutObject:
        for o in self.objects:
            if o.id == object_id:
                return o
        raise KeyError(f"no object with id {object_id} in the layout")

    @property
    def keyframe_times(self) -> FloatArray:
        """Keyframe times in seconds, shape ``(K,)``."""
        return np.array([f.t for f in self.frames], dtype=np.float64)

    def frame_times(self, fps: float) -> FloatArray:
        """Times of a renderer's frames at ``fps`` over the duration, shape ``(N,)``.

        ``N =`` :func:`frame_count` ``(duration, fps)`` frames at ``i / fps``.
        """
        return np.arange(frame_count(self.duration, fps), dtype=np.float64) / float(fps)

    def _keyframe_boxes(self, object_id: int) -> tuple[FloatArray, np.ndarray]:
        present = np.zeros(len(self.frames), dtype=bool)
        boxes = np.full((len(self.frames), 4), np.nan)
        for k, f in enumerate(self.frames):
            for b in f.boxes:
                if b.id == object_id:
                    present[k] = True
                    boxes[k] = b.box
                    break
        return boxes, present

    def track(self, object_id: int, times: ArrayLike) -> tuple[FloatArray, np.ndarray]:
        """Interpolate an object's box at arbitrary times.

        Linear between keyframes that both hold the object; where only one neighbour
        holds it, the object is visible on the half of the interval nearer that keyframe
        (with that keyframe's box); before the first and after the last keyframe the
        nearest keyframe is held.

        Parameters
        ----------
        object_id : int
        times : array_like, shape ``(T,)``
            Times in seconds.

        Returns
        -------
        boxes : ndarray, shape ``(T, 4)``, float64
            ``[x1, y1, x2, y2]``.  Where the object is not visible, the box of the
            nearest keyframe that holds it (NaN if no keyframe does).
        visible : ndarray, shape ``(T,)``, bool
        """
        self.get_object(object_id)
        t = np.atleast_1d(np.asarray(times, dtype=np.float64))
        tk = self.keyframe_times
        kb, present = self._keyframe_boxes(object_id)
        n_key = len(tk)
        j = np.searchsorted(tk, t, side="right") - 1
        k0 = np.clip(j, 0, n_key - 1)
        k1 = np.clip(j + 1, 0, n_key - 1)
        span = tk[k1] - tk[k0]
        with np.errstate(invalid="ignore", divide="ignore"):
            w = np.where(span > 0, (t - tk[k0]) / np.where(span > 0, span, 1.0), 0.0)
        w = np.clip(w, 0.0, 1.0)
        p0, p1 = present[k0], present[k1]
        held = (j < 0) | (j >= n_key - 1)
        # Before the first keyframe hold it; at or after the last, k0 == k1 == last.
        k_held = np.where(j < 0, 0, k0)
        both = ~held & p0 & p1
        only0 = ~held & p0 & ~p1 & (w < 0.5)
        only1 = ~held & ~p0 & p1 & (w >= 0.5)
        visible = np.where(held, present[k_held], both | only0 | only1)

        boxes = np.full((t.size, 4), np.nan)
        if present.any():
            # Fill with the nearest keyframe that holds the object (for invisible times).
            kp = np.flatnonzero(present)
            tp = tk[kp]
            pos = np.clip(np.searchsorted(tp, t), 1, max(1, len(tp) - 1))
            if len(tp) == 1:
                nearest = np.zeros(t.size, dtype=int)
            else:
                left = pos - 1
                nearest = np.where(np.abs(t - tp[left]) <= np.abs(tp[pos] - t), left, pos)
            boxes[:] = kb[kp[nearest]]
            lerp = (1.0 - w)[:, None] * kb[k0] + w[:, None] * kb[k1]
            boxes[both] = lerp[both]
            boxes[only0] = kb[k0][only0]
            boxes[only1] = kb[k1][only1]
            hv = held & visible
            boxes[hv] = kb[k_held][hv]
        return boxes, visible.astype(bool)

    def draw_order(self, times: ArrayLike) -> list[list[int]]:
        """Object ids back to front at each time.

        The box order of the nearer surrounding keyframe decides; objects it lacks
        follow the other keyframe's order, then the order of ``objects``.
        """
        t = np.atleast_1d(np.asarray(times, dtype=np.float64))
        tk = self.keyframe_times
        k0 = np.clip(np.searchsorted(tk, t, side="right") - 1, 0, len(tk) - 1)
        k1 = np.clip(k0 + 1, 0, len(tk) - 1)
        nearer_k1 = (t - tk[k0]) >= (tk[k1] - t)
        near = np.where(nearer_k1 & (k1 != k0), k1, k0)
        far = np.where(near == k0, k1, k0)
        fallback = {oid: i for i, oid in enumerate(self.object_ids)}
        ranks = [{b.id: i for i, b in enumerate(f.boxes)} for f in self.frames]
        big = len(self.objects) + 1
        out = []
        for a, b in zip(near, far, strict=True):
            ra, rb = ranks[a], ranks[b]

            def key(oid: int, ra: dict = ra, rb: dict = rb) -> tuple[int, int]:
                return (ra.get(oid, big + rb.get(oid, big)), fallback[oid])

            out.append(sorted(fallback, key=key))
        return out

    def resample(self, fps: float) -> SceneLayout:
        """The same layout with keyframes at ``fps`` (at :meth:`frame_times`).

        Each new keyframe takes its caption from the nearest earlier keyframe.
        """
        times = self.frame_times(fps)
        tracks = {oid: self.track(oid, times) for oid in self.object_ids}
        orders = self.draw_order(times)
        tk = self.keyframe_times
        src = np.clip(np.searchsorted(tk, times + _TIME_TOL_S, side="right") - 1, 0, len(tk) - 1)
        frames = []
        for i, t in enumerate(times):
            boxes = [
                LayoutBox(id=oid, box=tuple(float(v) for v in tracks[oid][0][i]))
                for oid in orders[i]
                if tracks[oid][1][i]
            ]
            frames.append(
                LayoutFrame(t=float(t), caption=self.frames[src[i]].caption, boxes=boxes)
            )
        return self.model_copy(update={"fps": float(fps), "frames": frames})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (boxes as lists)."""
        return self.model_dump(mode="json")


# --------------------------------------------------------------------------- helpers
def frame_count(duration: float, fps: float) -> int:
    """Frames of a clip of ``duration`` seconds at ``fps``: ``max(1, floor(duration fps + 1/2))``."""
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return max(1, int(math.floor(duration * fps + 0.5)))


def clamp_box(box: ArrayLike, *, min_size: float = 1e-3) -> Box | None:
    """Clip a box ``[x1, y1, x2, y2]`` to the frame [0, 1].

    Returns None when the box lies (all but ``min_size``) outside the frame.
    """
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
    cx1, cy1 = min(max(x1, 0.0), 1.0), min(max(y1, 0.0), 1.0)
    cx2, cy2 = min(max(x2, 0.0), 1.0), min(max(y2, 0.0), 1.0)
    if cx2 - cx1 < min_size or cy2 - cy1 < min_size:
        return None
    return (cx1, cy1, cx2, cy2)


def to_pixel_boxes(
    layout: SceneLayout, width: int, height: int, fps: float
) -> list[dict[int, list[int]]]:
    """LVD-style pixel boxes: per rendered frame, ``{object id: [x, y, w, h]}``.

    Frames are at :meth:`SceneLayout.frame_times`; only visible objects appear, back
    to front; every box is at least one pixel wide and high.
    """
    times = layout.frame_times(fps)
    tracks = {oid: layout.track(oid, times) for oid in layout.object_ids}
    scale = np.array([width, height, width, height], dtype=np.float64)
    pix = {oid: np.rint(b * np.nan_to_num(scale)) for oid, (b, _) in tracks.items()}
    orders = layout.draw_order(times)
    out: list[dict[int, list[int]]] = []
    for i in range(len(times)):
        frame: dict[int, list[int]] = {}
        for oid in orders[i]:
            if not tracks[oid][1][i]:
                continue
            x1, y1, x2, y2 = (int(v) for v in pix[oid][i])
            frame[oid] = [x1, y1, max(1, x2 - x1), max(1, y2 - y1)]
        out.append(frame)
    return out


def layout_json_schema() -> dict[str, Any]:
    """JSON Schema of the VSL (version 1)."""
    schema = SceneLayout.model_json_schema()
    schema["title"] = "Video Scene Layout (spa2v VSL v1)"
    return schema


# --------------------------------------------------------------------------- validation
def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _describe(err: dict[str, Any]) -> tuple[str, str]:
    loc = _format_loc(tuple(err.get("loc", ())))
    exc = (err.get("ctx") or {}).get("error")
    if isinstance(exc, _Fault):
        path = f"{loc}.{exc.path}" if loc else exc.path
        return path, exc.message
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid value"))
    if kind == "missing":
        msg = "missing required field"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    elif msg:
        msg = msg[0].lower() + msg[1:]
    if "input" in err and kind not in ("missing",) and not isinstance(err["input"], dict | list):
        msg += f" (got {err['input']!r})"
    return loc, msg


def _first_fault(exc: ValidationError) -> str:
    path, msg = _describe(exc.errors(include_url=False)[0])
    return f"{path}: {msg}" if path else msg


def layout_from_dict(d: Any, *, source_name: str = "layout") -> SceneLayout:
    """Validate a decoded JSON value as a layout.

    Raises
    ------
    InputError
        ``"<source_name>: <json path>: <problem>"`` for the first fault.
    """
    if not isinstance(d, dict):
        raise InputError(
            "expected a JSON object with version, duration, fps, caption, objects and frames, "
            f"got {type(d).__name__}",
            source_name,
        )
    try:
        return SceneLayout.model_validate(d)
    except ValidationError as exc:
        raise InputError(_first_fault(exc), source_name) from None


def load_layout(path: PathType, *, fps: float = 4.0, duration: float | None = None) -> SceneLayout:
    """Read a layout file: VSL JSON, or SpA2V's text form when the file is not JSON.

    ``fps`` and ``duration`` apply to the text form only (see :func:`parse_text`).
    """
    p = Path(path)
    name = str(path)
    if not p.is_file():
        raise InputError("no such layout file" if not p.exists() else "is not a file", name)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the layout: {exc}", name) from None
    if not text.strip():
        raise InputError("the layout file is empty", name)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if text.lstrip()[:1] in "{[" or not re.search(r"(?i)\bframe\s*\d+\s*:", text):
            raise InputError(
                f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}) "
                "and not SpA2V's text form ('Video caption: ...', 'Frame 1:', 'Layout: [...]')",
                name,
            ) from None
        return parse_text(text, fps=fps, duration=duration, source_name=name)
    return layout_from_dict(data, source_name=name)


def _dumps(layout: SceneLayout) -> str:
    text = json.dumps(layout.to_dict(), indent=2, ensure_ascii=False)
    # Keep numeric lists ([x1, y1, x2, y2]) and box entries on one line each.
    text = re.sub(
        r"\[\s*(-?[\d.eE+-]+(?:\s*,\s*-?[\d.eE+-]+)*)\s*\]",
        lambda m: "[" + ", ".join(s.strip() for s in m.group(1).split(",")) + "]",
        text,
    )
    text = re.sub(r'\{\s*"id": (-?\d+),\s*"box": (\[[^\]]*\])\s*\}', r'{"id": \1, "box": \2}', text)
    return text + "\n"


def as_layout(layout: SceneLayout | dict | PathType) -> SceneLayout:
    """Accept a SceneLayout, a decoded VSL dict or a layout file path."""
    if isinstance(layout, SceneLayout):
        return layout
    if isinstance(layout, dict):
        return layout_from_dict(layout)
    return load_layout(layout)


def save_layout(layout: SceneLayout, path: PathType, *, overwrite: bool = False) -> Path:
    """Write a layout as pretty JSON, atomically (temporary file, then rename)."""
    text = _dumps(layout)
    with atomic_output(path, overwrite=overwrite) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)


# --------------------------------------------------------------------------- text form
def _fmt_num(v: float) -> str:
    s = f"{v:.3f}"
    return s


def to_text(layout: SceneLayout) -> str:
    """SpA2V's text form of a layout (boxes with 3 decimals)."""
    names = {o.id: _text_name(o.name) for o in layout.objects}
    lines = [f"Video caption: {_one_line(layout.caption)}"]
    for i, f in enumerate(layout.frames, start=1):
        entries = ", ".join(
            f"{{id: {b.id}, name: {names[b.id]}, box: [{', '.join(_fmt_num(v) for v in b.box)}]}}"
            for b in f.boxes
        )
        lines += [f"Frame {i}:", f"Layout: [{entries}]"]
        if f.caption.strip():
            lines.append(f"Frame caption: {_one_line(f.caption)}")
    return "\n".join(lines) + "\n"


def _text_name(name: str) -> str:
    name = _one_line(name)
    if re.search(r"[,{}\[\]:'\"]", name):
        return f"'{name}'" if '"' in name else f'"{name}"'
    return name


def _one_line(s: str) -> str:
    return " ".join(s.split())


_TEXT_HELP = (
    "expected SpA2V's text form: 'Video caption: ...', then for each frame 'Frame 1:', "
    "'Layout: [{id: 0, name: car, box: [x1, y1, x2, y2]}]' with x and y in [0, 1], "
    "and optionally 'Frame caption: ...'"
)
_RE_VIDEO = re.compile(r"^(?:video|global|overall)\s+caption\s*[:=]\s*(.*)$", re.I)
_RE_FRAME = re.compile(r"^frame\s*#?\s*(\d+)\s*[:.)-]?\s*(.*)$", re.I)
_RE_LAYOUT = re.compile(r"^(?:frame\s+)?layouts?\s*[:=]\s*(.*)$", re.I)
_RE_FCAP = re.compile(r"^frame\s+caption\s*[:=]\s*(.*)$", re.I)
_RE_ID = re.compile(r"""["']?\bid["']?\s*[:=]\s*["']?(-?\d+)""", re.I)
_RE_BOX = re.compile(r"""["']?\b(?:box|bbox)["']?\s*[:=]\s*[\[(]([^\])]*)[\])]""", re.I)
_RE_NAME = re.compile(
    r"""["']?\bname["']?\s*[:=]\s*(?:"([^"]*)"|'([^']*)'|([^,}\]]*?))\s*(?:,|$)""", re.I
)


def _clean_line(line: str) -> str:
    line = line.strip().replace("**", "").replace("__", "")
    return re.sub(r"^(?:[-*>]\s+|#+\s*)", "", line).strip()


def _strip_quotes(s: str) -> str:
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
        s = s[1:-1]
    return s.strip()


def parse_text(
    text: str,
    *,
    fps: float = 4.0,
    duration: float | None = None,
    camera: CameraSpec | Camera | None = None,
    background: str = "default",
    source_name: str = "layout text",
) -> SceneLayout:
    """Parse SpA2V's text form into a layout.

    Frame ``i`` (in order of appearance) is at ``t = i / fps``; ``duration`` defaults
    to ``n_frames / fps``.  Tolerant of quotes, spaces, markdown emphasis and missing
    frame captions; boxes must be normalised to [0, 1].

    Raises
    ------
    InputError
        What was expected, and where.
    """
    if not fps > 0:
        raise InputError(f"fps must be positive, got {fps}", source_name)
    video_caption: str | None = None
    frames: list[dict[str, Any]] = []  # {"number", "layout" (str | None), "caption"}
    pending_layout: list[str] | None = None  # lines of a layout list still open
    for raw in text.splitlines():
        line = _clean_line(raw)
        if pending_layout is not None:
            pending_layout.append(line)
            joined = " ".join(pending_layout)
            if joined.count("[") <= joined.count("]"):
                frames[-1]["layout"] = joined
                pending_layout = None
            continue
        if not line:
            continue
        if m := _RE_VIDEO.match(line):
            video_caption = _strip_quotes(m.group(1))
            continue
        if m := _RE_FCAP.match(line):
            if frames:
                frames[-1]["caption"] = _strip_quotes(m.group(1))
            continue
        if m := _RE_FRAME.match(line):
            frames.append({"number": int(m.group(1)), "layout": None, "caption": ""})
            rest = m.group(2).strip()
            if not rest:
                continue
            line = rest
            if not _RE_LAYOUT.match(line) and line.startswith("["):
                line = "Layout: " + line
        if m := _RE_LAYOUT.match(line):
            if not frames:
                raise InputError(f"'Layout:' before any 'Frame N:' line; {_TEXT_HELP}", source_name)
            body = m.group(1).strip()
            if body.count("[") > body.count("]"):
                pending_layout = [body]
            else:
                frames[-1]["layout"] = body
            continue
    if pending_layout is not None:
        raise InputError(
            f"Frame {frames[-1]['number']}: the layout list is not closed with ']'", source_name
        )
    if not frames:
        raise InputError(f"no 'Frame N:' lines found; {_TEXT_HELP}", source_name)

    objects: dict[int, str] = {}
    out_frames = []
    for k, fr in enumerate(frames):
        label = f"Frame {fr['number']}"
        if fr["layout"] is None:
            raise InputError(f"{label}: no 'Layout: [...]' line; {_TEXT_HELP}", source_name)
        boxes = []
        body = fr["layout"]
        entries = _split_entries(body)
        if not entries and re.sub(r"[\s\[\]]", "", body):
            raise InputError(
                f"{label}: cannot read the layout {body[:60]!r}; {_TEXT_HELP}", source_name
            )
        for e in entries:
            boxes.append(_parse_entry(e, label, objects, source_name))
        out_frames.append({"t": k / fps, "caption": fr["caption"], "boxes": boxes})

    if duration is None:
        duration = len(out_frames) / fps
    data = {
        "version": 1,
        "duration": duration,
        "fps": fps,
        "caption": video_caption or "",
        "background": background,
        "camera": (
            CameraSpec.from_camera(camera) if isinstance(camera, Camera) else camera or CameraSpec()
        ),
        "objects": [{"id": i, "name": n} for i, n in objects.items()],
        "frames": out_frames,
    }
    try:
        return SceneLayout.model_validate(data)
    except ValidationError as exc:
        msg = _first_fault(exc)
        msg = re.sub(r"^frames\[(\d+)\]", lambda m: f"Frame {int(m.group(1)) + 1}", msg)
        raise InputError(msg, source_name) from None


def _split_entries(body: str) -> list[str]:
    """The contents of the top-level ``{...}`` entries of a layout list (quote-aware)."""
    entries, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(body):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'" and depth > 0 and body[i - 1] in " :{,[":
            quote = ch
        elif ch == "{":
            if depth == 0:
                start = i + 1
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                entries.append(body[start:i])
    return entries


def _parse_entry(
    entry: str, label: str, objects: dict[int, str], source_name: str
) -> dict[str, Any]:
    m_id = _RE_ID.search(entry)
    m_box = _RE_BOX.search(entry)
    m_name = _RE_NAME.search(entry)
    if m_id is None or m_box is None:
        missing = "id" if m_id is None else "box"
        raise InputError(
            f"{label}: layout entry {{{entry.strip()}}} has no {missing}; {_TEXT_HELP}",
            source_name,
        )
    oid = int(m_id.group(1))
    name = ""
    if m_name is not None:
        name = next((g for g in m_name.groups() if g is not None), "").strip()
    objects.setdefault(oid, name or "object")
    if name and objects[oid] == "object":
        objects[oid] = name
    parts = [p for p in re.split(r"[,\s]+", m_box.group(1).strip()) if p]
    try:
        values = [float(_strip_quotes(p)) for p in parts]
    except ValueError:
        raise InputError(
            f"{label}: object {oid}: box [{m_box.group(1).strip()}] is not four numbers",
            source_name,
        ) from None
    if len(values) != 4:
        raise InputError(
            f"{label}: object {oid}: box has {len(values)} numbers; expected 4 (x1, y1, x2, y2)",
            source_name,
        )
    if any(not math.isfinite(v) for v in values) or any(v < 0.0 or v > 1.0 for v in values):
        hint = (
            " (it looks like percentages or pixels)" if max(values, default=0) > 1.0 else ""
        )
        raise InputError(
            f"{label}: object {oid}: box [{', '.join(f'{v:g}' for v in values)}] is not "
            f"normalised{hint}; expected x1, y1, x2, y2 as fractions of the frame in [0, 1]",
            source_name,
        )
    return {"id": oid, "box": values}
