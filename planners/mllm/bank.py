"""The in-context example bank: simulated scenes with known trajectories and their layouts.

Each example is a scene rendered by :func:`spa2v.simulate.simulate_scene` (binaural
or FOA, one or two sources: static left, center or right, crossings both ways,
approaching, receding, flying), analysed like any recording (so its cues are
*measured*, as at planning time), and paired with its ground-truth layout: the rule
planner's geometry applied to the *true* trajectories (true azimuth through the
camera model, true distance for the size), at ``BANK_FPS`` keyframes per second.

The bank is a small JSON file inside the package (``examples.json``); ``spa2v
mllm-examples`` rebuilds it.  Retrieval is nearest-neighbour search on
:func:`planners.mllm.summary.cue_features` (Euclidean).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from itertools import permutations
from pathlib import Path
from typing import Any

import numpy as np

from planners.mllm.summary import FEATURE_NAMES, SceneCues, cue_features, summarize
from spa2v.errors import InputError
from spa2v.layout import SceneLayout, layout_from_dict

BANK_VERSION = 1
BANK_FPS = 2.0
"""Keyframe rate of the stored layouts (the request resamples them to its own)."""
DEFAULT_SCENES = 30
SCENE_DURATION_S = 4.0
SCENE_SR = 48000
MAX_DRAWS = 5
"""A scene whose analysis finds a different number of sources is drawn again, this often."""


def default_path() -> Path:
    """The bank shipped with the package."""
    return Path(str(resources.files("planners.mllm").joinpath("examples.json")))


# --------------------------------------------------------------------------- bank
@dataclass
class Example:
    """One example: its id, the user's labels, its cues and its ground-truth layout."""

    id: str
    labels: list[str]
    cues: SceneCues
    layout: SceneLayout
    features: np.ndarray


class ExampleBank:
    """Examples and their retrieval features."""

    def __init__(self, examples: Sequence[Example]) -> None:
        self.examples = list(examples)
        self.features = (
            np.stack([e.features for e in self.examples])
            if self.examples
            else np.zeros((0, len(FEATURE_NAMES)))
        )

    def __len__(self) -> int:
        return len(self.examples)

    @classmethod
    def from_dict(cls, data: Any, *, source_name: str = "example bank") -> ExampleBank:
        if not isinstance(data, dict) or data.get("version") != BANK_VERSION:
            raise InputError(f"not a version-{BANK_VERSION} example bank; rebuild it with "
                             "'spa2v mllm-examples'", source_name)
        examples = []
        for i, e in enumerate(data.get("examples") or []):
            try:
                cues = SceneCues.from_dict(e["cues"])
                layout = layout_from_dict(e["layout"], source_name=f"{source_name}: example {i}")
                examples.append(Example(str(e["id"]), list(e.get("labels") or []), cues, layout,
                                        cue_features(cues)))
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"example {i} is malformed ({type(exc).__name__}: {exc}); "
                                 "rebuild the bank with 'spa2v mllm-examples'",
                                 source_name) from None
        return cls(examples)

    @classmethod
    def load(cls, path: str | Path | None = None) -> ExampleBank:
        """Read a bank file (default: the one shipped with the package)."""
        p = Path(path) if path is not None else default_path()
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError("the example bank is missing; rebuild it with "
                             "'spa2v mllm-examples'", p) from None
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the example bank: {exc}", p) from None
        return cls.from_dict(data, source_name=str(p))

    def nearest(self, scene: SceneCues, k: int) -> list[Example]:
        """The ``k`` examples whose cue features are nearest to ``scene``'s (ties: bank order)."""
        if k <= 0 or not self.examples:
            return []
        d = np.linalg.norm(self.features - cue_features(scene)[None, :], axis=1)
        order = np.argsort(np.round(d, 9), kind="stable")[:k]
        return [self.examples[i] for i in order]


# --------------------------------------------------------------------------- scenes
@dataclass(frozen=True)
class SourceSpec:
    """One simulated source: class name, azimuth and distance at start and end."""

    name: str
    az_start_deg: float
    az_end_deg: float
    r_start_m: float
    r_end_m: float
    elevation_deg: float = 0.0
    gain_db: float = 0.0


@dataclass(frozen=True)
class SceneSpec:
    kind: str
    fmt: str
    sources: tuple[SourceSpec, ...]


GROUND = ("car", "person", "dog", "motorcycle", "ambulance", "truck", "piano", "guitar", "cat",
          "train", "drum")
AIR = ("bird", "helicopter", "plane")

# Kinds, in the order that the first scenes cover them; each is (name, n_sources, maker).
# A maker draws one scene of its kind from a generator and a pool of class names.
_Maker = Callable[[np.random.Generator, Callable[[], str]], tuple[SourceSpec, ...]]


def _static(side: float) -> _Maker:
    def make(rng: np.random.Generator, pick: Callable[[], str]) -> tuple[SourceSpec, ...]:
        az = side * rng.uniform(35.0, 70.0) if side else rng.uniform(-8.0, 8.0)
        r = rng.uniform(1.5, 4.0)
        return (SourceSpec(pick(), az, az, r, r),)

    return make


