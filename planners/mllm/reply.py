"""Reading a model's reply: extract, repair, validate, clamp and match it to the sources.

What counts as usable (each rule names its fault in the error fed back to the model):

* **Extraction.** Reasoning blocks (``<think>...</think>``) and code fences are dropped;
  the first balanced ``{...}`` that decodes to a layout is taken, so prose around it is
  fine.  Failing that, SpA2V's text form (``Frame 1:``, ``Layout: [...]``) is read.
* **Repair.** Comments, trailing commas, single quotes, unquoted keys, Python literals
  (``True``, ``None``), missing commas between ``}{`` and an unclosed end are repaired
  before decoding; a reply that still does not decode is invalid JSON.
* **Completion.** ``version``, ``duration``, ``fps`` and the camera are the request's;
  a missing caption becomes the user's caption; ``bbox`` / ``layout`` aliases, boxes as
  ``{x1, y1, x2, y2}`` and boxes that name their object instead of its id are read;
  when the reply has exactly the requested number of frames, they are put at the
  requested times in order.
* **Clamping.** Boxes with swapped corners are reordered and boxes that stick out of
  the frame are clipped to it (usable); a box entirely outside is dropped from that
  frame.  Numbers far outside [0, 1] (pixels, percentages) are invalid.
* **Validation.** The result must pass the VSL schema (:func:`spa2v.layout.layout_from_dict`).
* **Matching.** Exactly one object per analysed source (by ``source``, else by order of
  ``id``); each appears in some frame (sine camera); frames must span the clip; and each
  object's first and last box centres must lie within ``SIDE_TOLERANCE_X`` of where
  the camera puts its source at the start and the end (a mirrored or reversed layout
  is invalid).

The usable layout is resampled to the requested keyframe times.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from planners.mllm.prompt import FrameRequest
from planners.mllm.summary import SceneCues
from spa2v.conventions import Camera
from spa2v.errors import InputError
from spa2v.layout import CameraSpec, SceneLayout, clamp_box, layout_from_dict, parse_text

SIDE_TOLERANCE_X = 0.35
"""Largest accepted distance (frame widths) between a box centre and its source's camera x."""
FAR_OUT = (-0.5, 1.5)
"""Box numbers outside this range are not normalised coordinates; closer ones are clamped."""


class ReplyError(Exception):
    """A reply that cannot be used; the message is fed back to the model."""


@dataclass
class Expectation:
    """What a usable reply must match: the sources, the frames, the camera."""

    scene: SceneCues
    frames: FrameRequest
    camera: Camera = field(default_factory=Camera)
    labels: list[str] | None = None
    caption: str | None = None
    background: str | None = None

    @property
    def source_ids(self) -> list[int]:
        return [s.source_id for s in self.scene.sources]


@dataclass
class ParsedReply:
    """A usable layout and how it was read."""

    layout: SceneLayout
    form: str
    """``json`` or ``text``."""
    clamped_boxes: int
    dropped_boxes: int


# --------------------------------------------------------------------------- entry point
def read_reply(text: str, exp: Expectation) -> ParsedReply:
    """Turn a model's reply into a usable layout, or raise :class:`ReplyError`."""
    body = _strip_reasoning(text or "").strip()
    if not body:
        raise ReplyError("the reply is empty")
    data, form, json_error = _decode(body)
    if data is None:
        if _looks_like_text_form(body):
            data = _text_form(body, exp)
            form = "text"
        else:
            raise ReplyError(json_error or "no JSON object found in the reply")
    stats = {"clamped": 0, "dropped": 0}
    d = _complete(data, exp, stats)
    try:
        layout = layout_from_dict(d, source_name="layout")
    except InputError as exc:
        raise ReplyError(str(exc)) from None
    _check_sources(layout, exp)
    layout = layout.resample(exp.frames.fps)
    return ParsedReply(layout, form, stats["clamped"], stats["dropped"])


