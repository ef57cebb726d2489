"""The training-free layout-grounded video sampler: one file that owns its denoising loop.

Given a Video Scene Layout and the components of a text-to-video diffusion model
(:mod:`.loading`), :meth:`LayoutSampler.sample` runs the loop of diffusers'
``TextToVideoSDPipeline`` / ``AnimateDiffPipeline`` step by step - the same prompt
encoding, initial noise, scheduler calls, classifier-free guidance and VAE decoding - so
that with ``guidance="none"`` it gives the frames those pipelines give for the same
components, scheduler and seed. On top of it, during the first ``guidance_steps`` steps:

``energy`` (LVD, Lian et al. 2024)
    Before the denoising step, up to ``max_iterations`` times: a conditional UNet pass
    with gradients that captures the guided layers' cross-attention maps of each object's
    tokens (and stops after the last guided layer), the energy of
    :func:`.attention.layout_energy`, and a gradient step on the latents
    ``z <- z - sqrt(1 - alpha_bar_t) * loss_scale * dE/dz``; it stops early once the
    energy is at most ``loss_threshold``, checked before each iteration's backward pass
    (LVD checks, before each iteration, the energy its previous iteration measured, the
    previous step's included; without an early stop both run ``max_iterations`` forward
    and backward passes). Scale 30 and threshold 0.2 are the defaults in the signature of
    LVD's ``latent_backward_guidance`` (inherited from LMD); LVD's ModelScope/Zeroscope
    script passes scale 5, threshold 200 and TopK fractions 0.75 instead. The energy sums
    over frames and heads, so a threshold is specific to a model and frame count: 200 is
    about 0.2 per frame and head of ModelScope's 64 heads and 16 frames, while on the tiny
    benchmark models the energy stays near 1.6 per frame and head, so neither threshold
    ends the iterations there. The guided layers
    keep only their queries for the backward pass (:mod:`.maps`), the other attention
    layers their input, output and log-sum-exp (``lean_attention``, :mod:`.lean`), and
    layers without attention (AnimateDiff: also the temporal ones) are recomputed in it
    rather than kept (``recompute``): a guidance iteration then needs about the memory of
    a plain denoising step (0.84x to 1.25x on the tiny benchmark models, four-level ones
    included) instead of three to five times it.
``mask`` (Peekaboo / TrailBlazer-style, no backward pass)
    The object tokens' cross-attention logits get ``mask_bias_inside`` inside their box
    and ``mask_bias_outside`` outside it, on every spatial cross-attention layer
    (``mask_layers="all"``) or on the guided ones.
``none``
    Plain sampling.

Frames: ``num_frames`` frames (the model's native count by default) at layout times
``times_s`` (spread over the clip); each frame is conditioned on its own prompt (global
caption + its keyframe's caption, :mod:`.conditioning`) and its interpolated boxes.
Masks are made at each layer's attention resolution, so any frame count and any size
that is a multiple of the VAE's downsampling factor (8 for real models) works.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from generators.video.diffusion.attention import (
    GroundingState,
    StopForward,
    cross_attention_layers,
    install,
    layout_energy,
    restore,
    select_layers,
)
from generators.video.diffusion.checkpointing import (
    POLICIES,
    checkpointed,
    recomputed_attention,
)
from generators.video.diffusion.conditioning import (
    FrameConditioning,
    build_conditioning,
    sampler_times,
)
from generators.video.diffusion.lean import lean_attention
from generators.video.diffusion.loading import Components
from spa2v.errors import InputError
from spa2v.layout import SceneLayout

GUIDANCE_MODES = ("energy", "mask", "none")
SCHEDULERS = ("ddim", "dpm++")
RECOMPUTE = ("none", *POLICIES)


@dataclass
class SamplerConfig:
    """Settings of one sampling run; LVD's defaults (40 steps, energy guidance in the
    first 10 with up to 5 iterations each, background weight 4)."""

    guidance: str = "energy"
    """``energy``, ``mask`` or ``none``."""
    steps: int = 40
    cfg_scale: float | None = None
    """Classifier-free guidance scale; None: 9.0 for UNet3D models, 7.5 for AnimateDiff."""
    scheduler: str | None = None
    """``ddim`` or ``dpm++`` (DPM-Solver++ multistep); None keeps the checkpoint's when it
    is one of them, DDIM otherwise."""
    num_frames: int | None = None
    """Frames to generate; None: the model's native count."""
    size_px: tuple[int, int] | None = None
    """(width, height) to sample at; None: the model's native size."""
    negative_prompt: str = ""
    use_frame_captions: bool = True
    """Condition each frame on the global caption followed by its keyframe's caption."""
    guidance_steps: int = 10
    """Guide (energy or mask) during the first this many denoising steps."""
    max_iterations: int = 5
    """Energy: at most this many gradient steps per guided denoising step."""
    loss_threshold: float = 0.2
    """Energy: stop iterating once the energy is at most this (0.2: the default of LVD's
    ``latent_backward_guidance``; its ModelScope script passes 200, see the module
    docstring)."""
    loss_scale: float = 30.0
    """Energy: the gradient's factor (30: the default of LVD's
    ``latent_backward_guidance``; its ModelScope script passes 5)."""
    bg_weight: float = 4.0
    """Energy: weight of the outside-the-box term."""
    fg_top: float = 0.2
    bg_top: float = 0.2
    """Energy: fractions of the box's (background's) cells that TopK averages."""
    recompute: str | None = None
    """Energy: which activations of the guidance pass are recomputed in its backward pass
    instead of kept (:mod:`.checkpointing`): ``none``; ``light``, the layers without
    attention; ``temporal``, those and the temporal attention layers; ``full``, all but the
    guided layers. None picks, from the measured trade-off (``benchmarks/guidance.py``),
    ``light`` for UNet3D models and ``temporal`` for AnimateDiff (figures:
    :mod:`.checkpointing`)."""
    lean_attention: bool = True
    """Energy: the attention layers of the guidance pass that the recompute policy keeps
    keep only their input, output and log-sum-exp for its backward pass, not their
    query, key and value (:mod:`.lean`): the same gradient for a third to a half less
    memory, at the same time (figures: :mod:`.checkpointing`)."""
    mask_bias_inside: float = 1.0
    mask_bias_outside: float = -10.0
    mask_layers: str = "all"
    """``all`` spatial cross-attention layers or only the ``guided`` ones."""
    layers: tuple[str, ...] | None = None
    """Guided layers: name prefixes such as ``("mid_block", "up_blocks.1")``; None picks
    the mid block and the lowest-resolution up block with cross-attention."""
    record_attention: bool = True
    """Measure each object's in-box attention share during the first ``guidance_steps``
    steps (in every mode, so that modes can be compared)."""
    eta: float = 0.0
    vae_slicing: bool = True
    vae_tiling: bool = False
    decode_chunk: int = 16

    def check(self) -> None:
        """Raise InputError for settings that cannot work."""
        if self.guidance not in GUIDANCE_MODES:
            raise InputError(
                f"--guidance must be one of {', '.join(GUIDANCE_MODES)}, got {self.guidance!r}"
            )
        if self.scheduler is not None and self.scheduler not in SCHEDULERS:
            raise InputError(f"scheduler must be one of {', '.join(SCHEDULERS)}")
        if not 1 <= int(self.steps) <= 1000:
            raise InputError(f"--steps must be between 1 and 1000, got {self.steps}")
        if self.num_frames is not None and self.num_frames < 1:
            raise InputError(f"the number of frames must be positive, got {self.num_frames}")
        if self.mask_layers not in ("all", "guided"):
            raise InputError("mask_layers must be 'all' or 'guided'")
        if self.recompute is not None and self.recompute not in RECOMPUTE:
            raise InputError(f"recompute must be one of {', '.join(RECOMPUTE)}")
        if self.guidance_steps < 0 or self.max_iterations < 0:
            raise InputError("guidance_steps and max_iterations must not be negative")


