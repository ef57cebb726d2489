"""``spa2v mllm-examples``: rebuild the MLLM planner's in-context example bank."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spa2v.errors import InputError
from spa2v.fsutil import atomic_output

NAME = "mllm-examples"
HELP = ("rebuild the MLLM planner's example bank from simulated scenes with known "
        "trajectories and their ground-truth layouts")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default=None, metavar="FILE.json",
                   help="where to write the bank (default: the bank inside the package, "
                        "planners/mllm/examples.json; needs --overwrite)")
    p.add_argument("--scenes", type=int, default=None, metavar="N",
                   help="number of scenes (default 30: two of each of 15 kinds)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="default 0")


def run(args: argparse.Namespace) -> int:
    from planners.mllm.bank import DEFAULT_SCENES, build_bank, default_path, dumps_bank

    n = DEFAULT_SCENES if args.scenes is None else args.scenes
    if not 1 <= n <= 1000:
        raise InputError(f"--scenes must be within [1, 1000], got {n}")
    if args.seed < 0:
        raise InputError(f"--seed must be 0 or more, got {args.seed}")
    out = Path(args.output) if args.output is not None else default_path()
    if out.suffix.lower() != ".json":
        raise InputError("the bank must be a .json file", out)

    def progress(done: int, total: int) -> None:
        if not args.quiet:
            sys.stderr.write(f"\rscene {done}/{total}")
            sys.stderr.flush()

    with atomic_output(out, args.overwrite) as tmp:
        bank = build_bank(n, args.seed, progress=progress)
        if not bank["examples"]:
            raise InputError("no scene could be analysed into its known sources; nothing to "
                             "write")
        text = dumps_bank(bank)
        tmp.write_text(text, encoding="utf-8")
    if not args.quiet:
        sys.stderr.write("\n")
        print(f"wrote {out}: {len(bank['examples'])} examples ({bank['redrawn']} scene draws "
              f"repeated, {bank['skipped']} scenes skipped), {len(text.encode()) / 1024:.0f} KiB")
    return 0
