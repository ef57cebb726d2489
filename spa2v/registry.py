"""Planners and generators found by name.

Installed packages add their own through the entry-point groups ``spa2v.planners`` and
``spa2v.video_generators`` (value ``module:Class``); the built-in ones are listed here
too, so a source checkout works without installation metadata.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from spa2v.errors import InputError

GROUPS = {
    "planners": "spa2v.planners",
    "video_generators": "spa2v.video_generators",
}
BUILTIN = {
    "planners": {"rule": "planners.rule:RulePlanner", "mllm": "planners.mllm:MLLMPlanner"},
    "video_generators": {
        "animatic": "generators.video.animatic:AnimaticRenderer",
        "diffusion": "generators.video.diffusion:DiffusionRenderer",
    },
}

EXTRAS = {"mllm": "mllm", "diffusion": "diffusion"}
"""The pyproject extra that brings a built-in's third-party dependencies."""


def available(kind: str) -> dict[str, str]:
    """Names and ``module:Class`` targets of one kind (built-ins, then entry points)."""
    found = dict(BUILTIN[kind])
    for ep in entry_points(group=GROUPS[kind]):
        found.setdefault(ep.name, ep.value)
    return found


def load(kind: str, name: str):
    """The class registered under ``name``; ``InputError`` listing the names if unknown."""
    targets = available(kind)
    if name not in targets:
        raise InputError(f"unknown {kind[:-1].replace('_', ' ')} {name!r}; available: "
                         f"{', '.join(sorted(targets))}")
    module, _, attr = targets[name].partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top and top not in {"spa2v", "planners", "generators", "demo"}:
            extra = EXTRAS.get(name, "all")
            raise InputError(f"the {name} {kind[:-1].replace('_', ' ')} needs the package "
                             f"{top!r}: pip install 'spa2v[{extra}]'") from exc
        raise
