"""``spa2v video2audio``: a video -> spatial audio whose sources sit where the objects are seen.

The objects of the frames are found by the visual tracker of ``spa2v eval`` (no learned
model), by an open-vocabulary detector from a local checkpoint (``--detector``), or taken
from a layout (``--layout``); they become a layout with one object per track, which is
sonified as ``spa2v sonify`` does.  ``--label`` names the tracks largest first (box area
summed over the frames); with ``--detector`` the labels are its text queries and each
object is named by the query that found it.  With ``--mux``, the video is copied with a
binaural rendering of the same layout as its soundtrack (with ``--format foa`` the layout
is rendered a second time, binaurally, with the same sources and seed: a stereo decode
of FOA would lose the two ears' cues).

The library side is :mod:`spa2v.video2audio`.
"""

from __future__ import annotations

import argparse
import contextlib
import math
from pathlib import Path

from spa2v.commands._options import add_object_source_options, add_sonify_options
from spa2v.errors import InputError

NAME = "video2audio"
HELP = "turn a video into spatial audio: a sound for each object, placed where it is seen"
MUX_SUFFIXES = (".mp4", ".mov", ".mkv")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", nargs="?", default=None, metavar="VIDEO",
                   help="the video whose objects become sound sources (optional with --layout)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.wav", help="audio to write")
    p.add_argument("--format", required=True, choices=("binaural", "foa"),
                   help="binaural (left, right) or first-order Ambisonics (AmbiX W, Y, Z, X)")
    p.add_argument("--label", action="append", dest="labels", metavar="NAME",
                   help="name of an object, largest on screen first; repeat for several "
                        "(the rest are 'sound source'); with --detector, the text queries")
    p.add_argument("--layout", metavar="L.json",
                   help="take the objects from this layout instead of finding them in VIDEO "
                        "(--label then renames its objects in id order)")
    p.add_argument("--layout-out", metavar="L.json", help="also write the layout made")
    p.add_argument("--mux", metavar="OUT.mp4",
                   help="also write VIDEO with the binaural rendering as its soundtrack")
    p.add_argument("--truth", metavar="OUT.json", help="write the ground truth of the audio here")
    add_object_source_options(
        p, "a local text-to-audio checkpoint prompted with each object's name "
           "(with --layout, its description), as in spa2v sonify")
    g = p.add_argument_group("finding the objects")
    g.add_argument("--detector", default=None, metavar="DIR|tiny",
                   help="an open-vocabulary detector (OWL-ViT family, a local transformers "
                        "checkpoint; 'tiny' builds a random one) instead of the visual tracker")
    g.add_argument("--threshold", type=float, default=0.1, metavar="SCORE",
                   help="the detector's minimum score (default 0.1)")
    g.add_argument("--max-objects", type=int, default=4, metavar="N",
                   help="at most this many objects (default 4)")
    g.add_argument("--camera", choices=("sine", "pinhole"), default="sine",
                   help="camera model mapping picture x to azimuth (default sine)")
    g.add_argument("--hfov", type=float, default=90.0, metavar="DEG",
                   help="horizontal field of view of the pinhole camera")
    g.add_argument("--keyframe-fps", type=float, default=None, metavar="N",
                   help="keyframe rate of the layout (default 8)")
    a = p.add_argument_group("rendering the audio")
    add_sonify_options(a)