# --------------------------------------------------------------------------- extraction
_THINK = re.compile(r"<(think|thinking|reasoning)>.*?</\1>", re.S | re.I)
_FENCE = re.compile(r"```[a-zA-Z0-9_-]*[ \t]*\n?(.*?)```", re.S)


def _strip_reasoning(text: str) -> str:
    """Drop closed reasoning blocks; an unclosed one is left to the JSON search."""
    return _THINK.sub("", text)


def _looks_like_text_form(text: str) -> bool:
    return bool(re.search(r"(?im)^\W*frame\s*#?\s*\d+\s*[:.)]", text)) and bool(
        re.search(r"(?i)layout\s*[:=]", text)
    )


def _balanced_objects(text: str) -> list[str]:
    """Top-level ``{...}`` spans (string-aware); an unclosed last one runs to the end."""
    spans, depth, start, in_str, esc = [], 0, -1, False, False
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"' and depth > 0:
            in_str = True
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
    if depth > 0 and start >= 0:
        spans.append(text[start:])
    return spans


def _decode(body: str) -> tuple[Any, str, str | None]:
    """(decoded layout-like dict or None, form, first JSON error)."""
    candidates: list[str] = [m.group(1) for m in _FENCE.finditer(body)]
    candidates.append(body)
    first_error: str | None = None
    for cand in candidates:
        for span in sorted(_balanced_objects(cand), key=len, reverse=True):
            try:
                value = _loads_repaired(span)
            except ValueError as exc:
                if first_error is None:
                    first_error = str(exc)
                continue
            value = _unwrap(value)
            if isinstance(value, dict) and ("frames" in value or "objects" in value):
                return value, "json", None
        if cand.lstrip().startswith("["):  # a bare list of frames
            try:
                value = _loads_repaired(cand.strip())
            except ValueError:
                continue
            if isinstance(value, list) and value and isinstance(value[0], dict):
                return {"frames": value}, "json", None
    return None, "", first_error


def _unwrap(value: Any) -> Any:
    """``{"layout": {...}}``, ``{"vsl": {...}}``, ``{"video_scene_layout": {...}}`` -> inner."""
    if isinstance(value, dict) and "frames" not in value and len(value) <= 3:
        for key in ("layout", "vsl", "video_scene_layout", "scene_layout", "result"):
            inner = value.get(key)
            if isinstance(inner, dict):
                return inner
    return value


# --------------------------------------------------------------------------- repair
def _json_error(exc: json.JSONDecodeError) -> str:
    return f"invalid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"


def _loads_repaired(span: str) -> Any:
    try:
        return json.loads(span)
    except json.JSONDecodeError as exc:
        original = exc
    try:
        return json.loads(repair_json(span))
    except json.JSONDecodeError:
        raise ValueError(_json_error(original)) from None


def _outside_strings(text: str, fn) -> str:
    """Apply ``fn`` to the parts of ``text`` outside double-quoted strings."""
    parts = re.split(r'("(?:[^"\\]|\\.)*")', text)
    return "".join(p if i % 2 else fn(p) for i, p in enumerate(parts))


def repair_json(text: str) -> str:
    """Repair common faults of model-written JSON (best effort; may still not decode)."""
    s = text.strip()
    # single-quoted strings -> double-quoted (only where a JSON string may start)
    s = re.sub(
        r"""(?<=[\[{,:\s])'((?:[^'\\\n]|\\.)*)'""",
        lambda m: json.dumps(m.group(1).replace("\\'", "'")),
        s,
    )

    def fix(part: str) -> str:
        part = re.sub(r"//[^\n]*", "", part)
        part = re.sub(r"/\*.*?\*/", "", part, flags=re.S)
        part = re.sub(r"\bTrue\b", "true", part)
        part = re.sub(r"\bFalse\b", "false", part)
        part = re.sub(r"\b(None|NaN|nan|undefined)\b", "null", part)
        part = re.sub(r"([{,]\s*)([A-Za-z_][A-Za-z0-9_]*)(\s*:)", r'\1"\2"\3', part)
        part = re.sub(r"}\s*{", "}, {", part)
        part = re.sub(r"]\s*\[", "], [", part)
        return part

    s = _outside_strings(s, fix)
    s = _outside_strings(s, lambda p: re.sub(r",\s*(?=[}\]])", "", p))
    # missing comma between a value and the next key/value on a new line
    s = re.sub(r'("|\d|true|false|null|[}\]])(\s*\n\s*)(?=")', r"\1,\2", s)
    return _close_open(s)


