"""The request: SpA2V's system instruction, the cues as numbers and words, in-context examples.

A request is a list of chat messages ``{"role", "content"}`` (content a string):

1. ``system``: the instruction (a video director planning scene layouts from audio),
   the picture conventions and the reply format (the VSL as JSON; SpA2V's text form
   is accepted too).
2. For each retrieved example, a ``user`` message describing its cues and an
   ``assistant`` message with its ground-truth layout as JSON.
3. The ``user`` message of the recording at hand: its cues, the user's labels or
   caption, and the frames to fill.

The backends add the optional audio part to the last message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from planners.mllm.summary import SceneCues, SourceCues
from spa2v.conventions import Camera
from spa2v.layout import SceneLayout, frame_count

Message = dict[str, Any]

SYSTEM_INSTRUCTION = """\
You are an intelligent video director. You plan the scene layout of a short video that \
must match a spatial audio recording: what is seen, where, and how it moves, frame by frame.

You cannot hear where the sounds come from (you may receive at most a mono downmix), so a \
spatial audio analyser has measured it for you. For every sound source it reports:
- azimuth in degrees: 0 = straight ahead, +90 = far left, -90 = far right (sources behind \
the listener are shown folded to the front);
- ILD (interaural level difference, dB; positive = the left ear is louder) and ITD \
(interaural time difference, ms; positive = the left ear hears it first): both point to the \
left when positive;
- loudness in dB and its trend: getting louder means approaching, quieter means receding;
- position and motion labels, and a confidence between 0 and 1;
- camera x: where the azimuth falls in the picture under the camera model.

The picture: coordinates are normalised to [0, 1], origin at the top left, x to the right, \
y down. A box is [x1, y1, x2, y2] with x1 < x2 and y1 < y2. Place each object so that the \
centre of its box follows the camera x of its source; an approaching object grows and its \
bottom edge moves down, a receding one shrinks; objects on the ground stand below a horizon \
at about y = 0.55, birds and aircraft fly above it; sizes follow the kind of object.

