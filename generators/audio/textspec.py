"""Text to a spatial specification: a rule parser for SonicMotion- and TAS-style prompts.

``parse_spatial_text("a police siren moves from the left to the right")`` finds the
sound sources the text names (through the one class table, ``spa2v.classes``), reads
the words that place and move each of them and returns a ``SpatialSpec``: one
``SourceSpec`` with a ``spa2v.simulate.Trajectory`` per source, what was understood and
what was not.

Geometry (degrees; azimuth 0 = front, +90 = left; elevation +90 = up; metres):

=============================================  ==========================================
words                                          placement
=============================================  ==========================================
front, ahead, center, in front of you          azimuth 0
left / right                                   +60 / -60 (+70 / -70 as a motion's end)
front left / front right                       +30 / -30
back left / back right                         +150 / -150
behind, back, rear                             180
far left, hard left, extreme left              +80 (right: -80)
fully / directly to the left                   +90
slightly left                                  +20
N degrees to the left / right, at N degrees    +N / -N (a bare angle follows the
                                               convention: positive is left)
above, overhead                                elevation 65 (80 for overhead, 40 beside
                                               a horizontal direction)
below, beneath                                 elevation -45
N degrees up / elevation N                     elevation N
(default)                                      2 m
far away, in the distance, distant             8 m (very far: 15 m)
close, near, nearby                            1 m (very close: 0.5 m)
N metres / feet away                           N m
=============================================  ==========================================

Motion: ``from A to B [to C ...]`` (waypoints; ``clockwise`` / ``counterclockwise``
choose the way round, else the shorter way, and exactly opposite points go
counter-clockwise); ``moves to B`` (from the mirror image of B); ``approaches``
(6 m -> 1.5 m) and ``recedes`` (1.5 m -> 6 m); ``passes by`` (a straight line 2 m in
front, closest at mid-clip, from +72 to -72 degrees, left to right unless told);
``flies overhead`` (a straight line 4 m up, front to back unless told); ``circles
around`` (a full turn, counter-clockwise unless told); ``rises`` / ``descends``
(elevation 0 <-> 60).  Speed words set how much of the clip the motion takes (slowly:
all of it; default: the middle 80 %; quickly: the middle 50 %; very quickly: 30 %) and,
for straight lines, how far the line reaches (half-angles 60, 72, 80, 84 degrees).

Relative placement of two named sources: ``A to the left of B`` (A 40 degrees left of
B, or +30 / -30 when neither has a direction), ``A in front of / behind B``,
``A nearer / farther than B`` (half / twice B's distance, or 1 m / 3 m), ``A above /
below B``, ``A next to B``.  Several sources that no word gives a direction are spread
15 degrees apart around the front so that they do not coincide.

Sources are the class table's words (``spa2v.classes``: "police siren", "dog barking").
A sound the table does not know becomes a generic source when an indefinite article
introduces it as a subject ("a violin plays on the right"; "the violin" later refers to
it) and some word places it; otherwise it is reported as not understood.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from generators.audio.texttraj import apply_relation, build_trajectory, default_azimuths
from generators.audio.textwords import (  # noqa: F401 - the geometry table, re-exported
    ABOVE_ELEVATION_DEG,
    APPROACH_FAR_M,
    APPROACH_NEAR_M,
    BELOW_ELEVATION_DEG,
    DEFAULT_DISTANCE_M,
    FAR_DISTANCE_M,
    MOTION_SIDE_DEG,
    NEAR_DISTANCE_M,
    RELATION_PATTERNS,
    SourceState,
    Span,
    is_function_word,
    leftover_fragments,
    normalize_text,
    parse_direction,
    prompt_text,
    read_span,
    unique_fragments,
)
from spa2v.classes import GENERIC, SoundClass, find_all
from spa2v.errors import InputError
from spa2v.simulate import Trajectory, source_truth


# --------------------------------------------------------------------------- results
@dataclass
class SourceSpec:
    """One sound source of a text: its name, class, trajectory and what placed it.

    ``trajectory`` is None when nothing in the text places the source.
    """

    name: str
    cls: SoundClass
    trajectory: Trajectory | None
    understood: list[str] = field(default_factory=list)
    prompt: str = ""
    """The text about this source without its spatial words (for text-to-audio)."""

    @property
    def placed(self) -> bool:
        return self.trajectory is not None

    def labels(self, duration_s: float) -> dict:
        """Position and motion labels of the trajectory (as the simulator's truth gives them)."""
        if self.trajectory is None:
            return {}
        times = np.linspace(0.0, duration_s, 101)
        return source_truth(self.trajectory, times)

    def summary(self, duration_s: float) -> str:
        """``'police siren' moving left_to_right (+70 -> -70 deg, 2 m)``."""
        if self.trajectory is None:
            return f"'{self.name}' with no position or motion"
        az, el, r = self.trajectory.at(np.array([0.0, duration_s]))
        truth = self.labels(duration_s)
        where = f"{az[0]:+.0f} deg"
        if self.trajectory.is_static:
            text = f"'{self.name}' static at {where}"
        else:
            label = "" if truth["motion"] == "static" else f" {truth['motion']}"
            text = f"'{self.name}' moving{label} ({where} -> {az[1]:+.0f} deg"
            where = ""
        if abs(el[0]) > 0.5 or abs(el[1]) > 0.5:
            text += (f", elevation {el[0]:+.0f}" if abs(el[1] - el[0]) < 0.5
                     else f", elevation {el[0]:+.0f} -> {el[1]:+.0f}")
        text += (f", {r[0]:.3g} m" if abs(r[1] - r[0]) < 1e-6 else f", {r[0]:.3g} -> {r[1]:.3g} m")
        return text + ("" if where else ")")


@dataclass
class SpatialSpec:
    """What a text says about where its sound sources are and how they move."""

    text: str
    duration_s: float
    sources: list[SourceSpec]
    unparsed: list[str] = field(default_factory=list)
    """Fragments of the text that no rule read (sound verbs and function words aside)."""

    @property
    def unplaced(self) -> list[SourceSpec]:
        return [s for s in self.sources if not s.placed]

    @property
    def placed(self) -> bool:
        """True when the text names or implies at least one source and places every one."""
        return bool(self.sources) and not self.unplaced

    def describe(self) -> str:
        """``understood: 'siren' moving left_to_right (...); could not place: 'xyz'``."""
        understood = [s.summary(self.duration_s) for s in self.sources]
        parts = ["understood: " + ("; ".join(understood) if understood else "nothing")]
        missing = [f"'{s.name}'" for s in self.unplaced]
        if not self.placed:
            missing += [f"'{u}'" for u in self.unparsed]
        if not self.placed and not missing:
            missing = ["anything (the text names no sound and says nothing about where)"]
        if missing:
            parts.append("could not place: " + ", ".join(missing))
        elif self.unparsed:
            parts.append("ignored: " + ", ".join(f"'{u}'" for u in self.unparsed))
        return "; ".join(parts)

    def require_placed(self) -> None:
        """Raise ``InputError`` (exit 2) unless every source is placed."""
        if not self.placed:
            hint = ("; say where, e.g. 'on the left', 'behind', 'moves from the left to the "
                    "right', 'approaches', 'far away'")
            raise InputError(f"cannot place the sounds of the text {self.text!r}: "
                             f"{self.describe()}{hint}")

    def to_dict(self) -> dict:
        out = []
        for s in self.sources:
            d = {"name": s.name, "class": s.cls.name, "understood": list(s.understood),
                 "prompt": s.prompt, "keyframes": None}
            if s.trajectory is not None:
                d["keyframes"] = s.trajectory.to_dicts()
                d["interpolation"] = s.trajectory.interpolation
                lab = s.labels(self.duration_s)
                d["position"], d["motion"] = lab["position"], lab["motion"]
            out.append(d)
        return {"text": self.text, "duration": self.duration_s, "sources": out,
                "unparsed": list(self.unparsed)}


# --------------------------------------------------------------------------- mentions
@dataclass
class _Mention:
    start: int
    end: int
    cls: SoundClass
    text: str
    source: int = -1
    owner: bool = True


def _mentions(text: str) -> list[_Mention]:
    """Class mentions, adjacent mentions of one class merged ("police siren")."""
    out: list[_Mention] = []
    for start, word, cls in find_all(text):
        end = start + len(word)
        if out and out[-1].cls is cls and not text[out[-1].end:start].strip(" -"):
            out[-1].end = end
            out[-1].text = text[out[-1].start:end]
            continue
        out.append(_Mention(start, end, cls, word))
    # "the sound of a dog": the generic word is not a source of its own
    out = [m for m in out if not (m.cls is GENERIC and re.match(r" of\b", text[m.end:]))]
    out += _unnamed(text, out)
    return sorted(out, key=lambda m: m.start)


_NOT_A_SOURCE = frozenset("""
bit little few lot circle semicircle semi distance long way moment second speed hurry straight
line half medium moderate high low short quick slow steady constant time clip scene room field
street road path direction position place spot point angle turn trajectory loop curve arc
front back behind left right center above overhead below beneath under far near close nearby
distant away full very rapid gentle leisurely fast sudden brief""".split())


def _is_noun(word: str) -> bool:
    return not (word in _NOT_A_SOURCE or is_function_word(word) or word.isdigit())


def _unnamed(text: str, named: list[_Mention]) -> list[_Mention]:
    """Sounds the class table does not know ("a violin plays on the right"): an indefinite
    article and a noun make a generic source, and "the violin" later refers to it."""
    out: list[_Mention] = []
    for m in re.finditer(r"\b(?:a|an) ([a-z']+)(?: ([a-z']+))?", text):
        w1, w2 = m.group(1), m.group(2)
        if not _is_noun(w1) or any(m.start() <= k.start <= m.end() for k in named):
            continue
        if re.search(r"\b(?:in|at|on|into|onto|from|of|with|by|through|across|along|inside|"
                     r"outside|within|under|over|behind|toward|towards|to|near)\s+$",
                     text[:m.start()]):
            continue  # "in a quiet room": a place, not a sound
        end = m.end(2) if w2 and _is_noun(w2) else m.end(1)
        out.append(_Mention(m.start(1), end, GENERIC, text[m.start(1):end]))
    for first in list(out):
        noun = first.text.split()[-1]
        for m in re.finditer(rf"\bthe (?:[a-z']+ )?({re.escape(noun)})\b", text[first.end:]):
            start = first.end + m.start(1)
            out.append(_Mention(start, start + len(noun), GENERIC, noun))
    return out


def _assign_sources(text: str, mentions: list[_Mention]) -> int:
    """Give each mention a source index: a definite repeat refers to the earlier source."""
    by_key: dict[str, int] = {}
    n = 0
    for m in mentions:
        key = m.cls.name if m.cls is not GENERIC else "generic " + m.text.split()[-1]
        before = text[max(0, m.start - 12):m.start]
        fresh = re.search(r"\b(?:a|an|another|second|other|one more)\s+(?:\w+\s+)?$", before)
        if key in by_key and not fresh:
            m.source = by_key[key]
        else:
            m.source = n
            by_key[key] = n
            n += 1
    return n


# --------------------------------------------------------------------------- relations
def _find_relations(text: str, mentions: list[_Mention]) -> list[tuple[int, int, str, str, int]]:
    """Relative phrases: (start, end, kind, side, index of the target mention)."""
    found = []
    for rx, kind in RELATION_PATTERNS:
        for m in rx.finditer(text):
            after = text[m.end():]
            j = next((i for i, mm in enumerate(mentions)
                      if mm.start >= m.end() and re.fullmatch(r"(?:\w+ )?", after[:mm.start - m.end()])),
                     None)
            if j is None:
                continue
            if any(s <= m.start() < e for s, e, *_ in found):
                continue
            side = m.group(1) if kind == "lateral" else ""
            found.append((m.start(), mentions[j].end, kind, side, j))
    return found



# --------------------------------------------------------------------------- main entry
def parse_spatial_text(text: str, *, duration_s: float = 4.0) -> SpatialSpec:
    """Parse a prompt into one trajectory per sound source (the rule parser).

    Parameters
    ----------
    text : str
        E.g. "A police siren wails from the front and slowly moves counter-clockwise to
        the back", "a dog to the left of a car", "the piano is nearer than the singer".
    duration_s : float
        Length of the clip the trajectories span.

    Returns
    -------
    SpatialSpec
        Never raises for odd text: check ``spec.placed`` (or call
        ``spec.require_placed()``) before using the trajectories.
    """
    if not duration_s > 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    norm = normalize_text(text)
    mentions = _mentions(norm)
    relations = _find_relations(norm, mentions)
    for _, _, _, _, j in relations:
        mentions[j].owner = False
    n_sources = _assign_sources(norm, mentions)
    states = [SourceState() for _ in range(max(n_sources, 1))]
    names: list[str | None] = [None] * max(n_sources, 1)
    classes: list[SoundClass] = [GENERIC] * max(n_sources, 1)
    prompts: list[list[str]] = [[] for _ in range(max(n_sources, 1))]
    for m in mentions:
        if names[m.source] is None:
            names[m.source], classes[m.source] = m.text, m.cls

    # spans: from each owner mention to the next; text before the first goes to the first
    owners = [m for m in mentions if m.owner]
    rel_mask = [False] * len(norm)
    for s, e, *_ in relations:
        for i in range(s, e):
            rel_mask[i] = True
    cuts = [0] + [m.start for m in owners[1:]] + [len(norm)]
    span_sources = [owners[0].source if owners else 0] + [m.source for m in owners[1:]]
    leftovers: list[str] = []
    for (a, b), src in zip(zip(cuts[:-1], cuts[1:], strict=True), span_sources, strict=True):
        piece = "".join(" " if rel_mask[i] else norm[i] for i in range(a, b))
        span = Span(piece)
        for m in mentions:  # class words are names, not directions
            if a <= m.start < b:
                span.protect(m.start - a, min(m.end, b) - a)
        read_span(span, states[src])
        prompts[src].append(prompt_text(span))
        leftovers += leftover_fragments(span.live())

    for s, _, kind, side, j in relations:
        subject = next((m.source for m in reversed(mentions) if m.end <= s and m.owner), None)
        if subject is None:
            subject = next((m.source for m in mentions if m.owner
                            and m.source != mentions[j].source), None)
        target = mentions[j].source
        if subject is None or subject == target:
            leftovers.append(norm[s:mentions[j].end].strip())
            continue
        meaning = apply_relation(kind, side, states[subject], states[target])
        phrase = norm[s:mentions[j].end].strip()
        states[subject].note(phrase, f"{meaning} '{names[target]}'")
        states[target].note(phrase, f"reference for '{names[subject]}'")

    # an unknown noun nothing places was probably not a sound ("a quiet room")
    keep = [i for i in range(len(states))
            if states[i].has_info or classes[i] is not GENERIC or names[i] is None
            or names[i] in GENERIC.synonyms or names[i] == GENERIC.name]
    if len(keep) < len(states):
        leftovers += [names[i] for i in range(len(states)) if i not in keep and names[i]]
        states = [states[i] for i in keep]
        names = [names[i] for i in keep]
        classes = [classes[i] for i in keep]
        prompts = [prompts[i] for i in keep]
    sources: list[SourceSpec] = []
    if not states or (not mentions and not states[0].has_info):
        return SpatialSpec(str(text), float(duration_s), [], unique_fragments(leftovers))
    defaults = default_azimuths(states)
    for i, st in enumerate(states):
        name = names[i] or GENERIC.name
        traj = build_trajectory(st, duration_s, defaults[i]) if st.has_info else None
        prompt = " ".join(p for p in prompts[i] if p).strip() or name
        sources.append(SourceSpec(name=name, cls=classes[i], trajectory=traj,
                                  understood=list(st.understood), prompt=prompt))
    return SpatialSpec(str(text), float(duration_s), sources, unique_fragments(leftovers))


