"""The animatic renderer: a Video Scene Layout drawn as a flat animated storyboard.

The default video generator; it needs no model weights. Per clip it paints one
procedural background (:mod:`generators.video.backgrounds`) and, per object, a few
sprites of its class icon (:mod:`generators.video.icons`); per frame it only resizes
(cached) and alpha-blends each sprite into its box, so a 10 s clip renders in a fraction
of its duration.

Placement rules: an icon keeps its aspect ratio and is fitted into the object's box;
ground classes stand on the box's bottom edge, air classes are centred in it; the icon's
body-colour centroid lies on the box's horizontal centre, so the object's pixels follow
the layout. Objects are drawn back to front in the keyframes' box order. Moving objects
face their direction of travel, wheels turn and legs walk with the distance travelled,
wings, rotors and sirens run on the clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from generators.video.backgrounds import draw_background
from generators.video.icons import (
    GAIT_PHASES,
    MARGIN_U,
    SPRITE_PX,
    Color,
    icon_spec,
    render_icon,
)
from spa2v._typing import PathType
from spa2v.classes import lookup
from spa2v.errors import InputError
from spa2v.layout import SceneLayout, as_layout
from spa2v.video import write_mp4

PALETTE: tuple[Color, ...] = (
    (230, 30, 45),  # red
    (25, 95, 235),  # blue
    (255, 205, 0),  # yellow
    (20, 185, 70),  # green
    (220, 0, 180),  # magenta
    (255, 120, 0),  # orange
    (0, 200, 215),  # cyan
    (135, 60, 235),  # purple
    (150, 220, 0),  # lime
    (255, 80, 140),  # pink
)
"""Object body colours: saturated and bright, at least 70 apart in RGB, none of them in
any background (backgrounds stay muted). An object's pixels can be found by its colour."""

_MOVING_PX_PER_S = 0.02  # fraction of the frame width per second below which an object rests
_LABEL_COLOR = (250, 250, 250)
_LABEL_EDGE = (20, 20, 24)
_WAVE_COLOR = np.array([255, 255, 255], np.float32)


def object_color(index: int) -> Color:
    """Body colour of the object at ``index`` in ``layout.objects`` (the palette repeats
    after ``len(PALETTE)`` objects)."""
    return PALETTE[int(index) % len(PALETTE)]


# --------------------------------------------------------------------------- sprites
@dataclass
class _Sprite:
    levels: list[np.ndarray]
    """Premultiplied RGBA master and its successive halvings."""
    centroid_u: float
    """Horizontal body centroid, in design units from the design canvas's left edge."""


class _SpriteBank:
    """Draws each (icon, colour, phase, flip) sprite once and caches resized copies."""

    def __init__(self, max_resized: int = 512) -> None:
        self._masters: dict[tuple, _Sprite] = {}
        self._resized: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._max_resized = max_resized
        self._centroids: dict[tuple[str, Color], float] = {}

    def _centroid_u(self, icon: str, color: Color) -> float:
        """Body-colour centroid of the unflipped rest pose (alpha centroid as fallback)."""
        key = (icon, color)
        if key not in self._centroids:
            img = render_icon(icon, color)
            body = np.all(img[..., :3] == np.asarray(color, np.uint8), axis=-1) & (
                img[..., 3] == 255
            )
            weight = body.astype(np.float64) if body.sum() > 50 else img[..., 3].astype(np.float64)
            cols = weight.sum(axis=0)
            x_px = float((cols * np.arange(img.shape[1])).sum() / cols.sum())
            self._centroids[key] = x_px / SPRITE_PX - MARGIN_U
        return self._centroids[key]

    def master(self, icon: str, color: Color, gait: int, clock: int, flip: bool) -> _Sprite:
        key = (icon, color, gait, clock, flip)
        sprite = self._masters.get(key)
        if sprite is None:
            img = render_icon(icon, color, gait=gait / GAIT_PHASES, clock=clock)
            cx = self._centroid_u(icon, color)
            if flip:
                img = np.ascontiguousarray(img[:, ::-1])
                cx = icon_spec(icon).aspect - cx
            levels = [img]
            while levels[-1].shape[0] > 48:
                h, w = levels[-1].shape[:2]
                levels.append(
                    cv2.resize(
                        levels[-1], (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA
                    )
                )
            sprite = self._masters[key] = _Sprite(levels, cx)
        return sprite

    def resized(self, key: tuple, sprite: _Sprite, width: int, height: int) -> np.ndarray:
        rkey = (key, width, height)
        out = self._resized.get(rkey)
        if out is not None:
            self._resized.move_to_end(rkey)
            return out
        level = sprite.levels[0]
        for lv in sprite.levels:
            if lv.shape[0] >= height and lv.shape[1] >= width:
                level = lv
        interp = cv2.INTER_AREA if level.shape[0] > height else cv2.INTER_LINEAR
        out = cv2.resize(level, (width, height), interpolation=interp)
        self._resized[rkey] = out
        if len(self._resized) > self._max_resized:
            self._resized.popitem(last=False)
        return out


def _shadow_sprite() -> np.ndarray:
    img = np.zeros((64, 256), np.uint8)
    cv2.ellipse(img, (128, 32), (104, 18), 0, 0, 360, 255, -1, cv2.LINE_AA)
    return cv2.GaussianBlur(img, (0, 0), 9)


# --------------------------------------------------------------------------- blending
def _clip(
    x: int, y: int, w: int, h: int, width: int, height: int
) -> tuple[slice, slice, slice, slice] | None:
    """Frame and sprite slices of a (w, h) sprite placed at (x, y), or None if outside."""
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
    if x1 <= x0 or y1 <= y0:
        return None
    return (slice(y0, y1), slice(x0, x1), slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))


