"""Procedural scene backgrounds for the animatic renderer.

One background is drawn per clip (never per frame). Each scene keyword has its own
painter; a seed varies colours and positions, and the same seed gives the same pixels.
The ground plane starts near ``HORIZON`` of the frame height (the planner puts ground
objects below it).

The palette rule: backgrounds stay muted (HSV saturation at most about 0.5, or dark), so
the saturated object colours of :func:`generators.video.animatic.object_color` never
occur in a background and an object can be found in a frame by its colour.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

HORIZON = 0.55
"""Height of the horizon (top of the ground plane) as a fraction of the frame height."""

SCENES = ("street", "indoor", "nature", "sky", "stage", "default")

_KEYWORDS: dict[str, tuple[str, ...]] = {
    "street": (
        "street",
        "road",
        "city",
        "town",
        "traffic",
        "urban",
        "highway",
        "crossing",
        "station",
        "railway",
        "avenue",
        "downtown",
        "parking",
    ),
    "indoor": (
        "indoor",
        "room",
        "house",
        "home",
        "kitchen",
        "office",
        "living",
        "bedroom",
        "hall",
        "studio",
        "inside",
        "interior",
        "classroom",
        "apartment",
    ),
    "nature": (
        "nature",
        "park",
        "forest",
        "field",
        "garden",
        "woods",
        "countryside",
        "meadow",
        "outdoor",
        "farm",
        "river",
        "lake",
        "mountain",
        "beach",
    ),
    "sky": ("sky", "air", "airport", "airfield", "clouds", "aerial", "above"),
    "stage": (
        "stage",
        "concert",
        "theatre",
        "theater",
        "gig",
        "performance",
        "music",
        "band",
        "venue",
        "club",
    ),
}

Rgb = tuple[int, int, int]


def scene_kind(keyword: str | None) -> str:
    """Map a layout's ``background`` text to one of :data:`SCENES` ("default" if none)."""
    text = (keyword or "").lower()
    if text in _KEYWORDS:
        return text
    for kind, words in _KEYWORDS.items():
        if any(w in text for w in words):
            return kind
    return "default"


def _jitter(rng: np.random.Generator, color: Sequence[int], amount: int = 10) -> Rgb:
    c = np.asarray(color, dtype=np.int64) + rng.integers(-amount, amount + 1, size=3)
    return tuple(int(v) for v in np.clip(c, 0, 255))  # type: ignore[return-value]


def vertical_gradient(
    height: int, width: int, top: Sequence[int], bottom: Sequence[int], gamma: float = 1.0
) -> np.ndarray:
    """A top-to-bottom colour ramp, shape ``(height, width, 3)`` uint8."""
    t = np.linspace(0.0, 1.0, max(height, 1))[:, None] ** gamma
    col = (1 - t) * np.asarray(top, np.float64) + t * np.asarray(bottom, np.float64)
    return np.repeat(np.round(col).astype(np.uint8)[:, None, :], width, axis=1)


def _add_light(img: np.ndarray, mask: np.ndarray, color: Sequence[int], strength: float) -> None:
    """Screen-blend a soft light (``mask`` in [0, 1], shape (H, W)) onto ``img`` in place."""
    light = np.asarray(color, np.float32) / 255.0
    base = img.astype(np.float32) / 255.0
    m = (mask * strength)[..., None]
    out = 1.0 - (1.0 - base) * (1.0 - m * light)
    img[:] = np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def _soft_mask(
    shape: tuple[int, int], draw: Callable[[np.ndarray], None], blur_px: float
) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    draw(mask)
    k = max(3, int(blur_px) * 2 + 1)
    return cv2.GaussianBlur(mask, (k, k), blur_px).astype(np.float32) / 255.0


def _sky(img: np.ndarray, horizon_px: int, rng: np.random.Generator, top: Rgb, low: Rgb) -> None:
    img[:horizon_px] = vertical_gradient(
        horizon_px, img.shape[1], _jitter(rng, top, 8), _jitter(rng, low, 6), gamma=0.8
    )


def _clouds(
    img: np.ndarray, rng: np.random.Generator, n: int, y_range: tuple[float, float], scale: float
) -> None:
    h, w = img.shape[:2]

    def draw(mask: np.ndarray) -> None:
        for _ in range(n):
            cx = rng.uniform(-0.05, 1.05) * w
            cy = rng.uniform(*y_range) * h
            size = rng.uniform(0.6, 1.2) * scale * h
            for _ in range(int(rng.integers(4, 8))):
                dx = rng.uniform(-1.3, 1.3) * size
                dy = rng.uniform(-0.25, 0.15) * size
                ax = rng.uniform(0.35, 0.7) * size
                cv2.ellipse(
                    mask,
                    (int(cx + dx), int(cy + dy)),
                    (int(ax), int(ax * 0.6)),
                    0,
                    0,
                    360,
                    255,
                    -1,
                    cv2.LINE_AA,
                )

    mask = _soft_mask((h, w), draw, max(1.5, 0.012 * h))
    _add_light(img, mask, (255, 255, 255), 0.85)


