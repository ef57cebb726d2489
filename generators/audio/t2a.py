"""Optional text-to-audio sources: a local AudioLDM 2 checkpoint (diffusers), or ``tiny``.

``TextToAudio.from_pretrained(DIR)`` loads an ``AudioLDM2Pipeline`` saved in diffusers
format from a local directory (never downloads); ``TextToAudio.tiny()`` builds the same
pipeline with tiny random-weight components in code (CLAP, T5, GPT-2, UNet, VAE,
SpeechT5 HiFi-GAN and in-code tokenizers), for tests and offline smoke runs: it makes
noise-like sound, not the prompt's.

A model is called as ``model(prompt, *, duration_s, sr, seed)`` and returns mono float32
audio ``(samples,)`` at ``sr``, at -20 dBFS RMS like the procedural sources, so it can
stand in for them anywhere (``generators.audio.signals``).  ``torch``, ``diffusers`` and
``transformers`` are imported only here, only when a model is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spa2v._typing import PathType
from spa2v.errors import CheckpointError, InputError

TARGET_RMS_DBFS = -20.0
TINY_STEPS = 2
DEFAULT_STEPS = 50
DEFAULT_GUIDANCE = 3.5
_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


def _byte_level_vocab() -> dict[str, int]:
    """GPT-2's byte-to-unicode alphabet as a byte-level BPE vocabulary (no merges)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) \
        + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    vocab = {tok: i for i, tok in enumerate(_SPECIALS)}
    for c in cs:
        vocab.setdefault(chr(c), len(vocab))
    return vocab


def _tiny_tokenizers():
    """A byte-level RoBERTa tokenizer and a character-level T5 (unigram) tokenizer."""
    from transformers import RobertaTokenizer, T5Tokenizer

    roberta = RobertaTokenizer(vocab=_byte_level_vocab(), merges=[], model_max_length=77)
    chars = "abcdefghijklmnopqrstuvwxyz0123456789.,'-!?"
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(c, -3.0) for c in chars] + [("\u2581" + c, -2.5) for c in chars]
    t5 = T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=77)
    return roberta, t5


def build_tiny_pipeline(seed: int = 0) -> Any:
    """An ``AudioLDM2Pipeline`` of tiny random components (diffusers' test recipe), CPU."""
    import torch
    from diffusers import (
        AudioLDM2Pipeline,
        AudioLDM2ProjectionModel,
        AudioLDM2UNet2DConditionModel,
        AutoencoderKL,
        DDIMScheduler,
    )
    from transformers import (
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapTextConfig,
        GPT2Config,
        GPT2LMHeadModel,
        SpeechT5HifiGan,
        SpeechT5HifiGanConfig,
        T5Config,
        T5EncoderModel,
    )

    tokenizer, tokenizer_2 = _tiny_tokenizers()
    torch.manual_seed(seed)
    unet = AudioLDM2UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), norm_num_groups=4,
        attention_head_dim=2, cross_attention_dim=([None, 16, 32], [None, 16, 32]),
    )
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False)
    torch.manual_seed(seed)
    vae = AutoencoderKL(block_out_channels=[8, 16], in_channels=1, out_channels=1,
                        down_block_types=["DownEncoderBlock2D"] * 2,
                        up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4,
                        norm_num_groups=4, layers_per_block=1)
    torch.manual_seed(seed)
    text_config = ClapTextConfig(bos_token_id=0, eos_token_id=2, hidden_size=16,
                                 intermediate_size=37, layer_norm_eps=1e-05,
                                 num_attention_heads=2, num_hidden_layers=2, pad_token_id=1,
                                 vocab_size=len(tokenizer), projection_dim=16,
                                 max_position_embeddings=80)
    audio_config = ClapAudioConfig(spec_size=64, window_size=4, num_mel_bins=64,
                                   intermediate_size=37, layer_norm_eps=1e-05, depths=[2, 2],
                                   num_attention_heads=[2, 2], num_hidden_layers=2,
                                   hidden_size=192, projection_dim=16, patch_size=2,
                                   patch_stride=2, patch_embed_input_channels=4)
    clap_config = ClapConfig(text_config=text_config.to_dict(),
                             audio_config=audio_config.to_dict(), projection_dim=16)
    text_encoder = ClapModel(clap_config)
    feature_extractor = ClapFeatureExtractor(feature_size=64, hop_length=7900)
    torch.manual_seed(seed)
    text_encoder_2 = T5EncoderModel(T5Config(vocab_size=len(tokenizer_2), d_model=32, d_ff=37,
                                             d_kv=8, num_heads=2, num_layers=2))
    torch.manual_seed(seed)
    lm_config = GPT2Config(n_embd=16, n_head=2, n_layer=2, vocab_size=len(tokenizer),
                           n_ctx=256, n_positions=256, bos_token_id=0, eos_token_id=2)
    language_model = GPT2LMHeadModel(lm_config)
    language_model.config.max_new_tokens = 8
    torch.manual_seed(seed)
    projection_model = AudioLDM2ProjectionModel(text_encoder_dim=16, text_encoder_1_dim=32,
                                                langauge_model_dim=16)
    vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(
        model_in_dim=8, sampling_rate=16000, upsample_initial_channel=16,
        upsample_rates=[8, 8], upsample_kernel_sizes=[16, 16], resblock_kernel_sizes=[3, 7],
        resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]], normalize_before=False))
    pipe = AudioLDM2Pipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
        projection_model=projection_model, language_model=language_model, tokenizer=tokenizer,
        tokenizer_2=tokenizer_2, feature_extractor=feature_extractor, unet=unet,
        scheduler=scheduler, vocoder=vocoder)
    return _ready(pipe)


