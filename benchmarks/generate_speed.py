"""The main job's speed: a 10 s binaural clip to a 10 s, 24 fps, 512x288 video with audio.

Times the whole ``spa2v generate`` command as a user runs it (a fresh process: start-up,
reading, analysis, planning, rendering, encoding, muxing), and the in-process pipeline.
Prints one JSON line; the target is at most 5 s wall (ratio to the clip <= 0.5).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from spa2v.audio import write_wav
from spa2v.pipeline import PlanOptions, RenderOptions, generate
from spa2v.simulate import Keyframe, SceneSource, Trajectory, simulate_scene
from spa2v.sources import make_source

SR = 48000
CLIP_S = 10.0


def main() -> int:
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        srcs = [SceneSource(make_source("engine", duration_s=CLIP_S, sr=SR, seed=1),
                            Trajectory([Keyframe(0, 70, 0, 6), Keyframe(CLIP_S, -70, 0, 6)])),
                SceneSource(make_source("babble", duration_s=CLIP_S, sr=SR, seed=2),
                            Trajectory.static(-40, 0, 3))]
        sim = simulate_scene(srcs, fmt="binaural", sr=SR, duration_s=CLIP_S)
        wav = write_wav(d / "clip.wav", sim.audio, SR)
        runs = []
        for i in range(3):
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "spa2v", "generate", str(wav), "-o",
                                str(d / f"cli{i}.mp4"), "--label", "car", "--label", "person",
                                "-q"], capture_output=True, text=True)
            runs.append(time.perf_counter() - t0)
            if r.returncode != 0:
                print(r.stderr, file=sys.stderr)
                return 1
        t0 = time.perf_counter()
        generate(wav, d / "lib.mp4", PlanOptions(labels=["car", "person"]),
                 RenderOptions(fps=24, size=(512, 288)))
        t_lib = time.perf_counter() - t0
    best = min(runs)
    print(json.dumps({"bench": "generate_speed", "clip_s": CLIP_S, "fps": 24, "size": "512x288",
                      "cli_wall_s": round(best, 2), "cli_ratio_to_clip": round(best / CLIP_S, 3),
                      "in_process_s": round(t_lib, 2),
                      "in_process_ratio_to_clip": round(t_lib / CLIP_S, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