def _crossing(direction: float) -> _Maker:
    def make(rng: np.random.Generator, pick: Callable[[], str]) -> tuple[SourceSpec, ...]:
        a0, a1 = rng.uniform(55.0, 75.0), rng.uniform(55.0, 75.0)
        r = rng.uniform(3.0, 6.0)
        return (SourceSpec(pick(), direction * a0, -direction * a1, r, r),)

    return make


def _radial(approach: bool, side: float) -> _Maker:
    def make(rng: np.random.Generator, pick: Callable[[], str]) -> tuple[SourceSpec, ...]:
        az = side * rng.uniform(30.0, 55.0) if side else rng.uniform(-6.0, 6.0)
        near, far = rng.uniform(1.2, 2.0), rng.uniform(5.0, 8.0)
        r0, r1 = (far, near) if approach else (near, far)
        return (SourceSpec(pick(), az, az, r0, r1),)

    return make


def _flying(rng: np.random.Generator, pick: Callable[[], str]) -> tuple[SourceSpec, ...]:
    name = AIR[int(rng.integers(len(AIR)))]
    d = 1.0 if rng.random() < 0.5 else -1.0
    a = rng.uniform(50.0, 70.0)
    el = rng.uniform(20.0, 40.0)
    r = rng.uniform(8.0, 20.0)
    return (SourceSpec(name, d * a, -d * a, r, r, elevation_deg=el),)


def _two_static(rng: np.random.Generator, pick: Callable[[], str]) -> tuple[SourceSpec, ...]:
    a, b = rng.uniform(40.0, 70.0), -rng.uniform(40.0, 70.0)
    ra, rb = rng.uniform(1.5, 3.0), rng.uniform(1.5, 3.0)
    return (SourceSpec(pick(), a, a, ra, ra), SourceSpec(pick(), b, b, rb, rb, gain_db=-2.0))


def _cross_and_static(rng: np.random.Generator, pick: Callable[[], str]) -> tuple[SourceSpec, ...]:
    d = 1.0 if rng.random() < 0.5 else -1.0
    r = rng.uniform(3.0, 5.0)
    static_az = -d * rng.uniform(55.0, 75.0)
    return (SourceSpec(pick(), d * rng.uniform(55.0, 70.0), -d * rng.uniform(5.0, 20.0), r, r),
            SourceSpec(pick(), static_az, static_az, 2.0, 2.0, gain_db=-3.0))


def _approach_and_static(rng: np.random.Generator,
                         pick: Callable[[], str]) -> tuple[SourceSpec, ...]:
    d = 1.0 if rng.random() < 0.5 else -1.0
    az = d * rng.uniform(35.0, 60.0)
    static_az = -d * rng.uniform(40.0, 70.0)
    approach = rng.random() < 0.5
    r0, r1 = (6.0, 1.5) if approach else (1.5, 6.0)
    return (SourceSpec(pick(), az, az, r0, r1),
            SourceSpec(pick(), static_az, static_az, 2.5, 2.5, gain_db=-2.0))


KINDS: tuple[tuple[str, _Maker], ...] = (
    ("static-left", _static(1.0)),
    ("crossing-left-to-right", _crossing(1.0)),
    ("approaching-center", _radial(True, 0.0)),
    ("two-static", _two_static),
    ("static-right", _static(-1.0)),
    ("crossing-right-to-left", _crossing(-1.0)),
    ("receding-left", _radial(False, 1.0)),
    ("crossing-and-static", _cross_and_static),
    ("static-center", _static(0.0)),
    ("approaching-right", _radial(True, -1.0)),
    ("flying-over", _flying),
    ("receding-center", _radial(False, 0.0)),
    ("approaching-left", _radial(True, 1.0)),
    ("radial-and-static", _approach_and_static),
    ("receding-right", _radial(False, -1.0)),
)


