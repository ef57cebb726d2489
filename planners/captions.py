"""Caption templates shared by the planners.

Captions speak in the picture's terms: positions are the DESIGN position labels
(``left``, ``center``, ``right``) of the frontal (folded) azimuth, motions are the
DESIGN motion labels, and verbs come from the sound-class table.

Examples
--------
>>> global_caption([ObjectSummary("car", "left_to_right", "left", "right")])
'A car drives from the left to the right of the frame.'
>>> frame_caption([FrameMention("car", "left", "right")])
'The car is on the left of the frame, moving right.'
"""

from __future__ import annotations

from dataclasses import dataclass

from spa2v.classes import GENERIC, lookup

SIDE_AT = {"left": "on the left", "center": "in the center", "right": "on the right"}
SIDE_FROM = {"left": "the left", "center": "the center", "right": "the right"}
FRAME_MOTION = {
    "left": "moving left",
    "right": "moving right",
    "approaching": "coming closer",
    "receding": "moving away",
}


@dataclass(frozen=True)
class ObjectSummary:
    """What the global caption says about one object.

    ``motion`` is a DESIGN motion label; ``start`` and ``end`` are position labels
    (the same for a static source); ``behind`` marks a source heard behind the camera.
    """

    name: str
    motion: str
    start: str
    end: str
    behind: bool = False


@dataclass(frozen=True)
class FrameMention:
    """One visible object in one keyframe: its position label and what it is doing.

    ``moving`` is ``left``, ``right``, ``approaching``, ``receding`` or None.
    """

    name: str
    position: str
    moving: str | None = None


def with_article(name: str, *, definite: bool = False) -> str:
    """``car`` -> ``a car`` (``the car``); names that already carry an article are kept."""
    n = name.strip()
    low = n.lower()
    if low.startswith(("a ", "an ", "the ")):
        return n
    if definite:
        return f"the {n}"
    return f"{'an' if low[:1] in 'aeiou' else 'a'} {n}"


def _verb(name: str, moving: bool) -> str:
    cls = lookup(name)
    if cls is GENERIC:
        return "is heard"
    return cls.verb_moving if moving else cls.verb_static


def object_clause(s: ObjectSummary) -> str:
    """One clause about one object, without the final full stop (lower-case article)."""
    subject = with_article(s.name)
    behind = " behind the camera" if s.behind else ""
    if s.motion in ("left_to_right", "right_to_left"):
        if s.start != s.end:
            where = f"from {SIDE_FROM[s.start]} to {SIDE_FROM[s.end]} of the frame"
        else:
            direction = "right" if s.motion == "left_to_right" else "left"
            where = f"to the {direction} {SIDE_AT[s.start]} of the frame"
        return f"{subject} {_verb(s.name, True)}{behind} {where}"
    if s.motion == "approaching":
        return f"{subject} approaches{behind} from {SIDE_FROM[s.start]}"
    if s.motion == "receding":
        return f"{subject} moves away{behind} {SIDE_AT[s.end]}"
    return f"{subject} {_verb(s.name, False)}{behind} {SIDE_AT[s.start]}"


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def global_caption(objects: list[ObjectSummary]) -> str:
    """The video caption: what is where and how it moves.

    One object: ``A car drives from the left to the right of the frame.``;
    two: ``A dog barks on the left while a car idles on the right.``;
    more: a list joined with commas and ``and``.
    """
    if not objects:
        return "A quiet scene."
    clauses = [object_clause(s) for s in objects]
    if len(clauses) == 1:
        text = clauses[0]
        if objects[0].motion == "static":
            text += " of the frame"
        return _sentence(text)
    if len(clauses) == 2:
        return _sentence(f"{clauses[0]} while {clauses[1]}")
    return _sentence(", ".join(clauses[:-1]) + f", and {clauses[-1]}")


def frame_caption(mentions: list[FrameMention]) -> str:
    """One keyframe's caption: a sentence per visible object.

    ``The car is on the left of the frame, moving right.``
    """
    if not mentions:
        return "Nothing is visible."
    out = []
    for m in mentions:
        text = f"{with_article(m.name, definite=True)} is {SIDE_AT[m.position]} of the frame"
        if m.moving in FRAME_MOTION:
            text += f", {FRAME_MOTION[m.moving]}"
        out.append(_sentence(text))
    return " ".join(out)