@dataclass
class SampleOutput:
    """Frames and diagnostics of one run."""

    frames: np.ndarray
    """(F, H, W, 3) float32 RGB in [0, 1], as diffusers' ``output_type="np"``."""
    times_s: np.ndarray
    """(F,) layout time of each frame."""
    conditioning: FrameConditioning
    guided_layers: list[str]
    in_box_share: np.ndarray
    """(K,) each object's share of its tokens' attention inside its boxes, averaged over
    frames, tokens, guided layers and the first ``guidance_steps`` denoising passes
    (NaN for an object that was never measured)."""
    energies: list[list[float]] = field(default_factory=list)
    """Per guided step, the energy before each iteration (energy mode)."""


class LayoutSampler:
    """Layout-grounded sampling with the given components on ``device``.

    Parameters
    ----------
    components : Components
        From :func:`.loading.load_components`; they are moved to ``device`` (and cast to
        ``dtype``) unless ``cpu_offload``.
    device : str
        ``cpu`` or ``cuda[:i]``.
    dtype : torch.dtype, optional
        Default: the components' dtype.
    cpu_offload : bool
        Keep the networks in CPU memory and move each to ``device`` only while it runs
        (accelerate hooks); useful on a small GPU, pointless on the CPU.
    """

    def __init__(
        self,
        components: Components,
        *,
        device: str = "cpu",
        dtype: torch.dtype | None = None,
        cpu_offload: bool = False,
    ) -> None:
        self.components = components
        self.device = torch.device(device)
        self.dtype = dtype or components.dtype
        if cpu_offload and self.device.type != "cpu":
            components.to("cpu", self.dtype)
            components.enable_cpu_offload(self.device)
        else:
            if cpu_offload:
                warnings.warn("cpu_offload has no effect when sampling on the CPU", stacklevel=2)
            components.to(self.device, self.dtype)

    # ------------------------------------------------------------------ helpers
    def _scheduler(self, name: str | None):
        from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

        current = self.components.scheduler
        if name is None:
            if isinstance(current, DDIMScheduler | DPMSolverMultistepScheduler):
                return current.__class__.from_config(current.config)
            return DDIMScheduler.from_config(current.config)
        if name == "ddim":
            return DDIMScheduler.from_config(current.config)
        return DPMSolverMultistepScheduler.from_config(current.config, algorithm_type="dpmsolver++")

    def _encode(self, prompts: list[str]) -> torch.Tensor:
        """Text states ``(len(prompts), S, D)``, as diffusers' ``encode_prompt``."""
        tok = self.components.tokenizer
        enc = self.components.text_encoder
        inputs = tok(
            prompts,
            padding="max_length",
            max_length=tok.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        mask = None
        if getattr(enc.config, "use_attention_mask", False):
            mask = inputs.attention_mask.to(self.device)
        states = enc(inputs.input_ids.to(self.device), attention_mask=mask)[0]
        return states.to(dtype=enc.dtype, device=self.device)

    def _size(self, config: SamplerConfig) -> tuple[int, int]:
        w, h = config.size_px or self.components.native_size_px
        s = self.components.vae_scale_factor
        if w % s or h % s or w <= 0 or h <= 0:
            raise InputError(
                f"sampler size {w}x{h} must be positive multiples of {s} (the VAE's factor)"
            )
        return int(w), int(h)

    def _decode(self, latents: torch.Tensor, config: SamplerConfig) -> np.ndarray:
        vae = self.components.vae
        vae.use_slicing = bool(config.vae_slicing)
        if config.vae_tiling and hasattr(vae, "enable_tiling"):
            vae.enable_tiling()
        elif hasattr(vae, "disable_tiling"):
            vae.disable_tiling()
        z = latents / vae.config.scaling_factor
        b, c, f, h, w = z.shape
        z = z.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        chunk = max(1, int(config.decode_chunk))
        images = [vae.decode(z[i : i + chunk]).sample for i in range(0, z.shape[0], chunk)]
        video = torch.cat(images).float()
        video = (video * 0.5 + 0.5).clamp(0, 1)
        return video.permute(0, 2, 3, 1).cpu().numpy()

    # ------------------------------------------------------------------ the loop
    @torch.no_grad()
    def sample(
        self,
        layout: SceneLayout,
        config: SamplerConfig | None = None,
        *,
        seed: int = 0,
        times_s: np.ndarray | None = None,
        progress: bool = False,
    ) -> SampleOutput:
        """Generate the frames of ``layout``.

        Parameters
        ----------
        layout : SceneLayout
        config : SamplerConfig, optional
        seed : int
            Seeds a CPU ``torch.Generator`` for the initial noise (as diffusers does with
            ``generator=torch.Generator().manual_seed(seed)``).
        times_s : ndarray, shape (F,), optional
            Layout time of each frame; by default ``num_frames`` times ``i * duration / F``.
            Its length sets the frame count when given.
        progress : bool
            A progress bar over the steps on stderr.
        """
        from diffusers.utils.torch_utils import randn_tensor

        config = config or SamplerConfig()
        config.check()
        comps = self.components
        unet = comps.unet
        if times_s is None:
            n = int(config.num_frames or comps.native_frames)
            times_s = sampler_times(layout.duration, n / layout.duration, n)
        times_s = np.asarray(times_s, dtype=np.float64)
        n_frames = len(times_s)
        width, height = self._size(config)
        mode = config.guidance
        cfg_scale = config.cfg_scale
        if cfg_scale is None:
            cfg_scale = 9.0 if comps.backbone == "unet3d" else 7.5
        do_cfg = cfg_scale > 1.0
        try:
            guided = select_layers(unet, config.layers)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        biased = cross_attention_layers(unet) if config.mask_layers == "all" else guided

        # text: one state per distinct prompt, then one per frame
        cond = build_conditioning(
            layout, comps.tokenizer, times_s, use_frame_captions=config.use_frame_captions
        )
        text = self._encode(cond.prompts)
        frame_text = text[torch.as_tensor(cond.prompt_of_frame, device=self.device)]
        uncond = self._encode([config.negative_prompt]) if do_cfg else None
        varying = len(cond.prompts) > 1

        # the UNet's text input: AnimateDiff takes one state per frame; UNet3D repeats one
        # state over the frames itself, so per-frame prompts go in through the processors
        if comps.backbone == "animatediff":
            ehs_cond = frame_text
            ehs_cfg = (
                torch.cat([uncond.repeat_interleave(n_frames, 0), frame_text]) if do_cfg else None
            )
            ctx_cond = ctx_cfg = None
        else:
            ehs_cond = text[:1]
            ehs_cfg = torch.cat([uncond, text[:1]]) if do_cfg else None
            ctx_cond = frame_text if varying else None
            ctx_cfg = (
                torch.cat([uncond.expand(n_frames, -1, -1), frame_text])
                if varying and do_cfg
                else None
            )

        scheduler = self._scheduler(config.scheduler)
        scheduler.set_timesteps(int(config.steps), device=self.device)
        generator = torch.Generator("cpu").manual_seed(int(seed))
        s = comps.vae_scale_factor
        shape = (1, unet.config.in_channels, n_frames, height // s, width // s)
        latents = randn_tensor(shape, generator=generator, device=self.device, dtype=text.dtype)
        latents = latents * scheduler.init_noise_sigma
        step_params = set(inspect.signature(scheduler.step).parameters)
        step_kwargs = {}
        if "eta" in step_params:
            step_kwargs["eta"] = config.eta
        if "generator" in step_params:
            step_kwargs["generator"] = generator

        state = GroundingState(
            cond,
            (height // s, width // s),
            self.device,
            guided,
            biased,
            mask_inside=config.mask_bias_inside,
            mask_outside=config.mask_bias_outside,
        )
        energies: list[list[float]] = []
        steps = scheduler.timesteps
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(steps), unit="step", desc=f"diffusion ({mode})")
        previous = install(unet, state)
        try:
            for i, t in enumerate(steps):
                in_window = i < config.guidance_steps
                if mode == "energy" and in_window and config.max_iterations > 0:
                    latents, trace = self._energy_guidance(
                        latents, t, scheduler, state, ehs_cond, ctx_cond, config
                    )
                    energies.append(trace)
                state.bias_on = mode == "mask" and in_window
                state.record = config.record_attention and in_window
                state.cfg_batch = do_cfg
                state.context = ctx_cfg if do_cfg else ctx_cond
                model_in = torch.cat([latents] * 2) if do_cfg else latents
                model_in = scheduler.scale_model_input(model_in, t)
                noise = unet(
                    model_in,
                    t,
                    encoder_hidden_states=ehs_cfg if do_cfg else ehs_cond,
                    return_dict=False,
                )[0]
                if do_cfg:
                    noise_uncond, noise_text = noise.chunk(2)
                    noise = noise_uncond + cfg_scale * (noise_text - noise_uncond)
                latents = scheduler.step(noise, t, latents, **step_kwargs).prev_sample
                if bar is not None:
                    bar.update()
        finally:
            restore(unet, previous)
            state.record = state.bias_on = False
            state.maps.clear()
            if bar is not None:
                bar.close()
        frames = self._decode(latents, config)
        return SampleOutput(
            frames=frames,
            times_s=times_s,
            conditioning=cond,
            guided_layers=guided,
            in_box_share=state.shares(),
            energies=energies,
        )

    def _energy_guidance(
        self,
        latents: torch.Tensor,
        t: torch.Tensor,
        scheduler,
        state: GroundingState,
        ehs_cond: torch.Tensor,
        ctx_cond: torch.Tensor | None,
        config: SamplerConfig,
    ) -> tuple[torch.Tensor, list[float]]:
        """LVD's gradient steps on the latents at timestep ``t`` (see the module docstring)."""
        alpha_bar = float(scheduler.alphas_cumprod[int(t)])
        step_scale = math.sqrt(1.0 - alpha_bar) * config.loss_scale
        trace: list[float] = []
        state.cfg_batch = False
        state.context = ctx_cond
        state.record = False
        state.bias_on = False
        recompute = config.recompute
        if recompute is None:
            recompute = "light" if self.components.backbone == "unet3d" else "temporal"
        saving = (
            checkpointed(self.components.unet, state.guided, policy=recompute)
            if recompute != "none"
            else contextlib.nullcontext()
        )
        unet = self.components.unet
        try:
            with saving, contextlib.ExitStack() as stack:
                if config.lean_attention:
                    # what the policy recomputes keeps only its inputs already
                    again = recomputed_attention(unet)
                    cross = set(cross_attention_layers(unet))
                    stack.enter_context(lean_attention(unet, again | cross))
                    state.lean = frozenset(cross - again)
                for _ in range(config.max_iterations):
                    z = latents.detach().requires_grad_(True)
                    state.maps.clear()
                    state.capture = True
                    try:
                        with torch.enable_grad():
                            with contextlib.suppress(StopForward):
                                unet(
                                    scheduler.scale_model_input(z, t),
                                    t,
                                    encoder_hidden_states=ehs_cond,
                                    return_dict=False,
                                )
                            energy = layout_energy(
                                state,
                                state.maps,
                                fg_top=config.fg_top,
                                bg_top=config.bg_top,
                                bg_weight=config.bg_weight,
                            )
                            value = float(energy.detach())
                            trace.append(value)
                            if value <= config.loss_threshold or not energy.requires_grad:
                                break
                            (grad,) = torch.autograd.grad(energy, z)
                    finally:
                        state.capture = False
                        state.maps.clear()
                    latents = (latents - step_scale * grad.to(latents.dtype)).detach()
        finally:
            state.lean = frozenset()
        return latents, trace
