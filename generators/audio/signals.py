"""Mono source signals for the audio generators: a file, an array, a built-in source, a
sound class or a text-to-audio model, cut or looped to the clip's length.

A text-to-audio model is any callable ``model(prompt, *, duration_s, sr, seed)`` that
returns mono float audio ``(samples,)`` at ``sr`` (``generators.audio.t2a.TextToAudio``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from spa2v._typing import PathType
from spa2v.classes import GENERIC, SoundClass, lookup
from spa2v.errors import InputError
from spa2v.sources import SOURCE_NAMES, make_source

TextToAudioFn = Callable[..., np.ndarray]
SignalSpec = np.ndarray | PathType
LOOP_FADE_S = 0.01
"""A looped recording is cross-faded over this much at each seam."""


def fit_length(y: np.ndarray, n_samples: int, *, loop: bool = True, sr: int = 48000) -> np.ndarray:
    """Trim ``y`` to ``n_samples``, or loop it (short cross-fades at the seams) or pad with zeros.

    Parameters
    ----------
    y : np.ndarray, shape ``(samples,)``
    n_samples : int
    loop : bool
        Repeat a short signal (True) or pad it with silence (False).
    sr : int
        Sample rate, for the length of the seam fades.
    """
    y = np.asarray(y, dtype=np.float32).ravel()
    if len(y) >= n_samples:
        return y[:n_samples].copy()
    if not loop or len(y) == 0:
        return np.concatenate([y, np.zeros(n_samples - len(y), np.float32)])
    fade = min(int(LOOP_FADE_S * sr), len(y) // 4)
    out = np.zeros(n_samples + len(y), np.float32)
    step = len(y) - fade
    ramp = np.ones(len(y), np.float32)
    if fade > 0:
        w = np.sin(0.5 * np.pi * (np.arange(fade) + 0.5) / fade).astype(np.float32) ** 2
        ramp[:fade] = w
        ramp[-fade:] = w[::-1]
    pos = 0
    while pos < n_samples:
        seg = y * ramp if pos > 0 else y * np.concatenate([np.ones(len(y) - fade, np.float32),
                                                           ramp[len(y) - fade:]])
        out[pos:pos + len(y)] += seg
        pos += step
    return out[:n_samples]


def to_mono(y: np.ndarray, what: str = "signal") -> np.ndarray:
    """A 1-D float32 signal from ``(samples,)`` or ``(channels, samples)``."""
    a = np.asarray(y, dtype=np.float32)
    if a.ndim == 2:
        a = a.mean(axis=0)
    if a.ndim != 1 or a.size == 0:
        raise InputError(f"{what}: expected mono audio (samples,) or (channels, samples), "
                         f"got shape {np.shape(y)}")
    if not np.isfinite(a).all():
        raise InputError(f"{what}: contains NaN or infinite samples")
    return a


def class_signal(cls: SoundClass, *, duration_s: float, sr: int, seed: int) -> np.ndarray:
    """The built-in procedural source of a sound class (``noise`` for the generic one)."""
    name = cls.source if cls.source in SOURCE_NAMES else GENERIC.source
    return make_source(name, duration_s=duration_s, sr=sr, seed=seed)


def load_signal(
    spec: SignalSpec | str,
    *,
    duration_s: float,
    sr: int,
    seed: int = 0,
    loop: bool = True,
) -> tuple[np.ndarray, str]:
    """A mono signal of exactly ``duration_s`` and the name it goes by.

    ``spec`` is an array at ``sr`` (mono or ``(channels, samples)``), an audio file
    (read, down-mixed, resampled), a built-in source name (``spa2v.sources``) or a
    sound class (``spa2v.classes``: "dog", "police siren").
    """
    n = max(int(round(duration_s * sr)), 1)
    if isinstance(spec, np.ndarray):
        return fit_length(to_mono(spec), n, loop=loop, sr=sr), "array"
    path = Path(spec)
    if path.is_file():
        from spa2v.audio import read_audio

        y, _ = read_audio(path, sr=sr, mono=True)
        if not np.any(y):
            raise InputError("is silent", path)
        return fit_length(y[0], n, loop=loop, sr=sr), path.stem
    key = str(spec).strip().lower()
    if key in SOURCE_NAMES:
        return make_source(key, duration_s=n / sr, sr=sr, seed=seed), key
    cls = lookup(key)
    if cls is not GENERIC or key in GENERIC.synonyms or key == GENERIC.name:
        return class_signal(cls, duration_s=n / sr, sr=sr, seed=seed), cls.name
    if path.suffix or "/" in key or "\\" in key or path.exists():
        raise InputError("no such audio file", path)
    raise InputError(f"unknown source {spec!r}: not a file, a built-in source "
                     f"({', '.join(SOURCE_NAMES)}) or a sound class")


def generated_signal(
    model: TextToAudioFn, prompt: str, *, duration_s: float, sr: int, seed: int
) -> np.ndarray:
    """Audio from a text-to-audio model, checked and cut to length."""
    y = to_mono(model(prompt, duration_s=duration_s, sr=sr, seed=seed), "text-to-audio output")
    n = max(int(round(duration_s * sr)), 1)
    if not np.any(y):
        raise InputError(f"the text-to-audio model returned silence for {prompt!r}")
    return fit_length(y, n, sr=sr)
