"""``spa2v spatialize``: mono recording(s) placed by a text -> binaural."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from spa2v.errors import InputError

NAME = "spatialize"
HELP = "place mono recordings where a text says and render them binaurally"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="IN",
                   help="mono recordings, one per source the text places, in its order")
    p.add_argument("--text", required=True, metavar="TEXT",
                   help="e.g. 'on the far right', 'moves from the left to the right', "
                        "'a dog to the left of a car', 'the piano is nearer than the singer'")
    p.add_argument("-o", "--output", required=True, metavar="OUT.wav",
                   help="binaural audio to write (left, right)")
    p.add_argument("--hrtf", default=None, metavar="FILE.sofa",
                   help="measured HRTFs (default: spherical head model)")
    p.add_argument("--emphasis", type=float, default=None, metavar="DB",
                   help="extra interaural level difference at 90 degrees (default 6 dB with "
                        "the spherical head, 0 with --hrtf); 0 renders the bare head model")
    p.add_argument("--trajectory", action="append", default=None, metavar="TEXT",
                   help="explicit keyframes 'az,el,dist@t; ...' per source (text's order)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="length (default: the longest input)")
    p.add_argument("--reverb", type=float, default=None, metavar="RT60_S",
                   help="add a room with this reverberation time in seconds")
    p.add_argument("--sr", "--sample-rate", dest="sr", type=int, default=None, metavar="HZ",
                   help="sample rate (default: the first input's)")
    p.add_argument("--seed", type=int, default=0, metavar="N")
    p.add_argument("--truth", default=None, metavar="OUT.json",
                   help="write the ground truth (and what the text was read as) here")
    from spa2v.commands.foa import add_parser_options

    add_parser_options(p)


def run(args: argparse.Namespace) -> int:
    from generators.audio.binaural import spatialize
    from spa2v.audio import read_audio
    from spa2v.commands.foa import check_common, read_text
    from spa2v.commands.simulate import write_outputs

    inputs = [str(i) for i in args.inputs]
    for i in inputs + ([args.hrtf] if args.hrtf else []):
        if not Path(i).exists():
            raise InputError("no such file", i)
    if args.emphasis is not None and not (math.isfinite(args.emphasis)
                                          and 0.0 <= args.emphasis <= 20.0):
        raise InputError(f"--emphasis must be within [0, 20] dB, got {args.emphasis}")
    sr_check = args.sr if args.sr is not None else 48000
    saved_sr, args.sr = args.sr, sr_check
    check_common(args, [args.output, args.truth], inputs + ([args.hrtf] if args.hrtf else []))
    args.sr = saved_sr
    if not args.text.strip():
        raise InputError("--text is empty")

    signals = []
    sr = args.sr
    for path in inputs:
        y, rate = read_audio(path, sr=sr, mono=False)
        sr = rate if sr is None else sr
        if y.shape[0] > 1:
            if not args.quiet:
                sys.stderr.write(f"spa2v spatialize: note: {path}: {y.shape[0]} channels, "
                                 "mixed down to mono\n")
            y = y.mean(axis=0, keepdims=True)
        if not y.any():
            raise InputError("is silent", path)
        signals.append(y[0])
    duration = args.duration
    if duration is not None and not (math.isfinite(duration) and 0.0 < duration <= 3600.0):
        raise InputError(f"--duration must be in (0, 3600] seconds, got {duration}")
    if duration is None:
        duration = max(len(s) for s in signals) / sr
    spec = read_text(args, duration)
    sim, spec = spatialize(signals, sr, spec, hrtf=args.hrtf, duration_s=duration,
                           lateral_emphasis_db=args.emphasis, rt60_s=args.reverb,
                           seed=args.seed, names=[Path(i).name for i in inputs])
    write_outputs(args, sim, inputs)
    if not args.quiet:
        print(f"wrote {args.output} (binaural, {sim.truth['hrtf']}, {duration:g} s, {sim.sr} Hz): "
              f"{spec.describe()}" + (f"; truth {args.truth}" if args.truth else ""))
    return 0
