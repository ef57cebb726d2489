"""Text -> first-order Ambisonics (SonicMotion-style parametric generation).

The text is parsed into one trajectory per source (``generators.audio.textspec``),
optionally replaced by explicit keyframes; each source plays a file, a text-to-audio
model's sound or its class's procedural source; ``spa2v.simulate`` renders the scene to
AmbiX (W, Y, Z, X; SN3D) with its ground truth.  FOA keeps front and back apart, so a
source "behind" is rendered behind.
"""

from __future__ import annotations

from collections.abc import Sequence

from generators.audio.scene import annotate_truth, resolve_spec, spec_scene
from generators.audio.signals import SignalSpec, TextToAudioFn
from generators.audio.textspec import SpatialSpec
from spa2v.simulate import Simulation, Trajectory, simulate_scene


def text_to_foa(
    text: str | SpatialSpec,
    *,
    duration_s: float = 4.0,
    sr: int = 48000,
    sources: Sequence[SignalSpec | str | None] | None = None,
    trajectories: Sequence[Trajectory | str | None] | None = None,
    text_to_audio: TextToAudioFn | None = None,
    rt60_s: float | None = None,
    seed: int = 0,
) -> tuple[Simulation, SpatialSpec]:
    """Render a text to FOA.

    Parameters
    ----------
    text : str or SpatialSpec
        "a police siren moves from the left to the right", or a parse of it.
    duration_s : float
    sr : int
    sources : sequence, optional
        Signal of source ``i`` (array at ``sr``, audio file, built-in or class name);
        ``None`` entries and missing ones fall back to ``text_to_audio`` or the class.
    trajectories : sequence, optional
        Explicit keyframes for source ``i`` (``"az,el,dist@t; ..."`` or ``Trajectory``).
    text_to_audio : callable, optional
        ``model(prompt, *, duration_s, sr, seed)`` for sources without a signal.
    rt60_s : float, optional
        Add a room with this reverberation time.
    seed : int

    Returns
    -------
    (Simulation, SpatialSpec)
        ``audio`` float32 ``(4, samples)`` AmbiX and the truth (with the parse).

    Raises
    ------
    InputError
        The text does not place its sources (the message says what was understood).
    """
    spec = resolve_spec(text, duration_s=duration_s, trajectories=trajectories)
    scene, what = spec_scene(spec, sr=sr, signals=sources, text_to_audio=text_to_audio,
                             seed=seed)
    sim = simulate_scene(scene, fmt="foa", sr=sr, duration_s=spec.duration_s, rt60_s=rt60_s,
                         seed=seed)
    annotate_truth(sim.truth, spec, what)
    return sim, spec
