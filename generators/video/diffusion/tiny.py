"""The ``tiny`` preset: random-weight diffusion components built in code.

No weights can be downloaded, so the sampler is proven on tiny models with random
weights, the way diffusers tests its pipelines (``get_dummy_components()``): a real
``UNet3DConditionModel`` (ModelScope layout) or ``UNetMotionModel`` (AnimateDiff), a real
``AutoencoderKL``, a real ``CLIPTextModel`` and the tiny real ``CLIPTokenizer`` of
:func:`spa2v.tinytext.tiny_tokenizer`, in which every sound-class name and the common
caption words are single tokens.

The components are the same classes a checkpoint directory holds, so
:func:`generators.video.diffusion.loading.save_components` writes them in the diffusers
layout and :func:`~generators.video.diffusion.loading.load_components` loads them back
through the code path of a real checkpoint.
"""

from __future__ import annotations

import torch

from generators.video.diffusion.loading import Components
from spa2v.tinytext import MAX_TOKENS, tiny_tokenizer

TEXT_DIM = 32
"""Width of the tiny text encoder's hidden states (the UNets' cross-attention dim)."""

NATIVE_SIZE_PX = 32
NATIVE_FRAMES = 8

CROSS_ATTENTION_GAIN = 6.0
"""Factor on the initial query and key weights of the UNet's cross-attention layers. At
PyTorch's default initialisation the logits spread by about 0.3, so every token gets the
same attention everywhere and the maps hardly depend on the latents; scaled up, they
spread by several units as in a trained model, and layout guidance has something to act
on."""


def build_tiny(backbone: str = "unet3d", *, seed: int = 0, levels: int = 3) -> Components:
    """Random-weight components (float32, CPU) for ``backbone`` ``"unet3d"`` or
    ``"animatediff"``; the same ``seed`` gives the same weights.

    The UNets copy their real models' block layout at a fraction of the width: three
    resolution levels, cross-attention in the two upper levels and in the mid block, and
    an up path whose lowest-resolution block has no cross-attention (as in ModelScope),
    so the default guided layers (mid block and the lowest-resolution up block with
    cross-attention) are chosen as in a real checkpoint. The VAE downsamples by 2, so
    32 x 32 pixels are a 16 x 16 latent.

    ``levels=4`` (the ``tiny4`` presets, for benchmarks) copies the real block layout
    itself: four resolution levels, cross-attention in the three upper ones
    (``CrossAttnDownBlock3D`` x 3 + ``DownBlock3D`` and the mirrored up path, as in
    ModelScope; Stable Diffusion 1.5's layout for AnimateDiff), two layers per block as in
    them, widths 16, 32, 64, 64 (a 1/20 of 320, 640, 1280, 1280: every level costs about
    the same, as in the real models). At 64 x 64 pixels its latent grid is that of
    ModelScope at 256 x 256 (32, 16, 8, 4 cells a side), so the guided layers sit at the
    same resolutions. ``levels=3`` is the ``tiny`` preset every test uses.
    """
    if backbone not in ("unet3d", "animatediff"):
        raise ValueError(f"unknown tiny backbone {backbone!r} (unet3d or animatediff)")
    if levels not in (3, 4):
        raise ValueError(f"levels must be 3 or 4, got {levels}")
    return random_components(
        backbone,
        widths=(16, 32, 32) if levels == 3 else (16, 32, 64, 64),
        layers=1 if levels == 3 else 2,  # per block: ModelScope and SD 1.5 have two
        groups=4,
        unet_heads=4,  # UNet3DConditionModel reads attention_head_dim as the number of heads
        motion_heads=2,
        text=dict(width=TEXT_DIM, layers=2, heads=4, ffn=37, act="quick_gelu"),
        vae_widths=(8, 16),
        vae_layers=1,
        native_px=NATIVE_SIZE_PX,
        native_frames=NATIVE_FRAMES,
        source=("tiny" if levels == 3 else "tiny4")
        + ("-animatediff" if backbone == "animatediff" else ""),
        seed=seed,
        cross_attention_gain=CROSS_ATTENTION_GAIN,
    )


