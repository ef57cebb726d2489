"""Errors that the command line turns into one readable line and exit status 2."""

from __future__ import annotations

from pathlib import Path


class Spa2vError(Exception):
    """Base class for spa2v errors."""


class InputError(Spa2vError):
    """Bad input from the user: a file, a value or a layout.

    The message names the file (when there is one) and the problem; the CLI prints
    it as one line and exits with status 2.
    """

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class CheckpointError(InputError):
    """A model directory is missing or incomplete."""
