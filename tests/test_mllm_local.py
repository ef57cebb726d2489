"""The local transformers backend with a tiny random-weight Llama built in code.

Its tokenizer is a small byte-level BPE trained on the planner's own prompt text and
the example bank; both are saved to a temporary directory and loaded back through
``AutoProcessor`` and the Auto model class, offline.  The reply is nonsense, so the
planner's fallback path runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from planners.mllm.backends import TransformersBackend, _auto_model_class  # noqa: E402
from planners.mllm.bank import default_path  # noqa: E402
from planners.mllm.prompt import SYSTEM_INSTRUCTION  # noqa: E402
from spa2v.audio import write_wav  # noqa: E402
from spa2v.cli import main  # noqa: E402
from spa2v.errors import CheckpointError  # noqa: E402
from spa2v.pipeline import PlanOptions, plan  # noqa: E402
from spa2v.simulate import Keyframe, SceneSource, Trajectory, simulate_scene  # noqa: E402
from spa2v.sources import make_source  # noqa: E402

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|eot|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1000, special_tokens=["<|eot|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    bpe.train_from_iterator([SYSTEM_INSTRUCTION, default_path().read_text()], trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|eot|>",
                                  pad_token="<|eot|>")
    tok.chat_template = CHAT_TEMPLATE
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                      max_position_embeddings=8192, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, bos_token_id=None)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-llm")
    tok.save_pretrained(path)
    LlamaForCausalLM(cfg).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def scene_wav(tmp_path_factory) -> Path:
    sr = 48000
    traj = Trajectory((Keyframe(0.0, 65.0, 0.0, 4.0), Keyframe(4.0, -65.0, 0.0, 4.0)))
    sim = simulate_scene([SceneSource(make_source("engine", duration_s=4.0, sr=sr, seed=3), traj,
                                      name="car")], fmt="binaural", sr=sr, duration_s=4.0)
    path = tmp_path_factory.mktemp("scene") / "car.wav"
    write_wav(path, sim.audio, sr)
    return path


def test_tiny_local_model_runs_end_to_end_and_falls_back(tiny_model_dir, scene_wav, capsys):
    opts = PlanOptions(planner="mllm", model_path=tiny_model_dir, labels=["car"], examples=1,
                       retries=1, fps=2.0, max_sources=1, send_audio=True,
                       max_new_tokens=48)  # keeps the random model's babble short
    layout, analysis = plan(scene_wav, opts)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]
    assert "has no audio processor; sending the cues only" in lines[0]
    assert lines[1].startswith("warning: mllm planner: reply 1/2 invalid: ")
    assert lines[2].startswith("warning: mllm planner: reply 2/2 invalid: ")
    assert lines[3].startswith("warning: mllm planner: falling back to the rule planner: ")
    assert len(lines) == 4
    assert layout.planner.startswith("rule (fallback: no usable reply after 2 attempts")
    info = layout.meta["mllm"]
    assert info["backend"] == "transformers" and info["model"] == tiny_model_dir.name
    assert len(info["examples"]) == 1 and info["audio"] is False
    assert [o.name for o in layout.objects] == ["car"]
    assert analysis["sources"][0]["motion"] == "left_to_right"
    xs = [0.5 * (f.boxes[0].box[0] + f.boxes[0].box[2]) for f in layout.frames if f.boxes]
    assert xs[0] < 0.4 < 0.6 < xs[-1]  # the rule planner's crossing, left to right


def test_local_backend_uses_the_chat_template_and_the_token_limit(tiny_model_dir):
    backend = TransformersBackend(tiny_model_dir, device="cpu")
    messages = [{"role": "system", "content": "You plan layouts."},
                {"role": "user", "content": "Source 0: azimuth +30.0"}]
    prompt = backend.tokenizer.decode(backend._inputs(messages, None)["input_ids"][0])
    assert prompt.startswith("<|system|>\nYou plan layouts.<|eot|>")
    assert prompt.endswith("<|assistant|>\n")
    a = backend.complete(messages, temperature=0.0, max_tokens=12)
    b = backend.complete(messages, temperature=0.0, max_tokens=12)
    assert a.text == b.text  # greedy decoding at temperature 0
    assert 0 < a.tokens <= 12
    assert a.truncated == (a.tokens == 12)  # stopped by the limit unless it ended itself
    short = backend.complete(messages, temperature=0.0, max_tokens=3)
    assert 0 < short.tokens <= 3


def test_auto_model_class_choice():
    import transformers

    assert _auto_model_class("llama", False) is transformers.AutoModelForCausalLM
    assert _auto_model_class("qwen2_audio", True) is transformers.AutoModelForMultimodalLM
    assert _auto_model_class("vit", False) is None


def test_bad_model_directories_are_input_errors(tmp_path, scene_wav, capsys):
    with pytest.raises(CheckpointError, match="no such model directory"):
        TransformersBackend(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        TransformersBackend(tmp_path / "empty")
    out = tmp_path / "x.json"
    rc = main(["plan", str(scene_wav), "-o", str(out), "--planner", "mllm", "--model-path",
               str(tmp_path / "empty")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no config.json" in err[0]
    assert not out.exists()
    (tmp_path / "empty" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    rc = main(["plan", str(scene_wav), "-o", str(out), "--planner", "mllm", "--model-path",
               str(tmp_path / "empty")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "cannot load the model" in err[-1] and not out.exists()
    assert np.isfinite(rc)
