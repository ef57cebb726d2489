"""Text-to-audio sources (generators.audio.t2a): a real AudioLDM 2 pipeline with tiny weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from generators.audio.t2a import TextToAudio  # noqa: E402
from spa2v import cues  # noqa: E402
from spa2v.cli import main  # noqa: E402
from spa2v.errors import CheckpointError  # noqa: E402

SR = 16000


@pytest.fixture(scope="module")
def tiny() -> TextToAudio:
    return TextToAudio.tiny()


@pytest.fixture(scope="module")
def saved(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("t2a") / "tiny-audioldm2"
    tiny.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def reference(tiny) -> np.ndarray:
    return tiny("a police siren wails", duration_s=0.25, sr=SR, seed=0)


def test_tiny_makes_seeded_audio_of_the_asked_length(tiny, reference):
    y = reference
    assert y.shape == (SR // 4,) and y.dtype == np.float32 and np.isfinite(y).all()
    assert 20 * np.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2))) == pytest.approx(-20.0,
                                                                                         abs=0.5)
    again = tiny("a police siren wails", duration_s=0.25, sr=SR, seed=0)
    other_prompt = tiny("a dog barks", duration_s=0.25, sr=SR, seed=1)
    assert np.array_equal(y, again)
    assert not np.allclose(y, other_prompt)
    assert tiny.sample_rate == 16000


def test_a_saved_checkpoint_loads_from_its_directory(tiny, saved, reference):
    assert (saved / "model_index.json").is_file()
    loaded = TextToAudio.from_pretrained(saved, steps=tiny.steps)
    b = loaded("a police siren wails", duration_s=0.25, sr=SR, seed=0)
    np.testing.assert_allclose(reference, b, atol=1e-5)


def test_missing_or_broken_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="no such model directory"):
        TextToAudio.from_pretrained(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="model_index.json"):
        TextToAudio.from_pretrained(tmp_path)
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "AudioLDM2Pipeline"}))
    with pytest.raises(CheckpointError, match="cannot load"):
        TextToAudio.from_pretrained(tmp_path)


def test_foa_cli_with_a_text_to_audio_source(saved, tmp_path):
    out, truth = tmp_path / "g.wav", tmp_path / "g.json"
    assert main(["foa", "--text", "a dog barks on the left", "--model", str(saved),
                 "--steps", "2", "--duration", "0.5", "--sr", str(SR), "-o", str(out),
                 "--truth", str(truth), "-q"]) == 0
    y, sr = sf.read(str(out), dtype="float32", always_2d=True)
    S = cues.stft(y.T, sr)
    (ix, iy, _), _ = cues.foa_intensity_vectors(S)
    assert np.rad2deg(np.arctan2(iy.sum(), ix.sum())) == pytest.approx(60.0, abs=3.0)
    t = json.loads(truth.read_text())
    assert t["sources"][0]["signal"] == "text-to-audio: a dog barks"


def test_tiny_preset_by_name_in_sonify(tmp_path):
    layout = {"version": 1, "duration": 0.5, "fps": 4, "caption": "a dog",
              "objects": [{"id": 0, "name": "dog", "description": "a small dog barking"}],
              "frames": [{"t": 0.0, "boxes": [{"id": 0, "box": [0.1, 0.5, 0.3, 0.7]}]},
                         {"t": 0.25, "boxes": [{"id": 0, "box": [0.1, 0.5, 0.3, 0.7]}]}]}
    path = tmp_path / "l.json"
    path.write_text(json.dumps(layout))
    out, truth = tmp_path / "s.wav", tmp_path / "s.json"
    assert main(["sonify", str(path), "-o", str(out), "--format", "binaural", "--model", "tiny",
                 "--sr", str(SR), "--truth", str(truth), "-q"]) == 0
    assert sf.info(str(out)).frames == SR // 2
    assert json.loads(truth.read_text())["sources"][0]["position"] == "left"
