"""Time the animatic renderer: a 10 s, 24 fps, 512x288 clip with two moving objects and
10 s of stereo audio, rendered and encoded to MP4.

Prints JSON: ``{"seconds": ..., "clip_s": 10, "ratio_to_clip": ...}`` (best of ``--repeat``).
Run: ``python benchmarks/render_speed.py [--repeat 3] [--size 512x288] [--fps 24]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from generators.video.animatic import AnimaticRenderer
from spa2v.layout import layout_from_dict

CLIP_S = 10.0


def benchmark_layout(duration_s: float = CLIP_S, keyframe_fps: int = 4) -> dict:
    """A street scene: a car crossing left to right, a person walking right to left."""
    frames = []
    for k in range(int(duration_s * keyframe_fps) + 1):
        t = k / keyframe_fps
        a = t / duration_s
        car_x = 0.02 + 0.70 * a
        person_x = 0.85 - 0.50 * a
        frames.append(
            {
                "t": t,
                "caption": "",
                "boxes": [
                    {"id": 1, "box": [person_x, 0.42, person_x + 0.08, 0.82]},
                    {"id": 0, "box": [car_x, 0.58, car_x + 0.26, 0.86]},
                ],
            }
        )
    return {
        "version": 1,
        "duration": duration_s,
        "fps": keyframe_fps,
        "caption": "A car drives past a person on a street.",
        "background": "street",
        "objects": [{"id": 0, "name": "car"}, {"id": 1, "name": "person"}],
        "frames": frames,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", default="512x288")
    parser.add_argument("--fps", type=int, default=24)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    layout = layout_from_dict(benchmark_layout())
    sr = 48000
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((2, int(CLIP_S * sr)))).astype(np.float32)
    renderer = AnimaticRenderer()
    best = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            out = Path(tmp) / f"bench{r}.mp4"
            t0 = time.perf_counter()
            renderer.render(layout, out, audio=(audio, sr), fps=args.fps, size=(width, height))
            best = min(best, time.perf_counter() - t0)
    print(
        json.dumps(
            {
                "seconds": round(best, 3),
                "clip_s": int(CLIP_S),
                "ratio_to_clip": round(best / CLIP_S, 4),
                "size": f"{width}x{height}",
                "fps": args.fps,
            }
        )
    )


if __name__ == "__main__":
    main()
