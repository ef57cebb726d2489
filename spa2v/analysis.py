"""File-level analysis: read a recording, pick its head model, track its sources."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spa2v import cues, tracking
from spa2v._typing import PathType
from spa2v.audio import load_scene_audio
from spa2v.errors import InputError


def analyze_array(
    y: np.ndarray,
    sr: int,
    fmt: str,
    *,
    input_name: str = "<array>",
    hrtf: PathType | None = None,
    max_sources: int = 4,
    hop_s: float = cues.DEFAULT_HOP_S,
) -> dict:
    """Analyse ``(channels, samples)`` audio of a known format; returns the analysis JSON."""
    _, n_fft = cues.frame_params(sr, hop_s)
    if y.shape[-1] < n_fft:
        raise InputError(
            f"is shorter than one analysis frame ({y.shape[-1] / sr * 1000:.1f} ms < "
            f"{n_fft / sr * 1000:.1f} ms)", input_name)
    cal = None
    if fmt == "binaural" and hrtf is not None:
        cal = tracking.sofa_calibration(str(hrtf), int(sr), hop_s)
    an = tracking.analyze_signal(y, sr, fmt, max_sources=max_sources, hop_s=hop_s,
                                 calibration=cal)
    return tracking.to_json(an, input_name)


def analyze_file(
    path: PathType,
    *,
    fmt: str | None = None,
    foa_convention: str = "ambix",
    hrtf: PathType | None = None,
    max_sources: int = 4,
) -> dict:
    """Read and analyse one recording; raises ``InputError`` for bad input."""
    if hrtf is not None and not Path(hrtf).exists():
        raise InputError("no such file", hrtf)
    y, sr, fmt = load_scene_audio(path, fmt=fmt, foa_convention=foa_convention)
    return analyze_array(y, sr, fmt, input_name=Path(path).name, hrtf=hrtf,
                         max_sources=max_sources)
