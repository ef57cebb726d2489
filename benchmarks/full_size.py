"""Write a random-weight checkpoint with the real models' sizes, for timing the sampler.

No weights can be downloaded, so the diffusion sampler is timed at the real sizes on
checkpoints with the architecture of the real ones and random weights: the cost of a
denoising step does not depend on what the weights hold (the energy guidance's number of
iterations may; ``benchmarks/guidance.py`` prints it). The directory is written in the
diffusers layout through ``save_components`` and read back by ``load_components``, the code
path of a real checkpoint.

Backbones (architecture from the public ``config.json`` files):

* ``modelscope``: ``UNet3DConditionModel`` of text-to-video-ms-1.7b (block widths 320,
  640, 1280, 1280, two layers per block, cross-attention width 1024), its OpenCLIP-H text
  encoder (width 1024, 23 layers) and the Stable Diffusion VAE; native 256 x 256, 16 frames.
* ``animatediff``: Stable Diffusion 1.5's ``UNet2DConditionModel`` (cross-attention width
  768) with a ``MotionAdapter`` of the same widths, CLIP-L's text encoder (width 768, 12
  layers) and the VAE; native 512 x 512, 16 frames.

The tokenizer is the tiny one of ``spa2v.tinytext`` (the text encoder's vocabulary is
sized to it): tokenising costs nothing next to the rest.

Run: ``python benchmarks/full_size.py OUT_DIR [--backbone modelscope|animatediff]``, then
``python benchmarks/guidance.py --model OUT_DIR --size 256x256 --frames 16 --device cuda
--dtype float16``. ``--scale`` divides every width (for a quick check of the script on a
CPU); the written ``sampler.json`` names the native size.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BACKBONES = ("modelscope", "animatediff")
SCALES = (1, 2, 4, 8)
"""Width divisors that keep every layer's groups and heads whole."""


def build_full(backbone: str, *, scale: int = 1, seed: int = 0):
    """Random-weight ``Components`` with the real models' architecture (widths divided by
    ``scale``)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        MotionAdapter,
        UNet2DConditionModel,
        UNet3DConditionModel,
        UNetMotionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    from generators.video.diffusion.loading import Components
    from spa2v.tinytext import MAX_TOKENS, tiny_tokenizer

    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r} ({', '.join(BACKBONES)})")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale}")

    def w(c: int) -> int:
        return c // scale

    groups = 32 // scale
    widths = tuple(w(c) for c in (320, 640, 1280, 1280))
    down = ("CrossAttnDownBlock", "CrossAttnDownBlock", "CrossAttnDownBlock", "DownBlock")
    up = ("UpBlock", "CrossAttnUpBlock", "CrossAttnUpBlock", "CrossAttnUpBlock")
    tokenizer = tiny_tokenizer()
    motion_adapter = None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if backbone == "modelscope":
            text_dim, text_layers, text_heads, side = w(1024), 23, 16, 256
            unet = UNet3DConditionModel(
                sample_size=side // 8,
                in_channels=4,
                out_channels=4,
                down_block_types=tuple(f"{b}3D" for b in down),
                up_block_types=tuple(f"{b}3D" for b in up),
                block_out_channels=widths,
                layers_per_block=2,
                norm_num_groups=groups,
                cross_attention_dim=text_dim,
                attention_head_dim=64 // scale,  # read as the number of heads, as in the real config
            )
        else:
            text_dim, text_layers, text_heads, side = w(768), 12, 12, 512
            unet2d = UNet2DConditionModel(
                sample_size=side // 8,
                in_channels=4,
                out_channels=4,
                down_block_types=tuple(f"{b}2D" for b in down),
                up_block_types=tuple(f"{b}2D" for b in up),
                block_out_channels=widths,
                layers_per_block=2,
                norm_num_groups=groups,
                cross_attention_dim=text_dim,
                attention_head_dim=8,
            )
            motion_adapter = MotionAdapter(
                block_out_channels=widths,
                motion_layers_per_block=2,
                motion_norm_num_groups=groups,
                motion_num_attention_heads=8,
                motion_max_seq_length=32,
            )
            unet = UNetMotionModel.from_unet2d(unet2d, motion_adapter)
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=tuple(w(c) for c in (128, 256, 512, 512)),
            layers_per_block=2,
            norm_num_groups=groups,
            latent_channels=4,
            sample_size=side,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=text_dim,
                intermediate_size=4 * text_dim,
                num_hidden_layers=text_layers,
                num_attention_heads=text_heads,
                max_position_embeddings=MAX_TOKENS,
                hidden_act="gelu",
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                projection_dim=text_dim,
            )
        )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        timestep_spacing="leading",
    )
    for module in (unet, vae, text_encoder):
        module.eval().requires_grad_(False)
    return Components(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        backbone="unet3d" if backbone == "modelscope" else "animatediff",
        motion_adapter=motion_adapter,
        native_size_px=(side, side),
        native_frames=16,
        source=f"random {backbone}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="checkpoint directory to write (must not exist)")
    parser.add_argument("--backbone", default="modelscope", choices=BACKBONES)
    parser.add_argument("--scale", type=int, default=1, choices=SCALES,
                        help="divide every width by this")
    parser.add_argument("--dtype", default="float16", choices=("float16", "float32"))
    args = parser.parse_args()
    if args.out.exists():
        sys.exit(f"{args.out}: already exists; give a new directory")
    import torch

    from generators.video.diffusion.loading import save_components

    t0 = time.perf_counter()
    comps = build_full(args.backbone, scale=args.scale)
    comps = comps.to("cpu", getattr(torch, args.dtype))
    params = sum(p.numel() for m in (comps.unet, comps.vae, comps.text_encoder)
                 for p in m.parameters())
    save_components(comps, args.out)
    print(f"{args.out}: {args.backbone}, {params / 1e6:.0f} M parameters ({args.dtype}), "
          f"written in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
