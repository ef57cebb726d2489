"""An LLM-backed text parser (optional; the rule parser is the default).

Any chat model the MLLM planner can reach (``planners.mllm.backends``: an
OpenAI-compatible server or a local transformers model) is asked to turn the prompt into
keyframes per source, as JSON.  The in-context examples are the rule parser's own
readings of a few prompts, so both parsers speak the same conventions.  The reply is
validated (names through ``spa2v.classes``, keyframes through
``spa2v.simulate.Trajectory``); when it is unusable after ``retries`` further tries, the
rule parser's reading is returned, with a note saying so.
"""

from __future__ import annotations

import json
import re
from typing import Any

from generators.audio.textspec import SourceSpec, SpatialSpec, parse_spatial_text
from spa2v.classes import class_names, lookup
from spa2v.simulate import Keyframe, Trajectory

EXAMPLES = (
    "a police siren moves from the left to the right",
    "a dog barks on the far right, 3 metres away",
    "a bird chirps above the listener while a car approaches from behind",
)
SYSTEM = (
    "You turn descriptions of sounds into spatial trajectories for a spatial audio renderer. "
    "Coordinates: azimuth_deg 0 = front, +90 = left, -90 = right, 180 = behind; "
    "elevation_deg 0 = ear level, +90 = straight up; distance_m in metres (2 when not said). "
    "Each source gets keyframes with times t in seconds from 0 to the clip's duration, "
    "interpolated linearly between. Name each source with a short noun phrase from the text. "
    "Answer with JSON only: {\"sources\": [{\"name\": ..., \"keyframes\": [{\"t\": ..., "
    "\"azimuth_deg\": ..., \"elevation_deg\": ..., \"distance_m\": ...}]}]}. "
    f"Known sound classes: {', '.join(class_names())}."
)


def _example_answer(text: str, duration_s: float) -> str:
    spec = parse_spatial_text(text, duration_s=duration_s)
    return json.dumps({"sources": [
        {"name": s.name, "keyframes": [
            {k: round(v, 2) for k, v in kf.to_dict().items()} for kf in s.trajectory.keyframes]}
        for s in spec.sources if s.trajectory is not None]})


def build_messages(text: str, duration_s: float) -> list[dict[str, Any]]:
    """The chat: the instruction, the rule parser's readings of ``EXAMPLES``, the prompt."""
    msgs: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]
    for ex in EXAMPLES:
        msgs.append({"role": "user", "content": f"Duration: {duration_s:g} s. Text: {ex}"})
        msgs.append({"role": "assistant", "content": _example_answer(ex, duration_s)})
    msgs.append({"role": "user", "content": f"Duration: {duration_s:g} s. Text: {text}"})
    return msgs


def reply_to_spec(reply: str, text: str, duration_s: float) -> SpatialSpec:
    """Validate a reply; raises ``ValueError`` saying what is wrong with it."""
    m = re.search(r"\{.*\}", reply, flags=re.S)
    if m is None:
        raise ValueError("the reply holds no JSON object")
    try:
        data = json.loads(m.group(0))
    except json.JSONDecodeError as exc:
        raise ValueError(f"the reply is not valid JSON ({exc.msg})") from None
    items = data.get("sources") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise ValueError("the reply has no 'sources' list")
    sources = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("keyframes"), list):
            raise ValueError(f"sources[{i}] has no 'keyframes' list")
        try:
            kfs = tuple(Keyframe(float(k["t"]), float(k["azimuth_deg"]),
                                 float(k.get("elevation_deg", 0.0)),
                                 float(k.get("distance_m", 2.0))) for k in item["keyframes"])
            traj = Trajectory(kfs)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"sources[{i}]: bad keyframes ({exc})") from None
        if min(k.t for k in kfs) < -1e-6 or max(k.t for k in kfs) > duration_s + 1e-6:
            raise ValueError(f"sources[{i}]: keyframe times outside [0, {duration_s:g}] s")
        name = str(item.get("name") or "sound source").strip()
        sources.append(SourceSpec(name, lookup(name), traj, ["read by the language model"],
                                  prompt=name))
    return SpatialSpec(text, duration_s, sources)


def parse_with_llm(text: str, backend: Any, *, duration_s: float = 4.0,
                   temperature: float = 0.2, retries: int = 1,
                   max_tokens: int = 800) -> tuple[SpatialSpec, list[str]]:
    """Ask ``backend`` (a ``planners.mllm.backends.ChatBackend``) to read ``text``.

    Returns the spec and notes (one per failed try; the last one says when the rule
    parser's reading was used instead).
    """
    from planners.mllm.backends import BackendError

    messages = build_messages(text, duration_s)
    notes: list[str] = []
    for _ in range(retries + 1):
        try:
            reply = backend.complete(messages, temperature=temperature, max_tokens=max_tokens)
            return reply_to_spec(reply.text, text, duration_s), notes
        except (BackendError, ValueError) as exc:
            notes.append(f"the language model's reading was unusable: {exc}")
    notes.append("used the rule parser instead")
    return parse_spatial_text(text, duration_s=duration_s), notes
