"""Cross-attention processors that ground object tokens in their boxes.

One :class:`GroundingState` per sampling run holds what the processors need (per-frame
token positions, boxes, the latent size) and what they leave behind (captured maps,
in-box shares). :class:`GroundedCrossAttention` replaces diffusers' ``AttnProcessor2_0``
on every spatial cross-attention layer (``attn2`` of a ``Transformer2DModel``; the
temporal layers are left alone) and, per call:

- swaps in per-frame text states (``state.context``) when the frames' prompts differ
  (``UNet3DConditionModel`` repeats one prompt over all frames itself);
- on the guided layers, when asked, computes the attention probabilities explicitly
  and keeps only the object tokens' columns of the conditional half of the batch
  (:func:`.maps.attention_with_maps`, whose backward pass keeps the query rather than
  the probabilities): with gradients for the energy (``state.capture``), or reduced at
  once to in-box shares (``state.record``); in a guidance pass it stops the UNet once
  the last guided layer is captured (:class:`StopForward`), as nothing after it enters
  the energy (the guidance pass and its backward stop in the lowest-resolution up block
  with the default layers);
- on the biased layers, when ``state.bias_on``, adds a bias to the object tokens'
  logits: ``inside`` in the object's box and ``outside`` elsewhere (everywhere in
  frames where it is not visible) - Peekaboo/TrailBlazer-style masked attention;
- otherwise it computes exactly what ``AttnProcessor2_0`` computes.

Map layout: ``(F, heads, N, K, J)``: frames, heads, the N = h * w query positions of the
layer (row-major), K objects, J token slots (``state.valid`` tells the used ones).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from generators.video.diffusion.conditioning import FrameConditioning, box_masks
from generators.video.diffusion.lean import attention_output, lean_sdpa, usable
from generators.video.diffusion.maps import attention_with_maps

_TEMPORAL = ("temp_attentions", "motion_modules", "transformer_in")


def is_temporal(name: str) -> bool:
    """Whether the module ``name`` is (in) a temporal layer: ``temp_attentions`` and
    ``transformer_in`` of ``UNet3DConditionModel``, ``motion_modules`` of AnimateDiff."""
    return any(part in name for part in _TEMPORAL)


class StopForward(Exception):
    """Raised inside the UNet once every guided layer's map of a guidance pass is captured."""


def cross_attention_layers(unet) -> list[str]:
    """Names (module paths) of the spatial cross-attention layers, in module order."""
    names = []
    for name, module in unet.named_modules():
        if getattr(module, "is_cross_attention", False) and hasattr(module, "processor"):
            if not is_temporal(name):
                names.append(name)
    return names


def default_guided_layers(unet) -> list[str]:
    """The mid block's cross-attention and that of the lowest-resolution up block that has
    cross-attention (``up_blocks.1`` in ModelScope and Stable Diffusion, whose
    ``up_blocks.0`` has none): the default of LMD (LLM-grounded Diffusion), on which LVD
    builds. LVD's own code guides the lowest-resolution cross-attention down block
    instead of the mid block, and its ModelScope/Zeroscope script adds layers of the
    next down and up blocks; either way the guidance pass runs into the up path, so
    stopping it after the last guided layer saves at most the higher-resolution up
    blocks. Other layers: ``SamplerConfig.layers``."""
    cross = cross_attention_layers(unet)
    chosen = [n for n in cross if n.startswith("mid_block.")]
    for i in range(len(unet.up_blocks)):
        up = [n for n in cross if n.startswith(f"up_blocks.{i}.")]
        if up:
            chosen += up
            break
    return chosen


def select_layers(unet, prefixes: tuple[str, ...] | list[str] | None) -> list[str]:
    """Cross-attention layers whose names start with one of ``prefixes`` (default: LVD's).

    Raises
    ------
    ValueError
        A prefix matches no cross-attention layer.
    """
    if prefixes is None:
        return default_guided_layers(unet)
    cross = cross_attention_layers(unet)
    out: list[str] = []
    for p in prefixes:
        hits = [n for n in cross if n == p or n.startswith(p.rstrip(".") + ".")]
        if not hits:
            raise ValueError(
                f"no cross-attention layer under {p!r}; the model has: " + ", ".join(cross)
            )
        out += [h for h in hits if h not in out]
    return out


