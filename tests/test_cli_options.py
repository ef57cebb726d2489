"""Routing of the shared ``--model`` flag between the MLLM planner and the diffusion generator."""

from __future__ import annotations

import pytest

from spa2v.cli import build_parser
from spa2v.commands._options import plan_options, render_options
from spa2v.errors import InputError


def _options(argv: list[str]):
    args = build_parser().parse_args(argv)
    plan = plan_options(args) if hasattr(args, "planner") else None
    render = render_options(args) if hasattr(args, "generator") else None
    return plan, render


GEN = ["generate", "in.wav", "-o", "out.mp4"]


@pytest.mark.parametrize(
    ("extra", "mllm_model", "video_model"),
    [
        (["--planner", "mllm", "--endpoint", "http://h/v1", "--model", "qwen"], "qwen", None),
        (["--generator", "diffusion", "--model", "tiny"], None, "tiny"),
        (["--planner", "mllm", "--generator", "diffusion", "--model", "tiny",
          "--mllm-model", "qwen"], "qwen", "tiny"),
        (["--planner", "mllm", "--generator", "diffusion", "--mllm-model", "qwen",
          "--video-model", "ckpt"], "qwen", "ckpt"),
        ([], None, None),
    ],
)
def test_model_goes_to_the_component_that_takes_it(extra, mllm_model, video_model) -> None:
    plan, render = _options(GEN + extra)
    assert plan.model == mllm_model
    assert render.model == video_model


def test_render_and_plan_options_carry_their_settings() -> None:
    _, render = _options(["render", "l.json", "-o", "o.mp4", "--generator", "diffusion",
                          "--model", "tiny", "--guidance", "mask", "--steps", "7",
                          "--dtype", "bfloat16", "--cpu-offload"])
    assert (render.model, render.guidance, render.steps, render.dtype, render.cpu_offload) == (
        "tiny", "mask", 7, "bfloat16", True)
    plan, _ = _options(["plan", "a.wav", "-o", "l.json", "--planner", "mllm", "--model-path",
                        "/m", "--examples", "5", "--retries", "1", "--timeout", "2.5",
                        "--send-audio", "--api-key-env", "KEY"])
    assert (plan.model_path, plan.examples, plan.retries, plan.timeout_s, plan.send_audio,
            plan.api_key_env, plan.temperature) == ("/m", 5, 1, 2.5, True, "KEY", 0.5)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (GEN + ["--planner", "mllm", "--generator", "diffusion", "--model", "x"], "ambiguous"),
        (["plan", "a.wav", "-o", "l.json", "--model", "x"], "only with"),
        (GEN + ["--steps", "0"], "--steps"),
        (GEN + ["--examples", "-1"], "--examples"),
        (GEN + ["--timeout", "0"], "--timeout"),
        (GEN + ["--temperature", "3"], "--temperature"),
    ],
)
def test_contradictory_options_are_input_errors(argv, message) -> None:
    with pytest.raises(InputError, match=message):
        _options(argv)