def blend_premultiplied(frame: np.ndarray, sprite: np.ndarray, x: int, y: int) -> None:
    """Composite a premultiplied RGBA sprite onto ``frame`` (H, W, 3) at (x, y), in place."""
    sl = _clip(x, y, sprite.shape[1], sprite.shape[0], frame.shape[1], frame.shape[0])
    if sl is None:
        return
    fy, fx, sy, sx = sl
    src = sprite[sy, sx]
    dst = frame[fy, fx].astype(np.uint16)
    inv = 255 - src[..., 3:4].astype(np.uint16)
    out = (dst * inv + 127) // 255 + src[..., :3]
    frame[fy, fx] = np.minimum(out, 255).astype(np.uint8)


def _darken(frame: np.ndarray, mask: np.ndarray, x: int, y: int, strength: float) -> None:
    sl = _clip(x, y, mask.shape[1], mask.shape[0], frame.shape[1], frame.shape[0])
    if sl is None:
        return
    fy, fx, sy, sx = sl
    keep = 1.0 - strength * mask[sy, sx].astype(np.float32)[..., None] / 255.0
    frame[fy, fx] = (frame[fy, fx] * keep).astype(np.uint8)


# --------------------------------------------------------------------------- tracks
@dataclass
class _Track:
    index: int
    object_id: int
    name: str
    icon: str
    color: Color
    ground: bool
    visible: np.ndarray  # (T,) bool
    k: np.ndarray  # (T,) display pixels per design unit
    left: np.ndarray  # (T,) int, sprite top-left x
    top: np.ndarray  # (T,) int
    width: np.ndarray  # (T,) int, sprite size
    height: np.ndarray  # (T,) int
    flip: np.ndarray  # (T,) bool, facing left
    gait: np.ndarray  # (T,) int
    clock: np.ndarray  # (T,) int
    boxes_px: np.ndarray  # (T, 4) float


def _hold_fill(values: np.ndarray, known: np.ndarray, default: bool) -> np.ndarray:
    """Carry the last known value forward (and the first one backward)."""
    if not known.any():
        return np.full(values.shape, default)
    idx = np.where(known, np.arange(len(values)), -1)
    idx = np.maximum.accumulate(idx)
    first = int(np.flatnonzero(known)[0])
    idx[idx < 0] = first
    return values[idx]


