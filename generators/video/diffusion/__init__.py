"""The layout-grounded video diffusion generator (stage 2 of SpA2V, training-free).

- :mod:`.sampler`: :class:`LayoutSampler`, the one file that owns the denoising loop,
  with LVD's ``energy`` guidance, ``mask``-biased attention or ``none``;
- :mod:`.attention`: cross-attention processors that capture and bias object tokens;
- :mod:`.maps`: the guided layers' attention with object-token maps and a lean backward;
- :mod:`.checkpointing`: what the guidance pass recomputes in its backward pass;
- :mod:`.conditioning`: per-frame prompts, object tokens, interpolated boxes, masks;
- :mod:`.loading`: local diffusers checkpoints (UNet3D / AnimateDiff) -> components;
- :mod:`.tiny`: the ``tiny`` random-weight preset;
- :mod:`.renderer`: :class:`DiffusionRenderer`, the ``diffusion`` video generator.

Needs the ``diffusion`` extra (torch, diffusers, transformers, accelerate).
"""

from generators.video.diffusion.renderer import DiffusionRenderer

__all__ = ["DiffusionRenderer"]