def grid_shape(n_positions: int, latent_hw: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of a layer with ``n_positions`` query positions: the latent grid halved
    (rounding up, as a stride-2 convolution with padding 1 does) until it fits."""
    h, w = latent_hw
    while h * w > n_positions:
        h, w = (h + 1) // 2, (w + 1) // 2
    if h * w != n_positions:
        raise ValueError(f"{n_positions} attention positions match no level of a {latent_hw} grid")
    return h, w


@dataclass
class GroundingState:
    """Shared by the processors of one sampling run (see the module docstring)."""

    cond: FrameConditioning
    latent_hw: tuple[int, int]
    device: torch.device
    guided: list[str]
    biased: list[str]
    mask_inside: float = 1.0
    mask_outside: float = -10.0
    context: torch.Tensor | None = None
    cfg_batch: bool = False
    """The UNet batch is [unconditional frames, conditional frames] (else conditional only)."""
    capture: bool = False
    record: bool = False
    bias_on: bool = False
    lean: frozenset[str] = frozenset()
    """Unguided cross-attention layers that run :func:`.lean.lean_sdpa` where it applies
    (set for the guidance pass)."""
    maps: dict[str, torch.Tensor] = field(default_factory=dict)
    share_sum: np.ndarray = field(init=False)
    share_count: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        index, valid = self.cond.frame_tokens()
        n_frames, n_obj, n_tok = index.shape
        self.n_frames, self.n_obj, self.n_tok = n_frames, n_obj, n_tok
        self.index = torch.as_tensor(index.reshape(n_frames, -1), device=self.device)
        self.valid = torch.as_tensor(valid, device=self.device)
        self.visible = torch.as_tensor(self.cond.visible.T.copy(), device=self.device)  # (F, K)
        self._masks: dict[int, torch.Tensor] = {}
        self._bias: dict[tuple, torch.Tensor] = {}
        self.reset_shares()

    # ------------------------------------------------------------------ geometry
    def masks(self, n_positions: int) -> torch.Tensor:
        """Box masks ``(F, K, N)`` (float32) at the resolution of a layer."""
        m = self._masks.get(n_positions)
        if m is None:
            h, w = grid_shape(n_positions, self.latent_hw)
            m = torch.from_numpy(box_masks(self.cond.boxes, self.cond.visible, h, w))
            m = self._masks[n_positions] = m.to(self.device)
        return m

    def cond_rows(self, batch: int) -> slice:
        if batch == self.n_frames * (2 if self.cfg_batch else 1):
            return slice(self.n_frames, None) if self.cfg_batch else slice(None)
        raise RuntimeError(f"unexpected attention batch {batch} for {self.n_frames} frames")

    def bias(self, n_positions: int, batch: int, n_text: int, dtype) -> torch.Tensor:
        """Additive logits bias ``(batch, 1, N, n_text)``; zero on the unconditional half."""
        key = (n_positions, batch, n_text, dtype, self.cfg_batch)
        b = self._bias.get(key)
        if b is None:
            m = self.masks(n_positions)  # (F, K, N)
            val = self.mask_inside * m + self.mask_outside * (1.0 - m)
            val = val[:, :, None, :] * self.valid[..., None]  # (F, K, J, N)
            val = val.reshape(self.n_frames, -1, n_positions).transpose(1, 2)  # (F, N, K*J)
            b = torch.zeros(self.n_frames, n_positions, n_text, device=self.device)
            idx = self.index[:, None, :].expand(-1, n_positions, -1)
            b.scatter_add_(-1, idx, val.contiguous())
            if self.cfg_batch:
                b = torch.cat([torch.zeros_like(b), b])
            if b.shape[0] != batch:
                raise RuntimeError(f"unexpected attention batch {batch} for {self.n_frames} frames")
            b = self._bias[key] = b[:, None].to(dtype)
        return b

    # ------------------------------------------------------------------ capture
    def reset_shares(self) -> None:
        self.share_sum = np.zeros(self.n_obj)
        self.share_count = np.zeros(self.n_obj)

    def add_share(self, maps: torch.Tensor) -> None:
        """Accumulate each object's in-box share of its tokens' attention (head mean)."""
        a = maps.detach().float().mean(dim=1)  # (F, N, K, J)
        m = self.masks(a.shape[1])
        inside = torch.einsum("fnkj,fkn->fkj", a, m)
        share = inside / a.sum(dim=1).clamp_min(1e-12)
        w = (self.valid & self.visible[..., None]).float()
        self.share_sum += (share * w).sum(dim=(0, 2)).double().cpu().numpy()
        self.share_count += w.sum(dim=(0, 2)).double().cpu().numpy()

    def shares(self) -> np.ndarray:
        """Mean in-box share per object since :meth:`reset_shares` (NaN where unmeasured)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.share_count > 0, self.share_sum / self.share_count, np.nan)


