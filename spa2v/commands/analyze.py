"""``spa2v analyze``: spatial cues and source tracks of recordings."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from spa2v.analysis import analyze_file
from spa2v.conventions import FORMATS
from spa2v.errors import InputError
from spa2v.fsutil import atomic_output, check_output

NAME = "analyze"
HELP = "measure spatial cues and track the sound sources of recordings"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="IN", help="audio or video files")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", metavar="OUT.json", help="write the analysis of one input here")
    out.add_argument("--out-dir", metavar="DIR", help="write DIR/<stem>.json for each input")
    p.add_argument("--plot", metavar="OUT.png",
                   help="azimuth and loudness plot (one input), or with --out-dir any value "
                        "writes DIR/<stem>.png for each")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="override the detected format")
    p.add_argument("--foa-convention", choices=("ambix", "fuma"), default="ambix")
    p.add_argument("--hrtf", metavar="FILE.sofa",
                   help="calibrate the binaural head model on this SOFA file")
    p.add_argument("--max-sources", type=int, default=4, metavar="N")


def write_json(obj: dict, path: Path, overwrite: bool) -> None:
    with atomic_output(path, overwrite) as tmp:
        tmp.write_text(json.dumps(obj, indent=1) + "\n")


def run(args: argparse.Namespace) -> int:
    from spa2v.plots import plot_analysis

    if args.max_sources < 1:
        raise InputError("--max-sources must be at least 1")
    batch = args.out_dir is not None
    if not batch and len(args.inputs) > 1:
        raise InputError("several inputs need --out-dir DIR (one JSON per input)")
    if batch:
        out_dir = Path(args.out_dir)
        if out_dir.exists() and not out_dir.is_dir():
            raise InputError("is not a directory", out_dir)
        stems = [Path(i).stem for i in args.inputs]
        dup = {s for s in stems if stems.count(s) > 1}
        if dup:
            raise InputError(f"several inputs share the stem {sorted(dup)[0]!r}; "
                             "their outputs would collide")
        for s in stems:  # refuse before any work, so nothing is half done
            check_output(out_dir / f"{s}.json", overwrite=args.overwrite)
            if args.plot:
                check_output(out_dir / f"{s}.png", overwrite=args.overwrite)
    else:
        for o in (args.json, args.plot):
            if o:
                check_output(o, overwrite=args.overwrite, inputs=args.inputs)

    failures = 0
    for inp in args.inputs:
        try:
            result = analyze_file(inp, fmt=args.format, foa_convention=args.foa_convention,
                                  hrtf=args.hrtf, max_sources=args.max_sources)
        except InputError as exc:
            if not batch:
                raise
            sys.stderr.write(f"spa2v analyze: error: {exc}\n")
            failures += 1
            continue
        for note in result.get("notes", []):
            sys.stderr.write(f"spa2v analyze: note: {inp}: {note}\n")
        if batch:
            stem = Path(inp).stem
            write_json(result, out_dir / f"{stem}.json", args.overwrite)
            if args.plot:
                plot_analysis(result, out_dir / f"{stem}.png", overwrite=args.overwrite)
        else:
            if args.json:
                write_json(result, Path(args.json), args.overwrite)
            else:
                sys.stdout.write(json.dumps(result) + "\n")
            if args.plot:
                plot_analysis(result, Path(args.plot), overwrite=args.overwrite)
        if not args.quiet and (batch or args.json):
            srcs = ", ".join(f"{s['position']} {s['motion']} ({s['mean_azimuth_deg']:+.0f} deg)"
                             for s in result["sources"]) or "no sources"
            print(f"{inp}: {result['format']}, {srcs}")
    if failures == len(args.inputs):
        raise InputError(f"all {failures} inputs failed")
    return 0
