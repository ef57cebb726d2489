"""Round trips on generated scenes: layout -> audio -> layout, and audio -> video -> audio.

Runs ``spa2v roundtrip suite`` in process over at least 100 scenes (static left, center,
right; crossing both ways; approaching; receding; one and two sources; 3 s each; the rule
planner and the animatic renderer at 256x144, 8 fps) and prints JSON lines: per kind, one
source, two sources, overall, and a check against the issue's targets for leg (a):
motion-label agreement >= 97 % and mean azimuth round-trip error <= 5 deg.  Baselines from
the same scenes: every object drawn in the centre (azimuth error) and every object called
static (motion agreement).  The loop audio -> video -> audio (leg c: the video of leg b
turned back into audio by ``spa2v video2audio``'s steps, analysed again) gets its own lines
(``bench: roundtrip_loop``): motion agreement with the original's analysis and the mean
azimuth difference, against audio that puts every source in the centre.

    python benchmarks/roundtrip.py [--scenes 110] [--seed 0] [--format binaural|foa|both]
                                   [--no-video] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from spa2v.roundtrip import KINDS, run_suite  # noqa: E402

TARGET_MOTION_AGREEMENT = 0.97
TARGET_AZIMUTH_ERROR_DEG = 5.0


def emit(**kw) -> None:
    print(json.dumps(kw), flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", type=int, default=10 * len(KINDS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=("binaural", "foa", "both"), default="binaural")
    p.add_argument("--no-video", action="store_true", help="leg (a) only")
    p.add_argument("--json", help="write every scene's figures here")
    args = p.parse_args()
    formats = ("binaural", "foa") if args.format == "both" else (args.format,)
    results = {}
    for fmt in formats:
        t0 = time.perf_counter()
        res = run_suite(args.scenes, seed=args.seed, fmt=fmt, video=not args.no_video)
        wall = time.perf_counter() - t0
        for kind, fig in res["by_kind"].items():
            emit(bench="roundtrip", format=fmt, part=kind, **fig)
        for part in ("one_source", "two_sources", "overall"):
            fig = res[part]
            if not fig["scenes"]:
                continue
            err, base = fig["a_mean_azimuth_error_deg"], fig["baseline_centre_azimuth_error_deg"]
            emit(bench="roundtrip", format=fmt, part=part, **fig,
                 a_azimuth_error_ratio_to_centre_baseline=(
                     round(err / base, 4) if err is not None and base else None))
        for part in ("one_source", "two_sources", "overall"):
            fig = res[part]
            if not fig["scenes"] or fig.get("c_motion_agreement") is None:
                continue
            diff, base = fig["c_mean_azimuth_difference_deg"], fig["c_baseline_centre_azimuth_deg"]
            emit(bench="roundtrip_loop", format=fmt, part=part, scenes=fig["scenes"],
                 motion_agreement=fig["c_motion_agreement"],
                 position_agreement=fig["c_position_agreement"],
                 sources_paired=fig["c_sources_paired"],
                 source_count_right=fig["c_source_count_right"],
                 mean_azimuth_difference_deg=diff, baseline_centre_azimuth_deg=base,
                 azimuth_difference_ratio_to_centre_baseline=(
                     round(diff / base, 4) if diff is not None and base else None))
        for part in ("overall", "one_source"):
            fig = res[part]
            if not fig["scenes"]:
                continue
            motion, err = fig["a_motion_agreement"], fig["a_mean_azimuth_error_deg"]
            emit(bench="roundtrip_targets", format=fmt, part=part, scenes=fig["scenes"],
                 motion_agreement=motion, motion_target=TARGET_MOTION_AGREEMENT,
                 motion_ok=bool(motion is not None and motion >= TARGET_MOTION_AGREEMENT),
                 azimuth_error_deg=err, azimuth_target_deg=TARGET_AZIMUTH_ERROR_DEG,
                 azimuth_ok=bool(err is not None and err <= TARGET_AZIMUTH_ERROR_DEG),
                 wall_s=round(wall, 1))
        results[fmt] = res
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
