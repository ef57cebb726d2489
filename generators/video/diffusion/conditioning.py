"""What the sampler conditions each frame on: prompts, object tokens, boxes and masks.

A layout gives the sampler, per generated frame:

- a prompt: the global caption, followed by the caption of the keyframe the frame falls
  in (``use_frame_captions``); object names the global caption does not mention are
  appended to it, so that every object has tokens to guide;
- for each object, the positions of its name's tokens in that prompt, found with the
  model's own tokenizer (a name the tokenizer splits is guided by all its sub-tokens;
  unknown sub-tokens and those past the prompt length are dropped, and an object left
  with none is named in a :class:`GuidanceWarning`);
- each object's box, linearly interpolated from the keyframes
  (:meth:`spa2v.layout.SceneLayout.track`), and whether it is visible.

Masks are made per attention resolution with :func:`box_masks`.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np

from spa2v.layout import SceneLayout


class GuidanceWarning(UserWarning):
    """An object of the layout cannot be grounded (no usable tokens)."""


@dataclass
class FrameConditioning:
    """Per-frame prompts, object tokens and boxes for ``num_frames`` generated frames.

    Attributes
    ----------
    times_s : ndarray, shape (F,)
        The layout time each generated frame shows.
    prompts : list of str
        The distinct prompts; ``prompt_of_frame[f]`` indexes it.
    prompt_of_frame : ndarray, shape (F,), int
    token_index : ndarray, shape (P, K, J), int
        Token positions of object k in prompt p, padded with 0 to ``J``.
    token_valid : ndarray, shape (P, K, J), bool
    boxes : ndarray, shape (K, F, 4)
        Normalised ``[x1, y1, x2, y2]`` (zeros where never visible).
    visible : ndarray, shape (K, F), bool
    object_ids, names : list
        The K objects, in layout order.
    """

    times_s: np.ndarray
    prompts: list[str]
    prompt_of_frame: np.ndarray
    token_index: np.ndarray
    token_valid: np.ndarray
    boxes: np.ndarray
    visible: np.ndarray
    object_ids: list[int]
    names: list[str]

    @property
    def num_frames(self) -> int:
        return len(self.times_s)

    @property
    def guided(self) -> np.ndarray:
        """(K,) bool: objects with at least one usable token."""
        return self.token_valid.any(axis=(0, 2))

    def frame_tokens(self) -> tuple[np.ndarray, np.ndarray]:
        """Token positions and validity per frame, shapes (F, K, J)."""
        return self.token_index[self.prompt_of_frame], self.token_valid[self.prompt_of_frame]


def sampler_times(duration_s: float, out_fps: float, num_frames: int) -> np.ndarray:
    """Layout times of ``num_frames`` generated frames spread over the output clip.

    The first generated frame shows the first output frame (t = 0) and the last one the
    last output frame (``(n_out - 1) / out_fps``), so that every output frame lies
    between two generated ones.
    """
    n_out = max(1, int(np.floor(duration_s * out_fps + 0.5)))
    t_last = (n_out - 1) / float(out_fps)
    if num_frames == 1:
        return np.zeros(1)
    return np.linspace(0.0, t_last, num_frames)


def _mentions(text: str, name: str) -> bool:
    return re.search(r"(?<!\w)" + re.escape(name.lower()) + r"(?!\w)", text.lower()) is not None


def frame_prompts(
    layout: SceneLayout, times_s: np.ndarray, *, use_frame_captions: bool = True
) -> list[str]:
    """The prompt of each generated frame (see the module docstring)."""
    caption = layout.caption.strip()
    missing = [o.name for o in layout.objects if not _mentions(caption, o.name)]
    if missing:
        caption = (caption.rstrip(".") + ", " if caption else "") + ", ".join(missing)
    if not use_frame_captions:
        return [caption] * len(times_s)
    tk = layout.keyframe_times
    src = np.clip(np.searchsorted(tk, np.asarray(times_s) + 1e-6, side="right") - 1, 0, len(tk) - 1)
    out = []
    for k in src:
        extra = layout.frames[int(k)].caption.strip()
        out.append(f"{caption} {extra}".strip() if extra else caption)
    return out


def _find(seq: list[int], sub: list[int]) -> list[int]:
    """Start positions of ``sub`` in ``seq``."""
    n = len(sub)
    return [i for i in range(len(seq) - n + 1) if seq[i : i + n] == sub] if n else []


def object_token_positions(tokenizer, prompt: str, name: str) -> tuple[list[int], str | None]:
    """Positions of ``name``'s tokens in the tokenized ``prompt``.

    Every occurrence counts; a name the tokenizer splits contributes all its sub-tokens
    except unknown ones. Positions past the tokenizer's ``model_max_length`` are dropped.

    Returns
    -------
    positions : list of int
        Indices into the prompt's token ids (with the start token at 0).
    problem : str or None
        Why the list is empty, when it is.
    """
    max_len = int(tokenizer.model_max_length)
    ids = list(tokenizer(prompt, truncation=False).input_ids)
    sub = list(tokenizer(name, add_special_tokens=False).input_ids)
    special = {tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id}
    special |= {tokenizer.pad_token_id}
    if not sub or all(t in special for t in sub):
        return [], "its name has no token in the model's vocabulary"
    starts = _find(ids, sub)
    if not starts:
        return [], "its name does not appear in the prompt"
    positions = sorted({s + j for s in starts for j, t in enumerate(sub) if t not in special})
    kept = [p for p in positions if p < max_len - 1]
    if not kept:
        return [], f"its tokens fall after the {max_len}-token limit of the prompt"
    return kept, None


def build_conditioning(
    layout: SceneLayout,
    tokenizer,
    times_s: np.ndarray,
    *,
    use_frame_captions: bool = True,
    warn: bool = True,
) -> FrameConditioning:
    """Prompts, token positions and interpolated boxes of the generated frames."""
    times_s = np.asarray(times_s, dtype=np.float64)
    per_frame = frame_prompts(layout, times_s, use_frame_captions=use_frame_captions)
    prompts = list(dict.fromkeys(per_frame))
    prompt_of_frame = np.array([prompts.index(p) for p in per_frame], dtype=np.int64)
    objects = layout.objects
    found: list[list[list[int]]] = []
    for p in prompts:
        row = []
        for o in objects:
            pos, _ = object_token_positions(tokenizer, p, o.name)
            row.append(pos)
        found.append(row)
    if warn:
        for k, o in enumerate(objects):
            if not any(found[p][k] for p in range(len(prompts))):
                _, why = object_token_positions(tokenizer, prompts[0], o.name)
                warnings.warn(
                    f"object {o.id} ({o.name!r}) cannot be guided: {why}",
                    GuidanceWarning,
                    stacklevel=2,
                )
    n_tok = max([1] + [len(x) for row in found for x in row])
    index = np.zeros((len(prompts), len(objects), n_tok), dtype=np.int64)
    valid = np.zeros_like(index, dtype=bool)
    for p, row in enumerate(found):
        for k, pos in enumerate(row):
            index[p, k, : len(pos)] = pos
            valid[p, k, : len(pos)] = True
    boxes = np.zeros((len(objects), len(times_s), 4))
    visible = np.zeros((len(objects), len(times_s)), dtype=bool)
    for k, o in enumerate(objects):
        b, v = layout.track(o.id, times_s)
        visible[k] = v & np.isfinite(b).all(axis=1)
        boxes[k] = np.nan_to_num(b)
    return FrameConditioning(
        times_s=times_s,
        prompts=prompts,
        prompt_of_frame=prompt_of_frame,
        token_index=index,
        token_valid=valid,
        boxes=boxes,
        visible=visible,
        object_ids=[o.id for o in objects],
        names=[o.name for o in objects],
    )


def box_masks(boxes: np.ndarray, visible: np.ndarray, height: int, width: int) -> np.ndarray:
    """Binary masks of boxes on a ``height`` x ``width`` attention grid.

    A box covers the cells ``round(x1 W) <= x < round(x2 W)`` (and likewise in y), at
    least one cell in each direction; an invisible object gets an empty mask.

    Parameters
    ----------
    boxes : ndarray, shape (K, F, 4)
    visible : ndarray, shape (K, F)

    Returns
    -------
    ndarray, shape (F, K, height * width), float32
    """
    n_obj, n_frames = boxes.shape[:2]
    out = np.zeros((n_frames, n_obj, height, width), dtype=np.float32)
    for k in range(n_obj):
        for f in range(n_frames):
            if not visible[k, f]:
                continue
            x1, y1, x2, y2 = boxes[k, f]
            c0 = min(int(round(x1 * width)), width - 1)
            r0 = min(int(round(y1 * height)), height - 1)
            c1 = max(int(round(x2 * width)), c0 + 1)
            r1 = max(int(round(y2 * height)), r0 + 1)
            out[f, k, r0:r1, c0:c1] = 1.0
    return out.reshape(n_frames, n_obj, height * width)
