"""The energy guidance pass of the diffusion sampler: the truncated, memory-lean pass gives
the gradient of a plain full UNet forward; the guided layers' attention keeps only its
inputs and has the exact gradient; the loss threshold stops the iterations."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from generators.video.diffusion import maps as maps_module  # noqa: E402
from generators.video.diffusion.attention import (  # noqa: E402
    GroundingState,
    default_guided_layers,
    install,
    layout_energy,
    restore,
)
from generators.video.diffusion.conditioning import build_conditioning  # noqa: E402
from generators.video.diffusion.maps import attention_with_maps  # noqa: E402
from generators.video.diffusion.sampler import LayoutSampler, SamplerConfig  # noqa: E402
from generators.video.diffusion.tiny import build_tiny  # noqa: E402
from spa2v.layout import layout_from_dict  # noqa: E402


def two_objects():
    """A car crossing the bottom half left to right; a dog still at the top right."""
    return layout_from_dict(
        {
            "version": 1,
            "duration": 2.0,
            "fps": 1,
            "caption": "A car drives from the left to the right while a dog barks.",
            "objects": [{"id": 0, "name": "car"}, {"id": 1, "name": "dog"}],
            "frames": [
                {
                    "t": float(k),
                    "boxes": [
                        {"id": 0, "box": [0.5 * k, 0.45, 0.5 * k + 0.45, 0.95]},
                        {"id": 1, "box": [0.6, 0.05, 0.95, 0.45]},
                    ],
                }
                for k in (0, 1)
            ],
        }
    )


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def backbones():
    return {name: build_tiny(name) for name in ("unet3d", "animatediff")}


def _reference(q, k, v, mask, scale, start, index):
    probs = (torch.matmul(q * scale, k.transpose(-1, -2)) + mask).softmax(dim=-1)
    rows = probs[start:]
    return probs @ v, rows.gather(-1, index[:, None, None, :].expand(*rows.shape[:3], -1))


@pytest.mark.parametrize("start", [0, 2])
def test_attention_with_maps_keeps_only_its_inputs_and_has_the_exact_gradient(monkeypatch, start):
    monkeypatch.setattr(maps_module, "CHUNK_ELEMENTS", 150)  # a few rows per chunk
    gen = torch.Generator().manual_seed(0)
    b, h, n, s, d = 5, 2, 6, 16, 3
    q = torch.randn(b, h, n, d, generator=gen, dtype=torch.float64, requires_grad=True)
    k, v = (torch.randn(b, h, s, d, generator=gen, dtype=torch.float64) for _ in range(2))
    mask = torch.randn(b, 1, n, s, generator=gen, dtype=torch.float64)
    index = torch.randint(0, s, (b - start, 4), generator=gen)
    index[:, 1] = index[:, 0]  # a token taken twice (an object named twice)
    out, maps = attention_with_maps(q, k, v, mask, 0.7, start, index)
    ref_out, ref_maps = _reference(q, k, v, mask, 0.7, start, index)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(maps, ref_maps)
    for with_output in (True, False):

        def fn(query, with_output=with_output):
            res = attention_with_maps(query, k, v, mask, 0.7, start, index, with_output=with_output)
            return res if with_output else res[1]

        assert torch.autograd.gradcheck(fn, (q,))
    # the backward keeps its inputs, nothing the size of the probabilities
    sizes = []
    with torch.autograd.graph.saved_tensors_hooks(
        lambda t: sizes.append(t.numel()) or t, lambda t: t
    ):
        attention_with_maps(q, k, v, mask, 0.7, start, index)
    assert sizes and max(sizes) < b * h * n * s
    with torch.autograd.graph.saved_tensors_hooks(
        lambda t: sizes.append(t.numel()) or t, lambda t: t
    ):
        _reference(q, k, v, mask, 0.7, start, index)
    assert max(sizes) == b * h * n * s  # plain autograd keeps them


def _guidance_step(comps, *, frame_captions: bool, seed: int):
    """What one guidance step of the sampler takes on a tiny backbone: the sampler, the
    two-object conditioning over 4 frames, its text states, the grounding state of the
    default guided layers, 16x16 latents of ``seed``, and the second of 10 DDIM steps."""
    from diffusers import DDIMScheduler

    n_frames = 4
    sampler = LayoutSampler(comps)
    cond = build_conditioning(two_objects(), comps.tokenizer, np.linspace(0.0, 1.5, n_frames),
                              use_frame_captions=frame_captions)
    with torch.no_grad():
        text = sampler._encode(cond.prompts)
    guided = default_guided_layers(comps.unet)
    state = GroundingState(cond, (16, 16), torch.device("cpu"), guided, guided)
    gen = torch.Generator().manual_seed(seed)
    latents = torch.randn(1, 4, n_frames, 16, 16, generator=gen)
    scheduler = DDIMScheduler.from_config(comps.scheduler.config)
    scheduler.set_timesteps(10)
    return sampler, cond, text, state, latents, scheduler, scheduler.timesteps[1]


@pytest.mark.parametrize(
    ("backbone", "recompute"), [("unet3d", None), ("animatediff", None), ("unet3d", "none")]
)
def test_truncated_guidance_pass_gives_the_gradient_of_a_full_forward(
    backbones, backbone, recompute
):
    """The sampler's guidance pass (stopped after the last guided layer, lean guided
    attention, recomputation) against diffusers' plain attention over the whole UNet."""
    from diffusers.models.attention_processor import AttnProcessor

    comps = backbones[backbone]
    unet = comps.unet
    sampler, _cond, text, state, latents, scheduler, t = _guidance_step(
        comps, frame_captions=False, seed=3
    )
    n_frames = latents.shape[2]
    ehs = text.expand(n_frames, -1, -1) if backbone == "animatediff" else text
    guided = state.guided
    config = SamplerConfig(max_iterations=1, loss_threshold=-1.0, recompute=recompute)

    previous = install(unet, state)
    try:
        with torch.no_grad():
            new, trace = sampler._energy_guidance(latents, t, scheduler, state, ehs, None, config)
    finally:
        restore(unet, previous)
    step = math.sqrt(1.0 - float(scheduler.alphas_cumprod[int(t)])) * config.loss_scale
    grad = (latents - new) / step

    # reference: the whole UNet with diffusers' explicit attention, maps taken from it
    captured = {}
    modules = dict(unet.named_modules())

    def capturing(name, original):
        def get_attention_scores(query, key, attention_mask=None):
            probs = original(query, key, attention_mask)
            p = probs.view(n_frames, -1, *probs.shape[1:])  # (F, heads, N, S)
            idx = state.index[:, None, None, :].expand(*p.shape[:3], -1)
            captured[name] = p.gather(-1, idx).view(*p.shape[:3], state.n_obj, state.n_tok)
            return probs

        return get_attention_scores

    original = unet.attn_processors
    unet.set_attn_processor(AttnProcessor())
    for name in guided:
        modules[name].get_attention_scores = capturing(name, modules[name].get_attention_scores)
    try:
        z = latents.clone().requires_grad_(True)
        out = unet(z, t, encoder_hidden_states=ehs, return_dict=False)[0]
        assert out.shape == z.shape  # the whole UNet ran
        energy = layout_energy(state, captured, fg_top=0.2, bg_top=0.2, bg_weight=4.0)
        (ref_grad,) = torch.autograd.grad(energy, z)
    finally:
        for name in guided:
            del modules[name].get_attention_scores
        unet.set_attn_processor(original)
    assert len(trace) == 1 and trace[0] == pytest.approx(float(energy.detach()), rel=1e-5)
    assert float(ref_grad.abs().max()) > 0
    torch.testing.assert_close(grad, ref_grad, rtol=1e-3, atol=1e-4 * float(ref_grad.abs().max()))