def _buildings(img: np.ndarray, horizon_px: int, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    for layer, (base, max_h) in enumerate((((168, 176, 188), 0.40), ((120, 122, 130), 0.30))):
        x = int(-rng.uniform(0, 0.05) * w)
        while x < w:
            bw = int(rng.uniform(0.06, 0.14) * w)
            bh = int(rng.uniform(0.10, max_h) * h)
            top = max(0, horizon_px - bh)
            color = _jitter(rng, base, 14)
            cv2.rectangle(img, (x, top), (x + bw, horizon_px), color, -1)
            if layer == 1:
                lit = (232, 226, 196)
                dark = tuple(int(c * 0.8) for c in color)
                step_x, step_y = max(4, bw // 5), max(5, int(0.045 * h))
                for wy in range(top + step_y // 2, horizon_px - step_y, step_y):
                    for wx in range(x + step_x // 2, x + bw - step_x // 2, step_x):
                        c = lit if rng.random() < 0.35 else dark
                        cv2.rectangle(
                            img,
                            (wx, wy),
                            (wx + max(1, step_x // 2), wy + max(1, step_y // 2)),
                            c,
                            -1,
                        )
            x += bw + int(rng.uniform(0.0, 0.03) * w)


def _street(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    horizon = int(round(h * (HORIZON + rng.uniform(-0.015, 0.015))))
    _sky(img, horizon, rng, (150, 184, 218), (214, 224, 234))
    _clouds(img, rng, 3, (0.05, 0.2), 0.06)
    _buildings(img, horizon, rng)
    kerb_far = horizon + int(0.07 * h)
    road_end = int(0.93 * h)
    img[horizon:kerb_far] = vertical_gradient(
        kerb_far - horizon, w, _jitter(rng, (170, 168, 160)), (182, 180, 172)
    )
    img[kerb_far:road_end] = vertical_gradient(
        road_end - kerb_far, w, _jitter(rng, (104, 106, 110), 6), (80, 82, 86)
    )
    img[road_end:] = vertical_gradient(
        h - road_end, w, (176, 172, 164), _jitter(rng, (160, 156, 148))
    )
    cv2.line(img, (0, kerb_far), (w, kerb_far), (205, 203, 196), max(1, h // 150))
    cv2.line(img, (0, road_end), (w, road_end), (205, 203, 196), max(1, h // 120))
    lane_y = (kerb_far + road_end) // 2
    dash, gap = int(0.07 * w), int(0.05 * w)
    x = -int(rng.uniform(0, dash + gap))
    while x < w:
        cv2.rectangle(
            img,
            (x, lane_y - max(1, h // 200)),
            (x + dash, lane_y + max(1, h // 200)),
            (228, 226, 214),
            -1,
        )
        x += dash + gap
    for _ in range(int(rng.integers(1, 3))):  # street lamps on the far pavement
        lx = int(rng.uniform(0.1, 0.9) * w)
        top = int(horizon - 0.22 * h)
        cv2.line(img, (lx, kerb_far - 2), (lx, top), (70, 72, 78), max(1, w // 250), cv2.LINE_AA)
        cv2.line(
            img, (lx, top), (lx + int(0.03 * w), top), (70, 72, 78), max(1, w // 250), cv2.LINE_AA
        )
        cv2.ellipse(
            img,
            (lx + int(0.03 * w), top + 2),
            (max(2, w // 120), max(1, h // 150)),
            0,
            0,
            360,
            (236, 232, 208),
            -1,
            cv2.LINE_AA,
        )
    tile = max(8, int(0.06 * w))
    for x in range(int(rng.integers(0, tile)), w, tile):
        cv2.line(img, (x, road_end + 2), (x - tile // 3, h), (150, 146, 140), 1, cv2.LINE_AA)
    return img


def _indoor(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    horizon = int(round(h * (HORIZON + rng.uniform(-0.01, 0.02))))
    walls = [(214, 200, 178), (196, 206, 198), (206, 198, 212), (222, 212, 192), (190, 200, 212)]
    wall = _jitter(rng, walls[int(rng.integers(len(walls)))], 6)
    img[:horizon] = vertical_gradient(horizon, w, tuple(int(c * 0.9) for c in wall), wall)
    floor_top = _jitter(rng, (150, 116, 86), 10)
    img[horizon:] = vertical_gradient(
        h - horizon, w, floor_top, tuple(int(c * 0.78) for c in floor_top)
    )
    plank_dark = tuple(int(c * 0.72) for c in floor_top)
    y, step = float(horizon), 0.03 * h
    row = 0
    while y < h:
        cv2.line(img, (0, int(y)), (w, int(y)), plank_dark, 1, cv2.LINE_AA)
        length = int(rng.uniform(0.18, 0.3) * w)
        for x in range(int(rng.integers(0, length)) - (row % 2) * length // 2, w, length):
            cv2.line(img, (x, int(y)), (x, int(y + step)), plank_dark, 1, cv2.LINE_AA)
        y += step
        step *= 1.18
        row += 1
    skirting = max(2, int(0.018 * h))
    cv2.rectangle(img, (0, horizon - skirting), (w, horizon), (236, 232, 224), -1)
    # a window with curtains
    ww, wh = int(rng.uniform(0.18, 0.26) * w), int(rng.uniform(0.28, 0.34) * h)
    wx = int(rng.uniform(0.08, 0.92) * w - ww / 2)
    wy = int(0.08 * h)
    glass = vertical_gradient(wh, ww, (170, 198, 224), (214, 226, 234))
    x0, x1 = max(wx, 0), min(wx + ww, w)
    if x1 > x0:
        img[wy : wy + wh, x0:x1] = glass[:, x0 - wx : x1 - wx]
    frame = (242, 240, 234)
    fw = max(2, int(0.012 * h))
    cv2.rectangle(img, (wx, wy), (wx + ww, wy + wh), frame, fw)
    cv2.line(img, (wx + ww // 2, wy), (wx + ww // 2, wy + wh), frame, fw)
    cv2.line(img, (wx, wy + wh // 2), (wx + ww, wy + wh // 2), frame, fw)
    curtain = _jitter(rng, (150, 120, 118), 12)
    cw = int(0.05 * w)
    for cx in (wx - cw, wx + ww):
        cv2.rectangle(img, (cx, wy - fw * 2), (cx + cw, wy + wh + int(0.05 * h)), curtain, -1)
        for k in range(1, 3):
            xx = cx + k * cw // 3
            cv2.line(
                img,
                (xx, wy),
                (xx, wy + wh + int(0.05 * h)),
                tuple(int(c * 0.8) for c in curtain),
                1,
                cv2.LINE_AA,
            )
    # a floor lamp away from the window
    lx = int(((wx + ww / 2) / w + rng.uniform(0.35, 0.6)) % 1.0 * w)
    lx = min(max(lx, int(0.06 * w)), int(0.94 * w))
    shade_top, shade_bot = int(0.16 * h), int(0.27 * h)
    sw = int(0.035 * w)
    glow = _soft_mask(
        (h, w), lambda m: cv2.circle(m, (lx, shade_bot), int(0.12 * h), 255, -1), 0.06 * h
    )
    _add_light(img, glow, (255, 236, 196), 0.55)
    cv2.line(
        img,
        (lx, shade_bot),
        (lx, horizon + int(0.02 * h)),
        (64, 60, 58),
        max(1, w // 200),
        cv2.LINE_AA,
    )
    cv2.ellipse(
        img,
        (lx, horizon + int(0.02 * h)),
        (int(0.025 * w), max(1, int(0.01 * h))),
        0,
        0,
        360,
        (64, 60, 58),
        -1,
        cv2.LINE_AA,
    )
    pts = np.array(
        [
            [lx - sw // 2, shade_top],
            [lx + sw // 2, shade_top],
            [lx + sw, shade_bot],
            [lx - sw, shade_bot],
        ],
        np.int32,
    )
    cv2.fillPoly(img, [pts], (242, 228, 196), cv2.LINE_AA)
    return img


def _hills(
    img: np.ndarray,
    base_px: int,
    rng: np.random.Generator,
    amplitude: float,
    color: Rgb,
    bottom: int | None = None,
) -> None:
    h, w = img.shape[:2]
    x = np.arange(w)
    y = np.zeros(w)
    for _ in range(3):
        f = rng.uniform(0.5, 3.0) / w
        y += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * f * x + rng.uniform(0, 2 * np.pi))
    y = base_px - amplitude * h * (y - y.min()) / max(np.ptp(y), 1e-9)
    pts = np.concatenate([np.stack([x, y], 1), [[w - 1, bottom or h], [0, bottom or h]]])
    cv2.fillPoly(img, [np.round(pts).astype(np.int32)], color, cv2.LINE_AA)


def _tree(img: np.ndarray, x: int, ground: int, size: float, rng: np.random.Generator) -> None:
    h = img.shape[0]
    trunk = _jitter(rng, (96, 76, 62), 8)
    crown = _jitter(rng, (88, 120, 82), 10)
    th = int(size * h)
    cv2.line(img, (x, ground), (x, ground - th), trunk, max(2, int(0.1 * th)), cv2.LINE_AA)
    if rng.random() < 0.4:  # a conifer
        for k in range(3):
            top = ground - th - int(0.25 * th) + int(k * 0.3 * th)
            half = int((0.25 + 0.1 * k) * th)
            pts = np.array(
                [[x, top], [x + half, top + int(0.55 * th)], [x - half, top + int(0.55 * th)]],
                np.int32,
            )
            cv2.fillPoly(img, [pts], crown, cv2.LINE_AA)
    else:
        for _ in range(6):
            cx = x + int(rng.uniform(-0.35, 0.35) * th)
            cy = ground - th + int(rng.uniform(-0.3, 0.15) * th)
            r = int(rng.uniform(0.25, 0.4) * th)
            c = tuple(int(v * rng.uniform(0.9, 1.1)) for v in crown)
            cv2.circle(img, (cx, cy), r, c, -1, cv2.LINE_AA)


def _nature(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    horizon = int(round(h * (HORIZON + rng.uniform(-0.015, 0.015))))
    _sky(img, horizon, rng, (140, 180, 214), (216, 228, 232))
    _clouds(img, rng, 3, (0.05, 0.25), 0.07)
    _hills(img, horizon, rng, 0.16, _jitter(rng, (150, 170, 166), 6), horizon + 2)
    _hills(img, horizon + 2, rng, 0.07, _jitter(rng, (124, 148, 112), 6), horizon + 4)
    img[horizon:] = vertical_gradient(
        h - horizon, w, _jitter(rng, (140, 166, 104), 8), _jitter(rng, (112, 140, 84), 8)
    )
    for _ in range(int(rng.integers(3, 6))):
        _tree(
            img,
            int(rng.uniform(0.02, 0.98) * w),
            horizon + int(rng.uniform(0, 0.02) * h),
            rng.uniform(0.12, 0.22),
            rng,
        )
    n_blades = int(0.002 * w * h)
    xs = rng.uniform(0, w, n_blades)
    ys = rng.uniform(horizon + 0.02 * h, h, n_blades)
    for x, y in zip(xs, ys, strict=True):
        length = 2 + 6 * (y - horizon) / (h - horizon)
        c = (96, 128, 76) if rng.random() < 0.6 else (160, 184, 124)
        cv2.line(
            img, (int(x), int(y)), (int(x + rng.uniform(-2, 2)), int(y - length)), c, 1, cv2.LINE_AA
        )
    return img


def _sky_scene(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    ground = int(round(h * (0.74 + rng.uniform(-0.02, 0.02))))
    _sky(img, ground, rng, (112, 152, 206), (206, 222, 236))
    sx, sy = int(rng.uniform(0.1, 0.9) * w), int(rng.uniform(0.08, 0.25) * h)
    glow = _soft_mask((h, w), lambda m: cv2.circle(m, (sx, sy), int(0.1 * h), 255, -1), 0.08 * h)
    _add_light(img, glow, (255, 246, 222), 0.6)
    cv2.circle(img, (sx, sy), int(0.055 * h), (255, 248, 222), -1, cv2.LINE_AA)
    _clouds(img, rng, 6, (0.1, 0.65), 0.08)
    _hills(img, ground, rng, 0.05, _jitter(rng, (150, 166, 172), 6), ground + 2)
    img[ground:] = vertical_gradient(
        h - ground, w, _jitter(rng, (146, 160, 140), 6), (122, 138, 112)
    )
    return img


def _stage(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    horizon = int(round(h * (HORIZON + rng.uniform(-0.01, 0.02))))
    img = np.zeros((h, w, 3), np.uint8)
    img[:horizon] = vertical_gradient(horizon, w, (18, 16, 22), _jitter(rng, (44, 40, 50), 4))
    floor = _jitter(rng, (92, 68, 52), 6)
    img[horizon:] = vertical_gradient(h - horizon, w, floor, tuple(int(c * 0.6) for c in floor))
    for k in range(1, 8):
        y = horizon + int((h - horizon) * (k / 8) ** 1.3)
        cv2.line(img, (0, y), (w, y), tuple(int(c * 0.55) for c in floor), 1, cv2.LINE_AA)
    # curtains: dark red with folds, and a scalloped valance
    red = _jitter(rng, (112, 26, 36), 6)
    cw = int(rng.uniform(0.09, 0.13) * w)
    x = np.arange(cw)
    folds = 0.75 + 0.25 * np.cos(2 * np.pi * x / max(4, cw / 3))
    panel = folds[None, :, None] * np.asarray(red, np.float64)[None, None, :]
    panel = np.repeat(np.round(panel).astype(np.uint8), h, axis=0)
    img[:, :cw] = panel
    img[:, w - cw :] = panel[:, ::-1]
    val_h = int(0.09 * h)
    img[:val_h] = np.round(np.asarray(red, np.float64) * 0.85).astype(np.uint8)
    n_sc = 8
    for k in range(n_sc):
        cx = int((k + 0.5) * w / n_sc)
        cv2.ellipse(
            img,
            (cx, val_h),
            (int(w / n_sc / 2), int(0.03 * h)),
            0,
            0,
            180,
            tuple(int(c * 0.85) for c in red),
            -1,
            cv2.LINE_AA,
        )
    # spotlights: cones from above and pools on the floor
    n_spots = int(rng.integers(2, 4))
    for k in range(n_spots):
        px = int(((k + 0.5) / n_spots + rng.uniform(-0.08, 0.08)) * w)
        py = int(rng.uniform(0.72, 0.84) * h)
        rx, ry = int(0.13 * w), int(0.05 * h)

        def cone(m: np.ndarray, px: int = px, py: int = py, rx: int = rx) -> None:
            top = px + int(rng.uniform(-0.1, 0.1) * w)
            pts = np.array([[top - 4, 0], [top + 4, 0], [px + rx, py], [px - rx, py]], np.int32)
            cv2.fillPoly(m, [pts], 90)

        _add_light(img, _soft_mask((h, w), cone, 0.02 * h), (255, 240, 214), 0.35)
        pool = _soft_mask(
            (h, w),
            lambda m, px=px, py=py, rx=rx, ry=ry: cv2.ellipse(
                m, (px, py), (rx, ry), 0, 0, 360, 255, -1
            ),
            0.02 * h,
        )
        _add_light(img, pool, (255, 240, 214), 0.6)
    return img


def _default(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    horizon = int(round(h * (HORIZON + rng.uniform(-0.01, 0.01))))
    img = np.zeros((h, w, 3), np.uint8)
    img[:horizon] = vertical_gradient(
        horizon, w, _jitter(rng, (196, 200, 214), 8), _jitter(rng, (230, 230, 234), 4)
    )
    img[horizon:] = vertical_gradient(
        h - horizon, w, _jitter(rng, (204, 202, 206), 6), _jitter(rng, (170, 170, 178), 6)
    )
    cv2.line(img, (0, horizon), (w, horizon), (150, 150, 160), max(1, h // 200), cv2.LINE_AA)
    return img


_PAINTERS: dict[str, Callable[[int, int, np.random.Generator], np.ndarray]] = {
    "street": _street,
    "indoor": _indoor,
    "nature": _nature,
    "sky": _sky_scene,
    "stage": _stage,
    "default": _default,
}


def _vignette(img: np.ndarray, strength: float = 0.18) -> np.ndarray:
    h, w = img.shape[:2]
    yy = np.linspace(-1.0, 1.0, h)[:, None]
    xx = np.linspace(-1.0, 1.0, w)[None, :]
    v = 1.0 - strength * np.clip((xx**2 + yy**2) / 2.0, 0.0, 1.0) ** 1.5
    return np.clip(np.round(img * v[..., None]), 0, 255).astype(np.uint8)


def draw_background(keyword: str | None, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Paint the background of a scene.

    Parameters
    ----------
    keyword : str or None
        The layout's ``background`` (mapped by :func:`scene_kind`).
    size : (W, H)
        Frame size in pixels.
    seed : int
        Varies colours and positions; the same seed gives identical pixels.

    Returns
    -------
    np.ndarray, shape (H, W, 3), uint8 RGB
    """
    width, height = (int(v) for v in size)
    rng = np.random.default_rng([int(seed), SCENES.index(scene_kind(keyword))])
    img = _PAINTERS[scene_kind(keyword)](height, width, rng)
    return _vignette(img)
