"""The MLLM planner: SpA2V's audio-guided video planning with any language model.

SpA2V plans a Video Scene Layout with a multimodal LLM, a system instruction and three
in-context examples retrieved by nearest neighbours.  Open audio LLMs hear only a mono
16 kHz downmix, so this planner hands the model what it cannot hear: the measured
spatial cues of every analysed source, as numbers and words (:mod:`.prompt`), with
``k`` examples from a bank of simulated scenes with known layouts (:mod:`.bank`).

The model runs behind an OpenAI-compatible chat-completions server or in-process with
transformers (:mod:`.backends`).  Its reply is repaired, validated, clamped and matched
to the analysed sources (:mod:`.reply`); an unusable reply is sent back with the fault
up to ``retries`` times, and then the rule planner takes over.  Every failure prints
one ``warning: mllm planner: ...`` line on stderr, and the layout's ``planner`` field
says who made it: ``mllm:<model>`` or ``rule (fallback: <reason>)``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from planners.mllm.backends import (
    BackendError,
    ChatBackend,
    OpenAIChatBackend,
    Reply,
    TransformersBackend,
    mono_downmix_16k,
)
from planners.mllm.bank import Example, ExampleBank
from planners.mllm.prompt import FrameRequest, build_messages, estimate_reply_tokens, feedback
from planners.mllm.reply import Expectation, ReplyError, read_reply
from planners.mllm.summary import summarize
from spa2v._typing import PathType
from spa2v.conventions import Camera
from spa2v.errors import InputError
from spa2v.layout import SceneLayout

__all__ = ["MLLMPlanner", "OpenAIChatBackend", "TransformersBackend", "BackendError",
           "ReplyError", "ExampleBank"]

REASON_CHARS = 240
"""The fallback reason kept in the layout's ``planner`` field is cut to this length."""


def _stderr_warning(line: str) -> None:
    sys.stderr.write(f"warning: {line}\n")
    sys.stderr.flush()


def _one_line(text: str, limit: int = REASON_CHARS) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


