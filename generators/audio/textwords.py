"""The words of spatial prompts: one spelling per word, direction phrases, and the rules
that read one source's part of a text into a ``SourceState``.

The geometry each word stands for is tabled in ``generators.audio.textspec``'s docstring;
the numbers live here.  Class names come from ``spa2v.classes`` (never a list of their
own): the caller hides them from these rules (``Span.protect``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from spa2v.classes import SOUND_CLASSES
from spa2v.conventions import wrap_deg

DEFAULT_DISTANCE_M = 2.0
FAR_DISTANCE_M = 8.0
VERY_FAR_DISTANCE_M = 15.0
NEAR_DISTANCE_M = 1.0
VERY_NEAR_DISTANCE_M = 0.5
MID_DISTANCE_M = 4.0
APPROACH_FAR_M = 6.0
APPROACH_NEAR_M = 1.5
PASS_BY_DISTANCE_M = 2.0
FLY_OVER_HEIGHT_M = 4.0
ABOVE_ELEVATION_DEG = 65.0
OVERHEAD_ELEVATION_DEG = 80.0
ABOVE_SIDE_ELEVATION_DEG = 40.0
BELOW_ELEVATION_DEG = -45.0
RISE_ELEVATION_DEG = 60.0
MOTION_SIDE_DEG = 70.0
RELATIVE_LATERAL_DEG = 40.0
RELATIVE_PAIR_DEG = 30.0
SPREAD_DEG = 15.0
MAX_STEP_DEG = 90.0
"""Waypoints more than this apart get intermediate keyframes (so interpolation keeps the way round)."""

SPEEDS = ("very slow", "slow", "normal", "fast", "very fast")
MOTION_FRACTION = {"very slow": 1.0, "slow": 1.0, "normal": 0.8, "fast": 0.5, "very fast": 0.3}
LINE_HALF_ANGLE_DEG = {"very slow": 50.0, "slow": 60.0, "normal": 72.0, "fast": 80.0,
                       "very fast": 84.0}

_BASE_AZ = {"front": 0.0, "center": 0.0, "left": 60.0, "right": -60.0, "back": 180.0}
CORNER_AZ = {frozenset(("front", "left")): 30.0, frozenset(("front", "right")): -30.0,
              frozenset(("back", "left")): 150.0, frozenset(("back", "right")): -150.0}
_WORD_CANON = {"front": "front", "back": "back", "behind": "back", "left": "left",
               "right": "right", "center": "center", "above": "above", "overhead": "overhead",
               "below": "below", "beneath": "below", "under": "below"}
_MOD_AZ = {"far": 80.0, "hard": 80.0, "extreme": 80.0, "extremely": 80.0, "way": 80.0,
           "fully": 90.0, "directly": 90.0, "straight": 90.0, "completely": 90.0,
           "slightly": 20.0, "a bit": 20.0, "a little": 20.0, "somewhat": 20.0, "just": 20.0}

_MOD = r"(?:far|hard|extreme|extremely|way|fully|directly|straight|completely|slightly|a bit|a little|somewhat|just)"
_WORD = r"(?:front|back|behind|left|right|center|above|overhead|below|beneath|under)"
_NUM = r"[+-]?\d+(?:\.\d+)?"
_DEG = rf"(?:{_NUM} degrees(?: (?:to the |to |on the |on )?(?:left|right))?)"
_DIR = rf"(?:{_DEG}|(?:{_MOD} )?(?:to the |to )?{_WORD}(?: (?:and )?{_WORD})?)"

_ARTICLE = r"(?:the |a |an )?"
_LISTENER = r"(?:you|me|us|the (?:listener|viewer|camera|microphone|mic))"
_NUMBER_WORDS = {"one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
                 "seven": "7", "eight": "8", "nine": "9", "ten": "10", "twenty": "20",
                 "thirty": "30", "forty": "40", "forty five": "45", "fifty": "50",
                 "sixty": "60", "ninety": "90", "half a": "0.5"}

_NORMALIZE: list[tuple[str, str]] = [
    (r"[\u2010-\u2015\u2212]", "-"),
    (r"\u00b0", " degrees "),
    (r"\bdeg(?:s|rees?)?\b\.?", "degrees"),
    (r"\b(?:counter|anti)[\s-]*clock[\s-]*wise\b", "counterclockwise"),
    (r"\bclock[\s-]+wise\b", "clockwise"),
    (r"(?<=[a-z])-(?=[a-z])", " "),
    (r"\bcentre\b|\bmiddle\b", "center"),
    (r"\bmetres?\b|\bmeters?\b", "m"),
    (r"\b(?:foot|ft)\b", "feet"),
    (r"(\d)\s*m\b", r"\1 m"),
    (r"\b(left|right)\s+hand(?:\s+side)?\b", r"\1"),
    (r"\b(left|right|front|back|rear)\s+side\b", r"\1"),
    (r"\b(?:your|my|our|his|her|their|the listener's|the viewer's)\s+(left|right)\b", r"the \1"),
    (rf"\bin\s+front\s+of\s+{_LISTENER}", "front"),
    (r"\bstraight\s+ahead\b|\bahead\b|\bin\s+front\b(?!\s+of\b)", "front"),
    (rf"\bbehind\s+{_LISTENER}", "back"),
    (r"\bthe\s+rear\b|\brear\b", "back"),
    (rf"\bover\s+(?:{_LISTENER}|(?:your|my|our|the listener's)\s+heads?)", "overhead"),
    (rf"\b(?:above|over)\s+(?:{_LISTENER}|(?:your|my|our|the listener's)\s+heads?)", "above"),
    (rf"\b(?:below|beneath|under)\s+{_LISTENER}", "below"),
    (r"\bup\s+high\b|\bhigh\s+up\b|\bup\s+above\b|\bupper\b", "above"),
    (r"\bleftwards?\b", "leftward"),
    (r"\brightwards?\b", "rightward"),
    (r"\s+", " "),
]
_NORMALIZE_RE = [(re.compile(p), r) for p, r in _NORMALIZE]

# --------------------------------------------------------------------------- word lists
_MOTION_VERB = re.compile(
    r"\b(?:mov\w*|go|goes|going|went|travel\w*|pan|pans|panning|panned|driv\w*|drove|walk\w*"
    r"|run|runs|running|ran|fly|flies|flying|flew|pass\w*|head(?:s|ing|ed)?|roll\w*|rid\w*"
    r"|rode|cross\w*|sweep\w*|swept|swing\w*|swung|turn\w*|rotat\w*|shift\w*|glid\w*|slid\w*"
    r"|wander\w*|circl\w*|spin\w*|spun|come|comes|coming|came|rush\w*|zoom\w*|rac(?:e|es|ing)"
    r"|speed\w*|sped|crawl\w*|march\w*|jog\w*|drift\w*|float\w*|sail\w*|proceed\w*"
    r"|continu\w*|return\w*|whizz\w*|swoop\w*|soar\w*|hop\w*|trott\w*|stroll\w*|gallop\w*"
    r"|migrat\w*|progress\w*|trails?|slowly|quickly)\b"
)
_FUNCTION_WORDS = frozenset("""
a an the and or but then while as it its it's is are was were be being been there here this
that these those of in on at to from by with into onto toward towards for up down over under
around through across along when where which who whose s one some sound sounds you your me my
we our us i he she they them their his her listener listeners viewer camera side way also again
just very really quite can could heard hear hears audible somewhere place position positioned
located placed situated sitting standing stands stand sits sit remains remain stays stay still
static stationary not no slightly constantly continuously repeatedly loudly softly quietly
gently clearly then later first finally before after during whole entire time clip scene
another other second both each all same while whilst meanwhile
""".split())
_SOUND_VERBS = frozenset({c.verb_static for c in SOUND_CLASSES}
                         | {c.verb_moving for c in SOUND_CLASSES}) | frozenset("""
