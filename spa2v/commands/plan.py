"""``spa2v plan``: audio -> Video Scene Layout."""

from __future__ import annotations

import argparse

from spa2v.commands._options import add_plan_options, plan_options
from spa2v.fsutil import check_output
from spa2v.layout import save_layout
from spa2v.pipeline import plan

NAME = "plan"
HELP = "plan a Video Scene Layout (JSON) from a spatial recording"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="IN", help="binaural, stereo or FOA audio (or a video)")
    p.add_argument("-o", "--output", required=True, metavar="LAYOUT.json")
    add_plan_options(p)


def run(args: argparse.Namespace) -> int:
    opts = plan_options(args)
    check_output(args.output, overwrite=args.overwrite, inputs=[args.input])
    layout, analysis = plan(args.input, opts)
    save_layout(layout, args.output, overwrite=args.overwrite)
    if not args.quiet:
        print(f"{args.output}: {len(layout.objects)} object(s), {len(layout.frames)} keyframes; "
              f"{layout.caption}")
    return 0
