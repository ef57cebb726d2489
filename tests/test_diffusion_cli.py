"""The diffusion generator through the real command line and real checkpoint directories:
``spa2v render/generate --generator diffusion --model tiny|DIR``, a tiny model saved with
save_pretrained and loaded back by path, and incomplete checkpoints (exit 2, naming what
is missing, no output)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from generators.video.diffusion import DiffusionRenderer  # noqa: E402
from generators.video.diffusion.loading import (  # noqa: E402
    check_checkpoint,
    load_components,
    save_components,
)
from generators.video.diffusion.tiny import build_tiny  # noqa: E402
from spa2v.audio import write_wav  # noqa: E402
from spa2v.cli import main  # noqa: E402
from spa2v.errors import CheckpointError  # noqa: E402
from spa2v.video import probe_video, read_video  # noqa: E402

SR = 16000
FAST = ["--steps", "3", "--size", "64x48", "--fps", "8", "--seed", "3"]


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """The tiny preset written as a diffusers checkpoint directory."""
    return save_components(build_tiny("unet3d"), tmp_path_factory.mktemp("ckpt") / "tiny-t2v")


@pytest.fixture
def layout_file(tmp_path) -> Path:
    layout = {
        "version": 1,
        "duration": 1.5,
        "fps": 2,
        "caption": "A dog runs from the left to the right.",
        "objects": [{"id": 0, "name": "dog"}],
        "frames": [
            {
                "t": 0.0,
                "caption": "The dog is on the left.",
                "boxes": [{"id": 0, "box": [0.05, 0.4, 0.4, 0.9]}],
            },
            {
                "t": 1.0,
                "caption": "The dog is on the right.",
                "boxes": [{"id": 0, "box": [0.55, 0.4, 0.9, 0.9]}],
            },
        ],
    }
    path = tmp_path / "layout.json"
    path.write_text(json.dumps(layout))
    return path


def test_render_tiny_through_the_cli(tmp_path, layout_file):
    y = 0.1 * np.sin(2 * np.pi * 440 * np.arange(2 * SR) / SR).astype(np.float32)
    wav = write_wav(tmp_path / "tone.wav", np.stack([y, y]), SR) or tmp_path / "tone.wav"
    out = tmp_path / "clip.mp4"
    rc = main(
        [
            "render",
            str(layout_file),
            "-o",
            str(out),
            "--audio",
            str(wav),
            "--quiet",
            "--generator",
            "diffusion",
            "--model",
            "tiny",
            "--guidance",
            "mask",
            *FAST,
        ]
    )
    assert rc == 0
    info = probe_video(out)
    assert (info["width"], info["height"], info["fps"]) == (64, 48, 8.0)
    assert info["frames"] == 12 and info["audio_channels"] == 2
    assert info["audio_duration"] == pytest.approx(1.5, abs=0.05)
    frames, _ = read_video(out)
    assert frames.std() > 2.0  # generated pictures, not a flat frame
    # the output is not overwritten unasked
    assert (
        main(
            [
                "render",
                str(layout_file),
                "-o",
                str(out),
                "--quiet",
                "--generator",
                "diffusion",
                "--model",
                "tiny",
                "--guidance",
                "mask",
                *FAST,
            ]
        )
        == 2
    )


def test_checkpoint_loaded_by_path_renders_like_the_preset(tmp_path, layout_file, checkpoint):
    out = tmp_path / "from_dir.mp4"
    rc = main(
        [
            "render",
            str(layout_file),
            "-o",
            str(out),
            "--quiet",
            "--generator",
            "diffusion",
            "--model",
            str(checkpoint),
            "--guidance",
            "energy",
            *FAST,
        ]
    )
    assert rc == 0 and probe_video(out)["frames"] == 12
    # the frames themselves (H.264 output is not bit-stable within one process once torch
    # has run, so decoded videos are not compared)
    frames = []
    for model in ("tiny", checkpoint):
        renderer = DiffusionRenderer(model, guidance="mask", steps=3)
        frames.append(np.stack(list(renderer.frames(layout_file, fps=8, size=(64, 48), seed=3))))
    assert frames[0].shape == (12, 48, 64, 3)
    assert np.abs(frames[0].astype(int) - frames[1].astype(int)).max() <= 1


def test_loading_reads_the_diffusers_layout(checkpoint):
    info = check_checkpoint(checkpoint)
    assert info.backbone == "unet3d" and info.unet_class == "UNet3DConditionModel"
    comps = load_components(checkpoint)
    assert comps.source == str(checkpoint) and comps.native_size_px == (32, 32)
    assert type(comps.tokenizer).__name__ == "CLIPTokenizer"
    ref = build_tiny("unet3d")
    for part in ("unet", "vae", "text_encoder"):
        a, b = getattr(ref, part).state_dict(), getattr(comps, part).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_animatediff_checkpoint_round_trip(tmp_path):
    path = save_components(build_tiny("animatediff"), tmp_path / "ad")
    info = check_checkpoint(path)
    assert info.backbone == "animatediff" and info.has_motion_adapter
    comps = load_components(path)
    assert type(comps.unet).__name__ == "UNetMotionModel"
    # a Stable Diffusion UNet needs the motion adapter beside it
    cfg = json.loads((path / "unet" / "config.json").read_text())
    (path / "unet" / "config.json").write_text(
        json.dumps({**cfg, "_class_name": "UNet2DConditionModel"})
    )
    shutil.rmtree(path / "motion_adapter")
    with pytest.raises(CheckpointError, match="motion_adapter"):
        check_checkpoint(path)


def test_half_precision_variant_files_are_found(tmp_path, checkpoint):
    path = tmp_path / "fp16"
    shutil.copytree(checkpoint, path)
    for f in (path / "unet").glob("diffusion_pytorch_model.safetensors"):
        f.rename(f.with_name("diffusion_pytorch_model.fp16.safetensors"))
    info = check_checkpoint(path)
    assert info.variants["unet"] == "fp16" and info.variants["vae"] is None
    comps = load_components(path, dtype=torch.bfloat16)
    assert comps.unet.dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("remove", "named"),
    [
        ("unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.safetensors"),
        ("tokenizer", "tokenizer/vocab.json"),
        ("scheduler/scheduler_config.json", "scheduler/scheduler_config.json"),
        ("model_index.json", "model_index.json"),
    ],
)
def test_incomplete_checkpoint_exits_2_naming_what_is_missing(
    tmp_path, layout_file, checkpoint, capsys, remove, named
):
    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    target = broken / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    out = tmp_path / "never.mp4"
    rc = main(
        [
            "render",
            str(layout_file),
            "-o",
            str(out),
            "--generator",
            "diffusion",
            "--model",
            str(broken),
            *FAST,
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert str(broken) in err and named in err and "missing" in err
    assert not out.exists() and not list(tmp_path.glob("*.partial*"))


def test_missing_model_and_missing_directory_exit_2(tmp_path, layout_file):
    out = tmp_path / "never.mp4"
    for extra, message in (
        ([], "the diffusion generator needs --model DIR|tiny"),
        (["--model", str(tmp_path / "nowhere")], "no such checkpoint directory"),
    ):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "spa2v",
                "render",
                str(layout_file),
                "-o",
                str(out),
                "--generator",
                "diffusion",
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr
        assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_exits_2(tmp_path, layout_file, capsys):
    out = tmp_path / "never.mp4"
    rc = main(
        [
            "render",
            str(layout_file),
            "-o",
            str(out),
            "--generator",
            "diffusion",
            "--model",
            "tiny",
            "--device",
            "cuda",
        ]
    )
    assert rc == 2 and "CUDA is not available" in capsys.readouterr().err
    assert not out.exists()


def test_generate_with_the_diffusion_generator(tmp_path):
    from spa2v.simulate import Keyframe, SceneSource, Trajectory, simulate_scene
    from spa2v.sources import make_source

    sr = 48000
    src = SceneSource(
        make_source("engine", duration_s=2.0, sr=sr, seed=3),
        Trajectory([Keyframe(0, 60, 0, 4), Keyframe(2, -60, 0, 4)]),
        name="car",
    )
    sim = simulate_scene([src], fmt="binaural", sr=sr, duration_s=2.0, seed=1)
    wav = tmp_path / "car.wav"
    write_wav(wav, sim.audio, sr)
    out, lay = tmp_path / "car.mp4", tmp_path / "car.json"
    rc = main(
        [
            "generate",
            str(wav),
            "-o",
            str(out),
            "--layout-out",
            str(lay),
            "--quiet",
            "--label",
            "car",
            "--generator",
            "diffusion",
            "--model",
            "tiny",
            "--guidance",
            "energy",
            *FAST,
        ]
    )
    assert rc == 0
    info = probe_video(out)
    assert info["frames"] == 16 and info["audio_codec"] == "aac"
    assert json.loads(lay.read_text())["objects"][0]["name"] == "car"


def test_overlay_draws_each_box_on_the_sampled_frames(layout_file):
    """``--overlay`` draws the animatic's debug boxes over the sampled frames, nothing else."""
    from spa2v.layout import load_layout

    renderer = DiffusionRenderer("tiny", guidance="none", steps=2)
    w, h = 128, 96
    plain, over = (next(iter(renderer.frames(layout_file, fps=8, size=(w, h), seed=1,
                                              overlay=o))) for o in (False, True))
    layout = load_layout(layout_file)
    boxes, visible = layout.track(layout.objects[0].id, [0.0])
    assert visible[0]
    x1, y1, x2, y2 = (int(round(v)) for v in boxes[0] * [w, h, w, h])
    x1, x2 = max(x1, 0), min(x2, w - 1)
    changed = np.any(plain != over, axis=-1)
    assert changed[y1 + 14 : y2 - 2, x1].mean() > 0.8  # the left edge, below the tag
    assert changed[:, :].mean() < 0.5  # the picture itself is kept
