"""Activation recomputation for the guidance pass, around the guided layers.

The energy's backward pass needs the activations of every layer between the latents and
the last guided layer; kept, they cost about three times the memory of a plain
denoising step. Inside :func:`checkpointed`, submodules of the UNet run under
``torch.utils.checkpoint`` (non-reentrant): only their inputs are kept, and they run
again during the backward pass. Policies, from the least recomputed to the most:

- ``light``: the largest submodules without an attention layer in them (ResNet blocks,
  temporal convolutions, feed-forward layers, resamplers). They hold most of the
  activations but little of the compute.
- ``temporal``: ``light`` and the temporal attention modules (AnimateDiff's motion
  modules; ``temp_attentions`` and ``transformer_in`` of ``UNet3DConditionModel``), whose
  attention runs over the frames only and is cheap to run again.
- ``full``: every largest submodule without a guided layer in it (spatial attention
  included).

Measured on the tiny benchmark models (64 x 64 pixels, 8 frames, one CPU thread): time
and peak memory of one guidance iteration (truncated forward and backward pass), relative
to one plain denoising step:

=========  =======================  ============================
policy     UNet3D: time / memory    AnimateDiff: time / memory
=========  =======================  ============================
none       0.69 / 2.70              0.61 / 2.96
light      0.79 / 1.23              0.69 / 1.64
temporal   0.89 / 0.86              0.75 / 1.11
full       1.01 / 0.97              0.87 / 1.35
=========  =======================  ============================

(a plain step: one classifier-free-guidance UNet call without gradients; these figures
are without :mod:`.lean`). The models with the real four levels and two layers per block
(the ``tiny4`` presets) hold more in the down path: there a guidance iteration peaks at
1.89 (``light``, 0.73 of a step's time) and 0.97 (``temporal``, 0.84) on UNet3D, and at
2.55 (``light``, 0.65) and 1.52 (``temporal``, 0.72) on AnimateDiff. With LVD's defaults
(5 iterations in each of the first 10 of 40 steps) energy sampling takes about
``1 + 1.25 * iteration time`` of plain sampling, so 2x needs an iteration under about
0.8 of a step: ``light`` for UNet3D and ``temporal`` for AnimateDiff (the sampler's
defaults).

What those policies keep is mostly the attention layers' query, key, value and output
at the full-resolution levels; the sampler's lean attention (:mod:`.lean`, on by default)
keeps their input, output and log-sum-exp instead, for the same time (the projections
run again in the backward pass, the attention itself does not). Measured the same way,
at the default policies, lean attention off / on: time 0.92 / 0.91 and memory 1.25 /
0.84 on the tiny UNet3D, 0.81 / 0.81 and 1.93 / 1.25 on ``tiny4``; AnimateDiff 0.78 /
0.79 and 1.15 / 1.06. Whole sampling runs (``benchmarks/guidance.py``, the ``tiny4``
presets) then peak at 1.21x plain sampling's memory instead of 1.66x (UNet3D) and 1.41x
(AnimateDiff), in the same time (78.5 / 78.7 s and 59.1 / 59.1 s). Attention layers inside a
recomputed module stay plain (they keep nothing between the passes anyway; lean, their
recomputation would run the projections a third time). The guided cross-attention layers
themselves (and the modules that hold them) always run as usual, so their maps are
captured once (they keep only their query, :mod:`.maps`). Diffusers' own
``enable_gradient_checkpointing`` cannot serve here: the ModelScope
``UNet3DConditionModel`` does not support it, and it would recompute the guided layers.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch
from torch.utils.checkpoint import checkpoint

from generators.video.diffusion.attention import is_temporal

POLICIES = ("light", "temporal", "full")
_CONTAINERS = (torch.nn.ModuleList, torch.nn.ModuleDict, torch.nn.Sequential)


def _run_checkpointed(forward, *args, **kwargs):
    # the UNet runs in eval mode (no dropout), so the RNG state need not be replayed
    return checkpoint(forward, *args, use_reentrant=False, preserve_rng_state=False, **kwargs)


def recomputed_attention(unet: torch.nn.Module) -> set[str]:
    """Names of the attention layers of ``unet`` that the active :func:`checkpointed`
    recomputes in the backward pass (inside a wrapped module)."""
    wrapped = [
        name
        for name, m in unet.named_modules()
        if getattr(vars(m).get("forward"), "func", None) is _run_checkpointed
    ]
    return {
        name
        for name, m in unet.named_modules()
        if _is_attention(m) and any(name.startswith(w + ".") for w in wrapped)
    }


def _worth_it(module: torch.nn.Module) -> bool:
    """A module with submodules and weights (a leaf keeps what checkpointing would keep)."""
    return any(True for _ in module.children()) and any(p.numel() for p in module.parameters())


def _is_attention(module: torch.nn.Module) -> bool:
    return hasattr(module, "processor")


@contextlib.contextmanager
def checkpointed(unet: torch.nn.Module, keep: list[str], *, policy: str = "light") -> Iterator[int]:
    """Recompute submodules of ``unet`` in the backward pass (see the module docstring).

    Parameters
    ----------
    unet : torch.nn.Module
    keep : list of str
        Module names (the guided layers) that are never recomputed, nor anything holding
        them.
    policy : str
        ``light``, ``temporal`` or ``full``.

    Yields
    ------
    int
        The number of wrapped modules; their ``forward`` is restored on exit.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown recompute policy {policy!r} ({', '.join(POLICIES)})")
    wrapped: list[torch.nn.Module] = []

    def holds_kept(name: str) -> bool:
        return any(k == name or k.startswith(name + ".") for k in keep)

    def may_recompute(name: str) -> bool:
        """Whether the attention layer ``name`` may be recomputed."""
        return policy == "full" or (policy == "temporal" and is_temporal(name))

    def holds_fixed_attention(module: torch.nn.Module, prefix: str) -> bool:
        return any(
            _is_attention(m) and not may_recompute(f"{prefix}.{n}" if n else prefix)
            for n, m in module.named_modules()
        )

    def visit(module: torch.nn.Module, prefix: str) -> None:
        for name, child in module.named_children():
            full = f"{prefix}.{name}" if prefix else name
            if _is_attention(child) and not may_recompute(full):
                continue
            inside = holds_kept(full) or holds_fixed_attention(child, full)
            if inside or isinstance(child, _CONTAINERS):
                visit(child, full)
            elif _worth_it(child):
                child.forward = functools.partial(_run_checkpointed, child.forward)
                wrapped.append(child)

    visit(unet, "")
    try:
        yield len(wrapped)
    finally:
        for module in wrapped:
            del module.forward
