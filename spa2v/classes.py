"""The one table of sound classes.

Each class has a canonical name, synonyms (for the label and text parsers), a typical
size in metres (width, height), whether it stands on the ground or flies, the
procedural source that stands for it (``spa2v.sources``), the icon the animatic
renderer draws, and the verbs the caption templates use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class SoundClass:
    name: str
    synonyms: tuple[str, ...]
    size_m: tuple[float, float]
    """Typical (width, height) in metres as seen from the side."""
    placement: Literal["ground", "air"]
    source: str
    """Name of the procedural source in ``spa2v.sources``."""
    icon: str
    """Name of the drawn icon in ``generators.video.animatic``."""
    verb_static: str
    verb_moving: str
    background: str
    """A scene keyword this class usually belongs to."""


GENERIC = SoundClass(
    "sound source", ("source", "sound", "object", "thing"), (0.8, 0.8), "ground", "noise",
    "generic", "sounds", "moves", "default",
)

SOUND_CLASSES: tuple[SoundClass, ...] = (
    SoundClass("car", ("car", "cars", "automobile", "vehicle", "hatchback", "sedan", "engine", "traffic"),
               (4.2, 1.5), "ground", "engine", "car", "idles", "drives", "street"),
    SoundClass("truck", ("truck", "trucks", "lorry", "bus", "van"), (7.0, 3.2), "ground", "engine",
               "truck", "idles", "drives", "street"),
    SoundClass("train", ("train", "trains", "locomotive", "tram", "railway"), (14.0, 3.8), "ground",
               "train", "train", "rumbles", "rolls", "street"),
    SoundClass("motorcycle", ("motorcycle", "motorbike", "scooter", "moped", "bike"), (2.1, 1.3),
               "ground", "engine", "motorcycle", "idles", "rides", "street"),
    SoundClass("ambulance", ("ambulance", "siren", "sirens", "police", "police car", "fire truck",
                             "fire engine", "emergency vehicle"), (5.5, 2.6), "ground", "siren",
               "ambulance", "wails", "drives", "street"),
    SoundClass("person", ("person", "people", "man", "woman", "speaker", "speech", "talking",
                          "voice", "singer", "child", "footsteps", "walker", "someone", "human"),
               (0.6, 1.75), "ground", "babble", "person", "speaks", "walks", "indoor"),
    SoundClass("dog", ("dog", "dogs", "puppy", "barking", "bark"), (0.9, 0.7), "ground", "bark",
               "dog", "barks", "runs", "nature"),
    SoundClass("cat", ("cat", "cats", "kitten", "meow"), (0.5, 0.35), "ground", "meow", "cat",
               "meows", "walks", "indoor"),
    SoundClass("bird", ("bird", "birds", "chirp", "chirping", "songbird", "sparrow", "crow"),
               (0.4, 0.3), "air", "birds", "bird", "sings", "flies", "nature"),
    SoundClass("piano", ("piano", "keyboard", "pianist"), (1.5, 1.2), "ground", "music", "piano",
               "plays", "plays", "stage"),
    SoundClass("guitar", ("guitar", "guitarist", "bass"), (1.0, 1.7), "ground", "guitar", "guitar",
               "plays", "plays", "stage"),
    SoundClass("drum", ("drum", "drums", "drummer", "percussion", "drum kit"), (1.4, 1.2), "ground",
               "drums", "drum", "plays", "plays", "stage"),
    SoundClass("helicopter", ("helicopter", "chopper"), (12.0, 4.0), "air", "helicopter",
               "helicopter", "hovers", "flies", "sky"),
    SoundClass("plane", ("plane", "airplane", "aeroplane", "aircraft", "jet"), (30.0, 8.0), "air",
               "jet", "plane", "hums", "flies", "sky"),
)

_BY_WORD: dict[str, SoundClass] = {}
for _c in SOUND_CLASSES:
    _BY_WORD[_c.name] = _c
    for _s in _c.synonyms:
        _BY_WORD.setdefault(_s, _c)
_PATTERN = re.compile(
    r"\b(" + "|".join(sorted((re.escape(w) for w in _BY_WORD), key=len, reverse=True)) + r")\b"
)


def lookup(label: str | None) -> SoundClass:
    """The class for a label ("a red car" -> car); the generic class when none matches."""
    if not label:
        return GENERIC
    m = _PATTERN.search(label.lower())
    return _BY_WORD[m.group(1)] if m else GENERIC


def find_all(text: str) -> list[tuple[int, str, SoundClass]]:
    """All class mentions in a text as (character offset, matched word, class)."""
    return [(m.start(), m.group(1), _BY_WORD[m.group(1)]) for m in _PATTERN.finditer(text.lower())]


def class_names() -> list[str]:
    return [c.name for c in SOUND_CLASSES]