def test_the_loss_threshold_stops_the_iterations(backbones):
    sampler = LayoutSampler(backbones["unet3d"])
    layout = two_objects()
    base = dict(guidance="energy", steps=3, guidance_steps=2, num_frames=4, size_px=(32, 32))
    full = sampler.sample(layout, SamplerConfig(**base), seed=4)
    assert [len(e) for e in full.energies] == [5, 5]
    first = full.energies[0]
    threshold = first[2] * (1 + 1e-6)
    assert min(first[:2]) > threshold  # the energy falls
    out = sampler.sample(layout, SamplerConfig(**base, loss_threshold=threshold), seed=4)
    np.testing.assert_allclose(out.energies[0], first[:3], rtol=1e-6)
    for trace in out.energies:
        assert all(v > threshold for v in trace[:-1])
        assert len(trace) == 5 or trace[-1] <= threshold
    # met at once: no step on the latents, so the frames of plain sampling
    none = sampler.sample(layout, SamplerConfig(**{**base, "guidance": "none"}), seed=4)
    met = sampler.sample(layout, SamplerConfig(**base, loss_threshold=1e9), seed=4)
    assert [len(e) for e in met.energies] == [1, 1]
    np.testing.assert_allclose(met.frames, none.frames, atol=1e-6)
    assert np.abs(full.frames - none.frames).max() > 1e-3