def _close_open(s: str) -> str:
    """Close strings and brackets left open (a reply cut off at the length limit)."""
    stack, in_str, esc = [], False, False
    for ch in s:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            stack.append("]" if ch == "[" else "}")
        elif ch in "]}" and stack:
            stack.pop()
    if not stack and not in_str:
        return s
    s = s + ('"' if in_str else "")
    s = re.sub(r"[,:]\s*$", "", s.rstrip())
    return s + "".join(reversed(stack))


# --------------------------------------------------------------------------- text form
_BOX_LIST = re.compile(r"""(["']?\b(?:box|bbox)["']?\s*[:=]\s*[\[(])([^\])]*)([\])])""", re.I)


def _text_form(body: str, exp: Expectation) -> dict[str, Any]:
    """Read SpA2V's text form, clamping box numbers that stick out a little."""
    clamped_note: list[str] = []

    def clamp_numbers(m: re.Match) -> str:
        parts = [p for p in re.split(r"[,\s]+", m.group(2).strip()) if p]
        try:
            values = [float(p.strip("\"'")) for p in parts]
        except ValueError:
            return m.group(0)
        if any(not FAR_OUT[0] <= v <= FAR_OUT[1] for v in values):
            return m.group(0)  # parse_text names the fault
        if any(not 0.0 <= v <= 1.0 for v in values):
            clamped_note.append("x")
        values = [min(max(v, 0.0), 1.0) for v in values]
        return m.group(1) + ", ".join(f"{v:g}" for v in values) + m.group(3)

    fixed = _BOX_LIST.sub(clamp_numbers, body)
    try:
        layout = parse_text(
            fixed, fps=exp.frames.fps, duration=exp.frames.duration_s, camera=exp.camera,
            source_name="layout",
        )
    except InputError as exc:
        raise ReplyError(str(exc)) from None
    d = layout.to_dict()
    d.pop("planner", None)
    d.pop("meta", None)
    if not d.get("caption"):
        d.pop("caption", None)
    return d


# --------------------------------------------------------------------------- completion
def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip().rstrip("s"))
        except ValueError:
            return None
    return None


def _box_values(entry: dict[str, Any]) -> Any:
    box = entry.get("box", entry.get("bbox", entry.get("bounding_box")))
    if isinstance(box, dict):
        keys = ("x1", "y1", "x2", "y2")
        if all(k in box for k in keys):
            return [box[k] for k in keys]
    if box is None and all(k in entry for k in ("x1", "y1", "x2", "y2")):
        return [entry[k] for k in ("x1", "y1", "x2", "y2")]
    return box


def _fix_box(values: Any, where: str, stats: dict[str, int]) -> list[float] | None:
    """A clamped box, None when it lies outside the frame; ReplyError when unreadable."""
    if not isinstance(values, list | tuple) or len(values) != 4:
        got = len(values) if isinstance(values, list | tuple) else type(values).__name__
        raise ReplyError(f"{where}: expected a box of 4 numbers [x1, y1, x2, y2], got {got}")
    nums = [_num(v) for v in values]
    if any(v is None or not math.isfinite(v) for v in nums):
        raise ReplyError(f"{where}: box {values} is not four finite numbers")
    x1, y1, x2, y2 = nums  # type: ignore[misc]
    if any(not FAR_OUT[0] <= v <= FAR_OUT[1] for v in (x1, y1, x2, y2)):
        raise ReplyError(
            f"{where}: box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] is not normalised (it looks like "
            "pixels or percentages); give x1, y1, x2, y2 as fractions of the frame in [0, 1]"
        )
    x1, x2 = min(x1, x2), max(x1, x2)
    y1, y2 = min(y1, y2), max(y1, y2)
    clamped = clamp_box([x1, y1, x2, y2])
    if clamped is None:
        stats["dropped"] += 1
        return None
    if clamped != (x1, y1, x2, y2):
        stats["clamped"] += 1
    return list(clamped)


