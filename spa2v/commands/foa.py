"""``spa2v foa``: text (and optional keyframes) -> first-order Ambisonics."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from spa2v.commands.simulate import write_outputs
from spa2v.errors import InputError
from spa2v.fsutil import check_output

NAME = "foa"
HELP = "generate first-order Ambisonics (AmbiX) from a text that says where sounds are and move"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text", required=True, metavar="TEXT",
                   help="e.g. 'a police siren moves from the left to the right', 'a bird chirps "
                        "above the listener', 'a dog barks on the left while a car passes by'")
    p.add_argument("-o", "--output", required=True, metavar="OUT.wav", help="FOA audio to write")
    p.add_argument("--source", action="append", default=None, metavar="NAME|FILE",
                   help="signal of a source, in the order the text names them: an audio file, "
                        "a built-in source or a sound class; repeat for several (default: the "
                        "class the text names, or --model)")
    p.add_argument("--trajectory", action="append", default=None, metavar="TEXT",
                   help="explicit keyframes 'az,el,dist@t; ...' for a source (repeat in the "
                        "text's order); they replace what the text says about its path")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="length in seconds (default: the first source file's, else 4)")
    p.add_argument("--model", default=None, metavar="DIR|tiny",
                   help="a local text-to-audio checkpoint (AudioLDM 2 family, diffusers "
                        "format) for sources without --source; 'tiny' builds a random one")
    p.add_argument("--steps", type=int, default=None, metavar="N",
                   help="denoising steps of the text-to-audio model")
    p.add_argument("--reverb", type=float, default=None, metavar="RT60_S",
                   help="add a room with this reverberation time in seconds")
    p.add_argument("--sr", "--sample-rate", dest="sr", type=int, default=48000, metavar="HZ",
                   help="sample rate (default 48000)")
    p.add_argument("--seed", type=int, default=0, metavar="N")
    p.add_argument("--truth", default=None, metavar="OUT.json",
                   help="write the ground truth (and what the text was read as) here")
    add_parser_options(p)


def add_parser_options(p: argparse.ArgumentParser) -> None:
    """``--parser rule|llm`` and the language model's options (those of the mllm planner)."""
    g = p.add_argument_group("reading the text")
    g.add_argument("--parser", choices=("rule", "llm"), default="rule",
                   help="rule (default, no model) or llm: a chat model reads the text, with "
                        "the rule parser as the fallback")
    g.add_argument("--llm-endpoint", default=None, metavar="URL",
                   help="an OpenAI-compatible chat server (with --llm-model)")
    g.add_argument("--llm-model", default=None, metavar="NAME", help="the model on the server")
    g.add_argument("--llm-api-key-env", default=None, metavar="VAR",
                   help="environment variable that holds the server's API key")
    g.add_argument("--llm-model-path", default=None, metavar="DIR",
                   help="a local transformers chat model instead of a server")


def read_text(args: argparse.Namespace, duration_s: float):
    """The text read by the chosen parser, explicit keyframes applied; exit 2 if unplaced."""
    from generators.audio.scene import resolve_spec

    if not args.text.strip():
        raise InputError("--text is empty")
    if args.parser == "rule":
        if args.llm_endpoint or args.llm_model_path:
            raise InputError("--llm-endpoint and --llm-model-path need --parser llm")
        return resolve_spec(args.text, duration_s=duration_s, trajectories=args.trajectory)
    from generators.audio.textllm import parse_with_llm
    from planners.mllm.backends import OpenAIChatBackend, TransformersBackend

    if bool(args.llm_endpoint) == bool(args.llm_model_path):
        raise InputError("--parser llm needs --llm-endpoint URL --llm-model NAME or "
                         "--llm-model-path DIR")
    backend = (OpenAIChatBackend(args.llm_endpoint, args.llm_model or "",
                                 api_key_env=args.llm_api_key_env)
               if args.llm_endpoint else TransformersBackend(args.llm_model_path))
    spec, notes = parse_with_llm(args.text, backend, duration_s=duration_s)
    if not args.quiet:
        for note in notes:
            sys.stderr.write(f"spa2v {args.command}: note: {note}\n")
    return resolve_spec(spec, duration_s=duration_s, trajectories=args.trajectory)


def check_common(args: argparse.Namespace, outputs: list[str | None],
                 inputs: list[str]) -> None:
    """Checks shared by ``foa``, ``spatialize`` and ``sonify`` (before any work)."""
    if not 8000 <= args.sr <= 192000:
        raise InputError(f"--sr must be within [8000, 192000] Hz, got {args.sr}")
    if args.reverb is not None and not (math.isfinite(args.reverb)
                                        and 0.05 <= args.reverb <= 10.0):
        raise InputError(f"--reverb (RT60) must be within [0.05, 10] seconds, got {args.reverb}")
    if Path(args.output).suffix.lower() != ".wav":
        raise InputError("output must be a .wav file", args.output)
    named = [o for o in outputs if o is not None]
    resolved = [Path(o).resolve() for o in named]
    if len(set(resolved)) != len(resolved):
        raise InputError("two outputs name the same file", named[0])
    for o in named:
        check_output(o, overwrite=args.overwrite, inputs=inputs)


def load_model(spec: str | None, steps: int | None):
    """The text-to-audio model of ``--model`` (None without it)."""
    if spec is None:
        return None
    from generators.audio.t2a import TextToAudio

    if steps is not None and not 1 <= steps <= 1000:
        raise InputError(f"--steps must be within [1, 1000], got {steps}")
    if spec == "tiny":
        return TextToAudio.tiny(steps=steps)
    return TextToAudio.from_pretrained(spec, steps=steps)


def run(args: argparse.Namespace) -> int:
    from generators.audio.foa import text_to_foa

    inputs = [s for s in (args.source or []) if Path(s).is_file()]
    check_common(args, [args.output, args.truth], inputs)
    duration = args.duration
    if duration is not None and not (math.isfinite(duration) and 0.0 < duration <= 600.0):
        raise InputError(f"--duration must be in (0, 600] seconds, got {duration}")
    if duration is None:
        duration = 4.0
        if inputs:
            import soundfile as sf

            try:
                duration = min(max(sf.info(inputs[0]).duration, 0.1), 600.0)
            except Exception:  # not readable by soundfile: read_audio reports it below
                duration = 4.0
    # read the text first: a text that places nothing fails before any model loads
    spec = read_text(args, duration)
    model = load_model(args.model, args.steps)
    sim, spec = text_to_foa(spec, duration_s=duration, sr=args.sr, sources=args.source,
                            text_to_audio=model, rt60_s=args.reverb, seed=args.seed)
    write_outputs(args, sim, inputs)
    if not args.quiet:
        print(f"wrote {args.output} (FOA AmbiX, {duration:g} s, {sim.sr} Hz): "
              f"{spec.describe()}" + (f"; truth {args.truth}" if args.truth else ""))
    return 0
