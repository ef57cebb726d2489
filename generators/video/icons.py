"""Flat icons of the sound classes, drawn once as premultiplied-alpha sprites.

Every icon is drawn on a design canvas ``aspect`` units wide and 1 unit high, facing
right (the front of a vehicle, the head of an animal at the right), its feet or wheels
on the bottom edge. The object's body is painted in the object's palette colour; the
details use desaturated colours (glass, tyres, skin) so that the body colour can be
found in a frame. A dark outline around the silhouette keeps the icon readable on any
background.

Sprites are ``(H, W, 4)`` uint8 arrays with premultiplied alpha: compositing one onto a
frame is ``out = rgb + dst * (255 - a) / 255``. OpenCV's anti-aliased drawing of an
opaque colour onto such a canvas is exactly that "over" operation, so drawing needs no
supersampling.

Animated icons take a gait phase in [0, 1) (wheel spokes, walking legs: advanced by the
distance travelled) and a clock phase index (wings, rotor blades, siren lights: advanced by
time); the renderer quantises both, so a handful of sprites per object are drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

Color = tuple[int, int, int]

SPRITE_PX = 320
"""Pixels per design unit (the icon height) of the master sprites."""
MARGIN_U = 0.05
"""Empty border around the design canvas, in units, for the outline and swinging limbs."""
OUTLINE_U = 0.022
"""Width of the dark outline, in units."""

OUTLINE: Color = (28, 28, 34)
DARK: Color = (40, 40, 46)
TYRE: Color = (38, 38, 42)
HUB: Color = (176, 180, 186)
SPOKE: Color = (110, 112, 120)
GLASS: Color = (188, 212, 228)
GLASS_DARK: Color = (70, 86, 100)
WHITE: Color = (246, 246, 242)
LIGHT: Color = (255, 244, 200)
TAIL_LIGHT: Color = (176, 74, 64)
SKIN: Color = (236, 194, 160)
HAIR: Color = (72, 52, 40)
TROUSERS: Color = (62, 66, 84)
JACKET: Color = (56, 58, 68)
WOOD: Color = (122, 88, 62)
BRASS: Color = (206, 186, 124)
DRUM_HEAD: Color = (236, 232, 222)
BEAK: Color = (214, 160, 78)
SIREN_RED: Color = (255, 48, 48)
SIREN_BLUE: Color = (50, 130, 255)
SIREN_OFF: Color = (150, 150, 160)


def shade(color: Sequence[int], factor: float) -> Color:
    """``color`` darkened: each channel times ``factor`` (< 1)."""
    return tuple(int(round(c * factor)) for c in color)  # type: ignore[return-value]


def tint(color: Sequence[int], factor: float) -> Color:
    """``color`` lightened towards white by ``factor`` in [0, 1]."""
    return tuple(int(round(c + (255 - c) * factor)) for c in color)  # type: ignore[return-value]


class Pen:
    """Anti-aliased drawing in design units onto a premultiplied RGBA canvas."""

    _SHIFT = 4  # fractional bits of OpenCV's sub-pixel coordinates

    def __init__(self, aspect: float, px_per_unit: int = SPRITE_PX, margin_u: float = MARGIN_U):
        self.s = float(px_per_unit)
        self.m = margin_u
        width = int(math.ceil((aspect + 2 * margin_u) * self.s))
        height = int(math.ceil((1.0 + 2 * margin_u) * self.s))
        self.img = np.zeros((height, width, 4), np.uint8)

    def _xy(self, pts: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
        p = (np.asarray(pts, dtype=np.float64) + self.m) * self.s * (1 << self._SHIFT)
        return np.round(p).astype(np.int32)

    def _len(self, v: float) -> int:
        return int(round(v * self.s * (1 << self._SHIFT)))

    def _px(self, width_u: float) -> int:
        return max(1, int(round(width_u * self.s)))

    @staticmethod
    def _c(color: Sequence[int]) -> tuple[int, int, int, int]:
        return (int(color[0]), int(color[1]), int(color[2]), 255)

    def poly(self, pts: Sequence[Sequence[float]] | np.ndarray, color: Sequence[int]) -> None:
        cv2.fillPoly(self.img, [self._xy(pts)], self._c(color), cv2.LINE_AA, self._SHIFT)

    def polyline(
        self,
        pts: Sequence[Sequence[float]] | np.ndarray,
        width: float,
        color: Sequence[int],
        closed: bool = False,
    ) -> None:
        cv2.polylines(
            self.img,
            [self._xy(pts)],
            closed,
            self._c(color),
            self._px(width),
            cv2.LINE_AA,
            self._SHIFT,
        )

    def line(
        self, p: Sequence[float], q: Sequence[float], width: float, color: Sequence[int]
    ) -> None:
        self.polyline([p, q], width, color)

    def circle(
        self, c: Sequence[float], r: float, color: Sequence[int], width: float | None = None
    ) -> None:
        xy = self._xy([c])[0]
        th = -1 if width is None else self._px(width)
        cv2.circle(
            self.img,
            (int(xy[0]), int(xy[1])),
            self._len(r),
            self._c(color),
            th,
            cv2.LINE_AA,
            self._SHIFT,
        )

    def ellipse(
        self,
        c: Sequence[float],
        axes: Sequence[float],
        color: Sequence[int],
        *,
        angle: float = 0.0,
        start: float = 0.0,
        end: float = 360.0,
        width: float | None = None,
    ) -> None:
        xy = self._xy([c])[0]
        th = -1 if width is None else self._px(width)
        cv2.ellipse(
            self.img,
            (int(xy[0]), int(xy[1])),
            (self._len(axes[0]), self._len(axes[1])),
            angle,
            start,
            end,
            self._c(color),
            th,
            cv2.LINE_AA,
            self._SHIFT,
        )

    def rect(
        self, x1: float, y1: float, x2: float, y2: float, color: Sequence[int], radius: float = 0.0
    ) -> None:
        self.poly(round_rect(x1, y1, x2, y2, radius), color)

    def finish(self, outline_u: float = OUTLINE_U) -> np.ndarray:
        """The sprite with a dark outline drawn under the silhouette."""
        alpha = self.img[..., 3]
        r = max(1, int(round(outline_u * self.s)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        ring = cv2.GaussianBlur(cv2.dilate(alpha, kernel), (3, 3), 0).astype(np.float32) / 255.0
        under = np.empty_like(self.img, dtype=np.float32)
        under[..., :3] = ring[..., None] * np.asarray(OUTLINE, np.float32)
        under[..., 3] = ring * 255.0
        top = self.img.astype(np.float32)
        out = top + under * (1.0 - top[..., 3:4] / 255.0)
        return np.clip(np.round(out), 0, 255).astype(np.uint8)


def round_rect(x1: float, y1: float, x2: float, y2: float, radius: float) -> np.ndarray:
    """Polygon of a rectangle with rounded corners, shape ``(N, 2)``."""
    r = max(0.0, min(radius, (x2 - x1) / 2, (y2 - y1) / 2))
    if r == 0.0:
        return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float64)
    a = np.linspace(0.0, np.pi / 2, 7)
    corners = [
        (x2 - r, y1 + r, -np.pi / 2),
        (x2 - r, y2 - r, 0.0),
        (x1 + r, y2 - r, np.pi / 2),
        (x1 + r, y1 + r, np.pi),
    ]
    pts = [
        np.stack([cx + r * np.cos(a0 + a), cy + r * np.sin(a0 + a)], axis=1)
        for cx, cy, a0 in corners
    ]
    return np.concatenate(pts)


def _rot(points: np.ndarray, center: Sequence[float], angle_rad: float) -> np.ndarray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    p = np.asarray(points, dtype=np.float64) - center
    return np.stack([p[:, 0] * c - p[:, 1] * s, p[:, 0] * s + p[:, 1] * c], axis=1) + center


# --------------------------------------------------------------------------- parts
def _wheel(pen: Pen, c: tuple[float, float], r: float, phase: float, spokes: int = 5) -> None:
    """A tyre with a rim and spokes turned by ``phase`` (one spoke period per unit)."""
    pen.circle(c, r, TYRE)
    pen.circle(c, r * 0.58, HUB)
    turn = 2 * math.pi * phase / spokes
    for k in range(spokes):
        a = turn + 2 * math.pi * k / spokes
        pen.line(c, (c[0] + 0.5 * r * math.cos(a), c[1] + 0.5 * r * math.sin(a)), r * 0.16, SPOKE)
    pen.circle(c, r * 0.16, DARK)


def _leg_swing(phase: float) -> float:
    return math.sin(2 * math.pi * phase)


# --------------------------------------------------------------------------- icons
def draw_car(pen: Pen, body: Color, gait: float, clock: int) -> None:
    pen.poly(
        [
            (0.06, 0.84),
            (0.02, 0.64),
            (0.05, 0.49),
            (0.30, 0.44),
            (0.60, 0.41),
            (0.80, 0.17),
            (0.92, 0.13),
            (1.50, 0.13),
            (1.62, 0.17),
            (1.84, 0.40),
            (2.20, 0.45),
            (2.35, 0.52),
            (2.39, 0.70),
            (2.34, 0.84),
        ],
        body,
    )
    for x in (0.58, 1.86):
        pen.ellipse((x, 0.80), (0.25, 0.25), shade(body, 0.45), start=180, end=360)
    pen.poly([(0.76, 0.40), (0.90, 0.20), (1.12, 0.19), (1.12, 0.40)], GLASS)
    pen.poly([(1.20, 0.19), (1.48, 0.19), (1.70, 0.40), (1.20, 0.40)], GLASS)
    pen.line((1.16, 0.44), (1.16, 0.74), 0.018, shade(body, 0.6))
    pen.line((1.26, 0.50), (1.36, 0.50), 0.025, shade(body, 0.55))
    pen.ellipse((2.31, 0.55), (0.06, 0.04), LIGHT)
    pen.rect(0.02, 0.52, 0.10, 0.60, TAIL_LIGHT, 0.02)
    pen.rect(0.02, 0.70, 0.28, 0.77, DARK, 0.03)
    pen.rect(2.16, 0.70, 2.38, 0.77, DARK, 0.03)
    for x in (0.58, 1.86):
        _wheel(pen, (x, 0.80), 0.195, gait)


def draw_truck(pen: Pen, body: Color, gait: float, clock: int) -> None:
    pen.rect(0.02, 0.76, 2.56, 0.84, DARK, 0.02)
    pen.rect(0.02, 0.04, 1.80, 0.78, body, 0.03)
    for x in (0.45, 0.90, 1.35):
        pen.line((x, 0.08), (x, 0.74), 0.014, shade(body, 0.7))
    pen.rect(0.06, 0.08, 1.76, 0.13, tint(body, 0.35), 0.02)
    pen.poly(
        [
            (1.85, 0.80),
            (1.85, 0.24),
            (1.90, 0.20),
            (2.26, 0.20),
            (2.50, 0.44),
            (2.57, 0.50),
            (2.58, 0.80),
        ],
        body,
    )
    pen.poly([(1.93, 0.27), (2.23, 0.27), (2.42, 0.46), (1.93, 0.46)], GLASS)
    pen.line((2.05, 0.52), (2.15, 0.52), 0.025, shade(body, 0.55))
    pen.ellipse((2.53, 0.58), (0.045, 0.04), LIGHT)
    pen.rect(2.40, 0.66, 2.58, 0.74, DARK, 0.02)
    for x in (0.36, 0.72, 2.20):
        pen.ellipse((x, 0.83), (0.20, 0.20), shade(body, 0.45), start=180, end=360)
        _wheel(pen, (x, 0.83), 0.165, gait)


def draw_train(pen: Pen, body: Color, gait: float, clock: int) -> None:
    pen.rect(0.0, 0.955, 3.8, 0.99, (96, 96, 100))
    pen.polyline([(1.5, 0.10), (1.75, 0.0), (2.0, 0.10)], 0.015, DARK)
    pen.line((1.6, 0.0), (1.9, 0.0), 0.02, DARK)
    pen.poly(
        [
            (0.02, 0.16),
            (0.08, 0.10),
            (3.20, 0.10),
            (3.55, 0.24),
            (3.74, 0.52),
            (3.78, 0.84),
            (0.02, 0.84),
        ],
        body,
    )
    pen.poly([(0.04, 0.10), (3.22, 0.10), (3.30, 0.135), (0.04, 0.135)], shade(body, 0.7))
    for k in range(7):
        x = 0.22 + 0.42 * k
        pen.rect(x, 0.26, x + 0.30, 0.46, GLASS, 0.03)
    pen.poly([(3.24, 0.20), (3.52, 0.28), (3.66, 0.50), (3.24, 0.50)], GLASS)
    pen.rect(0.02, 0.58, 3.77, 0.64, WHITE)
    for x in (1.04, 2.30):
        pen.rect(x, 0.22, x + 0.22, 0.80, shade(body, 0.78), 0.02)
        pen.rect(x + 0.04, 0.27, x + 0.18, 0.44, GLASS, 0.02)
    pen.ellipse((3.70, 0.70), (0.035, 0.03), LIGHT)
    pen.rect(0.02, 0.82, 3.78, 0.88, DARK)
    for x in (0.35, 0.62, 2.95, 3.22):
        _wheel(pen, (x, 0.88), 0.085, gait, spokes=3)


def draw_motorcycle(pen: Pen, body: Color, gait: float, clock: int) -> None:
    # bike
    pen.line((0.70, 0.66), (0.18, 0.60), 0.04, HUB)
    pen.poly([(0.10, 0.50), (0.22, 0.44), (0.50, 0.44), (0.56, 0.52), (0.30, 0.52)], body)
    pen.rect(0.60, 0.52, 0.98, 0.72, DARK, 0.04)
    pen.line((1.30, 0.74), (1.12, 0.30), 0.05, HUB)
    pen.poly(
        [(0.60, 0.46), (0.74, 0.36), (1.00, 0.35), (1.10, 0.44), (0.98, 0.56), (0.66, 0.56)], body
    )
    pen.rect(0.34, 0.40, 0.70, 0.47, DARK, 0.03)
    pen.line((1.06, 0.26), (1.20, 0.22), 0.035, DARK)
    pen.ellipse((1.20, 0.36), (0.05, 0.06), LIGHT)
    pen.poly([(1.10, 0.46), (1.30, 0.42), (1.50, 0.50), (1.40, 0.50), (1.28, 0.47)], body)
    # rider
    pen.line((0.58, 0.42), (0.84, 0.52), 0.10, TROUSERS)
    pen.line((0.84, 0.52), (0.80, 0.70), 0.08, TROUSERS)
    pen.ellipse((0.84, 0.72), (0.07, 0.03), DARK)
    pen.poly([(0.48, 0.42), (0.68, 0.44), (0.98, 0.20), (0.86, 0.10), (0.74, 0.13)], JACKET)
    pen.line((0.90, 0.18), (1.10, 0.28), 0.06, JACKET)
    pen.circle((1.11, 0.28), 0.03, DARK)
    pen.circle((0.94, 0.10), 0.095, body)
    pen.poly([(0.96, 0.07), (1.04, 0.08), (1.03, 0.13), (0.96, 0.13)], GLASS_DARK)
    for x in (0.30, 1.30):
        _wheel(pen, (x, 0.74), 0.25, gait, spokes=6)


def draw_ambulance(pen: Pen, body: Color, gait: float, clock: int) -> None:
    pen.rect(0.02, 0.14, 1.50, 0.84, body, 0.05)
    pen.poly(
        [(1.46, 0.84), (1.46, 0.30), (1.78, 0.30), (2.02, 0.54), (2.08, 0.60), (2.08, 0.84)], body
    )
    pen.rect(0.02, 0.54, 2.08, 0.62, WHITE)
    pen.poly([(1.54, 0.36), (1.76, 0.36), (1.94, 0.53), (1.54, 0.53)], GLASS)
    pen.circle((0.74, 0.38), 0.17, WHITE)
    pen.rect(0.70, 0.25, 0.78, 0.51, (196, 40, 48))
    pen.rect(0.61, 0.34, 0.87, 0.42, (196, 40, 48))
    pen.ellipse((2.04, 0.66), (0.04, 0.035), LIGHT)
    pen.rect(1.90, 0.72, 2.08, 0.79, DARK, 0.02)
    on = clock % 2
    pen.rect(0.96, 0.05, 1.40, 0.15, DARK, 0.03)
    pen.rect(0.99, 0.06, 1.17, 0.13, SIREN_RED if on == 0 else SIREN_OFF, 0.025)
    pen.rect(1.19, 0.06, 1.37, 0.13, SIREN_BLUE if on == 1 else SIREN_OFF, 0.025)
    for x in (0.42, 1.72):
        pen.ellipse((x, 0.82), (0.22, 0.22), shade(body, 0.45), start=180, end=360)
        _wheel(pen, (x, 0.82), 0.175, gait)


def draw_person(pen: Pen, body: Color, gait: float, clock: int) -> None:
    s = _leg_swing(gait)
    hip = (0.21, 0.54)
    for side in (-1, 1):  # legs
        a = side * 0.38 * s
        foot = (hip[0] + 0.40 * math.sin(a), hip[1] + 0.40 * math.cos(a))
        pen.line(hip, foot, 0.085, TROUSERS if side < 0 else shade(TROUSERS, 0.85))
        pen.ellipse((foot[0] + 0.03, foot[1] + 0.005), (0.06, 0.03), DARK)
    shoulder = (0.21, 0.24)

    def arm(side: int, color: Color) -> None:  # arms swing opposite to the legs
        a = -side * 0.38 * s + 0.06
        hand = (shoulder[0] + 0.27 * math.sin(a), shoulder[1] + 0.27 * math.cos(a))
        pen.line(shoulder, hand, 0.075, color)
        pen.circle(hand, 0.037, SKIN)

    arm(1, shade(body, 0.7))
    pen.rect(0.19, 0.15, 0.23, 0.21, SKIN)
    pen.rect(0.10, 0.19, 0.32, 0.58, body, 0.06)
    arm(-1, shade(body, 0.82))
    pen.circle((0.21, 0.095), 0.085, SKIN)
    pen.ellipse((0.205, 0.075), (0.09, 0.065), HAIR, start=180, end=360)
    pen.circle((0.255, 0.095), 0.012, DARK)


def _quadruped_legs(
    pen: Pen, color: Color, xs: Sequence[float], top: float, gait: float, width: float
) -> None:
    s = _leg_swing(gait)
    for k, x in enumerate(xs):
        a = (0.35 if k % 2 == 0 else -0.35) * s
        foot = (x + (1.0 - top) * math.sin(a), 0.975)
        pen.line((x, top), foot, width, color if k in (1, 3) else shade(color, 0.8))


def draw_dog(pen: Pen, body: Color, gait: float, clock: int) -> None:
    pen.polyline([(0.30, 0.42), (0.18, 0.30), (0.12, 0.14)], 0.055, body)
    _quadruped_legs(pen, body, (0.34, 0.44, 0.80, 0.90), 0.52, gait, 0.075)
    pen.ellipse((0.62, 0.46), (0.36, 0.17), body)
    pen.poly([(0.86, 0.44), (0.92, 0.22), (1.04, 0.22), (1.00, 0.52)], body)
    pen.circle((1.02, 0.26), 0.14, body)
    pen.ellipse((1.18, 0.32), (0.10, 0.07), body)
    pen.circle((1.27, 0.29), 0.032, DARK)
    pen.line((1.16, 0.38), (1.24, 0.36), 0.012, DARK)
    pen.poly([(0.93, 0.16), (1.02, 0.15), (0.99, 0.40), (0.90, 0.36)], shade(body, 0.55))
    pen.circle((1.08, 0.22), 0.022, DARK)
    pen.line((0.90, 0.36), (1.02, 0.42), 0.03, (180, 60, 60))


def draw_cat(pen: Pen, body: Color, gait: float, clock: int) -> None:
    t = np.linspace(0.0, 1.0, 12)
    tail = np.stack([0.28 - 0.18 * t + 0.08 * t**3, 0.50 - 0.45 * t + 0.08 * t**4], axis=1)
    pen.polyline(tail, 0.05, body)
    _quadruped_legs(pen, body, (0.36, 0.44, 0.86, 0.94), 0.58, gait, 0.055)
    pen.ellipse((0.64, 0.55), (0.36, 0.14), body)
    pen.circle((1.08, 0.40), 0.14, body)
    pen.poly([(0.96, 0.33), (0.97, 0.12), (1.07, 0.28)], body)
    pen.poly([(1.09, 0.28), (1.19, 0.12), (1.21, 0.34)], body)
    pen.poly([(0.985, 0.28), (0.99, 0.18), (1.04, 0.27)], (214, 150, 150))
    pen.poly([(1.12, 0.28), (1.175, 0.19), (1.18, 0.30)], (214, 150, 150))
    for x in (1.05, 1.15):
        pen.ellipse((x, 0.39), (0.027, 0.034), (206, 214, 120))
        pen.ellipse((x, 0.39), (0.008, 0.028), DARK)
    pen.circle((1.10, 0.45), 0.015, (200, 120, 130))
    for dy in (-0.02, 0.02):
        pen.line((1.14, 0.46 + dy), (1.30, 0.44 + 2 * dy), 0.007, (236, 236, 236))


def draw_bird(pen: Pen, body: Color, gait: float, clock: int) -> None:
    flap = math.cos(2 * math.pi * clock / 4)  # 1 = wings up, -1 = down
    pen.poly([(0.34, 0.54), (0.02, 0.44), (0.06, 0.66), (0.34, 0.64)], shade(body, 0.7))
    pen.ellipse((0.64, 0.56), (0.34, 0.19), body, angle=-8)
    pen.circle((0.98, 0.40), 0.15, body)
    pen.poly([(1.10, 0.34), (1.29, 0.41), (1.10, 0.46)], BEAK)
    pen.circle((1.02, 0.37), 0.035, WHITE)
    pen.circle((1.03, 0.37), 0.018, DARK)
    pen.ellipse((0.72, 0.64), (0.2, 0.08), tint(body, 0.45), angle=-8)
    pen.ellipse((0.60, 0.53), (0.22, 0.09), shade(body, 0.72), angle=-6)
    if abs(flap) > 0.3:
        tip_y = 0.50 - 0.50 * flap
        pen.poly(
            [(0.44, 0.52), (0.80, 0.49), (0.56, tip_y), (0.34, tip_y + 0.1 * flap)],
            shade(body, 0.72),
        )
    pen.line((0.62, 0.74), (0.58, 0.84), 0.014, DARK)
    pen.line((0.70, 0.74), (0.68, 0.84), 0.014, DARK)


def draw_piano(pen: Pen, body: Color, gait: float, clock: int) -> None:
    pen.rect(0.04, 0.06, 1.21, 0.95, body, 0.03)
    pen.rect(0.0, 0.02, 1.25, 0.10, shade(body, 0.6), 0.02)
    pen.rect(0.14, 0.16, 1.11, 0.44, shade(body, 0.75), 0.02)
    pen.rect(0.42, 0.20, 0.83, 0.40, WHITE)
    for k in range(4):
        pen.line((0.46, 0.24 + 0.04 * k), (0.79, 0.24 + 0.04 * k), 0.006, (150, 150, 150))
    pen.rect(0.02, 0.62, 1.23, 0.69, shade(body, 0.6))
    pen.rect(0.06, 0.50, 1.19, 0.63, WHITE)
    n_white = 15
    w = (1.19 - 0.06) / n_white
    for k in range(1, n_white):
        pen.line((0.06 + k * w, 0.50), (0.06 + k * w, 0.63), 0.006, (150, 150, 150))
    for k in range(n_white - 1):
        if k % 7 in (2, 6):
            continue
        x = 0.06 + (k + 1) * w
        pen.rect(x - 0.3 * w, 0.50, x + 0.3 * w, 0.58, DARK)
    pen.rect(0.14, 0.72, 1.11, 0.90, shade(body, 0.8), 0.02)
    pen.rect(0.04, 0.92, 0.16, 1.0, shade(body, 0.6))
    pen.rect(1.09, 0.92, 1.21, 1.0, shade(body, 0.6))
    for x in (0.54, 0.62, 0.70):
        pen.rect(x, 0.93, x + 0.04, 0.975, BRASS, 0.01)


def draw_guitar(pen: Pen, body: Color, gait: float, clock: int) -> None:
    cx = 0.29
    pen.rect(cx - 0.045, 0.0, cx + 0.045, 0.10, shade(WOOD, 0.6), 0.02)
    for y in (0.025, 0.05, 0.075):
        pen.circle((cx - 0.06, y), 0.014, HUB)
        pen.circle((cx + 0.06, y), 0.014, HUB)
    pen.rect(cx - 0.032, 0.08, cx + 0.032, 0.52, WOOD)
    for k in range(1, 9):
        y = 0.09 + 0.05 * k
        pen.line((cx - 0.03, y), (cx + 0.03, y), 0.005, (210, 206, 196))
    pen.circle((cx, 0.76), 0.235, body)
    pen.circle((cx, 0.50), 0.17, body)
    pen.poly([(cx - 0.17, 0.50), (cx + 0.17, 0.50), (cx + 0.22, 0.70), (cx - 0.22, 0.70)], body)
    pen.ellipse((cx, 0.56), (0.16, 0.05), body)
    pen.circle((cx, 0.57), 0.065, DARK)
    pen.circle((cx, 0.57), 0.075, tint(body, 0.5), width=0.012)
    pen.rect(cx - 0.09, 0.80, cx + 0.09, 0.835, DARK, 0.01)
    for dx in (-0.018, -0.006, 0.006, 0.018):
        pen.line((cx + dx, 0.05), (cx + dx, 0.815), 0.004, (232, 230, 220))


def _drum(pen: Pen, x1: float, y1: float, x2: float, y2: float, body: Color) -> None:
    ry = 0.03
    pen.rect(x1, y1, x2, y2, body)
    pen.ellipse(((x1 + x2) / 2, y2), ((x2 - x1) / 2, ry), body)
    pen.ellipse(((x1 + x2) / 2, y1), ((x2 - x1) / 2, ry), DRUM_HEAD)
    pen.ellipse(((x1 + x2) / 2, y1), ((x2 - x1) / 2, ry), HUB, width=0.01)


def draw_drum(pen: Pen, body: Color, gait: float, clock: int) -> None:
    for x, top in ((0.14, 0.18), (1.16, 0.14)):  # cymbal stands
        pen.line((x, top), (x, 0.98), 0.016, SPOKE)
        pen.line((x, 0.9), (x - 0.08, 0.99), 0.012, SPOKE)
        pen.line((x, 0.9), (x + 0.08, 0.99), 0.012, SPOKE)
    pen.ellipse((0.14, 0.18), (0.15, 0.035), BRASS, angle=-8)
    pen.ellipse((1.16, 0.14), (0.14, 0.035), BRASS, angle=8)
    pen.line((0.16, 0.62), (0.16, 0.98), 0.014, SPOKE)
    _drum(pen, 0.02, 0.50, 0.30, 0.62, body)
    pen.line((1.14, 0.8), (1.14, 0.99), 0.018, SPOKE)
    pen.line((1.26, 0.8), (1.26, 0.99), 0.018, SPOKE)
    _drum(pen, 1.02, 0.54, 1.28, 0.82, body)
    pen.circle((0.66, 0.66), 0.32, body)
    pen.circle((0.66, 0.66), 0.255, DRUM_HEAD)
    pen.circle((0.66, 0.66), 0.12, tint(body, 0.3), width=0.02)
    _drum(pen, 0.38, 0.24, 0.62, 0.38, body)
    _drum(pen, 0.72, 0.22, 0.96, 0.36, body)


def draw_helicopter(pen: Pen, body: Color, gait: float, clock: int) -> None:
    # skids
    pen.line((1.70, 0.93), (2.62, 0.93), 0.03, DARK)
    pen.polyline([(2.62, 0.93), (2.72, 0.90), (2.76, 0.86)], 0.03, DARK)
    pen.line((1.92, 0.74), (1.86, 0.93), 0.025, DARK)
    pen.line((2.40, 0.74), (2.46, 0.93), 0.025, DARK)
    # tail
    pen.poly([(1.70, 0.42), (0.20, 0.40), (0.20, 0.48), (1.70, 0.64)], body)
    pen.poly([(0.04, 0.16), (0.14, 0.16), (0.28, 0.42), (0.26, 0.50), (0.12, 0.50)], body)
    blade = 0.16 * math.cos(math.pi * clock / 3)
    pen.line((0.20 - 0.02, 0.36 - blade), (0.20 + 0.02, 0.36 + blade), 0.025, DARK)
    pen.circle((0.20, 0.36), 0.025, HUB)
    # cabin
    pen.rect(1.80, 0.20, 2.40, 0.32, shade(body, 0.8), 0.04)
    pen.ellipse((2.15, 0.54), (0.64, 0.27), body)
    pen.poly([(2.22, 0.33), (2.50, 0.34), (2.70, 0.48), (2.74, 0.55), (2.22, 0.55)], GLASS)
    pen.rect(1.86, 0.40, 2.12, 0.56, GLASS, 0.03)
    # main rotor, seen from the side: the blades foreshorten as they turn
    reach = 0.85 * (0.35 + 0.65 * abs(math.cos(math.pi * clock / 3)))
    pen.rect(1.91, 0.12, 1.99, 0.22, DARK)
    pen.line((1.95 - reach, 0.12), (1.95 + reach, 0.12), 0.028, DARK)
    pen.circle((1.95, 0.12), 0.035, HUB)


def draw_plane(pen: Pen, body: Color, gait: float, clock: int) -> None:
    pen.poly([(0.10, 0.52), (0.58, 0.55), (0.42, 0.64), (0.02, 0.62)], shade(body, 0.7))
    pen.poly([(0.04, 0.02), (0.26, 0.02), (0.70, 0.42), (0.30, 0.44)], body)
    pen.poly(
        [
            (0.10, 0.34),
            (0.40, 0.42),
            (3.40, 0.42),
            (3.60, 0.47),
            (3.76, 0.58),
            (3.62, 0.70),
            (3.30, 0.76),
            (0.70, 0.76),
            (0.24, 0.60),
        ],
        body,
    )
    pen.rect(0.5, 0.64, 3.5, 0.68, WHITE)
    for k in range(20):
        pen.circle((0.82 + 0.125 * k, 0.53), 0.022, GLASS)
    pen.poly([(3.48, 0.50), (3.64, 0.50), (3.71, 0.56), (3.50, 0.56)], GLASS_DARK)
    pen.poly([(1.50, 0.62), (2.24, 0.62), (1.70, 0.99), (1.38, 0.99)], shade(body, 0.7))
    pen.rect(1.70, 0.76, 2.12, 0.90, HUB, 0.06)
    pen.ellipse((2.12, 0.83), (0.02, 0.07), SPOKE)


def draw_generic(pen: Pen, body: Color, gait: float, clock: int) -> None:
    pen.rect(0.04, 0.34, 0.30, 0.66, body, 0.03)
    pen.poly([(0.28, 0.34), (0.60, 0.08), (0.60, 0.92), (0.28, 0.66)], body)
    for k, r in enumerate((0.18, 0.33, 0.48)):
        pen.ellipse(
            (0.62, 0.5), (r, r), body if k != 1 else shade(body, 0.8), start=-48, end=48, width=0.06
        )


@dataclass(frozen=True)
class IconSpec:
    """How an icon is drawn and animated."""

    aspect: float
    """Design width over height."""
    draw: Callable[[Pen, Color, float, int], None]
    gait: str | None = None
    """``"wheels"`` or ``"legs"``: the gait phase advances with the distance travelled."""
    gait_units: float = 1.0
    """Distance, in icon heights, that advances the gait phase by one period."""
    clock_phases: int = 1
    """Number of time-driven phases (wings, rotor, siren); 1 for none."""
    clock_hz: float = 0.0
    """Full clock cycles per second."""


# Wheels: one spoke period is 2 pi r / spokes of rolling, in icon heights.
ICONS: dict[str, IconSpec] = {
    "car": IconSpec(2.4, draw_car, "wheels", 2 * math.pi * 0.195 / 5),
    "truck": IconSpec(2.6, draw_truck, "wheels", 2 * math.pi * 0.165 / 5),
    "train": IconSpec(3.8, draw_train, "wheels", 2 * math.pi * 0.085 / 3),
    "motorcycle": IconSpec(1.6, draw_motorcycle, "wheels", 2 * math.pi * 0.25 / 6),
    "ambulance": IconSpec(2.1, draw_ambulance, "wheels", 2 * math.pi * 0.175 / 5, 2, 2.5),
    "person": IconSpec(0.42, draw_person, "legs", 0.9),
    "dog": IconSpec(1.3, draw_dog, "legs", 0.9),
    "cat": IconSpec(1.32, draw_cat, "legs", 0.8),
    "bird": IconSpec(1.3, draw_bird, None, 1.0, 4, 4.0),
    "piano": IconSpec(1.25, draw_piano),
    "guitar": IconSpec(0.58, draw_guitar),
    "drum": IconSpec(1.3, draw_drum),
    "helicopter": IconSpec(2.8, draw_helicopter, None, 1.0, 6, 3.0),
    "plane": IconSpec(3.8, draw_plane),
    "generic": IconSpec(1.12, draw_generic),
}

GAIT_PHASES = 6
"""Number of quantised gait phases per period."""


def icon_spec(icon: str) -> IconSpec:
    """The spec of an icon name; the generic speaker glyph for an unknown name."""
    return ICONS.get(icon, ICONS["generic"])


def render_icon(
    icon: str, body: Color, *, gait: float = 0.0, clock: int = 0, px_per_unit: int = SPRITE_PX
) -> np.ndarray:
    """Draw one icon as a premultiplied RGBA sprite.

    Parameters
    ----------
    icon : str
        A name in :data:`ICONS`; unknown names draw the generic glyph.
    body : (r, g, b)
        Body colour.
    gait : float
        Gait phase in [0, 1) (wheel spokes, walking legs).
    clock : int
        Clock phase index (wings, rotor blades, siren lights).

    Returns
    -------
    np.ndarray, shape (H, W, 4), uint8
        ``H = (1 + 2 MARGIN_U) * px_per_unit``; the design canvas lies inside the margin.
    """
    spec = icon_spec(icon)
    pen = Pen(spec.aspect, px_per_unit)
    spec.draw(pen, tuple(int(c) for c in body), float(gait), int(clock))
    return pen.finish()
