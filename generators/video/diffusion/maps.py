"""Attention that also returns the object tokens' maps, with a lean backward pass.

On a guided layer the energy needs the attention probabilities of the object tokens, so
the processor computes the attention explicitly: ``P = softmax(q k^T * scale + mask)``
(float32), the output ``P v`` and the maps, the columns ``index[f]`` of the conditional
rows of ``P``. Plain autograd keeps ``P`` for the backward pass (``heads * S`` values per
query position, S = 77 text tokens: the largest activation of a guidance pass) and builds
its gradient and that of the scores at full size there; the last guided layer's backward
runs first, while every other kept activation is still held, so that sets the peak memory
of the pass. :func:`attention_with_maps` keeps only its inputs instead (the query; key,
value and mask come from the text and the layout) and works through the batch in chunks
of at most :data:`CHUNK_ELEMENTS` probabilities both ways, so that neither ``P`` nor its
gradient exists at full size; the backward recomputes ``P`` chunk by chunk (one more
``q k^T`` and softmax, small next to the UNet around it).
"""

from __future__ import annotations

import torch

CHUNK_ELEMENTS = 1 << 18
"""Most attention probabilities (float32) held at once, at least one row: 1 MiB."""


def attention_with_maps(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float,
    start: int,
    index: torch.Tensor,
    *,
    with_output: bool = True,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Attention output and object-token maps.

    Parameters
    ----------
    query : Tensor, shape (B, heads, N, d)
    key, value : Tensor, shape (B, heads, S, d)
        Batch 1 broadcasts.
    mask : Tensor or None
        Additive logits mask broadcastable to (B, heads, N, S); batch 1 broadcasts.
    scale : float
        Logits factor.
    start : int
        Rows ``start:`` of the batch are the conditional ones (one per frame) whose maps
        are taken.
    index : LongTensor, shape (B - start, M)
        Token columns to take in each conditional row.
    with_output : bool
        Compute ``P v`` (False: the maps only, for the last layer a pass needs).

    Returns
    -------
    output : Tensor (B, heads, N, d) in ``value``'s dtype, or None
    maps : Tensor (B - start, heads, N, M), float32 (float64 for float64 inputs)
        Differentiable with respect to ``query`` (and to ``key``, ``value`` and ``mask``
        through plain autograd when one of them needs a gradient).
    """
    if torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (key, value, mask)
    ):
        probs = _probs(query, key, mask, scale)
        rows = probs[start:]
        maps = rows.gather(-1, index[:, None, None, :].expand(*rows.shape[:3], -1))
        out = torch.matmul(probs.to(value.dtype), value) if with_output else None
        return out, maps
    result = _AttentionWithMaps.apply(
        query, key, value, mask, float(scale), int(start), index, bool(with_output)
    )
    return (result[0], result[1]) if with_output else (None, result)


def _probs(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None, scale: float):
    scores = torch.matmul(q * scale, k.transpose(-1, -2))
    if mask is not None:
        scores = scores + mask
    return scores.to(_softmax_dtype(scores.dtype)).softmax(dim=-1)


def _softmax_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32, or float64 for float64 inputs."""
    return torch.promote_types(dtype, torch.float32)


def _rows(t: torch.Tensor | None, b0: int, b1: int) -> torch.Tensor | None:
    """Rows ``b0:b1`` of a batch-major tensor; a batch-1 tensor broadcasts."""
    if t is None or t.shape[0] == 1:
        return t
    return t[b0:b1]


def _chunks(batch: int, per_row: int) -> list[tuple[int, int]]:
    step = max(1, CHUNK_ELEMENTS // max(1, per_row))
    return [(b, min(batch, b + step)) for b in range(0, batch, step)]


class _AttentionWithMaps(torch.autograd.Function):
    """See :func:`attention_with_maps`; the gradient reaches the query only."""

    @staticmethod
    def forward(ctx, query, key, value, mask, scale, start, index, with_output):
        ctx.set_materialize_grads(False)
        batch, heads, n, _ = query.shape
        n_text = key.shape[-2]
        m = index.shape[1]
        out = (
            query.new_empty((batch, heads, n, value.shape[-1]), dtype=value.dtype)
            if with_output
            else None
        )
        maps = query.new_empty((batch - start, heads, n, m), dtype=_softmax_dtype(query.dtype))
        for b0, b1 in _chunks(batch, heads * n * n_text):
            p = _probs(query[b0:b1], _rows(key, b0, b1), _rows(mask, b0, b1), scale)
            if out is not None:
                out[b0:b1] = torch.matmul(p.to(value.dtype), _rows(value, b0, b1))
            c0 = max(b0, start)
            if c0 < b1:
                idx = index[c0 - start : b1 - start, None, None, :].expand(b1 - c0, heads, n, m)
                maps[c0 - start : b1 - start] = p[c0 - b0 :].gather(-1, idx)
        ctx.save_for_backward(query, key, value, mask, index)
        ctx.scale, ctx.start, ctx.with_output = scale, start, with_output
        return (out, maps) if with_output else maps

    @staticmethod
    def backward(ctx, *grads):
        d_out, d_maps = grads if ctx.with_output else (None, grads[0])
        query, key, value, mask, index = ctx.saved_tensors
        scale, start = ctx.scale, ctx.start
        batch, heads, n, _ = query.shape
        n_text = key.shape[-2]
        m = index.shape[1]
        d_query = torch.zeros_like(query)
        for b0, b1 in _chunks(batch, heads * n * n_text):
            c0 = max(b0, start)
            has_maps = d_maps is not None and c0 < b1
            if d_out is None and not has_maps:
                continue
            p = _probs(query[b0:b1], _rows(key, b0, b1), _rows(mask, b0, b1), scale)
            if d_out is not None:
                v = _rows(value, b0, b1).to(p.dtype)
                d_p = torch.matmul(d_out[b0:b1].to(p.dtype), v.transpose(-1, -2))
            else:
                d_p = torch.zeros_like(p)
            if has_maps:
                idx = index[c0 - start : b1 - start, None, None, :].expand(b1 - c0, heads, n, m)
                d_p[c0 - b0 :].scatter_add_(-1, idx, d_maps[c0 - start : b1 - start].to(p.dtype))
            # softmax backward in place: dS = P * (dP - sum(dP * P))
            d_p -= (d_p * p).sum(dim=-1, keepdim=True)
            d_p *= p
            k = _rows(key, b0, b1)
            d_query[b0:b1] = torch.matmul(d_p.to(query.dtype), k) * scale
        return d_query, None, None, None, None, None, None, None
