"""``spa2v generate``: audio -> video, the main job."""

from __future__ import annotations

import argparse
import time

from spa2v.commands._options import (
    add_plan_options,
    add_render_options,
    plan_options,
    render_options,
)
from spa2v.pipeline import generate

NAME = "generate"
HELP = "turn a spatial recording into a video whose objects sit where they are heard"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="IN", help="binaural, stereo or FOA audio (or a video)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.mp4")
    p.add_argument("--layout-out", metavar="LAYOUT.json", help="also write the layout")
    add_plan_options(p)
    add_render_options(p)


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    video, layout = generate(args.input, args.output, plan_options(args), render_options(args),
                             layout_out=args.layout_out, overwrite=args.overwrite,
                             progress=not args.quiet)
    if not args.quiet:
        names = ", ".join(o.name for o in layout.objects)
        print(f"{video}: {names}; {layout.caption} ({time.perf_counter() - t0:.1f} s)")
    return 0
