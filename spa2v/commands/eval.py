"""``spa2v eval``: spatial alignment of a recording and a video (or a layout)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from spa2v.conventions import FORMATS
from spa2v.errors import InputError
from spa2v.fsutil import atomic_output, check_output

NAME = "eval"
HELP = "check that the objects of a video sit and move where their sounds are heard"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--audio", metavar="FILE",
                   help="the spatial recording (default: the video's own soundtrack)")
    p.add_argument("--video", metavar="FILE",
                   help="the video whose objects are tracked (optional with --layout)")
    p.add_argument("--layout", metavar="FILE",
                   help="use this layout's boxes instead of tracking the video's objects")
    p.add_argument("--json", metavar="OUT.json", help="write the report here (default: stdout)")
    p.add_argument("--plot", metavar="OUT.png", help="audio and video azimuth over time")
    p.add_argument("--camera", choices=("sine", "pinhole"), default=None,
                   help="camera model mapping picture x to azimuth (default: the layout's, "
                        "else sine)")
    p.add_argument("--hfov", type=float, default=90.0, metavar="DEG",
                   help="horizontal field of view of the pinhole camera")
    p.add_argument("--max-error", type=float, default=None, metavar="DEG",
                   help="verdict threshold on a pair's mean azimuth error (default 20)")
    p.add_argument("--max-objects", type=int, default=4, metavar="N",
                   help="track at most this many objects in the video")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="override the detected audio format")
    p.add_argument("--foa-convention", choices=("ambix", "fuma"), default="ambix")
    p.add_argument("--hrtf", metavar="FILE.sofa", help="calibrate the binaural analysis on it")
    p.add_argument("--max-sources", type=int, default=4, metavar="N")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from spa2v.analysis import analyze_file
    from spa2v.conventions import Camera
    from spa2v.evaluate import MAX_MEAN_AZIMUTH_ERROR_DEG, evaluate_alignment
    from spa2v.layout import load_layout
    from spa2v.plots import plot_alignment
    from spa2v.visual import track_objects

    if args.video is None and args.layout is None:
        raise InputError("give --video (its objects are tracked) or --layout (its boxes)")
    audio = args.audio or args.video
    if audio is None:
        raise InputError("give --audio (with --layout and no --video there is no soundtrack)")
    max_error = MAX_MEAN_AZIMUTH_ERROR_DEG if args.max_error is None else args.max_error
    if not (np.isfinite(max_error) and max_error > 0):
        raise InputError(f"--max-error must be a positive number, got {args.max_error}")
    if args.max_objects < 1 or args.max_sources < 1:
        raise InputError("--max-objects and --max-sources must be at least 1")
    camera = None
    if args.camera is not None:
        try:
            camera = Camera(args.camera, args.hfov)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    inputs = [p for p in (args.audio, args.video, args.layout) if p]
    for out in (args.json, args.plot):
        if out:
            check_output(out, overwrite=args.overwrite, inputs=inputs)
    if args.json and args.plot and Path(args.json).resolve() == Path(args.plot).resolve():
        raise InputError("--json and --plot name the same file")

    analysis = analyze_file(audio, fmt=args.format, foa_convention=args.foa_convention,
                            hrtf=args.hrtf, max_sources=args.max_sources)
    video_info = None
    if args.layout:
        layout = load_layout(args.layout)
        if args.video:
            from spa2v.video import probe_video

            video_info = probe_video(args.video)
            if not video_info["frames"]:
                raise InputError("the video has no frames", args.video)
        report = evaluate_alignment(analysis, layout, camera=camera, max_error_deg=max_error,
                                    with_series=bool(args.plot))
    else:
        tracks = track_objects(args.video, max_objects=args.max_objects)
        cam = camera or Camera()
        report = evaluate_alignment(analysis, tracks, camera=cam, max_error_deg=max_error,
                                    with_series=bool(args.plot))
        report["tracks"] = [t.to_dict(cam) for t in tracks]
    series = report.pop("series", None)
    head = {"audio": str(audio), "video": args.video, "layout": args.layout,
            "audio_format": analysis["format"]}
    if video_info is not None:
        head["video_frames"] = video_info["frames"]
    report = {**head, **report}

    text = json.dumps(report, indent=1) + "\n"
    if args.plot:
        report["series"] = series
        plot_alignment(report, args.plot, overwrite=args.overwrite,
                       title=Path(args.video or args.layout).name)
        report.pop("series")
    if args.json:
        try:
            with atomic_output(args.json, args.overwrite) as tmp:
                tmp.write_text(text)
        except BaseException:
            if args.plot:  # both outputs or neither
                Path(args.plot).unlink(missing_ok=True)
            raise
    else:
        sys.stdout.write(text)
    if not args.quiet and args.json:
        s = report["summary"]
        err = s["mean_azimuth_error_deg"]
        print(f"{args.video or args.layout}: {'aligned' if report['aligned'] else 'NOT aligned'}"
              f" ({len(report['pairs'])} pair(s)"
              + (f", mean azimuth error {err:.1f} deg" if err is not None else "")
              + f", threshold {max_error:g} deg)"
              + ("" if report["aligned"] else f": {report['reason']}"))
    return 0
