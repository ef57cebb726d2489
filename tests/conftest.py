"""Shared fixtures: a seeded generator, an audio-file writer and the shared KEMAR SOFA file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def write_audio(tmp_path: Path) -> Callable[..., Path]:
    """Write ``(channels, samples)`` audio to ``tmp_path / name`` with soundfile; return the path."""

    def _write(name: str, y: np.ndarray, sr: int, **kw) -> Path:
        path = tmp_path / name
        arr = np.asarray(y, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[None, :]
        if path.suffix.lower() == ".wav":
            kw.setdefault("subtype", "FLOAT")
        sf.write(str(path), arr.T, int(sr), **kw)
        return path

    return _write


@pytest.fixture
def kemar_sofa() -> Path:
    """The shared MIT KEMAR SOFA file; the test is skipped where it is absent."""
    path = SHARED_DATA / "hrtf" / "mit_kemar_normal_pinna.sofa"
    if not path.exists():
        pytest.skip("shared KEMAR SOFA file absent")
    return path


@pytest.fixture
def torch_one_thread():
    """Two shared cores: one torch thread avoids oversubscription stalls."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
