"""Attention layers that keep less for the guidance pass's backward pass.

The guidance pass differentiates with respect to the latents only (every weight of the
UNet is frozen), and what its backward pass needs of an attention layer is, with plain
autograd, the query, key and value (``heads * head_dim`` values per position each), the
attention output and the softmax's log-sum-exp: at the full-resolution layers they are
the largest part of what a guidance pass keeps. Inside :func:`lean_attention`, an
attention layer run with gradients (:func:`lean_sdpa`) keeps instead:

- its input, or rather the input of the ``LayerNorm`` that produced it, which that
  ``LayerNorm`` keeps anyway (its output is tagged with it, :func:`_tagging_layer_norm`),
  so that this costs nothing; the text states of a cross-attention layer (small);
- the attention output and the log-sum-exp (``keep_output``, the default on the CPU):
  the backward pass projects the query, key and value again (three linear layers, and the
  ``LayerNorm``) and calls the fused attention's own backward kernel
  (``_scaled_dot_product_flash_attention_for_cpu_backward``), so that it runs no attention
  twice; or nothing more (``keep_output=False``, and on other devices): the backward pass
  runs the whole attention again under autograd (an activation checkpoint of one layer).

Per self-attention layer that keeps one or two tensors of the hidden states' size where
plain autograd keeps four (query, key, value, output) and the ``LayerNorm``'s input. The
gradients are those of plain autograd up to rounding. Layers this does not cover (a
spatial or group norm inside the layer, query/key norms, weights that need gradients,
4-D inputs) run as usual, and so do the guided layers, whose maps
:mod:`.attention` captures (:mod:`.maps` keeps their query only).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F

_TAG = "_lean_norm_source"
_FLASH_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def _plain_layer(attn) -> bool:
    """Whether ``lean_sdpa`` covers the attention module ``attn``."""
    return (
        getattr(attn, "spatial_norm", None) is None
        and getattr(attn, "group_norm", None) is None
        and getattr(attn, "norm_q", None) is None
        and getattr(attn, "norm_k", None) is None
        and not getattr(attn, "norm_cross", False)
        and not any(
            p.requires_grad for lin in (attn.to_q, attn.to_k, attn.to_v) for p in lin.parameters()
        )
    )


def usable(attn, hidden_states: torch.Tensor) -> bool:
    """Whether :func:`lean_sdpa` applies: gradients on, a 3-D input that needs one, and a
    layer it covers."""
    return (
        torch.is_grad_enabled()
        and hidden_states.ndim == 3
        and hidden_states.requires_grad
        and _plain_layer(attn)
    )


def _heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, L, heads * d) -> (B, heads, L, d) (a view)."""
    b, n, c = t.shape
    return t.reshape(b, n, heads, c // heads).transpose(1, 2)


def _merge(t: torch.Tensor) -> torch.Tensor:
    """(B, heads, L, d) -> (B, L, heads * d)."""
    b, h, n, d = t.shape
    return t.transpose(1, 2).reshape(b, n, h * d)


def _project(attn, hidden: torch.Tensor, context: torch.Tensor | None):
    heads = attn.heads
    q = _heads(attn.to_q(hidden), heads)
    src = hidden if context is None else context
    return q, _heads(attn.to_k(src), heads), _heads(attn.to_v(src), heads)


def _input(source: torch.Tensor, norm) -> torch.Tensor:
    """The layer's input from what was kept: ``norm(source)``, or ``source`` itself."""
    if norm is None:
        return source
    return F.layer_norm(source, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def _flash_ok(q: torch.Tensor, mask: torch.Tensor | None) -> bool:
    return (
        q.device.type == "cpu"
        and q.dtype in _FLASH_DTYPES
        and (mask is None or mask.dtype in (q.dtype, torch.bool))
    )


class _LeanAttention(torch.autograd.Function):
    """Attention output (before ``to_out``) keeping only its input (module docstring).

    Inputs: the layer's input ``hidden`` (or the ``LayerNorm`` input ``source`` that
    gives it), the cross-attention ``context`` (None: self-attention), the additive or
    boolean ``mask`` (no gradient), the attention module, the ``LayerNorm`` (or None) and
    whether to keep the output and log-sum-exp for the fused backward kernel."""

    @staticmethod
    def forward(ctx, hidden, source, context, mask, attn, norm, keep_output):
        ctx.set_materialize_grads(False)
        q, k, v = _project(attn, hidden, context)
        flash = keep_output and _flash_ok(q, mask)
        if flash:
            out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                q, k, v, 0.0, False, attn_mask=mask
            )
        else:
            out, lse = F.scaled_dot_product_attention(q, k, v, attn_mask=mask), None
        kept = source if norm is not None else hidden
        merged = _merge(out)
        ctx.attn, ctx.norm, ctx.flash = attn, norm, flash
        ctx.needs = (ctx.needs_input_grad[0], ctx.needs_input_grad[2])
        if flash:
            ctx.save_for_backward(kept, context, mask, merged, lse)
        else:
            ctx.save_for_backward(kept, context, mask)
        return merged

    @staticmethod
    def backward(ctx, d_merged):
        if d_merged is None:
            return None, None, None, None, None, None, None
        attn, norm = ctx.attn, ctx.norm
        if ctx.flash:
            kept, context, mask, merged, lse = ctx.saved_tensors
            hidden = _input(kept, norm)
            q, k, v = _project(attn, hidden, context)
            d_q, d_k, d_v = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
                _heads(d_merged, attn.heads),
                q,
                k,
                v,
                _heads(merged, attn.heads),
                lse,
                0.0,
                False,
                attn_mask=mask,
            )
            del q, k, v
            d_hidden = _merge(d_q) @ attn.to_q.weight.to(d_q.dtype)
            d_kv = _merge(d_k) @ attn.to_k.weight.to(d_k.dtype)
            d_kv += _merge(d_v) @ attn.to_v.weight.to(d_v.dtype)
            d_context = None
            if context is None:
                d_hidden += d_kv
            elif ctx.needs[1]:
                d_context = d_kv
            return d_hidden, None, d_context, None, None, None, None
        kept, context, mask = ctx.saved_tensors
        with torch.enable_grad():
            hidden = _input(kept, norm).detach().requires_grad_(True)
            inputs = [hidden]
            if context is not None and ctx.needs[1]:
                context = context.detach().requires_grad_(True)
                inputs.append(context)
            q, k, v = _project(attn, hidden, context)
            out = _merge(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
            grads = torch.autograd.grad(out, inputs, d_merged)
        d_context = grads[1] if len(grads) > 1 else None
        return grads[0], None, d_context, None, None, None, None


def lean_sdpa(
    attn,
    hidden_states: torch.Tensor,
    encoder_hidden_states: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    *,
    keep_output: bool = True,
) -> torch.Tensor:
    """``scaled_dot_product_attention`` of the layer ``attn`` (query from
    ``hidden_states``, key and value from ``encoder_hidden_states`` or, when None, from
    ``hidden_states``), heads merged: ``(B, N, heads * d)``, the input of ``attn.to_out``.

    Call it only where :func:`usable` holds. The result equals that of diffusers'
    ``AttnProcessor2_0`` (up to rounding) and so do its gradients; what it keeps for them
    is the module docstring's.
    """
    source = getattr(hidden_states, _TAG, None)
    norm = None
    if source is not None:
        source, norm = source
    return _LeanAttention.apply(
        hidden_states,
        source,
        encoder_hidden_states,
        attention_mask,
        attn,
        norm,
        bool(keep_output),
    )


def attention_output(attn, merged: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """The rest of diffusers' processor after the attention (3-D inputs): the output
    projection and dropout, the residual where the layer has one, the output rescale."""
    out = attn.to_out[1](attn.to_out[0](merged.to(residual.dtype)))
    if attn.residual_connection:
        out = out + residual
    return out / attn.rescale_output_factor


def _tagging_layer_norm(norm: torch.nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """``norm(x)``, its output tagged with ``(x, norm)`` for :func:`lean_sdpa`."""
    y = F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
    if y.requires_grad and not any(p.requires_grad for p in norm.parameters()):
        setattr(y, _TAG, (x, norm))
    return y


class LeanAttnProcessor:
    """Diffusers' ``AttnProcessor2_0`` with :func:`lean_sdpa` where :func:`usable` holds
    (a 3-D input without spatial or group norm); the original processor elsewhere."""

    def __init__(self, original, *, keep_output: bool = True) -> None:
        self.original = original
        self.keep_output = keep_output

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args,
        **kwargs,
    ) -> torch.Tensor:
        if args or kwargs or not usable(attn, hidden_states):
            return self.original(
                attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs
            )
        residual = hidden_states
        batch = hidden_states.shape[0]
        if attention_mask is not None:
            keys = hidden_states if encoder_hidden_states is None else encoder_hidden_states
            attention_mask = attn.prepare_attention_mask(attention_mask, keys.shape[1], batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        out = lean_sdpa(
            attn,
            hidden_states,
            encoder_hidden_states,
            attention_mask,
            keep_output=self.keep_output,
        )
        return attention_output(attn, out, residual)


@contextlib.contextmanager
def lean_attention(
    model: torch.nn.Module, skip: set[str] | list[str] = (), *, keep_output: bool = True
) -> Iterator[int]:
    """Run the attention layers of ``model`` lean (module docstring) while inside.

    Every attention module (a module with a ``processor``) not named in ``skip`` (the
    caller's own processors, such as the grounded cross-attention, call
    :func:`lean_sdpa` themselves) gets a :class:`LeanAttnProcessor` around its own, and
    every frozen ``torch.nn.LayerNorm`` tags its output; both are restored on exit.

    Yields
    ------
    int
        The number of attention layers given a :class:`LeanAttnProcessor`.
    """
    skip = set(skip)
    layers = [
        m
        for name, m in model.named_modules()
        if hasattr(m, "processor") and hasattr(m, "set_processor") and name not in skip
    ]
    layers = [m for m in layers if not isinstance(m.processor, LeanAttnProcessor)]
    norms = [
        m for m in model.modules() if type(m) is torch.nn.LayerNorm and "forward" not in vars(m)
    ]
    previous = [m.processor for m in layers]
    try:
        for m, proc in zip(layers, previous, strict=True):
            m.set_processor(LeanAttnProcessor(proc, keep_output=keep_output))
        for m in norms:
            m.forward = _tagging_layer_norm.__get__(m)
        yield len(layers)
    finally:
        for m in norms:
            vars(m).pop("forward", None)
        for m, proc in zip(layers, previous, strict=True):
            m.set_processor(proc)
