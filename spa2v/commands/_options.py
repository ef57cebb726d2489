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
    m = p.add_argument_group("MLLM planner (--planner mllm)")
    m.add_argument("--endpoint", metavar="URL",
                   help="an OpenAI-compatible chat-completions server, e.g. http://127.0.0.1:8000/v1")
    _add_model_flag(p)
    m.add_argument("--mllm-model", metavar="NAME",
                   help="the server's model name (same as --model; use it when --model is taken "
                   "by --generator diffusion)")
    m.add_argument("--api-key-env", metavar="VAR",
                   help="environment variable holding the server's API key")
    m.add_argument("--model-path", metavar="DIR",
                   help="a local transformers model directory instead of a server")
    m.add_argument("--examples", type=int, default=3, metavar="K",
                   help="in-context examples retrieved from the example bank (default 3)")
    m.add_argument("--temperature", type=float, default=0.5)
    m.add_argument("--retries", type=int, default=2, metavar="N",
                   help="retries with the validation error fed back before the rule fallback")
    m.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="seconds to wait for a reply (default 60)")
    m.add_argument("--send-audio", action="store_true",
                   help="also send a mono 16 kHz downmix as an input_audio part")
    m.add_argument("--max-new-tokens", type=int, default=None, metavar="N",
                   help="reply length limit of a local model (default: enough for the layout)")


def add_render_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("rendering")
    g.add_argument("--generator", default="animatic", help="video generator (default: animatic; "
                   f"available: {', '.join(sorted(available('video_generators')))})")
    g.add_argument("--fps", type=int, default=24, metavar="N", help="video frame rate")
    g.add_argument("--size", default="512x288", metavar="WxH", help="video size (even numbers)")
    g.add_argument("--seed", type=int, default=0, metavar="N")
    g.add_argument("--overlay", action="store_true", help="draw the layout's boxes and labels")
    d = p.add_argument_group("diffusion generator (--generator diffusion)")
    _add_model_flag(p)
    d.add_argument("--video-model", metavar="DIR|tiny",
                   help="the diffusers checkpoint (same as --model; use it when --model is taken "
                   "by --planner mllm)")
    d.add_argument("--guidance", choices=("energy", "mask", "none"), default=None,
                   help="layout guidance (default energy)")
    d.add_argument("--steps", type=int, default=None, metavar="N", help="denoising steps")
    d.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if present)")
    d.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default=None)
    d.add_argument("--cpu-offload", action="store_true",
                   help="keep idle components on the CPU (accelerate)")


def add_object_source_options(p, model_help: str) -> None:
    """What each layout object plays, for ``sonify`` and ``video2audio``."""
    p.add_argument("--source", action="append", default=None, metavar="NAME=FILE",
                   help="the recording an object plays, by object name or id; repeat for "
                        "several (default: the procedural source of its class, or --model)")
    p.add_argument("--model", default=None, metavar="DIR|tiny", help=model_help)
    p.add_argument("--steps", type=int, default=None, metavar="N",
                   help="denoising steps of the text-to-audio model")


def add_sonify_options(g) -> None:
    """How ``sonify`` and ``video2audio`` render a layout's objects as sound."""
    g.add_argument("--hrtf", default=None, metavar="FILE.sofa",
                   help="measured HRTFs for binaural output (default: spherical head)")
    g.add_argument("--reverb", type=float, default=None, metavar="RT60_S",
                   help="add a room with this reverberation time in seconds")
    g.add_argument("--exact", action="store_true",
                   help="render the boxes as they are, without making each object's motion "
                        "label unmistakable (see generators.audio.sonify)")
    g.add_argument("--sr", "--sample-rate", dest="sr", type=int, default=48000, metavar="HZ",
                   help="sample rate (default 48000)")
    g.add_argument("--seed", type=int, default=0, metavar="N")


def _add_model_flag(p: argparse.ArgumentParser) -> None:
    if "--model" not in p._option_string_actions:  # generate has both option groups
        p.add_argument("--model", metavar="NAME|DIR",
                       help="the MLLM's model name (--planner mllm) or the diffusion "
                       "checkpoint directory or 'tiny' (--generator diffusion)")


def _model_for(args: argparse.Namespace, role: str) -> str | None:
    """The model of ``role`` ("mllm" or "video"): its own flag, else the shared ``--model``."""
    own, other = ("mllm_model", "video_model") if role == "mllm" else ("video_model", "mllm_model")
    if getattr(args, own, None):
        return getattr(args, own)
    if args.model is None:
        return None
    takes = {"mllm": getattr(args, "planner", None) == "mllm",
             "video": getattr(args, "generator", None) == "diffusion"}
    if not any(takes.values()):
        raise InputError("--model is used only with --planner mllm or --generator diffusion")
    if all(takes.values()) and not getattr(args, other, None):
        raise InputError("--model is ambiguous with both --planner mllm and --generator "
                         "diffusion: give --mllm-model NAME and --video-model DIR")
    return args.model if takes[role] else None


def plan_options(args: argparse.Namespace) -> PlanOptions:
    if args.keyframe_fps <= 0:
        raise InputError("--keyframe-fps must be positive")
    if args.max_sources < 1:
        raise InputError("--max-sources must be at least 1")
    try:
        camera = Camera(args.camera, args.hfov)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    if args.examples < 0:
        raise InputError("--examples must be 0 or more")
    if args.retries < 0:
        raise InputError("--retries must be 0 or more")
    if args.timeout <= 0:
        raise InputError("--timeout must be positive")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise InputError("--max-new-tokens must be at least 1")
    if not 0.0 <= args.temperature <= 2.0:
        raise InputError("--temperature must be between 0 and 2")
    return PlanOptions(planner=args.planner, labels=args.labels, caption=args.caption,
                       fps=args.keyframe_fps, fmt=args.format, foa_convention=args.foa_convention,
                       hrtf=args.hrtf, camera=camera, background=args.background,
                       max_sources=args.max_sources, endpoint=args.endpoint,
                       model=_model_for(args, "mllm"), api_key_env=args.api_key_env,
                       model_path=args.model_path, examples=args.examples,
                       temperature=args.temperature, retries=args.retries,
                       timeout_s=args.timeout, send_audio=args.send_audio,
                       max_new_tokens=args.max_new_tokens)


def render_options(args: argparse.Namespace) -> RenderOptions:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", args.size)
    if not m:
        raise InputError(f"--size must look like 512x288, got {args.size!r}")
    w, h = int(m.group(1)), int(m.group(2))
    if w < 16 or h < 16 or w % 2 or h % 2 or w > 4096 or h > 4096:
        raise InputError(f"--size {w}x{h}: width and height must be even, 16..4096")
    if not 1 <= args.fps <= 120:
        raise InputError("--fps must be between 1 and 120")
    if args.steps is not None and not 1 <= args.steps <= 1000:
        raise InputError("--steps must be between 1 and 1000")
    return RenderOptions(generator=args.generator, fps=args.fps, size=(w, h), seed=args.seed,
                         overlay=args.overlay, model=_model_for(args, "video"),
                         guidance=args.guidance, steps=args.steps, device=args.device,
                         dtype=args.dtype, cpu_offload=args.cpu_offload)