def _ready(pipe: Any) -> Any:
    """Inference mode: every module in eval (no dropout), no progress bars."""
    for name in pipe.components:
        module = getattr(pipe, name, None)
        if hasattr(module, "eval") and hasattr(module, "parameters"):
            module.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _quiet_loading() -> None:
    from diffusers.utils import logging as d_logging
    from transformers.utils import logging as t_logging

    d_logging.disable_progress_bar()
    t_logging.disable_progress_bar()


@dataclass
class TextToAudio:
    """A text-to-audio model usable as a source: ``model(prompt, *, duration_s, sr, seed)``."""

    pipeline: Any
    steps: int = DEFAULT_STEPS
    guidance_scale: float = DEFAULT_GUIDANCE
    name: str = "audioldm2"

    @classmethod
    def tiny(cls, *, steps: int | None = None, seed: int = 0) -> TextToAudio:
        """Tiny random weights, built in code (no files): for tests and smoke runs."""
        return cls(build_tiny_pipeline(seed), steps=steps or TINY_STEPS, name="tiny")

    @classmethod
    def from_pretrained(cls, path: PathType, *, steps: int | None = None,
                        device: str = "cpu") -> TextToAudio:
        """Load a local AudioLDM 2 checkpoint (diffusers format); never downloads."""
        p = Path(path)
        if not p.is_dir():
            raise CheckpointError("no such model directory", p)
        if not (p / "model_index.json").is_file():
            raise CheckpointError("not a diffusers checkpoint (no model_index.json)", p)
        try:
            from diffusers import AudioLDM2Pipeline
        except ImportError as exc:  # pragma: no cover - an optional dependency
            raise InputError("text-to-audio needs the 'diffusion' extra "
                             "(pip install spa2v[diffusion])") from exc
        _quiet_loading()
        try:
            pipe = AudioLDM2Pipeline.from_pretrained(str(p), local_files_only=True)
        except Exception as exc:  # diffusers raises OSError, ValueError, KeyError, ...
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CheckpointError(f"cannot load an AudioLDM 2 pipeline: {msg}", p) from None
        pipe = _ready(pipe.to(device))
        return cls(pipe, steps=steps or DEFAULT_STEPS, name=p.name)

    def save_pretrained(self, path: PathType) -> None:
        _quiet_loading()
        self.pipeline.save_pretrained(str(path))

    @property
    def sample_rate(self) -> int:
        return int(self.pipeline.vocoder.config.sampling_rate)

    def __call__(self, prompt: str, *, duration_s: float, sr: int, seed: int = 0) -> np.ndarray:
        """Mono float32 audio ``(round(duration_s * sr),)`` at ``sr`` for ``prompt``."""
        import torch

        from spa2v.audio import resample

        if not duration_s > 0:
            raise ValueError(f"duration_s must be positive, got {duration_s}")
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        with torch.no_grad():
            out = self.pipeline(str(prompt) or "a sound", audio_length_in_s=float(duration_s),
                                num_inference_steps=int(self.steps),
                                guidance_scale=self.guidance_scale, generator=generator,
                                output_type="np")
        y = np.asarray(out.audios[0], dtype=np.float64).ravel()
        y = np.nan_to_num(y)
        y = resample(y, self.sample_rate, int(sr)).astype(np.float64)
        n = max(int(round(duration_s * sr)), 1)
        y = np.concatenate([y, np.zeros(max(0, n - len(y)))])[:n]
        y = y - y.mean()
        rms = float(np.sqrt(np.mean(y**2)))
        if rms > 0:
            y *= 10.0 ** (TARGET_RMS_DBFS / 20.0) / rms
            peak = float(np.max(np.abs(y)))
            if peak > 0.99:
                y *= 0.99 / peak
        return y.astype(np.float32)