def _complete(data: dict[str, Any], exp: Expectation, stats: dict[str, int]) -> dict[str, Any]:
    """Fill the request's fields, read aliases, clamp boxes; structure errors raise."""
    d = dict(data)
    raw_frames = d.get("frames")
    if not isinstance(raw_frames, list) or not raw_frames:
        raise ReplyError("frames: expected a non-empty list of frames")
    raw_objects = d.get("objects")
    if raw_objects is None:
        raw_objects = []
    if not isinstance(raw_objects, list):
        raise ReplyError("objects: expected a list of objects")

    objects: list[dict[str, Any]] = []
    for i, o in enumerate(raw_objects):
        if not isinstance(o, dict):
            raise ReplyError(f"objects[{i}]: expected an object with id and name")
        o = dict(o)
        if "id" not in o:
            o["id"] = i
        if not str(o.get("name") or "").strip():
            o["name"] = o.get("label") or o.get("class") or "object"
        objects.append(o)
    by_name = {str(o["name"]).strip().lower(): o["id"] for o in objects}

    frames = []
    n_req = exp.frames.n_frames
    same_count = len(raw_frames) == n_req
    for k, f in enumerate(raw_frames):
        where = f"frames[{k}]"
        if not isinstance(f, dict):
            raise ReplyError(f"{where}: expected an object with t, caption and boxes")
        entries = f.get("boxes", f.get("layout", f.get("objects", [])))
        if not isinstance(entries, list):
            raise ReplyError(f"{where}.boxes: expected a list of {{id, box}} entries")
        t = exp.frames.times_s[k] if same_count else _num(f.get("t", f.get("time")))
        if t is None:
            raise ReplyError(f"{where}.t: missing the frame time in seconds")
        boxes = []
        for j, e in enumerate(entries):
            bwhere = f"{where}.boxes[{j}]"
            if not isinstance(e, dict):
                raise ReplyError(f"{bwhere}: expected an object {{id, box}}")
            oid = e.get("id")
            if oid is None and str(e.get("name", "")).strip().lower() in by_name:
                oid = by_name[str(e["name"]).strip().lower()]
            if oid is None:
                raise ReplyError(f"{bwhere}: missing the object id")
            if isinstance(oid, str) and oid.strip().isdigit():
                oid = int(oid)
            if e.get("name") and not any(o["id"] == oid for o in objects) and not raw_objects:
                objects.append({"id": oid, "name": str(e["name"])})
                by_name[str(e["name"]).strip().lower()] = oid
            box = _fix_box(_box_values(e), bwhere, stats)
            if box is not None:
                boxes.append({"id": oid, "box": box})
        caption = f.get("caption", f.get("frame_caption", ""))
        frames.append({"t": t, "caption": caption if isinstance(caption, str) else "",
                       "boxes": boxes})
    if not same_count:  # keep the frames inside the clip, in time order
        frames = [f for f in frames if 0.0 <= f["t"] <= exp.frames.duration_s + 1e-6]
        frames.sort(key=lambda f: f["t"])
        if not frames:
            raise ReplyError(
                f"frames: no frame time lies within the clip (0 to {exp.frames.duration_s:g} s)"
            )

    if all(isinstance(o["id"], int) for o in objects):
        objects.sort(key=lambda o: o["id"])
    caption = d.get("caption", d.get("video_caption"))
    if not isinstance(caption, str) or not caption.strip():
        caption = (exp.caption or "").strip()
    background = exp.background or d.get("background")
    if not isinstance(background, str) or not background.strip():
        background = "default"
    return {
        "version": 1,
        "duration": exp.frames.duration_s,
        "fps": exp.frames.fps,
        "caption": caption,
        "background": background.strip(),
        "camera": CameraSpec.from_camera(exp.camera).model_dump(),
        "objects": objects,
        "frames": frames,
    }


