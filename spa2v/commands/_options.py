"""Options shared by ``plan``, ``render`` and ``generate``."""

from __future__ import annotations

import argparse
import re

from spa2v.conventions import FORMATS, Camera
from spa2v.errors import InputError
from spa2v.pipeline import PlanOptions, RenderOptions
from spa2v.registry import available


def add_plan_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("planning")
    g.add_argument("--planner", default="rule", help="planner name (default: rule; "
                   f"available: {', '.join(sorted(available('planners')))})")
    g.add_argument("--label", action="append", metavar="NAME", dest="labels",
                   help="name of a source, loudest first; repeat for several")
    g.add_argument("--caption", metavar="TEXT", help="a caption naming what is heard")
    g.add_argument("--keyframe-fps", type=float, default=4.0, metavar="N",
                   help="keyframe rate of the layout (default 4)")
    g.add_argument("--background", metavar="SCENE",
                   help="street, indoor, nature, sky, stage or default")
    g.add_argument("--camera", choices=("sine", "pinhole"), default="sine")
    g.add_argument("--hfov", type=float, default=90.0, metavar="DEG",
                   help="horizontal field of view of the pinhole camera")
    g.add_argument("--format", choices=FORMATS, default=None, help="override the detected format")
    g.add_argument("--foa-convention", choices=("ambix", "fuma"), default="ambix")
    g.add_argument("--hrtf", metavar="FILE.sofa", help="calibrate the binaural analysis on it")
    g.add_argument("--max-sources", type=int, default=4, metavar="N")


def add_render_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("rendering")
    g.add_argument("--generator", default="animatic", help="video generator (default: animatic; "
                   f"available: {', '.join(sorted(available('video_generators')))})")
    g.add_argument("--fps", type=int, default=24, metavar="N", help="video frame rate")
    g.add_argument("--size", default="512x288", metavar="WxH", help="video size (even numbers)")
    g.add_argument("--seed", type=int, default=0, metavar="N")
    g.add_argument("--overlay", action="store_true", help="draw the layout's boxes and labels")


def plan_options(args: argparse.Namespace) -> PlanOptions:
    if args.keyframe_fps <= 0:
        raise InputError("--keyframe-fps must be positive")
    if args.max_sources < 1:
        raise InputError("--max-sources must be at least 1")
    try:
        camera = Camera(args.camera, args.hfov)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    return PlanOptions(planner=args.planner, labels=args.labels, caption=args.caption,
                       fps=args.keyframe_fps, fmt=args.format, foa_convention=args.foa_convention,
                       hrtf=args.hrtf, camera=camera, background=args.background,
                       max_sources=args.max_sources)


def render_options(args: argparse.Namespace) -> RenderOptions:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", args.size)
    if not m:
        raise InputError(f"--size must look like 512x288, got {args.size!r}")
    w, h = int(m.group(1)), int(m.group(2))
    if w < 16 or h < 16 or w % 2 or h % 2 or w > 4096 or h > 4096:
        raise InputError(f"--size {w}x{h}: width and height must be even, 16..4096")
    if not 1 <= args.fps <= 120:
        raise InputError("--fps must be between 1 and 120")
    return RenderOptions(generator=args.generator, fps=args.fps, size=(w, h), seed=args.seed,
                         overlay=args.overlay)
