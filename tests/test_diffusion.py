"""The layout-grounded diffusion sampler on tiny random-weight models: plain sampling equals
diffusers' own pipelines, energy and mask guidance pull each object's attention into its
boxes, tokens come from the real tokenizer, any frame count and aspect ratio works."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from generators.video.diffusion.attention import (  # noqa: E402
    cross_attention_layers,
    default_guided_layers,
    grid_shape,
)
from generators.video.diffusion.conditioning import (  # noqa: E402
    GuidanceWarning,
    box_masks,
    build_conditioning,
    object_token_positions,
)
from generators.video.diffusion.sampler import LayoutSampler, SamplerConfig  # noqa: E402
from generators.video.diffusion.tiny import build_tiny  # noqa: E402
from spa2v.layout import layout_from_dict  # noqa: E402

CAR_BOXES = ([0.0, 0.45, 0.45, 0.95], [0.5, 0.45, 0.95, 0.95])
DOG_BOX = [0.6, 0.05, 0.95, 0.45]


def short_energy(num_frames: int, size_px: tuple[int, int], **kw) -> SamplerConfig:
    """Energy guidance on two steps, the first guided: enough to see the energy fall."""
    kw.setdefault("max_iterations", 2)
    return SamplerConfig(guidance="energy", steps=2, guidance_steps=1, num_frames=num_frames,
                         size_px=size_px, **kw)


def two_objects(frame_captions: bool = True, names=("car", "dog")):
    """A car crossing the bottom half left to right; a dog still at the top right."""
    car, dog = names
    cap = f"A {car} drives from the left to the right while a {dog} barks on the right."
    return layout_from_dict(
        {
            "version": 1,
            "duration": 2.0,
            "fps": 1,
            "caption": cap,
            "objects": [{"id": 0, "name": car}, {"id": 1, "name": dog}],
            "frames": [
                {
                    "t": float(k),
                    "caption": (f"The {car} is on the {side}." if frame_captions else ""),
                    "boxes": [{"id": 0, "box": CAR_BOXES[k]}, {"id": 1, "box": DOG_BOX}],
                }
                for k, side in ((0, "left"), (1, "right"))
            ],
        }
    )


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def unet3d():
    return build_tiny("unet3d")


@pytest.fixture(scope="module")
def animatediff():
    return build_tiny("animatediff")


def _pipeline(comps, scheduler):
    from diffusers import AnimateDiffPipeline

    parts = dict(
        vae=comps.vae,
        text_encoder=comps.text_encoder,
        tokenizer=comps.tokenizer,
        unet=comps.unet,
        scheduler=scheduler,
    )
    if comps.backbone == "animatediff":
        pipe = AnimateDiffPipeline(**parts, motion_adapter=comps.motion_adapter)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from diffusers import TextToVideoSDPipeline

            pipe = TextToVideoSDPipeline(**parts)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize(
    ("backbone", "scheduler", "cfg_scale"),
    [("unet3d", "ddim", 9.0), ("unet3d", "dpm++", 9.0), ("animatediff", "ddim", 7.5)],
)
def test_none_equals_plain_diffusers_sampling(request, backbone, scheduler, cfg_scale):
    comps = request.getfixturevalue(backbone)
    layout = two_objects(frame_captions=False)
    config = SamplerConfig(
        guidance="none",
        steps=4,
        num_frames=6,
        size_px=(32, 24),
        scheduler=scheduler,
        cfg_scale=cfg_scale,
    )
    sampler = LayoutSampler(comps)
    ours = sampler.sample(layout, config, seed=7)
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    if scheduler == "ddim":
        sched = DDIMScheduler.from_config(comps.scheduler.config)
    else:
        sched = DPMSolverMultistepScheduler.from_config(
            comps.scheduler.config, algorithm_type="dpmsolver++"
        )
    ref = _pipeline(comps, sched)(
        layout.caption,
        num_frames=6,
        height=24,
        width=32,
        num_inference_steps=4,
        guidance_scale=cfg_scale,
        generator=torch.Generator().manual_seed(7),
        output_type="np",
    ).frames[0]
    assert ours.frames.shape == ref.shape == (6, 24, 32, 3)
    assert ours.frames.std() > 0.01  # not a constant picture
    np.testing.assert_allclose(ours.frames, ref, atol=2e-4)
    other = sampler.sample(layout, config, seed=8)
    assert np.abs(other.frames - ours.frames).max() > 0.05


def test_energy_and_mask_raise_in_box_attention(unet3d):
    layout = two_objects()
    sampler = LayoutSampler(unet3d)
    shares = {}
    energies = None
    for mode in ("none", "mask", "energy"):
        config = SamplerConfig(
            guidance=mode, steps=6, guidance_steps=3, num_frames=8, size_px=(32, 32)
        )
        out = sampler.sample(layout, config, seed=0)
        shares[mode] = out.in_box_share
        if mode == "energy":
            energies = out.energies
    assert np.all(np.isfinite(shares["none"]))
    for mode in ("mask", "energy"):
        assert np.all(shares[mode] > shares["none"] + 0.1), (mode, shares)
    # the energy falls over a guided step's iterations
    assert len(energies) == 3 and all(len(e) == 5 for e in energies)
    assert all(e[-1] < e[0] for e in energies)


@pytest.mark.parametrize("backbone", ["unet3d", "animatediff"])
def test_recomputing_the_guidance_pass_changes_nothing_but_memory(request, backbone):
    from generators.video.diffusion.checkpointing import checkpointed

    comps = request.getfixturevalue(backbone)
    guided = default_guided_layers(comps.unet)
    unet = comps.unet
    names = dict(unet.named_modules())
    temporal = [n for n in names if re.fullmatch(r".*(motion_modules|temp_attentions)\.\d+", n)]
    temporal += ["transformer_in"] if "transformer_in" in names else []
    attention = {n for n, m in names.items() if hasattr(m, "processor")}
    counts, wrapped = {}, {}
    for policy in ("light", "temporal", "full"):
        with checkpointed(unet, guided, policy=policy) as counts[policy]:
            wrapped[policy] = {n for n, m in names.items() if "forward" in vars(m)}
        for n in wrapped[policy]:  # never a guided layer or anything holding one
            assert not any(g == n or g.startswith(n + ".") for g in guided)
        recomputed = {  # attention layers run again in the backward pass
            n for n in attention if any(n == w or n.startswith(w + ".") for w in wrapped[policy])
        }
        if policy == "light":
            assert not recomputed
        elif policy == "temporal":
            assert temporal and recomputed == {
                n for n in attention if n.startswith(tuple(temporal))
            }
        else:
            assert recomputed == {n for n in attention if n not in guided}
    assert 0 < counts["full"] < counts["light"]  # full wraps larger modules, so fewer
    assert not any("forward" in vars(m) for m in comps.unet.modules())  # restored
    with pytest.raises(ValueError, match="unknown recompute policy"):
        with checkpointed(comps.unet, guided, policy="most"):
            pass
    layout = two_objects()
    sampler = LayoutSampler(comps)
    runs = [
        sampler.sample(
            layout,
            short_energy(4, (32, 32), max_iterations=3, recompute=recompute),
            seed=2,
        )
        for recompute in ("none", "light", "temporal", "full")
    ]
    for run in runs[1:]:
        np.testing.assert_allclose(run.energies, runs[0].energies, rtol=1e-5)
        np.testing.assert_allclose(run.frames, runs[0].frames, atol=1e-5)


def test_any_frame_count_and_aspect_ratio(animatediff):
    layout = two_objects()
    sampler = LayoutSampler(animatediff)
    config = short_energy(5, (48, 16))
    out = sampler.sample(layout, config, seed=1)
    assert out.frames.shape == (5, 16, 48, 3)
    assert np.all(np.isfinite(out.frames)) and np.all(np.isfinite(out.in_box_share))
    assert len(out.energies) == 1 and len(out.energies[0]) == 2
    # the box at each generated frame is the layout's, interpolated
    boxes, _ = layout.track(0, out.times_s)
    np.testing.assert_allclose(out.conditioning.boxes[0], boxes)


def test_bfloat16_weights_sample_on_the_cpu():
    from generators.video.diffusion.loading import load_components

    comps = load_components("tiny", dtype=torch.bfloat16)
    assert comps.unet.dtype == torch.bfloat16
    out = LayoutSampler(comps).sample(two_objects(), short_energy(4, (32, 32)))
    assert out.frames.dtype == np.float32 and np.all(np.isfinite(out.frames))
    assert out.energies[0][1] < out.energies[0][0]


def test_default_layers_are_mid_and_lowest_resolution_up_block(unet3d, animatediff):
    for comps in (unet3d, animatediff):
        chosen = default_guided_layers(comps.unet)
        assert chosen[0].startswith("mid_block.")
        assert {n.split(".")[0] + "." + n.split(".")[1] for n in chosen[1:]} == {"up_blocks.1"}
        assert all(n.endswith("attn2") for n in chosen)
        assert not any("temp" in n or "motion" in n for n in cross_attention_layers(comps.unet))


@pytest.mark.parametrize("name", ["tiny4", "tiny4-animatediff"])
def test_tiny4_presets_have_the_four_levels_of_the_real_models(name):
    """The benchmark presets: ModelScope's (Stable Diffusion 1.5's) block layout, so the
    guided layers sit where they do in a real model at 256 x 256 pixels."""
    from generators.video.diffusion.loading import load_components

    comps = load_components(name)
    unet = comps.unet
    assert comps.source == name
    assert comps.backbone == ("animatediff" if name.endswith("animatediff") else "unet3d")
    # cross-attention in the three upper levels, none in the lowest
    assert [hasattr(b, "attentions") for b in unet.down_blocks] == [True, True, True, False]
    assert [hasattr(b, "attentions") for b in unet.up_blocks] == [False, True, True, True]
    if comps.backbone == "unet3d":
        assert [type(b).__name__ for b in unet.down_blocks] == ["CrossAttnDownBlock3D"] * 3 + [
            "DownBlock3D"
        ]
    guided = default_guided_layers(unet)
    modules = dict(unet.named_modules())
    positions: dict[str, set[int]] = {}

    def query_positions(name):
        def hook(module, args):
            positions.setdefault(name, set()).add(args[0].shape[1])

        return hook

    hooks = [modules[n].register_forward_pre_hook(query_positions(n)) for n in guided]
    try:
        out = LayoutSampler(comps).sample(two_objects(), short_energy(2, (64, 64)))
    finally:
        for h in hooks:
            h.remove()
    # a 32 x 32 latent, as ModelScope's at 256 x 256: mid block 4 x 4, up_blocks.1 8 x 8
    assert {n.split(".")[0] for n in guided} == {"mid_block", "up_blocks"}
    for n in guided:
        assert positions[n] == ({16} if n.startswith("mid_block.") else {64}), n
    assert out.energies[0][1] < out.energies[0][0]
    with pytest.raises(ValueError, match="levels"):
        build_tiny("unet3d", levels=5)


@pytest.mark.parametrize("backbone", ["modelscope", "animatediff"])
def test_the_full_size_benchmark_checkpoint_loads_as_a_real_one(tmp_path, backbone):
    """``benchmarks/full_size.py`` (at an eighth of the width): the real models' block
    layout, written and read back through the checkpoint code path, and it samples."""
    import subprocess
    import sys
    from pathlib import Path

    from generators.video.diffusion.loading import load_components

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "full_size.py"
    out = tmp_path / backbone
    cmd = [sys.executable, str(script), str(out), "--backbone", backbone, "--scale", "8",
           "--dtype", "float32"]
    run = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    again = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert again.returncode != 0 and "already exists" in again.stderr
    comps = load_components(out)
    side = 256 if backbone == "modelscope" else 512
    assert comps.native_size_px == (side, side) and comps.native_frames == 16
    assert comps.backbone == ("unet3d" if backbone == "modelscope" else "animatediff")
    unet = comps.unet
    assert [hasattr(b, "attentions") for b in unet.down_blocks] == [True, True, True, False]
    assert [hasattr(b, "attentions") for b in unet.up_blocks] == [False, True, True, True]
    assert tuple(unet.config.block_out_channels) == (40, 80, 160, 160)
    assert comps.text_encoder.config.num_hidden_layers == (23 if backbone == "modelscope" else 12)
    sample = LayoutSampler(comps).sample(two_objects(),
                                         short_energy(2, (64, 64), max_iterations=1))
    assert sample.frames.shape[:3] == (2, 64, 64) and np.isfinite(sample.frames).all()


def test_masks_follow_boxes_at_each_resolution():
    boxes = np.array([[[0.25, 0.5, 0.75, 1.0]]])
    m = box_masks(boxes, np.array([[True]]), 4, 8).reshape(4, 8)
    assert m[2:, 2:6].all() and m.sum() == 8
    assert box_masks(boxes, np.array([[False]]), 4, 8).sum() == 0
    assert grid_shape(12 * 7, (24, 14)) == (12, 7) and grid_shape(6 * 4, (24, 14)) == (6, 4)
    assert grid_shape(3 * 2, (24, 14)) == (3, 2)  # 7 -> 4 -> 2 rounds up, as the convs do


def test_tokens_come_from_the_real_tokenizer(unet3d):
    tok = unet3d.tokenizer
    layout = two_objects(names=("trombone", "dog"))
    cond = build_conditioning(layout, tok, np.array([0.0, 1.0]))
    sub = tok("trombone", add_special_tokens=False).input_ids
    assert len(sub) > 2  # not in the tiny vocabulary: split into sub-tokens
    pos, problem = object_token_positions(tok, cond.prompts[0], "trombone")
    assert problem is None and len(pos) == 2 * len(sub)  # caption and frame caption
    ids = tok(cond.prompts[0]).input_ids
    assert tok.decode([ids[p] for p in pos]).replace(" ", "") == "trombone" * 2
    assert cond.guided.all()
    # frame captions make per-frame prompts; each frame takes its keyframe's caption
    assert len(cond.prompts) == 2 and cond.prompt_of_frame.tolist() == [0, 1]
    assert cond.prompts[1].endswith("The trombone is on the right.")
    # a split name is guided by its sub-tokens: its share is measured and rises with mask
    sampler = LayoutSampler(unet3d)
    cfg = {"steps": 2, "guidance_steps": 2, "num_frames": 4, "size_px": (32, 32)}
    none = sampler.sample(layout, SamplerConfig(guidance="none", **cfg)).in_box_share
    mask = sampler.sample(layout, SamplerConfig(guidance="mask", **cfg)).in_box_share
    assert mask[0] > none[0] + 0.1


def test_an_object_that_cannot_be_guided_is_named_in_a_warning(unet3d):
    layout = two_objects(names=("猫", "dog"))
    with pytest.warns(GuidanceWarning, match="object 0 \\('猫'\\) cannot be guided"):
        cond = build_conditioning(layout, unet3d.tokenizer, np.array([0.0]))
    assert cond.guided.tolist() == [False, True]
    long = "a quiet street " * 30
    layout = layout_from_dict({**two_objects().to_dict(), "caption": long + "and a car"})
    with pytest.warns(GuidanceWarning, match="77-token limit"):
        build_conditioning(layout, unet3d.tokenizer, np.array([0.0]), use_frame_captions=False)


def test_names_missing_from_the_caption_are_appended(unet3d):
    layout = layout_from_dict({**two_objects().to_dict(), "caption": "A quiet street."})
    cond = build_conditioning(layout, unet3d.tokenizer, np.array([0.0]), use_frame_captions=False)
    assert cond.prompts == ["A quiet street, car, dog"]
    assert cond.guided.all()
