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
    from generators.video.diffusion.tiny import random_components

    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r} ({', '.join(BACKBONES)})")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale}")
    modelscope = backbone == "modelscope"
    text_width = (1024 if modelscope else 768) // scale
    return random_components(
        "unet3d" if modelscope else "animatediff",
        widths=tuple(c // scale for c in (320, 640, 1280, 1280)),
        layers=2,
        groups=32 // scale,
        # ModelScope's config reads attention_head_dim as the number of heads (64);
        # Stable Diffusion 1.5's is 8
        unet_heads=64 // scale if modelscope else 8,
        motion_heads=8,
        text=dict(width=text_width, layers=23 if modelscope else 12,
                  heads=16 if modelscope else 12, ffn=4 * text_width, act="gelu"),
        vae_widths=tuple(c // scale for c in (128, 256, 512, 512)),
        vae_layers=2,
        native_px=256 if modelscope else 512,
        native_frames=16,
        source=f"random {backbone}",
        seed=seed,
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
