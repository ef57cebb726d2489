"""Safe output files: nothing partial is left behind, nothing is overwritten unasked."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

from spa2v._typing import PathType
from spa2v.errors import InputError


def check_output(path: PathType, *, overwrite: bool = False, inputs: Iterable[PathType] = ()) -> Path:
    """Check that ``path`` may be written: never an input, never an existing file unasked."""
    out = Path(path)
    resolved = out.resolve()
    for src in inputs:
        if src is not None and Path(src).resolve() == resolved:
            raise InputError("is also an input; choose another output name", out)
    if out.is_dir():
        raise InputError("is a directory, not an output file name", out)
    if out.exists() and not overwrite:
        raise InputError("already exists; pass --overwrite to replace it", out)
    return out


@contextlib.contextmanager
def atomic_output(
    path: PathType, overwrite: bool = False, *, inputs: Iterable[PathType] = ()
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The temporary name keeps the suffix, so writers that infer the format from it
    (soundfile, PyAV) work.  On any exception the temporary file is removed and the
    exception propagates; ``path`` is untouched.
    """
    out = check_output(path, overwrite=overwrite, inputs=inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{secrets.token_hex(4)}.partial{out.suffix}")
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"the writer produced no file for {out}")
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
