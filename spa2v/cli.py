"""The ``spa2v`` command line.

Each subcommand lives in ``spa2v/commands/<name>.py`` and defines ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``.  Exit status: 0 on success; 2 for
bad input or usage, with one line on stderr naming the file and the problem; 1 for an
unexpected internal error (the traceback only with ``SPA2V_DEBUG=1``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import traceback

from spa2v import __version__
from spa2v.errors import InputError

ORDER = ["simulate", "analyze", "plan", "render", "generate", "foa", "spatialize", "sonify",
         "eval", "roundtrip", "video2audio", "demo"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _command_modules() -> list:
    import spa2v.commands as pkg

    names = [m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")]
    names.sort(key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    return [importlib.import_module(f"spa2v.commands.{n}") for n in names]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="spa2v",
        description="Spatial audio to spatially-aware video, and back.",
    )
    parser.add_argument("--version", action="version", version=f"spa2v {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--overwrite", action="store_true",
                        help="replace output files that already exist")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP, parents=[common])
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    prog = f"spa2v {args.command}"
    try:
        return int(args._run(args) or 0)
    except InputError as exc:
        sys.stderr.write(f"{prog}: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        return 130
    except Exception as exc:  # an unexpected internal error
        if os.environ.get("SPA2V_DEBUG"):
            traceback.print_exc()
        msg = str(exc).splitlines()[0] if str(exc) else ""
        sys.stderr.write(f"{prog}: internal error: {type(exc).__name__}: {msg} "
                         "(set SPA2V_DEBUG=1 for the traceback)\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
