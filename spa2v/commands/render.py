"""``spa2v render``: Video Scene Layout -> MP4."""

from __future__ import annotations

import argparse

from spa2v.commands._options import add_render_options, render_options
from spa2v.fsutil import check_output
from spa2v.pipeline import render

NAME = "render"
HELP = "render a Video Scene Layout to an MP4 video"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("layout", metavar="LAYOUT.json", help="a VSL (JSON, or SpA2V's text form)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.mp4")
    p.add_argument("--audio", metavar="FILE", help="soundtrack to mux (AAC)")
    add_render_options(p)


def run(args: argparse.Namespace) -> int:
    opts = render_options(args)
    check_output(args.output, overwrite=args.overwrite,
                 inputs=[args.layout] + ([args.audio] if args.audio else []))
    out = render(args.layout, args.output, opts, audio_path=args.audio,
                 overwrite=args.overwrite, progress=not args.quiet)
    if not args.quiet:
        print(f"{out}: {opts.size[0]}x{opts.size[1]} at {opts.fps} fps")
    return 0