# --------------------------------------------------------------------------- matching
def _centre_x(box: tuple[float, float, float, float]) -> float:
    return 0.5 * (box[0] + box[2])


def _check_sources(layout: SceneLayout, exp: Expectation) -> None:
    ids = exp.source_ids
    n = len(ids)
    objs = layout.objects
    mapped: dict[int, int] = {}  # source id -> object id
    # Without source ids, object i stands for source i: by id when the ids are 0..n-1,
    # else in the order of the objects (ids sorted).
    unlinked = all(o.source is None for o in objs)
    by_id = sorted(o.id for o in objs) == list(range(len(objs)))
    for k, o in enumerate(objs):
        pos = o.id if by_id else k
        if o.source is not None and o.source in ids:
            src = o.source
        elif unlinked and pos < n:
            src = ids[pos]
        else:
            raise ReplyError(
                f"objects[{k}] (id {o.id}, {o.name!r}) matches no analysed source; the sources "
                f"are {', '.join(map(str, ids))}: give each object its source id"
            )
        if src in mapped:
            raise ReplyError(
                f"objects[{k}] (id {o.id}) and object {mapped[src]} both stand for source "
                f"{src}; give exactly one object per source"
            )
        mapped[src] = o.id
    missing = [s for s in ids if s not in mapped]
    if missing:
        raise ReplyError(
            f"the layout has {len(objs)} object{'s' if len(objs) != 1 else ''} but the analysis "
            f"found {n} source{'s' if n != 1 else ''}: source"
            f"{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} "
            f"{'have' if len(missing) > 1 else 'has'} no object; give one object per source"
        )
    for o in objs:
        o.source = next(s for s, oid in mapped.items() if oid == o.id)
    if exp.labels:
        for s, lb in zip(exp.scene.sources, exp.labels, strict=False):
            o = layout.get_object(mapped[s.source_id])
            if o.name.strip().lower() in ("object", "sound source", "source", ""):
                o.name = lb

    times = layout.keyframe_times
    step = 1.0 / exp.frames.fps
    if times[0] > step + 1e-6 or times[-1] < exp.frames.duration_s - 2 * step - 1e-6:
        raise ReplyError(
            f"the frames span {times[0]:g} to {times[-1]:g} s of the {exp.frames.duration_s:g} s "
            f"clip; give one frame at each of t = "
            f"{', '.join(f'{t:g}' for t in exp.frames.times_s)}"
        )

    for s in exp.scene.sources:
        oid = mapped[s.source_id]
        seen = [(f.t, b.box) for f in layout.frames for b in f.boxes if b.id == oid]
        if not seen:
            if exp.camera.projection == "sine":
                raise ReplyError(
                    f"object {oid} (source {s.source_id}) appears in no frame; every source is "
                    "in view, so give it a box in each frame where it is heard"
                )
            continue
        x_start, x_end = s.x_start_end(exp.camera)
        for label, x_want, (_, box) in (("first", x_start, seen[0]), ("last", x_end, seen[-1])):
            if not 0.0 <= x_want <= 1.0:
                continue
            x_got = _centre_x(box)
            if abs(x_got - x_want) > SIDE_TOLERANCE_X:
                where = "start" if label == "first" else "end"
                az = s.azimuth_start_deg if label == "first" else s.azimuth_end_deg
                raise ReplyError(
                    f"object {oid} (source {s.source_id}) is heard at azimuth {az:+.0f} deg at "
                    f"the {where} (camera x {x_want:.2f}) but its {label} box is centred at x "
                    f"{x_got:.2f}; +azimuth is the left of the frame (small x)"
                )