def scene_spec(index: int, seed: int, draw: int = 0) -> SceneSpec:
    """Scene ``index`` of the bank (kinds in turn, formats alternating per round)."""
    kind, maker = KINDS[index % len(KINDS)]
    rng = np.random.default_rng([seed, index, draw])
    fmt = "binaural" if (index // len(KINDS) + index) % 3 != 2 else "foa"
    used: list[str] = []

    def pick() -> str:
        free = [c for c in GROUND if c not in used]
        name = free[int(rng.integers(len(free)))]
        used.append(name)
        return name

    return SceneSpec(kind, fmt, maker(rng, pick))


# --------------------------------------------------------------------------- one example
def _simulate(spec: SceneSpec, seed: int) -> tuple[dict, dict]:
    """(analysis JSON, truth) of a scene."""
    from spa2v.analysis import analyze_array
    from spa2v.classes import lookup
    from spa2v.simulate import Keyframe, SceneSource, Trajectory, simulate_scene
    from spa2v.sources import make_source

    dur = SCENE_DURATION_S
    scene = []
    for i, s in enumerate(spec.sources):
        traj = Trajectory((Keyframe(0.0, s.az_start_deg, s.elevation_deg, s.r_start_m),
                           Keyframe(dur, s.az_end_deg, s.elevation_deg, s.r_end_m)))
        sig = make_source(lookup(s.name).source, duration_s=dur, sr=SCENE_SR, seed=seed + 7 * i)
        scene.append(SceneSource(sig, traj, name=s.name, gain_db=s.gain_db))
    sim = simulate_scene(scene, fmt=spec.fmt, sr=SCENE_SR, duration_s=dur, seed=seed)
    analysis = analyze_array(sim.audio, SCENE_SR, spec.fmt, input_name=f"{spec.kind}.wav",
                             max_sources=len(spec.sources))
    return analysis, sim.truth


def _match(analysis: dict, truth: dict) -> list[int] | None:
    """Truth source index for each analysed source (by mean azimuth), or None."""
    measured, true = analysis["sources"], truth["sources"]
    if len(measured) != len(true):
        return None
    best, best_cost = None, np.inf
    for perm in permutations(range(len(true))):
        cost = 0.0
        for m, t in zip(measured, perm, strict=True):
            d = (m["mean_azimuth_deg"] - true[t]["mean_azimuth_deg"] + 180.0) % 360.0 - 180.0
            cost += abs(d)
        if cost < best_cost:
            best, best_cost = list(perm), cost
    if best_cost > 30.0 * len(true):
        return None
    return best


def truth_layout(analysis: dict, truth: dict, order: list[int], fps: float = BANK_FPS
                 ) -> SceneLayout:
    """The ground-truth layout: the rule planner's geometry on the true trajectories.

    Object ``i`` stands for analysed source ``i`` (``order[i]`` is its truth index).
    """
    from planners.rule import RulePlanner

    sources = []
    for m, ti in zip(analysis["sources"], order, strict=True):
        t = truth["sources"][ti]
        r = np.maximum(np.asarray(t["distance_m"]), 0.2)
        sources.append({
            "id": m["id"],
            "times": t["times"],
            "azimuth_deg": t["azimuth_deg"],
            "elevation_deg": t["elevation_deg"],
            "loudness_db": (t["gain_db"] - 20.0 * np.log10(r)).tolist(),
            "distance_rel": (r / r[0]).tolist(),
            "active": [True] * len(t["times"]),
            "behind": t["behind"],
        })
    truth_analysis = {"input": analysis.get("input"), "format": truth["format"],
                      "duration": truth["duration"], "hop_s": truth["hop_s"], "sources": sources}
    labels = [truth["sources"][ti]["name"] for ti in order]
    layout = RulePlanner().plan(truth_analysis, labels=labels, fps=fps)
    return layout.model_copy(update={"planner": "truth", "meta": {}})


def _compact_layout(layout: SceneLayout) -> dict[str, Any]:
    d = layout.to_dict()
    for key in ("meta", "camera", "planner"):
        d.pop(key, None)
    for f in d["frames"]:
        for b in f["boxes"]:
            b["box"] = [round(v, 3) for v in b["box"]]
    return d


def make_example(index: int, seed: int) -> tuple[dict[str, Any] | None, int]:
    """Example ``index`` as stored in the bank, and how many draws it took (None: none fit)."""
    for draw in range(MAX_DRAWS):
        spec = scene_spec(index, seed, draw)
        analysis, truth = _simulate(spec, seed * 1000 + index * 10 + draw)
        order = _match(analysis, truth)
        if order is None:
            continue
        layout = truth_layout(analysis, truth, order)
        labels = [truth["sources"][ti]["name"] for ti in order]
        cues = summarize(analysis)
        return {
            "id": f"{index:02d}-{spec.kind}-{spec.fmt}",
            "labels": labels,
            "cues": cues.to_dict(),
            "layout": _compact_layout(layout),
        }, draw + 1
    return None, MAX_DRAWS


def build_bank(n_scenes: int = DEFAULT_SCENES, seed: int = 0,
               progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Simulate, analyse and lay out ``n_scenes`` scenes; the bank as a JSON-ready dict."""
    examples, redrawn, skipped = [], 0, 0
    for i in range(n_scenes):
        ex, draws = make_example(i, seed)
        redrawn += draws - 1 if ex is not None else 0
        if ex is None:
            skipped += 1
        else:
            examples.append(ex)
        if progress is not None:
            progress(i + 1, n_scenes)
    return {
        "version": BANK_VERSION,
        "made_by": f"spa2v mllm-examples --scenes {n_scenes} --seed {seed}",
        "keyframe_fps": BANK_FPS,
        "feature_names": list(FEATURE_NAMES),
        "redrawn": redrawn,
        "skipped": skipped,
        "examples": examples,
    }


def dumps_bank(bank: dict[str, Any]) -> str:
    """The bank as JSON text: the header indented, one example per line."""
    head = {k: v for k, v in bank.items() if k != "examples"}
    lines = ["{"]
    lines += [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
    lines.append('  "examples": [')
    rows = [json.dumps(e, separators=(",", ":"), ensure_ascii=False) for e in bank["examples"]]
    lines.append(",\n".join(f"    {r}" for r in rows))
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"
