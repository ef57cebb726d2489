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


@pytest.mark.parametrize(
    ("backbone", "recompute"), [("unet3d", None), ("animatediff", None), ("unet3d", "none")]
)
def test_truncated_guidance_pass_gives_the_gradient_of_a_full_forward(
    backbones, backbone, recompute
):
    """The sampler's guidance pass (stopped after the last guided layer, lean guided
    attention, recomputation) against diffusers' plain attention over the whole UNet."""
    from diffusers import DDIMScheduler
    from diffusers.models.attention_processor import AttnProcessor

    comps = backbones[backbone]
    unet = comps.unet
    sampler = LayoutSampler(comps)
    n_frames = 4
    cond = build_conditioning(
        two_objects(), comps.tokenizer, np.linspace(0.0, 1.5, n_frames), use_frame_captions=False
    )
    with torch.no_grad():
        text = sampler._encode(cond.prompts)
    ehs = text.expand(n_frames, -1, -1) if backbone == "animatediff" else text
    guided = default_guided_layers(unet)
    state = GroundingState(cond, (16, 16), torch.device("cpu"), guided, guided)
    gen = torch.Generator().manual_seed(3)
    latents = torch.randn(1, 4, n_frames, 16, 16, generator=gen)
    scheduler = DDIMScheduler.from_config(comps.scheduler.config)
    scheduler.set_timesteps(10)
    t = scheduler.timesteps[1]
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