sounds plays playing played sings singing sang chirps chirping tweets tweeting barks barking
howls howling meows meowing purrs wails wailing blares blaring honks honking beeps beeping
rumbles rumbling hums humming buzzes buzzing rings ringing speaks speaking talks talking says
saying shouts shouting calls calling cries crying roars roaring screams screaming whistles
whistling hovers hovering idles idling revs revving makes making emits emitting produces
chatters chattering laughs laughing claps clapping knocks knocking bangs banging crashes
rattles rattling squeaks squeaking sirens drums drumming strums strumming performs performing
echoes echoing chimes chiming""".split())


# --------------------------------------------------------------------------- normalising
def normalize_text(text: str) -> str:
    """Lower case, one spelling per spatial word ("centre" -> "center", "anti-clockwise"
    -> "counterclockwise", "in front of you" -> "front", "2 metres" -> "2 m")."""
    s = " " + str(text).lower().replace("\n", " ") + " "
    for pattern, repl in _NORMALIZE_RE:
        s = pattern.sub(repl, s)
    for words, digits in sorted(_NUMBER_WORDS.items(), key=lambda kv: -len(kv[0])):
        s = re.sub(rf"\b{words}\b(?= (?:m|feet|degrees|km)\b)", digits, s)
    return s.strip()


# --------------------------------------------------------------------------- directions
@dataclass
class Direction:
    """A place read from words; None where the words say nothing about that coordinate."""

    azimuth_deg: float | None
    elevation_deg: float | None
    distance_m: float | None = None
    word: str | None = None
    """The plain horizontal word it came from (front, back, left, right), if any."""


def parse_direction(phrase: str, *, motion: bool = False) -> Direction:
    """Azimuth and elevation of a normalised direction phrase ("far to the left", "front
    right", "30 degrees to the right", "above").  ``motion``: plain left / right mean the
    end of a crossing (+/-70) rather than a place (+/-60)."""
    p = phrase.strip()
    m = re.fullmatch(rf"({_NUM}) degrees(?: (?:to the |to |on the |on )?(left|right))?", p)
    if m:
        value = float(m.group(1))
        if m.group(2) == "right":
            value = -abs(value)
        elif m.group(2) == "left":
            value = abs(value)
        return Direction(float(wrap_deg(value)), None)
    mod = None
    mm = re.match(rf"({_MOD}) ", p)
    if mm:
        mod = mm.group(1)
        p = p[mm.end():]
    p = re.sub(r"^to (?:the )?", "", p)
    words = [_WORD_CANON[w] for w in re.findall(_WORD, p)]
    horizontal = [w for w in words if w in _BASE_AZ]
    vertical = [w for w in words if w in ("above", "overhead", "below")]
    az: float | None = None
    el: float | None = None
    dist = None
    if len(horizontal) >= 2 and frozenset(horizontal[:2]) in CORNER_AZ:
        az = CORNER_AZ[frozenset(horizontal[:2])]
    elif horizontal:
        w = horizontal[0]
        az = _BASE_AZ[w]
        if w in ("left", "right"):
            side = 1.0 if w == "left" else -1.0
            if mod is not None:
                az = side * _MOD_AZ[mod]
            elif motion:
                az = side * MOTION_SIDE_DEG
        elif mod in ("far", "way"):
            dist = FAR_DISTANCE_M  # "far behind": far away at the back
    if vertical:
        v = vertical[0]
        if v == "below":
            el = BELOW_ELEVATION_DEG if az is None else BELOW_ELEVATION_DEG * 2 / 3
        elif az is not None and horizontal[0] != "center":
            el = ABOVE_SIDE_ELEVATION_DEG
        else:
            el = OVERHEAD_ELEVATION_DEG if (v == "overhead" or mod in _MOD_AZ and
                                            _MOD_AZ[mod] >= 90) else ABOVE_ELEVATION_DEG
    word = horizontal[0] if len(horizontal) == 1 and mod is None else None
    return Direction(az, el, dist, word)


# --------------------------------------------------------------------------- per-source state
@dataclass
class SourceState:
    """Everything the rules read about one source, before it becomes a trajectory."""

    positions: list[Direction] = field(default_factory=list)
    start: Direction | None = None
    waypoints: list[Direction] = field(default_factory=list)
    rotation: str | None = None
    path: str | None = None  # circle | flyover | passby
    laps: float = 1.0
    distance_m: float | None = None
    distance_motion: str | None = None  # approach | recede
    elevation_motion: str | None = None  # rise | descend
    elevation_deg: float | None = None
    speed: str = "normal"
    speed_m_s: float | None = None
    crossing: str | None = None  # left_to_right | right_to_left
    relation_fixed: dict = field(default_factory=dict)
    """Coordinates set by a relation to another source ("to the left of the car")."""
    understood: list[str] = field(default_factory=list)
    has_info: bool = False

    def note(self, phrase: str, meaning: str) -> None:
        self.understood.append(f"'{phrase.strip()}' -> {meaning}")
        self.has_info = True


class Span:
    """A piece of normalised text whose matched parts are blanked out as rules read them."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.mask = [False] * len(text)
        self.protected = [False] * len(text)

    def live(self) -> str:
        return "".join(" " if m or p else c
                       for c, m, p in zip(self.text, self.mask, self.protected, strict=True))

    def protect(self, start: int, end: int) -> None:
        """Hide a class word from the rules without counting it as read."""
        for i in range(start, end):
            self.protected[i] = True

    def consume(self, start: int, end: int) -> None:
        for i in range(start, end):
            self.mask[i] = True

    def finditer(self, pattern: str | re.Pattern) -> list[re.Match]:
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        return list(rx.finditer(self.live()))

    def take(self, pattern: str | re.Pattern) -> list[re.Match]:
        """All matches on the live text, consumed."""
        found = self.finditer(pattern)
        for m in found:
            self.consume(m.start(), m.end())
        return found


_ELEV_DEG = re.compile(
    rf"\b(?:at )?(?:an )?elevation (?:of |angle of )?({_NUM})(?: degrees)?\b"
    rf"|\b({_NUM}) degrees (up|upward|upwards|above|high|of elevation|elevation|down|downward|below)\b"
)
_AZ_DEG = re.compile(rf"\b(?:at )?(?:an )?azimuth (?:of |angle of )?({_NUM})(?: degrees)?\b")
_SPEED_EXPLICIT = re.compile(
    r"\bat (\d+(?:\.\d+)?) ?(m/s|m per second|meters per second|km/h|kph|kmh|mph)\b")
_SPEED_WORDS = [
    (re.compile(r"\b(?:very|really|extremely|incredibly) (?:slowly|slow|gradually)\b"),
     "very slow"),
    (re.compile(r"\b(?:very|really|extremely|incredibly) (?:quickly|fast|rapidly|swiftly)\b"),
     "very fast"),
    (re.compile(r"\b(?:slowly|slow|gradually|gently|leisurely|lazily|unhurriedly|steadily)\b"),
     "slow"),
    (re.compile(r"\b(?:quickly|fast|rapidly|swiftly|speedily|hurriedly|suddenly|briskly"
                r"|at (?:high )?speed|in a hurry)\b"), "fast"),
    (re.compile(r"\b(?:zoom\w*|whizz\w*|whiz\w*|rac(?:e|es|ing)|rush\w*|speed(?:s|ing)|sped)\b"),
     "fast verb"),
]
_CIRCLE = re.compile(
    r"\b(?:(?:circl\w*|orbit\w*|revolv\w*)(?: a?round| in a (?:full )?circle)?(?: (?:you|me|us"
    r"|the listener|the head|your head|the room))?|(?:spin\w*|go(?:es|ing)?|mov\w*|travel\w*|rotat\w*"
    r"|fl(?:y|ies|ying)|walk\w*|run\w*|driv\w*|pan\w*|swirl\w*|swing\w*) (?:all the way |once |"
    r"twice |full )?(?:a?round|in a (?:full )?circle)(?: (?:you|me|us|the listener|the head"
    r"|your head|the room))?|in a (?:full )?circle|full circle|a circle|around the listener"
    r"|all around)( twice| two times)?\b")
_HALF_CIRCLE = re.compile(r"\b(?:half (?:a )?circle|semicircle|semi circle|half way around"
                          r"|halfway around)\b")
_FLYOVER = re.compile(
    r"\b(?:fl(?:y|ies|ying|ew)|pass\w*|go(?:es|ing)?|went|mov\w*|zoom\w*|soar\w*|travel\w*"
    r"|cross\w*|swoop\w*|roar\w*|rush\w*) (?:right |directly |straight |low )?"
    r"(?:overhead|over(?: the (?:head|top|roof|house))?)\b")
_PASSBY = re.compile(
    r"\b(?:(?:pass\w*|driv\w*|drove|go(?:es|ing)?|went|rid\w*|rode|run\w*|ran|walk\w*"
    r"|whizz\w*|whiz\w*|zoom\w*|rush\w*|speed\w*|sped|rac\w*|fl(?:y|ies|ying|ew)|mov\w*"
    r"|roll\w*|cruis\w*) (?:right |straight |quickly |slowly )?(?:by|past)"
    r"|pass(?:es|ing)?(?! (?:over|overhead|above|through|from|away)))\b")
_APPROACH = re.compile(
    r"\b(?:approach\w*|com(?:e|es|ing) (?:closer|nearer|toward\w*|near|in)|draw\w* (?:near|closer)"
    r"|get\w* (?:closer|nearer)|mov\w* (?:closer|nearer|in)|closer and closer|nearer and nearer"
    r"|toward\w* (?:you|me|us|the listener)|arriv\w*|nears|nearing)\b")
_RECEDE = re.compile(
    r"\b(?:reced\w*|mov\w* (?:away|off)|go(?:es|ing)? (?:away|off)|went (?:away|off)"
    r"|driv\w* (?:away|off)|drove (?:away|off)|walk\w* (?:away|off)|fl(?:y|ies|ying|ew) (?:away|off)"
    r"|run\w* (?:away|off)|ran (?:away|off)|fad\w* (?:away|out|into the distance)|depart\w*"
    r"|leav\w*|farther and farther(?: away)?|further and further(?: away)?"
    r"|get\w* (?:farther|further)(?: away)?|into the distance|away from (?:you|me|us|the listener)"
    r"|withdraw\w*|retreat\w*)\b")
_RISE = re.compile(r"\b(?:ris(?:e|es|ing)|rose|ascend\w*|go(?:es|ing)? up|mov\w* up(?:ward\w*)?"
                   r"|climb\w*|lift\w* off|take\w* off|soar\w* up)\b")
_DESCEND = re.compile(r"\b(?:descend\w*|go(?:es|ing)? down|mov\w* down(?:ward\w*)?|fall\w*|fell"
                      r"|drop\w*|land\w*|sink\w*|dives?|diving|swoop\w* down)\b")
_CROSS = re.compile(r"\b(?:leftward|rightward|cross(?:es|ing)?(?: the (?:scene|road|street|room"
                    r"|field|view|frame|stage|path))?)\b")
_FROM = re.compile(rf"\bfrom (?:the )?({_DIR})\b")
_TO = re.compile(rf"\b(?:to|towards|toward|into|over to|across to|round to|around to|reaching"
                 rf"|until it reaches|ending) (?:the )?({_DIR})\b")
_BARE_PAIR_START = re.compile(rf"{_MOTION_VERB.pattern} +({_DIR}) (?=(?:to|towards|toward) "
                              rf"(?:the )?{_DIR}\b)")
_POSITION = re.compile(rf"\b(?:(?:on|at|in|to|towards|toward|located|positioned|placed|situated"
                       rf"|sitting|standing|heard|coming|comes) )?(?:the )?({_DIR})\b")
_DIST_NUM = re.compile(rf"\b({_NUM}) ?(m|feet|km)\b(?: (?:away|off|distant|from (?:you|me|us|the "
                       rf"listener)))?")
_DIST_WORDS = [
    (re.compile(r"\b(?:very far(?: away| off)?|far far away|a long way (?:off|away)"
                r"|in the far distance)\b"), VERY_FAR_DISTANCE_M),
    (re.compile(r"\b(?:far away|far off|far from (?:you|me|us|the listener)|in the distance"
                r"|from afar|from far away|distant|at a distance|far)\b"), FAR_DISTANCE_M),
    (re.compile(r"\b(?:very close(?: by)?|very near(?:by)?|right next to (?:you|me|us|the "
                r"listener)|right beside (?:you|me|us|the listener)|up close|at (?:your|my) ear)\b"),
     VERY_NEAR_DISTANCE_M),
    (re.compile(r"\b(?:close by|close to (?:you|me|us|the listener)|close|nearby|near by"
                r"|near (?:you|me|us|the listener)|near|next to (?:you|me|us|the listener)"
                r"|beside (?:you|me|us|the listener))\b"), NEAR_DISTANCE_M),
    (re.compile(r"\b(?:a few m away|some distance away|at a (?:medium|moderate) distance"
                r"|(?:medium|moderate) distance|a little way (?:off|away))\b"), MID_DISTANCE_M),
]
RELATION_PATTERNS = [
    (re.compile(r"\b(?:just |slightly |far |way )?(?:to|on) the (left|right) of " + _ARTICLE),
     "lateral"),
    (re.compile(r"\bin front of " + _ARTICLE), "front"),
    (re.compile(r"\b(?:behind|at the back of) " + _ARTICLE), "behind"),
    (re.compile(r"\b(?:much |a bit |slightly |a little )?(?:nearer|closer)(?: to (?:you|me|us|"
                r"the listener))? than " + _ARTICLE), "nearer"),
    (re.compile(r"\b(?:much |a bit |slightly |a little )?(?:farther|further|more distant)"
                r"(?: away)?(?: from (?:you|me|us|the listener))? than " + _ARTICLE), "farther"),
    (re.compile(r"\b(?:above|over) " + _ARTICLE), "above"),
    (re.compile(r"\b(?:below|beneath|under) " + _ARTICLE), "below"),
    (re.compile(r"\b(?:next to|beside|alongside) " + _ARTICLE), "next"),
]


def read_span(span: Span, st: SourceState) -> None:
    """Apply the rules to one span of a source, most specific first."""
    verb_before = [m.start() for m in span.finditer(_MOTION_VERB)]

    for m in span.take(_SPEED_EXPLICIT):
        v = float(m.group(1))
        unit = m.group(2)
        v = v / 3.6 if unit in ("km/h", "kph", "kmh") else v * 0.44704 if unit == "mph" else v
        st.speed_m_s = v
        st.note(m.group(0), f"speed {v:.3g} m/s")
    for rx, speed in _SPEED_WORDS:
        for m in (span.finditer(rx) if speed == "fast verb" else span.take(rx)):
            if speed == "fast verb":
                if st.speed == "normal":
                    st.speed = "fast"
                continue
            st.speed = speed
            st.note(m.group(0), f"speed {speed}")
    for m in span.take(r"\bcounterclockwise\b"):
        st.rotation = "ccw"
        st.note(m.group(0), "counter-clockwise (azimuth increasing)")
    for m in span.take(r"\bclockwise\b"):
        st.rotation = "cw"
        st.note(m.group(0), "clockwise (azimuth decreasing)")
    for m in span.take(_ELEV_DEG):
        if m.group(1) is not None:
            el = float(m.group(1))
        else:
            el = float(m.group(2)) * (-1.0 if m.group(3) in ("down", "downward", "below") else 1.0)
        st.elevation_deg = float(np.clip(el, -90.0, 90.0))
        st.note(m.group(0), f"elevation {st.elevation_deg:+g} deg")
    for m in span.take(_AZ_DEG):
        d = Direction(float(wrap_deg(float(m.group(1)))), None)
        st.positions.append(d)
        st.note(m.group(0), f"azimuth {d.azimuth_deg:+g} deg")
    for m in span.take(_HALF_CIRCLE):
        st.path, st.laps = "circle", 0.5
        st.note(m.group(0), "half a turn around the listener")
    for m in span.take(_CIRCLE):
        st.path = "circle"
        st.laps = 2.0 if m.group(1) else 1.0
        st.note(m.group(0), f"{st.laps:g} turn(s) around the listener")
    for m in span.take(_FLYOVER):
        st.path = "flyover"
        st.note(m.group(0), f"a straight line {FLY_OVER_HEIGHT_M:g} m overhead")
    for m in span.take(_RECEDE):
        st.distance_motion = "recede"
        st.note(m.group(0), "receding")
    for m in span.take(_APPROACH):
        st.distance_motion = "approach"
        st.note(m.group(0), "approaching")
    for m in span.take(_PASSBY):
        st.path = "passby"
        st.note(m.group(0), "passing by on a straight line")
    for m in span.take(_RISE):
        st.elevation_motion = "rise"
        st.note(m.group(0), f"rising to elevation {RISE_ELEVATION_DEG:g}")
    for m in span.take(_DESCEND):
        st.elevation_motion = "descend"
        st.note(m.group(0), f"descending from elevation {RISE_ELEVATION_DEG:g}")

    # Waypoints: "from A", "A to B" and "to B" after a motion verb or a start.
    events: list[tuple[int, str, re.Match]] = []
    for m in span.take(_FROM):
        events.append((m.start(), "from", m))
    for m in span.take(_BARE_PAIR_START):
        events.append((m.start(), "from", m))
    for m in span.finditer(_TO):
        events.append((m.start(), "to", m))
    events.sort(key=lambda e: e[0])
    for pos, kind, m in events:
        phrase = m.group(1)
        if kind == "from":
            d = parse_direction(phrase, motion=True)
            if st.start is None and not st.waypoints:
                st.start = d
                st.note(m.group(0), f"starting {describe_direction(d)}")
            else:
                st.waypoints.append(d)
                st.note(m.group(0), f"then {describe_direction(d)}")
        else:
            moving = (st.start is not None or bool(st.waypoints) or st.path is not None
                      or any(v < pos for v in verb_before))
            if not moving:
                continue  # "barks to the left": a place, read below
            span.consume(m.start(), m.end())
            d = parse_direction(phrase, motion=True)
            st.waypoints.append(d)
            st.note(m.group(0), f"moving to {describe_direction(d)}")
    for m in span.take(_CROSS):
        word = m.group(0)
        st.crossing = "right_to_left" if word == "leftward" else "left_to_right"
        st.note(word, st.crossing.replace("_", " "))

    for m in span.take(_DIST_NUM):
        v = float(m.group(1)) * {"m": 1.0, "feet": 0.3048, "km": 1000.0}[m.group(2)]
        if v <= 0:
            continue
        st.distance_m = v
        st.note(m.group(0), f"{v:.3g} m away")
    for m in span.take(_POSITION):
        d = parse_direction(m.group(1))
        st.positions.append(d)
        st.note(m.group(0), describe_direction(d))
        if d.distance_m is not None and st.distance_m is None:
            st.distance_m = d.distance_m
    for rx, value in _DIST_WORDS:
        for m in span.take(rx):
            if st.distance_m is None:
                st.distance_m = value
            st.note(m.group(0), f"{value:g} m away")


def describe_direction(d: Direction) -> str:
    parts = []
    if d.azimuth_deg is not None:
        parts.append(f"azimuth {d.azimuth_deg:+g} deg")
    if d.elevation_deg is not None:
        parts.append(f"elevation {d.elevation_deg:+g} deg")
    if d.distance_m is not None:
        parts.append(f"{d.distance_m:g} m")
    return ", ".join(parts) or "(no direction)"


def prompt_text(span: Span) -> str:
    """The span with its spatial phrases removed, class words kept: "a police siren wails"."""
    kept = "".join(" " if m else c for c, m in zip(span.text, span.mask, strict=True))
    return " ".join(kept.replace(",", " ").split())


def is_function_word(word: str) -> bool:
    """A function word, a sound verb or a motion verb: not the name of a sound."""
    return (word in _FUNCTION_WORDS or word in _SOUND_VERBS
            or _MOTION_VERB.fullmatch(word) is not None)


def leftover_fragments(live: str) -> list[str]:
    """Unread fragments: runs of words that are neither function words nor sound verbs."""
    frags: list[str] = []
    current: list[str] = []
    for tok in re.findall(r"[a-z0-9'.+-]+|[,;.!?]", live):
        if (tok in ",;.!?" or tok in _FUNCTION_WORDS or tok in _SOUND_VERBS
                or _MOTION_VERB.fullmatch(tok)):
            if current:
                frags.append(" ".join(current))
                current = []
            continue
        current.append(tok)
    if current:
        frags.append(" ".join(current))
    return frags


def unique_fragments(frags: list[str]) -> list[str]:
    seen: list[str] = []
    for f in frags:
        f = f.strip(" .,")
        if f and f not in seen:
            seen.append(f)
    return seen

