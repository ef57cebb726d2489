"""``spa2v sonify``: a Video Scene Layout -> spatial audio (the rule planner's reverse)."""

from __future__ import annotations

import argparse
from pathlib import Path

from spa2v.commands._options import add_object_source_options, add_sonify_options
from spa2v.errors import InputError

NAME = "sonify"
HELP = "render a layout's objects as moving sound sources (binaural or FOA)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("layout", metavar="LAYOUT.json", help="a VSL layout (JSON or SpA2V text)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.wav", help="audio to write")
    p.add_argument("--format", required=True, choices=("binaural", "foa"),
                   help="binaural (left, right) or first-order Ambisonics (AmbiX W, Y, Z, X)")
    add_object_source_options(
        p, "a local text-to-audio checkpoint (AudioLDM 2 family) prompted with "
           "each object's description")
    add_sonify_options(p)
    p.add_argument("--truth", default=None, metavar="OUT.json", help="write the ground truth here")


def _sources(items: list[str] | None, layout) -> dict[str, str]:
    out: dict[str, str] = {}
    names = {o.name for o in layout.objects} | {str(o.id) for o in layout.objects}
    for item in items or []:
        name, sep, path = item.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise InputError(f"--source {item!r}: expected NAME=FILE (an object name or id)")
        if name not in names:
            listed = ", ".join(sorted({o.name for o in layout.objects}))
            raise InputError(f"--source {item!r}: the layout has no object {name!r} "
                             f"(objects: {listed})")
        if not Path(path).is_file():
            raise InputError("no such file", path)
        out[name] = path
    return out


def run(args: argparse.Namespace) -> int:
    from generators.audio.sonify import sonify_layout
    from spa2v.commands.foa import check_common, load_model
    from spa2v.commands.simulate import write_outputs
    from spa2v.layout import load_layout

    if args.hrtf is not None and args.format != "binaural":
        raise InputError("--hrtf applies to binaural output only")
    if args.hrtf is not None and not Path(args.hrtf).exists():
        raise InputError("no such file", args.hrtf)
    layout = load_layout(args.layout)
    sources = _sources(args.source, layout)
    inputs = [args.layout, *sources.values(), *([args.hrtf] if args.hrtf else [])]
    check_common(args, [args.output, args.truth], inputs)
    model = load_model(args.model, args.steps)
    sim = sonify_layout(layout, fmt=args.format, sr=args.sr, sources=sources or None,
                        hrtf=args.hrtf, rt60_s=args.reverb or 0.0, seed=args.seed,
                        text_to_audio=model, keep_labels=not args.exact)
    sim.truth["layout"] = str(args.layout)
    write_outputs(args, sim, inputs)
    if not args.quiet:
        srcs = ", ".join(f"{s['name']} {s['position']} {s['motion']}"
                         for s in sim.truth["sources"])
        print(f"wrote {args.output} ({args.format}, {sim.audio.shape[0]} channels, "
              f"{sim.truth['duration']:g} s, {sim.sr} Hz): {srcs}"
              + (f"; truth {args.truth}" if args.truth else ""))
    return 0