def _saved(fn, model: torch.nn.Module) -> tuple[dict[int, int], object]:
    """The distinct tensors (their storages' bytes by address; not ``model``'s weights)
    that autograd keeps for the backward pass of ``fn()``, caught by saved-tensor hooks;
    and ``fn``'s result."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in weights:
            kept[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return kept, out


class _Block(torch.nn.Module):
    """LayerNorm then attention, plus the residual, as in diffusers' transformer blocks."""

    def __init__(self, dim: int, cross_dim: int | None) -> None:
        from diffusers.models.attention_processor import Attention

        super().__init__()
        self.norm = torch.nn.LayerNorm(dim)
        self.attn = Attention(dim, cross_attention_dim=cross_dim, heads=4, dim_head=dim // 4)

    def forward(self, x, context=None, mask=None):
        return self.attn(self.norm(x), encoder_hidden_states=context, attention_mask=mask) + x


@pytest.mark.parametrize("cross", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lean_attention_has_the_gradient_of_plain_autograd_and_keeps_less(cross, dtype):
    from generators.video.diffusion.lean import LeanAttnProcessor, lean_attention

    gen = torch.Generator().manual_seed(1)
    b, n, dim, s = 3, 40, 16, 7
    block = _Block(dim, 8 if cross else None).to(dtype).eval()
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=dtype))
    block.requires_grad_(False)
    x = torch.randn(b, n, dim, generator=gen, dtype=dtype, requires_grad=True)
    context = mask = None
    if cross:
        context = torch.randn(b, s, 8, generator=gen, dtype=dtype, requires_grad=True)
        mask = torch.randn(b, 1, s, generator=gen, dtype=dtype)  # additive, per key
    inputs = (x, context) if cross else (x,)
    d_out = torch.randn(b, n, dim, generator=gen, dtype=dtype)

    def run():
        kept, out = _saved(lambda: block(x, context, mask), block)
        return kept, out, torch.autograd.grad(out, inputs, d_out)

    plain_kept, plain_out, plain_grads = run()
    tol = {"rtol": 1e-9, "atol": 1e-9} if dtype == torch.float64 else {}
    hidden = b * n * dim * x.element_size()  # one tensor the size of the layer's input

    def big(kept: dict[int, int]) -> int:
        return sum(v >= hidden for v in kept.values())

    for keep_output in (True, False):
        with lean_attention(block, keep_output=keep_output) as count:
            assert count == 1 and isinstance(block.attn.processor, LeanAttnProcessor)
            kept, out, grads = run()
        torch.testing.assert_close(out, plain_out, **tol)
        for g, ref in zip(grads, plain_grads, strict=True):
            torch.testing.assert_close(g, ref, **tol)
        # plain autograd keeps the query (self-attention: and key and value) and the
        # output besides the LayerNorm's input; the lean layer that input, and the output
        # when keep_output (and small things: the norm's and softmax's statistics)
        assert big(plain_kept) == (3 if cross else 5)
        assert big(kept) == (2 if keep_output else 1)
        saving = sum(plain_kept.values()) - sum(kept.values())
        assert saving > ((1 if cross else 3) + (not keep_output)) * hidden * 0.9
    assert not isinstance(block.attn.processor, LeanAttnProcessor)  # restored
    assert "forward" not in vars(block.norm)


@pytest.mark.parametrize("backbone", ["unet3d", "animatediff"])
def test_lean_attention_keeps_less_in_the_guidance_pass_for_the_same_gradient(backbones, backbone):
    """One guidance iteration of the sampler on a real tiny UNet, lean attention on and
    off: the same step on the latents; what autograd keeps, counted by saved-tensor hooks
    (the recompute policy's checkpoints included), shrinks."""

    comps = backbones[backbone]
    unet = comps.unet
    sampler, cond, text, state, latents, scheduler, t = _guidance_step(
        comps, frame_captions=True, seed=5
    )
    frame_text = text[torch.as_tensor(cond.prompt_of_frame)]
    ehs, ctx = (frame_text, None) if backbone == "animatediff" else (text[:1], frame_text)
    kept, steps = {}, {}
    previous = install(unet, state)
    try:
        for lean in (False, True):
            config = SamplerConfig(max_iterations=1, loss_threshold=-1.0, lean_attention=lean)
            with torch.no_grad():
                saved, (steps[lean], _) = _saved(
                    lambda config=config: sampler._energy_guidance(
                        latents, t, scheduler, state, ehs, ctx, config
                    ),
                    unet,
                )
            kept[lean] = sum(saved.values())
            assert not state.lean
    finally:
        restore(unet, previous)
    assert not any(
        "forward" in vars(m) for m in unet.modules()
    )  # no LayerNorm or checkpoint left patched
    assert not (steps[True] - latents).abs().max() < 1e-6  # the pass moved the latents
    torch.testing.assert_close(steps[True], steps[False], rtol=1e-4, atol=1e-5)
    assert kept[True] < 0.85 * kept[False]
