"""The demo's built-in examples: short scenes simulated with known ground truth.

They are made on first start (a few seconds) into the demo's data directory, so the
app works on a fresh machine with nothing downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spa2v.audio import write_wav
from spa2v.simulate import SceneSource, Trajectory, simulate_scene
from spa2v.sources import make_source

SR = 48000


@dataclass(frozen=True)
class Example:
    key: str
    title: str
    kind: str  # "spatial" (audio -> video, evaluate) or "mono" (spatialization)
    labels: tuple[str, ...] = ()

    @property
    def filename(self) -> str:
        return f"{self.key}.wav"


EXAMPLES: tuple[Example, ...] = (
    Example("car_crossing", "A car passes from left to right (binaural)", "spatial", ("car",)),
    Example("dog_and_siren", "A dog on the left, a siren on the right (binaural)", "spatial",
            ("siren", "dog")),
    Example("helicopter_foa", "A helicopter flies from right to left (FOA)", "spatial",
            ("helicopter",)),
    Example("guitar_mono", "A guitar, mono (for spatialization)", "mono", ("guitar",)),
)


def _scene(key: str) -> tuple[list[SceneSource], str, float]:
    if key == "car_crossing":
        d = 6.0
        return [SceneSource(make_source("engine", duration_s=d, sr=SR, seed=1),
                            Trajectory.parse(f"70,0,6@0; -70,0,6@{d}"), "car")], "binaural", d
    if key == "dog_and_siren":
        d = 5.0
        return [
            SceneSource(make_source("siren", duration_s=d, sr=SR, seed=2),
                        Trajectory.static(-50.0, 0.0, 4.0), "siren"),
            SceneSource(make_source("bark", duration_s=d, sr=SR, seed=3),
                        Trajectory.static(50.0, 0.0, 3.0), "dog", gain_db=-2.0),
        ], "binaural", d
    if key == "helicopter_foa":
        d = 6.0
        return [SceneSource(make_source("helicopter", duration_s=d, sr=SR, seed=4),
                            Trajectory.parse(f"-60,20,15@0; 60,20,15@{d}"), "helicopter")], \
            "foa", d
    raise KeyError(key)


def ensure_examples(directory: Path) -> dict[str, Path]:
    """Make the examples missing from ``directory``; return ``{key: path}`` of all of them."""
    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for ex in EXAMPLES:
        path = directory / ex.filename
        if not path.exists():
            if ex.kind == "mono":
                y = make_source("guitar", duration_s=5.0, sr=SR, seed=5)[None, :]
                write_wav(path, 0.5 * y / max(1e-9, float(abs(y).max())), SR)
            else:
                sources, fmt, d = _scene(ex.key)
                write_wav(path, simulate_scene(sources, fmt=fmt, sr=SR, duration_s=d,
                                               noise_snr_db=30.0, seed=7).audio, SR)
        paths[ex.key] = path
    return paths


def by_title(title: str) -> Example:
    for ex in EXAMPLES:
        if title in (ex.title, ex.key):
            return ex
    raise KeyError(title)
