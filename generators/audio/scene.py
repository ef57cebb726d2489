"""A parsed text (``SpatialSpec``) and its signals -> the simulator's scene.

Shared by text -> FOA (``generators.audio.foa``) and text-guided mono -> binaural
(``generators.audio.binaural``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from generators.audio.signals import (
    SignalSpec,
    TextToAudioFn,
    class_signal,
    generated_signal,
    load_signal,
)
from generators.audio.textspec import SourceSpec, SpatialSpec, parse_spatial_text
from spa2v.classes import GENERIC
from spa2v.errors import InputError
from spa2v.simulate import SceneSource, Trajectory


def resolve_spec(
    text: str | SpatialSpec,
    *,
    duration_s: float,
    trajectories: Sequence[Trajectory | str | None] | None = None,
) -> SpatialSpec:
    """Parse the text (unless parsed already) and apply explicit keyframes.

    ``trajectories[i]`` (a ``Trajectory`` or ``"az,el,dist@t; ..."``) replaces the
    parsed path of source ``i``; a text that names no source gets a generic one for
    it.  Raises ``InputError`` (exit 2) when a source is still unplaced.
    """
    spec = parse_spatial_text(text, duration_s=duration_s) if isinstance(text, str) else text
    given = [t for t in (trajectories or [])]
    if given:
        if not spec.sources:
            spec.sources.append(SourceSpec(GENERIC.name, GENERIC, None, prompt=spec.text))
        if len(given) > len(spec.sources):
            names = ", ".join(f"'{s.name}'" for s in spec.sources)
            raise InputError(f"{len(given)} trajectories for {len(spec.sources)} source(s) "
                             f"of the text ({names})")
        for src, traj in zip(spec.sources, given, strict=False):
            if traj is None:
                continue
            if isinstance(traj, str):
                traj = Trajectory.parse(traj)
            last = traj.keyframes[-1].t
            if last > duration_s + 1e-9:
                raise InputError(f"trajectory keyframe at t = {last:g} s lies after the end "
                                 f"of the clip ({duration_s:g} s)")
            src.trajectory = traj
            src.understood.append(f"explicit keyframes: {len(traj.keyframes)}")
    spec.require_placed()
    return spec


def spec_scene(
    spec: SpatialSpec,
    *,
    sr: int,
    signals: Sequence[SignalSpec | str | None] | None = None,
    text_to_audio: TextToAudioFn | None = None,
    seed: int = 0,
    loop: bool = True,
) -> tuple[list[SceneSource], list[str]]:
    """One ``SceneSource`` per placed source of ``spec``, and what each one plays.

    Source ``i`` plays ``signals[i]`` when given (array, file, built-in or class name),
    else the text-to-audio model's sound for its prompt, else the procedural source of
    its class.
    """
    duration = spec.duration_s
    signals = list(signals or [])
    if len(signals) > len(spec.sources):
        names = ", ".join(f"'{s.name}'" for s in spec.sources)
        raise InputError(f"{len(signals)} signals for {len(spec.sources)} source(s) of the "
                         f"text ({names}); give at most one per source, in the text's order")
    scene, what = [], []
    for i, src in enumerate(spec.sources):
        if src.trajectory is None:
            raise InputError(f"'{src.name}' is not placed: {spec.describe()}")
        spec_i = signals[i] if i < len(signals) else None
        if spec_i is not None:
            y, label = load_signal(spec_i, duration_s=duration, sr=sr, seed=seed + i, loop=loop)
            label = label if not isinstance(spec_i, str) else str(spec_i)
        elif text_to_audio is not None:
            y = generated_signal(text_to_audio, src.prompt, duration_s=duration, sr=sr,
                                 seed=seed + i)
            label = f"text-to-audio: {src.prompt}"
        else:
            y = class_signal(src.cls, duration_s=duration, sr=sr, seed=seed + i)
            label = f"procedural: {src.cls.source}"
        scene.append(SceneSource(np.asarray(y, np.float32), src.trajectory, name=src.name))
        what.append(label)
    return scene, what


def annotate_truth(truth: dict, spec: SpatialSpec, what: list[str]) -> dict:
    """Add the text, the parse and each source's signal to a simulation's truth."""
    truth["text"] = spec.text
    truth["parse"] = spec.to_dict()
    for entry, src, label in zip(truth["sources"], spec.sources, what, strict=True):
        entry["class"] = src.cls.name
        entry["signal"] = label
        entry["understood"] = list(src.understood)
    return truth
