"""How fast the simulator renders, on one CPU core.

Renders 10 s of a moving source at 48 kHz through the measured KEMAR HRTF (SOFA), the
spherical head and FOA, and prints one JSON line per case with the real-time factor
(seconds of audio per second of compute; the target is >= 10).

    python benchmarks/simulate_speed.py [--seconds 10] [--repeat 3] [--sofa PATH]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # one core: must be set before numpy is imported

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from spa2v.hrtf import SofaHrtf, SphericalHead  # noqa: E402
from spa2v.simulate import SceneSource, Trajectory, simulate_scene  # noqa: E402
from spa2v.sources import make_source  # noqa: E402

DEFAULT_SOFA = (Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hrtf"
                / "mit_kemar_normal_pinna.sofa")


def _best_time(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--sr", type=int, default=48000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sofa", type=Path, default=DEFAULT_SOFA)
    args = ap.parse_args()

    sr, dur = args.sr, args.seconds
    signal = make_source("engine", duration_s=dur, sr=sr, seed=0)
    moving = Trajectory.parse(f"80,0,3@0; -30,10,1.5@{dur / 2}; -100,0,4@{dur}")
    source = [SceneSource(signal, moving, name="car")]

    cases: list[tuple[str, dict]] = []
    if args.sofa.exists():
        t0 = time.perf_counter()
        sofa = SofaHrtf.from_file(args.sofa, sr)
        load_s = time.perf_counter() - t0
        cases.append(("binaural_sofa_moving", {"fmt": "binaural", "head": sofa}))
    else:
        load_s = None
        print(json.dumps({"case": "binaural_sofa_moving", "skipped": f"{args.sofa} absent"}))
    cases += [
        ("binaural_spherical_moving", {"fmt": "binaural", "head": SphericalHead()}),
        ("foa_moving", {"fmt": "foa"}),
        ("binaural_spherical_moving_reverb_0.6s", {"fmt": "binaural", "rt60_s": 0.6}),
        ("foa_moving_reverb_0.6s", {"fmt": "foa", "rt60_s": 0.6}),
    ]
    for name, kw in cases:
        def render(kw=kw):
            return simulate_scene(source, sr=sr, duration_s=dur, **kw)
        wall = _best_time(render, args.repeat)
        line = {"case": name, "audio_s": dur, "sample_rate": sr, "threads": 1,
                "wall_s": round(wall, 4), "realtime_factor": round(dur / wall, 1)}
        if name.startswith("binaural_sofa"):
            line["sofa_load_s"] = round(load_s, 3)
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
