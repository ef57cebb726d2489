"""``spa2v roundtrip``: both directions of spa2v checked against each other.

- ``layout L.json``: (a) layout -> spatial audio (``generators.audio.sonify``) -> analysis
  -> rule planner -> layout, compared with the first (:func:`spa2v.evaluate.compare_layouts`):
  motion labels of the boxes and per-frame azimuth (box centre x through the camera).
- ``audio A.wav``: (b) audio -> analysis -> layout -> animatic video, whose objects are
  tracked in the frames (:mod:`spa2v.visual`) and evaluated against the audio
  (:func:`spa2v.evaluate.evaluate_alignment`); then (c), the loop audio -> video -> audio:
  the video turned back into audio (:mod:`spa2v.video2audio`), analysed again and
  compared with the original's analysis (report key ``loop``).
- ``suite``: generated scenes (static left, center, right; crossing both ways;
  approaching; receding; one and two sources) through (a), then (b) and (c) on the audio
  of (a); prints aggregate figures as JSON lines.

The library side (scene generation, the legs, the suite) is :mod:`spa2v.roundtrip`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from spa2v.errors import InputError
from spa2v.fsutil import atomic_output, check_output
from spa2v.roundtrip import KINDS, roundtrip_layout, roundtrip_loop, roundtrip_video, run_suite

NAME = "roundtrip"
HELP = ("round trips layout -> audio -> layout and audio -> video -> audio (checked against "
        "the audio, and turned back into audio), and a scene suite")

def _common(p: argparse.ArgumentParser) -> None:
    # The global flags again, so that they may follow the mode; SUPPRESS keeps the value
    # given before the mode when they are not repeated.
    p.add_argument("--overwrite", action="store_true", default=argparse.SUPPRESS,
                   help="replace output files that already exist")
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="no progress output")


def _size(text: str) -> tuple[int, int]:
    import re

    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise InputError(f"--size must look like 256x144, got {text!r}")
    w, h = int(m.group(1)), int(m.group(2))
    if w < 16 or h < 16 or w % 2 or h % 2 or w > 4096 or h > 4096:
        raise InputError(f"--size {w}x{h}: width and height must be even, 16..4096")
    return w, h


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="mode", metavar="MODE", parser_class=type(p))
    sub.required = True

    pl = sub.add_parser("layout", help="(a) layout -> audio -> analysis -> layout, compared",
                        description="(a) layout -> spatial audio -> analysis -> rule planner "
                                    "-> layout, compared with the first")
    pl.add_argument("layout", metavar="L.json", help="a Video Scene Layout")
    pl.add_argument("--format", choices=("binaural", "foa"), default="binaural")
    pl.add_argument("--json", metavar="R.json", help="write the report here (default: stdout)")
    pl.add_argument("--audio-out", metavar="A.wav", help="also write the audio")
    pl.add_argument("--layout-out", metavar="L2.json", help="also write the layout planned back")
    pl.add_argument("--seed", type=int, default=0, metavar="N")
    _common(pl)

    pa = sub.add_parser("audio", help="(b) audio -> layout -> video, evaluated against the "
                        "audio; (c) the video turned back into audio, compared",
                        description="(b) audio -> analysis -> layout -> animatic video, whose "
                                    "tracked objects are evaluated against the audio; (c) the "
                                    "video turned back into audio (spa2v video2audio), "
                                    "analysed and compared with the original")
    pa.add_argument("audio", metavar="A.wav", help="binaural, stereo or FOA audio")
    pa.add_argument("--json", metavar="R.json", help="write the report here (default: stdout)")
    pa.add_argument("--video-out", metavar="V.mp4", help="keep the video (with the audio)")
    pa.add_argument("--layout-out", metavar="L.json", help="also write the planned layout")
    pa.add_argument("--audio-back", metavar="A2.wav",
                    help="also write the audio made back from the video (leg c)")
    pa.add_argument("--label", action="append", metavar="NAME", dest="labels",
                    help="name of a source, loudest first; repeat for several")
    pa.add_argument("--size", default="256x144", metavar="WxH", help="video size")
    pa.add_argument("--fps", type=int, default=12, metavar="N", help="video frame rate")
    _common(pa)

    ps = sub.add_parser("suite", help="generated scenes through (a), (b) and (c); aggregate "
                        "figures",
                        description="generated scenes (static left, center, right; crossing "
                                    "both ways; approaching; receding; one and two sources) "
                                    "through (a), (b) and (c); prints aggregate figures as "
                                    "JSON lines")
    ps.add_argument("--scenes", type=int, default=len(KINDS), metavar="N",
                    help=f"number of scenes, cycling through the {len(KINDS)} kinds "
                         f"(default {len(KINDS)})")
    ps.add_argument("--seed", type=int, default=0, metavar="N")
    ps.add_argument("--format", choices=("binaural", "foa"), default="binaural")
    ps.add_argument("--duration", type=float, default=3.0, metavar="S",
                    help="scene length in seconds (default 3)")
    ps.add_argument("--no-video", action="store_true", help="run leg (a) only (no b, no c)")
    ps.add_argument("--json", metavar="R.json", help="also write every scene's figures here")
    _common(ps)


def _write_json(obj: dict, path: str | None, overwrite: bool) -> None:
    text = json.dumps(obj, indent=1) + "\n"
    if path is None:
        sys.stdout.write(text)
        return
    with atomic_output(path, overwrite) as tmp:
        tmp.write_text(text)


def _check_outputs(outs: list[str | None], overwrite: bool, inputs: list[str]) -> None:
    given = [Path(o).resolve() for o in outs if o]
    if len(set(given)) < len(given):
        raise InputError("two outputs have the same name")
    for o in outs:
        if o:
            check_output(o, overwrite=overwrite, inputs=inputs)


def run(args: argparse.Namespace) -> int:
    return {"layout": _run_layout, "audio": _run_audio, "suite": _run_suite}[args.mode](args)


def _run_layout(args: argparse.Namespace) -> int:
    from spa2v.audio import write_wav
    from spa2v.layout import load_layout, save_layout

    _check_outputs([args.json, args.audio_out, args.layout_out], args.overwrite, [args.layout])
    layout = load_layout(args.layout)
    trip = roundtrip_layout(layout, fmt=args.format, seed=args.seed, name=Path(args.layout).name)
    report = {"layout": args.layout, **trip.report}
    if args.audio_out:
        write_wav(args.audio_out, trip.audio, trip.sr, overwrite=args.overwrite)
    if args.layout_out and trip.layout_back is not None:
        save_layout(trip.layout_back, args.layout_out, overwrite=args.overwrite)
    elif args.layout_out:
        sys.stderr.write(f"spa2v roundtrip: note: no layout was planned back "
                         f"({report['reason']}); {args.layout_out} is not written\n")
    _write_json(report, args.json, args.overwrite)
    if not args.quiet and args.json:
        s = report.get("summary", {})
        err = s.get("mean_azimuth_error_deg")
        print(f"{args.layout}: {report['sources_found']} source(s) heard for "
              f"{len(layout.objects)} object(s); motion agreement "
              f"{s.get('motion_agreement', 0.0):.0%}"
              + (f", mean azimuth error {err:.1f} deg" if err is not None else "")
              + (f", MaxIoU {report['max_iou']:.2f}" if "max_iou" in report else ""))
    return 0


def _run_audio(args: argparse.Namespace) -> int:
    from spa2v.layout import save_layout
    from spa2v.pipeline import PlanOptions, plan

    size = _size(args.size)
    if not 1 <= args.fps <= 120:
        raise InputError("--fps must be between 1 and 120")
    if args.audio_back and Path(args.audio_back).suffix.lower() != ".wav":
        raise InputError("--audio-back must be a .wav file", args.audio_back)
    _check_outputs([args.json, args.video_out, args.layout_out, args.audio_back],
                   args.overwrite, [args.audio])
    from spa2v.audio import read_audio, write_wav

    layout, analysis = plan(args.audio, PlanOptions(labels=args.labels))
    audio = read_audio(args.audio)
    loop_fmt = "foa" if analysis["format"] == "foa" else "binaural"
    with tempfile.TemporaryDirectory() as d:
        video = Path(args.video_out) if args.video_out else Path(d) / "roundtrip.mp4"
        report = roundtrip_video(analysis, layout, video, size=size, fps=args.fps, audio=audio,
                                 overwrite=args.overwrite)
        loop = roundtrip_loop(analysis, video, fmt=loop_fmt, layout=layout)
    back = (loop.pop("audio", None), loop.pop("sr", None))
    report = {"audio": args.audio, "video": args.video_out, **report, "loop": loop}
    if args.layout_out:
        save_layout(layout, args.layout_out, overwrite=args.overwrite)
    if args.audio_back and back[0] is not None:
        write_wav(args.audio_back, back[0], back[1], overwrite=args.overwrite)
    elif args.audio_back:
        sys.stderr.write(f"spa2v roundtrip: note: no object was found in the video "
                         f"({loop['reason']}); {args.audio_back} is not written\n")
    _write_json(report, args.json, args.overwrite)
    if not args.quiet and args.json:
        err = report["summary"]["mean_azimuth_error_deg"]
        print(f"{args.audio}: {'aligned' if report['aligned'] else 'NOT aligned'} "
              f"({len(report['pairs'])} pair(s)"
              + (f", mean azimuth error {err:.1f} deg" if err is not None else "") + ")"
              + ("" if report["aligned"] else f": {report['reason']}"))
        ls = loop["summary"]
        print(f"  loop audio -> video -> audio: motion agreement "
              f"{ls['motion_agreement'] or 0.0:.0%}"
              + (f", mean azimuth difference {ls['mean_azimuth_difference_deg']:.1f} deg"
                 if ls["mean_azimuth_difference_deg"] is not None else ""))
    return 0


def _run_suite(args: argparse.Namespace) -> int:
    if args.scenes < 1:
        raise InputError("--scenes must be at least 1")
    if not 0.5 <= args.duration <= 30.0:
        raise InputError("--duration must be between 0.5 and 30 s")
    _check_outputs([args.json], args.overwrite, [])

    def emit(res: dict) -> None:
        if not args.quiet:
            ok = all(o["motion_agrees"] for o in res["objects"])
            b, c = res.get("b"), res.get("c")
            c_ok = c is not None and c["pairs"] and len(c["pairs"]) == c["sources_reference"] \
                and all(p["motion_agrees"] for p in c["pairs"])
            sys.stderr.write(f"{res['kind']}: (a) motion {'agrees' if ok else 'DIFFERS'}"
                             + ("" if b is None else
                                f", (b) {'aligned' if b['aligned'] else 'NOT aligned'}")
                             + ("" if c is None else
                                f", (c) motion {'agrees' if c_ok else 'DIFFERS'}")
                             + f" ({res['seconds']:.1f} s)\n")

    result = run_suite(args.scenes, seed=args.seed, fmt=args.format, duration_s=args.duration,
                       video=not args.no_video, emit=emit)
    for kind, fig in result["by_kind"].items():
        print(json.dumps({"figure": "roundtrip_by_kind", "kind": kind, **fig}))
    for part in ("one_source", "two_sources", "overall"):
        if result[part]["scenes"]:
            print(json.dumps({"figure": f"roundtrip_{part}", "format": args.format,
                              **result[part]}))
    if args.json:
        _write_json(result, args.json, args.overwrite)
    return 0