def _build_track(
    layout: SceneLayout,
    index: int,
    times: np.ndarray,
    fps: float,
    size: tuple[int, int],
    bank: _SpriteBank,
) -> _Track:
    width, height = size
    obj = layout.objects[index]
    cls = lookup(obj.name)
    icon = cls.icon
    spec = icon_spec(icon)
    color = object_color(index)
    boxes, visible = layout.track(obj.id, times)
    boxes = np.nan_to_num(boxes)
    px = boxes * np.array([width, height, width, height], np.float64)
    bw = np.maximum(px[:, 2] - px[:, 0], 1.0)
    bh = np.maximum(px[:, 3] - px[:, 1], 1.0)
    k = np.minimum(bw / spec.aspect, bh)
    cx = 0.5 * (px[:, 0] + px[:, 2])
    cy = 0.5 * (px[:, 1] + px[:, 3])

    # facing: the direction of travel, held while resting; a still object faces the centre
    vx = np.gradient(cx) * fps if len(cx) > 1 else np.zeros_like(cx)
    moving = np.abs(vx) > _MOVING_PX_PER_S * width
    flip = _hold_fill(vx < 0, moving & visible, default=bool(cx[0] > 0.5 * width))

    centroid = bank.master(icon, color, 0, 0, False).centroid_u
    centroid = np.where(flip, spec.aspect - centroid, centroid)
    sprite_w = np.maximum(np.round((spec.aspect + 2 * MARGIN_U) * k), 1).astype(int)
    sprite_h = np.maximum(np.round((1.0 + 2 * MARGIN_U) * k), 1).astype(int)
    left = np.round(cx - (MARGIN_U + centroid) * k).astype(int)
    if cls.placement == "ground":
        top = np.round(px[:, 3] - (1.0 + MARGIN_U) * k).astype(int)
    else:
        top = np.round(cy - (0.5 + MARGIN_U) * k).astype(int)

    gait = np.zeros(len(times), int)
    if spec.gait is not None:
        step = np.hypot(np.diff(cx, prepend=cx[:1]), np.diff(cy, prepend=cy[:1]))
        periods = np.cumsum(step / np.maximum(k, 1.0)) / spec.gait_units
        gait = np.floor(np.mod(periods, 1.0) * GAIT_PHASES).astype(int) % GAIT_PHASES
        if spec.gait == "legs":
            gait = np.where(moving, gait, 0)
    clock = np.zeros(len(times), int)
    if spec.clock_phases > 1:
        clock = (
            np.floor(times * spec.clock_hz * spec.clock_phases).astype(int) + index
        ) % spec.clock_phases
    return _Track(
        index,
        obj.id,
        obj.name,
        icon,
        color,
        cls.placement == "ground",
        visible & (bw >= 2) & (bh >= 2),
        k,
        left,
        top,
        sprite_w,
        sprite_h,
        flip,
        gait,
        clock,
        px,
    )


