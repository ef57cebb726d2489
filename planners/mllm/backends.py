"""Where the language model runs: an OpenAI-compatible server, or transformers in-process.

Both take the chat messages of :mod:`planners.mllm.prompt` and return a :class:`Reply`.
Whatever goes wrong while asking (a timeout, a refused connection, an HTTP error, a
malformed response, a failed generation) raises :class:`BackendError`, which the
planner treats like an unusable reply.  Configuration faults (no such model directory,
a missing API key variable) raise :class:`spa2v.errors.InputError` at once.

Audio: with ``audio`` (mono float32 at 16 kHz), the HTTP backend adds an ``input_audio``
part (base64 WAV) to the last user message; the local backend adds an ``audio`` part
when the model's processor has an audio feature extractor.
"""

from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from spa2v._typing import PathType
from spa2v.errors import CheckpointError, InputError

AUDIO_SR = 16000
"""Rate of the mono downmix that audio language models hear."""
MAX_AUDIO_S = 30.0
"""Longer recordings are cut to their first this-many seconds for the audio part."""


class BackendError(Exception):
    """Asking the model failed (one line, no traceback)."""


@dataclass
class Reply:
    """The model's text, whether it stopped at the length limit, and its length in tokens."""

    text: str
    truncated: bool = False
    tokens: int | None = None


class ChatBackend(Protocol):
    """A chat model: messages in, text out."""

    name: str
    kind: str

    def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        temperature: float,
        max_tokens: int,
        audio: np.ndarray | None = None,
    ) -> Reply: ...


# --------------------------------------------------------------------------- audio
def mono_downmix_16k(audio_path: PathType, fmt: str | None) -> tuple[np.ndarray, bool]:
    """The mono 16 kHz downmix of a recording (FOA: the W channel), at most ``MAX_AUDIO_S``.

    Returns the samples and whether they were cut.
    """
    from spa2v.audio import read_audio

    y, _ = read_audio(audio_path, sr=AUDIO_SR)
    mono = y[0] if fmt == "foa" or y.shape[0] == 1 else y.mean(axis=0)
    n_max = int(MAX_AUDIO_S * AUDIO_SR)
    peak = float(np.max(np.abs(mono))) if mono.size else 0.0
    if peak > 1.0:
        mono = mono / peak
    return mono[:n_max].astype(np.float32), mono.size > n_max