class MLLMPlanner:
    """Plan a layout with a language model; fall back to the rule planner when it fails.

    Parameters
    ----------
    backend : ChatBackend
        :class:`OpenAIChatBackend` or :class:`TransformersBackend`.
    examples : int
        In-context examples per request (``k``, SpA2V uses 3).
    temperature : float
        Sampling temperature (SpA2V: 0.5).
    retries : int
        Further requests after an unusable reply or a failed request.
    send_audio : bool
        Add the mono 16 kHz downmix to the request (audio language models).
    max_new_tokens : int, optional
        Reply length limit; by default from the number of frames and sources.
    bank : ExampleBank, optional
        Default: the bank shipped with the package.
    warn : callable, optional
        Receives each warning line (default: ``warning: ...`` on stderr).
    """

    name = "mllm"
    wants_audio = True

    def __init__(
        self,
        backend: ChatBackend,
        *,
        examples: int = 3,
        temperature: float = 0.5,
        retries: int = 2,
        send_audio: bool = False,
        max_new_tokens: int | None = None,
        bank: ExampleBank | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        if examples < 0:
            raise InputError(f"--examples must be 0 or more, got {examples}")
        if retries < 0:
            raise InputError(f"--retries must be 0 or more, got {retries}")
        if not 0.0 <= temperature <= 2.0:
            raise InputError(f"--temperature must be within [0, 2], got {temperature}")
        if max_new_tokens is not None and max_new_tokens < 1:
            raise InputError(f"max_new_tokens must be positive, got {max_new_tokens}")
        self.backend = backend
        self.k = int(examples)
        self.temperature = float(temperature)
        self.retries = int(retries)
        self.send_audio = bool(send_audio)
        self.max_new_tokens = max_new_tokens
        self._bank = bank
        self.warn = warn or _stderr_warning
        self.last_messages: list[dict[str, Any]] = []
        """The messages of the latest request (for inspection and tests)."""

    @classmethod
    def from_options(cls, opts: Any) -> MLLMPlanner:
        """Build the planner from ``spa2v.pipeline.PlanOptions`` (the CLI's options).

        Uses ``endpoint`` + ``model`` [+ ``api_key_env``] for a server, or ``model_path``
        for a local model; ``examples``, ``temperature``, ``retries``, ``timeout_s`` and
        ``send_audio`` as given, and ``max_new_tokens`` where the options have it.
        """
        endpoint = getattr(opts, "endpoint", None)
        model_path = getattr(opts, "model_path", None)
        if endpoint and model_path:
            raise InputError("the mllm planner takes either --endpoint URL or --model-path DIR, "
                             "not both")
        if endpoint:
            backend: ChatBackend = OpenAIChatBackend(
                endpoint, getattr(opts, "model", None) or "",
                api_key_env=getattr(opts, "api_key_env", None),
                timeout_s=float(getattr(opts, "timeout_s", 60.0)),
            )
        elif model_path:
            backend = TransformersBackend(model_path)
        else:
            raise InputError("the mllm planner needs a model: --endpoint URL --model NAME "
                             "(an OpenAI-compatible server) or --model-path DIR (a local "
                             "transformers model)")
        return cls(
            backend,
            examples=int(getattr(opts, "examples", 3)),
            temperature=float(getattr(opts, "temperature", 0.5)),
            retries=int(getattr(opts, "retries", 2)),
            send_audio=bool(getattr(opts, "send_audio", False)),
            max_new_tokens=getattr(opts, "max_new_tokens", None),
        )

    @property
    def bank(self) -> ExampleBank:
        if self._bank is None:
            self._bank = ExampleBank.load()
        return self._bank

    # ------------------------------------------------------------------ planning
    def plan(
        self,
        analysis: dict,
        *,
        labels: list[str] | None = None,
        caption: str | None = None,
        fps: float = 4.0,
        camera: Camera | None = None,
        background: str | None = None,
        audio_path: PathType | None = None,
    ) -> SceneLayout:
        """Plan a layout from an analysis result (DESIGN.md, "Analysis result").

        Parameters are those of :meth:`planners.rule.RulePlanner.plan`, and
        ``audio_path``, the recording, for the audio part (with ``send_audio``).

        Raises
        ------
        InputError
            The analysis is malformed or has no active source, or the model is
            misconfigured (the rule planner does not stand in for those).
        """
        if not fps > 0:
            raise InputError(f"the keyframe rate must be positive, got {fps}")
        camera = camera or Camera()
        scene = summarize(analysis)
        frames = FrameRequest(scene.duration_s, float(fps))
        examples = self.bank.nearest(scene, self.k)
        messages = build_messages(
            scene, frames, [(e.cues, e.layout, e.labels) for e in examples], camera=camera,
            labels=labels, caption=caption, background=background,
        )
        exp = Expectation(scene, frames, camera, list(labels) if labels else None, caption,
                          background)
        audio = self._audio(audio_path, analysis.get("format"))
        max_tokens = self.max_new_tokens or estimate_reply_tokens(frames, len(scene.sources))
        info: dict[str, Any] = {
            "backend": self.backend.kind,
            "model": self.backend.name,
            "examples": [e.id for e in examples],
            "temperature": self.temperature,
            "audio": audio is not None,
        }

        attempts = 1 + self.retries
        errors: list[str] = []
        self.last_messages = messages
        for attempt in range(1, attempts + 1):
            self.last_messages = [dict(m) for m in messages]
            try:
                reply = self.backend.complete(messages, temperature=self.temperature,
                                              max_tokens=max_tokens, audio=audio)
            except BackendError as exc:
                errors.append(str(exc))
                self.warn(f"mllm planner: request {attempt}/{attempts} failed: {exc}")
                continue
            try:
                parsed = read_reply(reply.text, exp)
            except ReplyError as exc:
                errors.append(f"invalid reply: {exc}")
                self.warn(f"mllm planner: reply {attempt}/{attempts} invalid: "
                          f"{_one_line(exc, 400)}")
                messages = messages + self._feedback(reply, str(exc))
                continue
            meta = self._meta(analysis, info, attempt, errors)
            meta["mllm"].update(reply_form=parsed.form, clamped_boxes=parsed.clamped_boxes,
                                dropped_boxes=parsed.dropped_boxes)
            return parsed.layout.model_copy(
                update={"planner": f"mllm:{self.backend.name}", "meta": meta}
            )
        return self._fallback(analysis, errors, info, attempts, labels=labels, caption=caption,
                              fps=fps, camera=camera, background=background)

    def _feedback(self, reply: Reply, error: str) -> list[dict[str, Any]]:
        shown = reply.text if len(reply.text) <= 6000 else reply.text[:6000] + " ..."
        return [
            {"role": "assistant", "content": shown or "(empty reply)"},
            {"role": "user", "content": feedback(error, truncated=reply.truncated)},
        ]

    def _audio(self, audio_path: PathType | None, fmt: str | None):
        if not self.send_audio:
            return None
        if audio_path is None:
            self.warn("mllm planner: --send-audio without the recording; sending the cues only")
            return None
        if isinstance(self.backend, TransformersBackend) and not self.backend.has_audio:
            self.warn(f"mllm planner: the model in {self.backend.path} has no audio processor; "
                      "sending the cues only")
            return None
        mono, cut = mono_downmix_16k(audio_path, fmt)
        if cut:
            self.warn(f"mllm planner: the audio part holds only the first {len(mono) / 16000:g} s "
                      f"of {Path(audio_path).name}")
        return mono

    def _meta(self, analysis: dict, info: dict[str, Any], attempts: int,
              errors: list[str]) -> dict[str, Any]:
        return {
            "input": analysis.get("input"),
            "format": analysis.get("format"),
            "mllm": {**info, "attempts": attempts, "errors": errors},
        }

    def _fallback(self, analysis: dict, errors: list[str], info: dict[str, Any], attempts: int,
                  **plan_kw: Any) -> SceneLayout:
        from planners.rule import RulePlanner

        last = errors[-1] if errors else "no reply"
        reason = f"no usable reply after {attempts} attempt{'s' if attempts != 1 else ''}"
        reason += f" (last: {last})"
        self.warn(f"mllm planner: falling back to the rule planner: {_one_line(reason, 400)}")
        layout = RulePlanner().plan(analysis, **plan_kw)
        meta = dict(layout.meta)
        meta["mllm"] = {**info, "attempts": attempts, "errors": errors}
        return layout.model_copy(
            update={"planner": f"rule (fallback: {_one_line(reason)})", "meta": meta}
        )


def retrieve(scene_analysis: dict, k: int = 3, bank: ExampleBank | None = None) -> list[Example]:
    """The ``k`` bank examples nearest to an analysis result (a convenience for inspection)."""
    return (bank or ExampleBank.load()).nearest(summarize(scene_analysis), k)