# --------------------------------------------------------------------------- renderer
class AnimaticRenderer:
    """VSL -> flat animated storyboard frames -> MP4 (with the original audio)."""

    name = "animatic"

    def frames(
        self,
        layout: SceneLayout | dict | PathType,
        *,
        fps: int = 24,
        size: tuple[int, int] = (512, 288),
        seed: int = 0,
        overlay: bool = False,
    ) -> Iterator[np.ndarray]:
        """Yield the frames of a layout.

        Parameters
        ----------
        layout : SceneLayout, dict or path
        fps : int
            Output frame rate; ``round(duration * fps)`` frames at ``i / fps``.
        size : (W, H)
            Frame size in pixels.
        seed : int
            Background variation; the same seed gives identical frames.
        overlay : bool
            Also draw each box outline with an ``id: name`` tag, and the frame caption.

        Yields
        ------
        np.ndarray, shape (H, W, 3), uint8 RGB
        """
        layout = as_layout(layout)
        width, height = (int(v) for v in size)
        if width < 16 or height < 16:
            raise InputError(f"frame size {width}x{height} is too small (at least 16x16)")
        if not fps > 0:
            raise InputError(f"fps must be positive, got {fps}")
        times = layout.frame_times(fps)
        background = draw_background(layout.background, (width, height), seed)
        bank = _SpriteBank()
        tracks = {
            layout.objects[i].id: _build_track(layout, i, times, fps, (width, height), bank)
            for i in range(len(layout.objects))
        }
        orders = layout.draw_order(times)
        shadow = _shadow_sprite()
        font_scale = max(0.3, 0.36 * height / 288)
        keyframe_t = layout.keyframe_times
        captions = [f.caption for f in layout.frames]
        for i, t in enumerate(times):
            frame = background.copy()
            shown = [tracks[oid] for oid in orders[i] if tracks[oid].visible[i]]
            for tr in shown:
                self._draw_object(frame, tr, i, float(t), bank, shadow)
            taken: list[tuple[int, int, int, int]] = []
            for tr in shown[::-1]:  # front objects place their labels first
                _draw_label(frame, tr, i, font_scale, taken)
            if overlay:
                for tr in shown:
                    _draw_box(frame, tr, i, font_scale)
                k = caption_index(keyframe_t, float(t))
                draw_caption(frame, f"{t:5.2f}s  {captions[k]}", font_scale)
            yield frame

    @staticmethod
    def _draw_object(
        frame: np.ndarray, tr: _Track, i: int, t: float, bank: _SpriteBank, shadow: np.ndarray
    ) -> None:
        k = float(tr.k[i])
        spec = icon_spec(tr.icon)
        inner_left = int(tr.left[i] + round(MARGIN_U * k))
        inner_w = int(round(spec.aspect * k))
        bottom = int(tr.top[i] + round((1.0 + MARGIN_U) * k))
        if tr.ground:
            sw, sh = max(2, int(inner_w * 1.15)), max(2, int(0.22 * k))
            mask = bank.resized(("shadow",), _Sprite([shadow], 0.0), sw, sh)
            _darken(frame, mask, inner_left + inner_w // 2 - sw // 2, bottom - sh // 2, 0.45)
        _draw_waves(frame, tr, i, t, inner_left, inner_w, k)
        key = (tr.icon, tr.color, int(tr.gait[i]), int(tr.clock[i]), bool(tr.flip[i]))
        sprite = bank.master(*key)
        img = bank.resized(key, sprite, int(tr.width[i]), int(tr.height[i]))
        blend_premultiplied(frame, img, int(tr.left[i]), int(tr.top[i]))

    def render(
        self,
        layout: SceneLayout | dict | PathType,
        out_path: PathType,
        *,
        audio: tuple[np.ndarray, int] | None = None,
        fps: int = 24,
        size: tuple[int, int] = (512, 288),
        seed: int = 0,
        overlay: bool = False,
        overwrite: bool = False,
        progress: bool = False,
    ) -> Path:
        """Render a layout to an MP4 (H.264, with the audio as AAC when given).

        Parameters
        ----------
        layout : SceneLayout, dict or path
        out_path : path
            The MP4 to write (atomically; refused if it exists unless ``overwrite``).
        audio : (y, sr), optional
            ``y`` of shape (channels, samples), 1, 2 or 4 (FOA) channels; trimmed or
            padded to the video's duration.
        fps, size, seed, overlay
            As in :meth:`frames`; ``size`` must be even.
        progress : bool
            Show a progress bar on stderr.

        Returns
        -------
        Path
        """
        layout = as_layout(layout)
        frames = self.frames(layout, fps=fps, size=size, seed=seed, overlay=overlay)
        if progress:
            from tqdm import tqdm

            frames = tqdm(frames, total=len(layout.frame_times(fps)), unit="frame", desc="render")
        y, sr = audio if audio is not None else (None, None)
        return write_mp4(out_path, frames, fps=fps, size=size, audio=y, sr=sr, overwrite=overwrite)


# --------------------------------------------------------------------------- decorations
def _draw_waves(
    frame: np.ndarray, tr: _Track, i: int, t: float, inner_left: int, inner_w: int, k: float
) -> None:
    """Two pulsing arcs on each side of a sounding object."""
    pulse = (t * 1.4 + 0.37 * tr.index) % 1.0
    u = min(k, float(inner_w))  # narrow icons (a person) get smaller arcs
    cx = inner_left + inner_w / 2
    cy = tr.top[i] + (MARGIN_U + 0.45) * k
    pad = int(0.55 * u) + 2
    x0, x1 = int(cx - inner_w / 2 - pad), int(cx + inner_w / 2 + pad)
    y0, y1 = int(cy - 0.6 * u) - 1, int(cy + 0.6 * u) + 1
    sl = _clip(x0, y0, x1 - x0, y1 - y0, frame.shape[1], frame.shape[0])
    if sl is None or k < 12:
        return
    fy, fx, _, _ = sl
    mask = np.zeros((fy.stop - fy.start, fx.stop - fx.start), np.uint8)
    thick = max(1, int(round(0.035 * k)))
    for j in range(2):
        phase = (j + pulse) / 2.0
        r = int(0.14 * u + 0.4 * u * phase)
        alpha = int(255 * (1.0 - phase) * 0.8)
        ax = (int(inner_w / 2 + r), int(0.25 * u + 0.6 * r))
        center = (int(cx - fx.start), int(cy - fy.start))
        for start in (-30, 150):
            cv2.ellipse(mask, center, ax, 0, start, start + 60, alpha, thick, cv2.LINE_AA)
    a = mask.astype(np.float32)[..., None] / 255.0
    roi = frame[fy, fx].astype(np.float32)
    frame[fy, fx] = (roi + a * (_WAVE_COLOR - roi)).astype(np.uint8)


def _text(
    frame: np.ndarray,
    text: str,
    org: tuple[int, int],
    scale: float,
    color: tuple[int, int, int] = _LABEL_COLOR,
) -> None:
    cv2.putText(frame, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, _LABEL_EDGE, 3, cv2.LINE_AA)
    cv2.putText(frame, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def _draw_label(
    frame: np.ndarray, tr: _Track, i: int, scale: float, taken: list[tuple[int, int, int, int]]
) -> None:
    """The object's name under its icon (above it at the bottom edge), clear of the labels
    already placed in ``taken`` (x1, y1, x2, y2), which it joins."""
    text = tr.name if len(tr.name) <= 20 else tr.name[:19] + "."
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    height, width = frame.shape[:2]
    k = float(tr.k[i])
    spec = icon_spec(tr.icon)
    cx = int(tr.left[i] + (MARGIN_U + spec.aspect / 2) * k)
    bottom = int(tr.top[i] + (1.0 + 2 * MARGIN_U) * k)
    step = th + base + 5
    down = bottom + th + 3 + base <= height
    y = bottom + th + 3 if down else int(tr.top[i]) - 3 - base
    x = int(np.clip(cx - tw // 2, 2, max(2, width - tw - 2)))
    for _ in range(len(taken)):
        rect = (x, y - th, x + tw, y + base)
        if not any(
            r[0] < rect[2] and rect[0] < r[2] and r[1] < rect[3] and rect[1] < r[3] for r in taken
        ):
            break
        y += step if down and y + step + base <= height else -step
    y = int(np.clip(y, th + 2, height - base - 1))
    taken.append((x, y - th, x + tw, y + base))
    _text(frame, text, (x, y), scale)


def _draw_box(frame: np.ndarray, tr: _Track, i: int, scale: float) -> None:
    draw_box(frame, tr.boxes_px[i], f"{tr.object_id}: {tr.name}", tr.color, scale)


def draw_box(frame: np.ndarray, box_px, tag: str, color: tuple[int, int, int],
             scale: float) -> None:
    """The debug overlay's box ``(x1, y1, x2, y2)`` in pixels, with its ``tag``."""
    x1, y1, x2, y2 = (int(round(v)) for v in box_px)
    cv2.rectangle(frame, (x1, y1), (x2, y2), _LABEL_EDGE, 3)
    cv2.rectangle(frame, (x1, y1), (x2, y2), color, 1)
    (tw, th), base = cv2.getTextSize(tag, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    ty = y1 + th + 3 if y1 + th + 3 < frame.shape[0] else y1 - 3
    cv2.rectangle(frame, (x1, ty - th - 2), (x1 + tw + 4, ty + base), color, -1)
    cv2.putText(
        frame, tag, (x1 + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, _LABEL_EDGE, 1, cv2.LINE_AA
    )


def caption_index(keyframe_times, t: float) -> int:
    """The keyframe whose caption holds at time ``t``."""
    return int(np.clip(np.searchsorted(keyframe_times, t + 1e-9) - 1, 0, len(keyframe_times) - 1))


def draw_caption(frame: np.ndarray, text: str, scale: float) -> None:
    """The debug overlay's caption line at the bottom of the frame (shortened to fit)."""
    h, w = frame.shape[:2]
    max_chars = max(10, int(w / (18 * scale)))
    if len(text) > max_chars:
        text = text[: max_chars - 1] + "."
    _text(frame, text, (6, h - 6), scale)


__all__ = ["PALETTE", "AnimaticRenderer", "as_layout", "blend_premultiplied", "object_color"]