def _parse_sources(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise InputError(f"--source {item!r}: expected NAME=FILE (an object name or id)")
        if not Path(path).is_file():
            raise InputError("no such file (given by --source)", path)
        out[name] = path
    return out


def _check(args: argparse.Namespace) -> tuple[dict[str, str], list[str]]:
    """Every check that needs no work: options, inputs, outputs."""
    from spa2v.commands.foa import check_common

    if args.video is None and args.layout is None:
        raise InputError("give a VIDEO (its objects are found) or --layout L.json")
    for path in (args.video, args.layout, args.hrtf):
        if path is not None and not Path(path).is_file():
            raise InputError("no such file", path)
    if args.mux and args.video is None:
        raise InputError("--mux needs the VIDEO to put the soundtrack into")
    if args.mux and Path(args.mux).suffix.lower() not in MUX_SUFFIXES:
        raise InputError(f"--mux must be a {', '.join(MUX_SUFFIXES)} file", args.mux)
    if args.layout and args.detector:
        raise InputError("--layout and --detector exclude each other: the layout already "
                         "says where the objects are")
    if args.hrtf is not None and args.format != "binaural":
        raise InputError("--hrtf applies to --format binaural only")
    if not (math.isfinite(args.threshold) and 0.0 <= args.threshold <= 1.0):
        raise InputError(f"--threshold must be within [0, 1], got {args.threshold}")
    if args.max_objects < 1:
        raise InputError("--max-objects must be at least 1")
    kf = args.keyframe_fps
    if kf is not None and not (math.isfinite(kf) and 0.0 < kf <= 60.0):
        raise InputError(f"--keyframe-fps must be in (0, 60], got {kf}")
    sources = _parse_sources(args.source)
    inputs = [p for p in (args.video, args.layout, args.hrtf, *sources.values()) if p]
    check_common(args, [args.output, args.layout_out, args.mux, args.truth], inputs)
    return sources, inputs


def _load_model(args: argparse.Namespace):
    if args.model is None:
        return None
    from spa2v.commands.foa import load_model

    try:
        return load_model(args.model, args.steps)
    except ImportError as exc:
        raise InputError(f"--model: no text-to-audio model is available here ({exc})") from None


def run(args: argparse.Namespace) -> int:
    from spa2v.audio import write_wav
    from spa2v.commands.simulate import dumps_truth
    from spa2v.conventions import Camera
    from spa2v.fsutil import atomic_output
    from spa2v.layout import load_layout, save_layout
    from spa2v.video2audio import (
        KEYFRAME_FPS,
        find_objects,
        layout_audio,
        mux_audio,
        objects_layout,
        rename_objects,
    )

    sources, inputs = _check(args)
    try:
        camera = Camera(args.camera, args.hfov)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    detector = None
    if args.detector is not None:
        from spa2v.owlvit import OwlVitDetector

        detector = OwlVitDetector.load(args.detector)
    model = _load_model(args)

    if args.layout:
        layout = rename_objects(load_layout(args.layout), args.labels)
        finder = "layout"
    else:
        objects = find_objects(args.video, labels=args.labels, detector=detector,
                               threshold=args.threshold, max_objects=args.max_objects)
        layout = objects_layout(objects, camera=camera,
                                keyframe_fps=args.keyframe_fps or KEYFRAME_FPS)
        finder = objects.finder
    render = dict(sr=args.sr, sources=sources, rt60_s=args.reverb or 0.0, seed=args.seed,
                  text_to_audio=model, keep_labels=not args.exact)
    sim = layout_audio(layout, fmt=args.format, hrtf=args.hrtf, **render)
    soundtrack = None
    if args.mux:
        soundtrack = sim.audio if args.format == "binaural" else layout_audio(
            layout, fmt="binaural", **render).audio
    sim.truth.update({"video": args.video, "layout": args.layout, "found_by": finder})

    with contextlib.ExitStack() as stack:
        def temp(path: str) -> Path:
            return stack.enter_context(atomic_output(path, args.overwrite, inputs=inputs))

        write_wav(temp(args.output), sim.audio, sim.sr)
        if args.layout_out:
            save_layout(layout, temp(args.layout_out))
        if args.truth:
            temp(args.truth).write_text(dumps_truth(sim.truth) + "\n")
        if args.mux:
            mux_audio(args.video, soundtrack, sim.sr, temp(args.mux), inputs=tuple(inputs))
    if not args.quiet:
        srcs = ", ".join(f"{s['name']} {s['position']} {s['motion']}"
                         for s in sim.truth["sources"])
        extra = [f"{k} {v}" for k, v in (("layout", args.layout_out), ("video", args.mux),
                                          ("truth", args.truth)) if v]
        print(f"wrote {args.output} ({args.format}, {sim.audio.shape[0]} channels, "
              f"{sim.truth['duration']:g} s, {sim.sr} Hz; objects by {finder}): {srcs}"
              + ("; " + ", ".join(extra) if extra else ""))
    return 0