Reply with one JSON object, the Video Scene Layout, and nothing else:
{"version": 1, "duration": <seconds>, "fps": <keyframes per second>, \
"caption": "<one sentence describing the whole video>", \
"background": "<street, indoor, nature, sky, stage or default>", \
"objects": [{"id": 0, "name": "<what it is>", "description": "<a short phrase>", \
"source": <the source id>}], \
"frames": [{"t": <seconds>, "caption": "<what happens in this frame>", \
"boxes": [{"id": 0, "box": [x1, y1, x2, y2]}]}]}
Give exactly one object per analysed source (with that source's id as "source"), one frame \
at each requested time, boxes listed back to front, and leave an object out of a frame only \
where it cannot be seen. Name the objects after the user's labels or caption when there are \
any. SpA2V's text form ("Video caption: ...", then per frame "Frame 1:", \
"Layout: [{id: 0, name: car, box: [x1, y1, x2, y2]}]", "Frame caption: ...") is accepted too, \
but JSON is preferred."""


@dataclass(frozen=True)
class FrameRequest:
    """The frames a reply must fill: ``n`` keyframes at ``k / fps`` over ``duration_s``."""

    duration_s: float
    fps: float

    @property
    def n_frames(self) -> int:
        return frame_count(self.duration_s, self.fps)

    @property
    def times_s(self) -> list[float]:
        return [round(k / self.fps, 4) for k in range(self.n_frames)]


# --------------------------------------------------------------------------- cue text
def _signed(v: float, nd: int = 1) -> str:
    return f"{v:+.{nd}f}"


def _side_words(az_deg: float) -> str:
    a = abs(az_deg)
    if a < 15:
        return "ahead, in the center"
    side = "left" if az_deg > 0 else "right"
    return f"on the far {side}" if a >= 55 else f"on the {side}"


_MOTION_WORDS = {
    "static": "stays in place",
    "left_to_right": "moves from the left to the right",
    "right_to_left": "moves from the right to the left",
    "approaching": "comes closer",
    "receding": "moves away",
}


def _trend_words(change_db: float) -> str:
    if change_db >= 3.0:
        return "getting louder (approaching)"
    if change_db <= -3.0:
        return "getting quieter (receding)"
    return "steady"


def describe_source(s: SourceCues, rank: int, camera: Camera, *, mixed: bool = False) -> str:
    """Cue lines of one source, numbers and words.

    ``mixed``: several sources sound at once, so the ILD and ITD (measured on the
    mixture while this source is active) are labelled as the mixture's.
    """
    conf = "" if s.confidence is None else f"; confidence {s.confidence:.2f}"
    head = "loudest" if rank == 0 else f"{_signed(s.relative_level_db)} dB vs the loudest"
    words = f"heard {_side_words(s.azimuth_start_deg)} at the start"
    if s.motion != "static":
        words += f"; it {_MOTION_WORDS.get(s.motion, s.motion)}"
    if s.behind:
        words += "; heard behind the listener (show it folded to the front)"
    track = ", ".join(
        f"{t:.1f}s {_signed(a, 0)}" for t, a in zip(s.track_times_s, s.track_azimuth_deg, strict=True)
    )
    x0, x1 = s.x_start_end(camera)
    lines = [
        f"Source {s.source_id} ({head}{conf}): position {s.position}, motion {s.motion}; {words}.",
        f"  azimuth (deg): start {_signed(s.azimuth_start_deg)}, end {_signed(s.azimuth_end_deg)}, "
        f"mean {_signed(s.azimuth_mean_deg)}, range {_signed(s.azimuth_min_deg)} to "
        f"{_signed(s.azimuth_max_deg)}; track: {track}",
    ]
    if s.elevation_mean_deg is not None:
        lines.append(f"  elevation (deg): mean {_signed(s.elevation_mean_deg)}")
    lines.append(
        f"  loudness (dB): start {s.loudness_start_db:.1f}, end {s.loudness_end_db:.1f}, "
        f"change {_signed(s.loudness_change_db)} ({_signed(s.loudness_slope_db_per_s, 2)} dB/s): "
        f"{_trend_words(s.loudness_change_db)}"
    )
    if s.ild_start_db is not None and s.ild_end_db is not None:
        itd = ""
        if s.itd_start_ms is not None and s.itd_end_ms is not None:
            itd = f"; ITD (ms): start {_signed(s.itd_start_ms, 3)}, end {_signed(s.itd_end_ms, 3)}"
        of = " of the mixture" if mixed else ""
        lines.append(
            f"  ILD{of} (dB): start {_signed(s.ild_start_db)}, end {_signed(s.ild_end_db)}{itd}"
        )
    lines.append(f"  active from {s.active_from_s:.2f} s to {s.active_to_s:.2f} s")
    lines.append(f"  camera x: start {_x_words(x0)}, end {_x_words(x1)}")
    return "\n".join(lines)


def _x_words(x: float) -> str:
    if x < 0.0:
        return f"{x:.2f} (off-screen left)"
    if x > 1.0:
        return f"{x:.2f} (off-screen right)"
    return f"{x:.2f}"


def describe_scene(
    scene: SceneCues,
    frames: FrameRequest,
    *,
    camera: Camera,
    labels: Sequence[str] | None = None,
    caption: str | None = None,
    background: str | None = None,
) -> str:
    """The user message of one recording: cues, the user's words, the frames to fill."""
    n = len(scene.sources)
    cam = (
        "sine projection, camera x = 0.5 - 0.5 sin(azimuth)"
        if camera.projection == "sine"
        else f"pinhole, horizontal field of view {camera.hfov_deg:g} deg"
    )
    lines = [
        f"Recording: {scene.format}, {scene.duration_s:.2f} s; {n} sound source"
        f"{'s' if n != 1 else ''} (loudest first). Camera: {cam}.",
    ]
    lines += [describe_source(s, i, camera, mixed=n > 1) for i, s in enumerate(scene.sources)]
    if labels:
        named = ", ".join(
            f"source {s.source_id} = {lb}"
            for s, lb in zip(scene.sources, labels, strict=False)
        )
        lines.append(f"The user names the sources: {named}.")
    if caption and caption.strip():
        lines.append(f"The user's caption: {' '.join(caption.split())}")
    if not labels and not (caption and caption.strip()):
        lines.append(
            "No labels or caption were given: name each object after what the sound most "
            "likely is (listen to the audio if you have it), or 'sound source' if unsure."
        )
    if background:
        lines.append(f"Background: {background}.")
    ids = ", ".join(f"id {i} for source {s.source_id}" for i, s in enumerate(scene.sources))
    times = ", ".join(f"{t:g}" for t in frames.times_s)
    lines.append(
        f"Plan the layout: duration {frames.duration_s:g} s, fps {frames.fps:g}, "
        f"{frames.n_frames} frames at t = {times} s; {n} object{'s' if n != 1 else ''} "
        f"({ids})."
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- replies
def layout_reply(layout: SceneLayout) -> str:
    """A layout as the compact JSON reply the model is asked for (boxes with 3 decimals)."""
    d = layout.to_dict()
    out = {
        "version": 1,
        "duration": d["duration"],
        "fps": d["fps"],
        "caption": d["caption"],
        "background": d["background"],
        "objects": [
            {k: o[k] for k in ("id", "name", "description", "source") if o.get(k) is not None}
            for o in d["objects"]
        ],
        "frames": [
            {
                "t": round(f["t"], 4),
                "caption": f["caption"],
                "boxes": [{"id": b["id"], "box": [round(v, 3) for v in b["box"]]} for b in f["boxes"]],
            }
            for f in d["frames"]
        ],
    }
    return json.dumps(out, ensure_ascii=False)


def feedback(error: str, *, truncated: bool = False) -> str:
    """The user message that follows an unusable reply."""
    cut = (
        " Your reply was cut off at the length limit: keep captions short." if truncated else ""
    )
    return (
        f"That reply could not be used: {error}.{cut} Reply again with the complete corrected "
        "layout as one JSON object, and nothing else."
    )


def build_messages(
    scene: SceneCues,
    frames: FrameRequest,
    examples: Sequence[tuple[SceneCues, SceneLayout, Sequence[str]]],
    *,
    camera: Camera,
    labels: Sequence[str] | None = None,
    caption: str | None = None,
    background: str | None = None,
) -> list[Message]:
    """The chat messages of a request (see the module docstring).

    ``examples`` are (cues, layout, labels) triples; each layout is resampled to the
    request's keyframe rate so that the examples show the frame spacing asked for.
    """
    messages: list[Message] = [{"role": "system", "content": SYSTEM_INSTRUCTION}]
    for ex_scene, ex_layout, ex_labels in examples:
        ex_frames = FrameRequest(ex_layout.duration, frames.fps)
        shown = ex_layout.resample(frames.fps)
        messages.append(
            {
                "role": "user",
                "content": describe_scene(ex_scene, ex_frames, camera=Camera(), labels=ex_labels),
            }
        )
        messages.append({"role": "assistant", "content": layout_reply(shown)})
    messages.append(
        {
            "role": "user",
            "content": describe_scene(
                scene, frames, camera=camera, labels=labels, caption=caption,
                background=background,
            ),
        }
    )
    return messages


def estimate_reply_tokens(frames: FrameRequest, n_sources: int) -> int:
    """A generous token budget for a JSON reply.

    About 30 tokens per box and 25 per frame caption, 40 per object and 150 for the
    rest, with half as much again for the model's own way of writing it.
    """
    need = 150 + 40 * n_sources + frames.n_frames * (25 + 30 * n_sources)
    return int(min(8192, max(256, 1.5 * need)))