def layout_energy(
    state: GroundingState,
    maps: dict[str, torch.Tensor],
    *,
    fg_top: float = 0.2,
    bg_top: float = 0.2,
    bg_weight: float = 4.0,
) -> torch.Tensor:
    """LVD's energy of captured maps (a 0-d float32 tensor, differentiable).

    Per layer, frame, visible object and token:
    ``sum_heads (1 - mean TopK(A * inside)) + bg_weight * mean TopK(A * outside)``,
    with K the ``fg_top`` (``bg_top``) fraction of the box's (background's) cells, at
    least one. As in LVD's ``compute_ca_lossv3``, it is averaged over an object's tokens,
    summed over frames and objects, and divided by the number of objects and of layers
    (summing over frames keeps each frame's gradient at the scale of a single image).
    """
    total = torch.zeros((), device=state.device)
    obj_ok = (state.valid.any(dim=-1) & state.visible).float()  # (F, K)
    n_obj = int(state.valid.any(dim=-1).any(dim=0).sum())
    if n_obj == 0 or not bool(obj_ok.any()) or not maps:
        return total
    tok_w = state.valid.float()  # (F, K, J)
    for a in maps.values():
        a = a.float()
        n = a.shape[2]
        m = state.masks(n)  # (F, K, N)
        m5 = m.transpose(1, 2)[:, None, :, :, None]  # (F, 1, N, K, 1)
        inside_cells = m.sum(dim=-1)  # (F, K)
        k_fg = (inside_cells * fg_top).floor().clamp(min=1).long()
        k_bg = ((n - inside_cells) * bg_top).floor().clamp(min=1).long()
        fg = _top_mean(a * m5, k_fg)
        bg = _top_mean(a * (1.0 - m5), k_bg)
        e = ((1.0 - fg) + bg_weight * bg).sum(dim=1)  # (F, K, J), summed over heads
        e_obj = (e * tok_w).sum(dim=-1) / tok_w.sum(dim=-1).clamp(min=1.0)  # (F, K)
        total = total + (e_obj * obj_ok).sum()
    return total / (n_obj * len(maps))


def _top_mean(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Mean of the ``k[f, o]`` largest values along dim 2 of ``x`` ``(F, h, N, K, J)``."""
    k_max = int(k.max())
    top = x.topk(k_max, dim=2).values.cumsum(dim=2)  # (F, h, k_max, K, J)
    f, h, _, n_obj, n_tok = top.shape
    idx = (k - 1)[:, None, None, :, None].expand(f, h, 1, n_obj, n_tok)
    return top.gather(2, idx).squeeze(2) / k[:, None, :, None].to(top.dtype)


class GroundedCrossAttention:
    """Attention processor for one spatial cross-attention layer (module docstring)."""

    def __init__(self, state: GroundingState, name: str, *, guided: bool, biased: bool) -> None:
        self.state = state
        self.name = name
        self.guided = guided
        self.biased = biased

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
        st = self.state
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif st.context is not None and encoder_hidden_states.shape[0] == st.context.shape[0]:
            encoder_hidden_states = st.context.to(encoder_hidden_states.dtype)
        batch, n_query, _ = hidden_states.shape
        n_text = encoder_hidden_states.shape[1]
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, n_text, batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        capturing = self.guided and (st.capture or st.record)
        lean = self.name in st.lean and not capturing and input_ndim == 3
        if lean and usable(attn, hidden_states):
            if self.biased and st.bias_on:
                bias = st.bias(n_query, batch, n_text, hidden_states.dtype)
                attention_mask = bias if attention_mask is None else attention_mask + bias
            context = None if encoder_hidden_states is hidden_states else encoder_hidden_states
            out = lean_sdpa(attn, hidden_states, context, attention_mask)
            return attention_output(attn, out, residual)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        if self.biased and st.bias_on:
            bias = st.bias(n_query, batch, n_text, query.dtype)
            attention_mask = bias if attention_mask is None else attention_mask + bias
        if capturing:
            last = st.capture and len(st.maps) + (self.name not in st.maps) == len(st.guided)
            rows = st.cond_rows(batch)
            hidden_states, maps = attention_with_maps(
                query,
                key,
                value,
                attention_mask,
                attn.scale,
                rows.start or 0,
                st.index,
                with_output=not last,
            )
            maps = maps.view(*maps.shape[:3], st.n_obj, st.n_tok)
            if st.record:
                st.add_share(maps)
            if st.capture:
                st.maps[self.name] = maps
                if last:
                    raise StopForward
        else:
            hidden_states = F.scaled_dot_product_attention(
                query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False
            )
        hidden_states = hidden_states.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def install(unet, state: GroundingState) -> dict:
    """Put :class:`GroundedCrossAttention` on every spatial cross-attention layer of
    ``unet``; returns the previous processors (for :func:`restore`)."""
    previous = unet.attn_processors
    cross = set(cross_attention_layers(unet))
    procs = {}
    for key, proc in previous.items():
        name = key.removesuffix(".processor")
        if name in cross:
            procs[key] = GroundedCrossAttention(
                state, name, guided=name in state.guided, biased=name in state.biased
            )
        else:
            procs[key] = proc
    unet.set_attn_processor(procs)
    return previous


def restore(unet, previous: dict) -> None:
    unet.set_attn_processor(previous)