def random_components(backbone: str, *, widths: tuple[int, ...], layers: int, groups: int,
                      unet_heads: int, motion_heads: int, text: dict,
                      vae_widths: tuple[int, ...], vae_layers: int, native_px: int,
                      native_frames: int, source: str, seed: int = 0,
                      cross_attention_gain: float = 1.0) -> Components:
    """Random-weight components (float32, CPU) of a block layout: ``len(widths)``
    resolution levels with cross-attention in all but the lowest (the mirrored up path
    without it in its lowest-resolution block), ``layers`` layers per block, ``groups``
    norm groups; ``text`` the CLIP text encoder's ``width``, ``layers``, ``heads``,
    ``ffn`` (feed-forward width) and ``act``; a VAE that downsamples by
    ``2 ** (len(vae_widths) - 1)``.  The tiny presets and ``benchmarks/full_size.py``
    (the real models' sizes) are both built here."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        MotionAdapter,
        UNet2DConditionModel,
        UNet3DConditionModel,
        UNetMotionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = tiny_tokenizer()
    n = len(widths)
    down = ("CrossAttnDownBlock",) * (n - 1) + ("DownBlock",)
    up = ("UpBlock",) + ("CrossAttnUpBlock",) * (n - 1)
    latent_px = native_px // 2 ** (len(vae_widths) - 1)
    unet_kw = dict(sample_size=latent_px, in_channels=4, out_channels=4,
                   block_out_channels=widths, layers_per_block=layers, norm_num_groups=groups,
                   cross_attention_dim=text["width"], attention_head_dim=unet_heads)
    motion_adapter = None
    with torch.random.fork_rng(devices=[]):  # fixed weights, the caller's RNG untouched
        torch.manual_seed(seed)
        if backbone == "unet3d":
            unet = UNet3DConditionModel(down_block_types=tuple(f"{b}3D" for b in down),
                                        up_block_types=tuple(f"{b}3D" for b in up), **unet_kw)
        else:
            unet2d = UNet2DConditionModel(down_block_types=tuple(f"{b}2D" for b in down),
                                          up_block_types=tuple(f"{b}2D" for b in up), **unet_kw)
            motion_adapter = MotionAdapter(
                block_out_channels=widths,
                motion_layers_per_block=layers,
                motion_norm_num_groups=groups,
                motion_num_attention_heads=motion_heads,
                motion_max_seq_length=32,
            )
            unet = UNetMotionModel.from_unet2d(unet2d, motion_adapter)
        if cross_attention_gain != 1.0:
            with torch.no_grad():
                for module in unet.modules():
                    if getattr(module, "is_cross_attention", False):
                        module.to_q.weight.mul_(cross_attention_gain)
                        module.to_k.weight.mul_(cross_attention_gain)
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * len(vae_widths),
            up_block_types=("UpDecoderBlock2D",) * len(vae_widths),
            block_out_channels=vae_widths,
            layers_per_block=vae_layers,
            norm_num_groups=groups,
            latent_channels=4,
            sample_size=native_px,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=text["width"],
                intermediate_size=text["ffn"],
                num_hidden_layers=text["layers"],
                num_attention_heads=text["heads"],
                max_position_embeddings=MAX_TOKENS,
                hidden_act=text["act"],
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                projection_dim=text["width"],
            )
        )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        timestep_spacing="leading",  # explicit, so that it survives save_pretrained
    )
    for module in (unet, vae, text_encoder):
        module.eval().requires_grad_(False)
    return Components(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        backbone=backbone,
        motion_adapter=motion_adapter,
        native_size_px=(native_px, native_px),
        native_frames=native_frames,
        source=source,
    )