def wav_base64(mono: np.ndarray, sr: int = AUDIO_SR) -> str:
    """16-bit PCM WAV bytes of a mono signal, base64-encoded."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(mono, -1.0, 1.0), sr, format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode("ascii")


# --------------------------------------------------------------------------- HTTP
def chat_completions_url(endpoint: str) -> str:
    """The chat-completions URL of an endpoint.

    ``http://host:8000`` and ``http://host:8000/v1`` get ``/v1/chat/completions`` and
    ``/chat/completions`` appended; a URL that already ends in ``/chat/completions`` is
    kept.
    """
    url = endpoint.strip().rstrip("/")
    if not url.lower().startswith(("http://", "https://")):
        raise InputError(f"--endpoint must be an http:// or https:// URL, got {endpoint!r}")
    if url.endswith("/chat/completions"):
        return url
    path = url.split("://", 1)[1].partition("/")[2]
    return url + ("/chat/completions" if path else "/v1/chat/completions")


class OpenAIChatBackend:
    """Any server that speaks OpenAI's chat-completions protocol (vLLM, llama.cpp, Ollama, ...).

    Parameters
    ----------
    endpoint : str
        Server URL (``http://127.0.0.1:8000/v1`` or the full ``.../chat/completions``).
    model : str
        Model name on the server.
    api_key_env : str, optional
        Name of the environment variable that holds the API key (sent as a bearer token).
    timeout_s : float
        Limit on connecting and on each wait for data.
    """

    kind = "openai"

    def __init__(
        self, endpoint: str, model: str, *, api_key_env: str | None = None, timeout_s: float = 60.0
    ) -> None:
        try:
            import httpx  # noqa: F401
        except ImportError:
            raise InputError(
                "the mllm planner's HTTP backend needs httpx: pip install 'spa2v[mllm]'"
            ) from None
        if not model or not model.strip():
            raise InputError("--endpoint needs --model NAME (the model's name on the server)")
        if not timeout_s > 0:
            raise InputError(f"--timeout must be positive, got {timeout_s}")
        self.url = chat_completions_url(endpoint)
        self.model = model.strip()
        self.name = self.model
        self.timeout_s = float(timeout_s)
        self.api_key: str | None = None
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise InputError(f"the environment variable {api_key_env} (--api-key-env) is "
                                 "not set or empty")
            self.api_key = key

    def request_body(
        self,
        messages: list[dict[str, Any]],
        *,
        temperature: float,
        max_tokens: int,
        audio: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """The JSON body of a chat-completions request."""
        msgs = [dict(m) for m in messages]
        if audio is not None:
            last = msgs[-1]
            last["content"] = [
                {"type": "text", "text": last["content"]},
                {"type": "input_audio", "input_audio": {"data": wav_base64(audio), "format": "wav"}},
            ]
        return {
            "model": self.model,
            "messages": msgs,
            "temperature": float(temperature),
            "max_tokens": int(max_tokens),
            "stream": False,
        }

    def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        temperature: float,
        max_tokens: int,
        audio: np.ndarray | None = None,
    ) -> Reply:
        import httpx

        body = self.request_body(messages, temperature=temperature, max_tokens=max_tokens,
                                 audio=audio)
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            with httpx.Client(timeout=httpx.Timeout(self.timeout_s)) as client:
                resp = client.post(self.url, json=body, headers=headers)
        except httpx.TimeoutException:
            raise BackendError(f"no reply from {self.url} within {self.timeout_s:g} s "
                               "(timed out)") from None
        except httpx.ConnectError as exc:
            raise BackendError(f"cannot connect to {self.url}: {_one_line(exc)}") from None
        except httpx.HTTPError as exc:
            raise BackendError(f"request to {self.url} failed: {type(exc).__name__}: "
                               f"{_one_line(exc)}") from None
        if resp.status_code >= 400:
            raise BackendError(f"HTTP {resp.status_code} from {self.url}: "
                               f"{_one_line(resp.text)[:200] or resp.reason_phrase}")
        try:
            data = resp.json()
            choice = data["choices"][0]
            content = choice["message"].get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise BackendError(f"the response from {self.url} is not a chat completion: "
                               f"{_one_line(resp.text)[:200]}") from None
        if isinstance(content, list):  # content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        tokens = usage.get("completion_tokens")
        return Reply(str(content or ""), choice.get("finish_reason") == "length",
                     tokens if isinstance(tokens, int) else None)


def _one_line(x: Any) -> str:
    return " ".join(str(x).split())


# --------------------------------------------------------------------------- transformers
def _auto_model_class(model_type: str, has_audio: bool):
    """The Auto class whose mapping holds ``model_type`` (audio-language models first)."""
    import transformers
    from transformers.models.auto import modeling_auto as ma

    order = [
        ("MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES", "AutoModelForMultimodalLM"),
        ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "AutoModelForCausalLM"),
        ("MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES", "AutoModelForSeq2SeqLM"),
        ("MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES", "AutoModelForImageTextToText"),
    ]
    if not has_audio:  # a text LLM: its causal-LM class, even when a multimodal one exists
        order.insert(0, order.pop(1))
    for mapping, cls_name in order:
        names = getattr(ma, mapping, None)
        cls = getattr(transformers, cls_name, None)
        if names is not None and cls is not None and model_type in names:
            return cls
    return None


class TransformersBackend:
    """A text or audio language model loaded from a local directory with transformers.

    The directory holds what ``save_pretrained`` writes (config, weights, tokenizer or
    processor, ideally a chat template); nothing is downloaded.  The processor comes
    from ``AutoProcessor`` (a plain tokenizer for text models) and the model from the
    Auto class whose mapping holds its ``model_type``.

    Parameters
    ----------
    model_path : str or Path
    device : str, optional
        ``cpu``, ``cuda``, ``cuda:1``; default: CUDA where available.
    """

    kind = "transformers"

    def __init__(self, model_path: PathType, *, device: str | None = None) -> None:
        path = Path(model_path).expanduser()
        if not path.exists():
            raise CheckpointError("no such model directory (--model-path)", path)
        if not path.is_dir():
            raise CheckpointError("is not a directory; --model-path takes a model directory", path)
        if not (path / "config.json").is_file():
            raise CheckpointError("is not a transformers model directory (no config.json)", path)
        self.path = path
        self.name = path.name
        self.device = device
        self._model = None
        self._processor = None

    # ---------------------------------------------------------------- loading
    def load(self) -> None:
        """Load the processor and the model (once)."""
        if self._model is not None:
            return
        try:
            import torch
            import transformers
        except ImportError:
            raise InputError("the mllm planner's local backend needs torch and transformers: "
                             "pip install 'spa2v[mllm]'") from None
        path = str(self.path)
        try:
            config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
            try:
                processor = transformers.AutoProcessor.from_pretrained(path, local_files_only=True)
            except (OSError, ValueError, TypeError, KeyError):
                processor = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
            has_audio = self._has_audio(processor)
            cls = _auto_model_class(config.model_type, has_audio)
            if cls is None:
                raise CheckpointError(
                    f"model type {config.model_type!r} is not a text or audio language model "
                    "that transformers can generate with", self.path)
            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            model = cls.from_pretrained(path, local_files_only=True, dtype="auto")
            model.to(device).eval()
        except CheckpointError:
            raise
        except Exception as exc:  # noqa: BLE001 - any loader fault is a bad model directory
            raise CheckpointError(f"cannot load the model: {type(exc).__name__}: "
                                  f"{_one_line(exc)[:300]}", self.path) from None
        self._processor, self._model, self._device = processor, model, device

    @staticmethod
    def _has_audio(processor: Any) -> bool:
        return any(getattr(processor, a, None) is not None
                   for a in ("feature_extractor", "audio_processor"))

    @property
    def has_audio(self) -> bool:
        self.load()
        return self._has_audio(self._processor)

    @property
    def tokenizer(self) -> Any:
        self.load()
        return getattr(self._processor, "tokenizer", self._processor)

    # ---------------------------------------------------------------- generation
    def _inputs(self, messages: list[dict[str, Any]], audio: np.ndarray | None) -> Any:
        proc = self._processor
        is_processor = proc is not getattr(proc, "tokenizer", proc)
        template = getattr(proc, "chat_template", None) or getattr(self.tokenizer, "chat_template",
                                                                   None)
        if template is None:
            prompt = "\n\n".join(f"{m['role'].upper()}:\n{m['content']}" for m in messages)
            return self.tokenizer(prompt + "\n\nASSISTANT:\n", return_tensors="pt")
        if is_processor:
            msgs = [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]}
                    for m in messages]
            if audio is not None:
                msgs[-1]["content"].insert(0, {"type": "audio", "audio": audio})
        else:
            msgs = messages
        return proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True,
                                        return_dict=True, return_tensors="pt")

    def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        temperature: float,
        max_tokens: int,
        audio: np.ndarray | None = None,
    ) -> Reply:
        self.load()
        import torch

        try:
            inputs = self._inputs(messages, audio if self.has_audio else None).to(self._device)
            n_prompt = int(inputs["input_ids"].shape[-1])
            limit = getattr(self._model.config.get_text_config(), "max_position_embeddings", None)
            if limit and n_prompt + 1 > limit:
                raise BackendError(f"the prompt ({n_prompt} tokens) does not fit the model's "
                                   f"context of {limit} tokens; use fewer --examples")
            max_new = min(max_tokens, limit - n_prompt) if limit else max_tokens
            tok = self.tokenizer
            pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
            kw: dict[str, Any] = {"max_new_tokens": int(max_new), "pad_token_id": pad}
            if temperature > 0:
                kw.update(do_sample=True, temperature=float(temperature))
            else:
                kw.update(do_sample=False)
            with torch.inference_mode():
                out = self._model.generate(**inputs, **kw)
        except BackendError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed generation takes the fallback path
            raise BackendError(f"generation failed: {type(exc).__name__}: "
                               f"{_one_line(exc)[:200]}") from None
        new = out[0] if self._model.config.is_encoder_decoder else out[0, n_prompt:]
        eos = tok.eos_token_id
        truncated = len(new) >= max_new and (eos is None or int(new[-1]) != eos)
        return Reply(tok.decode(new, skip_special_tokens=True), truncated, int(len(new)))
