"""``spa2v demo``: the Gradio app."""

from __future__ import annotations

import argparse
from pathlib import Path

from spa2v.errors import InputError

NAME = "demo"
HELP = "start the Gradio demo (audio to video, text to FOA, spatialization, evaluation)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--data-dir", metavar="DIR",
                   help="examples and per-request files (default $SPA2V_DEMO_DIR or "
                   "~/.cache/spa2v/demo)")
    p.add_argument("--concurrency", type=int, default=2, metavar="N",
                   help="requests worked on at once; the rest wait in the queue")


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise InputError(f"--port must be 1..65535, got {args.port}")
    if args.concurrency < 1:
        raise InputError("--concurrency must be at least 1")
    try:
        from demo.app import launch
    except ModuleNotFoundError as exc:
        raise InputError(f"the demo needs {exc.name!r}: pip install 'spa2v[demo]'") from exc
    launch(args.host, args.port, data_dir=Path(args.data_dir) if args.data_dir else None,
           concurrency=args.concurrency, quiet=args.quiet)
    return 0
