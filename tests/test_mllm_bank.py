"""The MLLM planner's example bank: contents, ground truth, retrieval, and its rebuild command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from planners.mllm import MLLMPlanner
from planners.mllm.bank import BANK_FPS, ExampleBank, default_path, make_example
from planners.mllm.summary import SceneCues, summarize
from spa2v.cli import main

HOP_S = 0.02
DURATION_S = 4.0


@pytest.fixture(scope="module")
def bank() -> ExampleBank:
    return ExampleBank.load()


def kind_of(example_id: str) -> str:
    return example_id.split("-", 1)[1].rsplit("-", 1)[0]


def centres(layout, oid: int) -> np.ndarray:
    return np.array([0.5 * (b.box[0] + b.box[2]) for f in layout.frames for b in f.boxes
                     if b.id == oid])


def areas(layout, oid: int) -> np.ndarray:
    return np.array([(b.box[2] - b.box[0]) * (b.box[3] - b.box[1]) for f in layout.frames
                     for b in f.boxes if b.id == oid])


def test_the_shipped_bank_is_small_and_covers_the_kinds(bank):
    assert 24 <= len(bank) <= 48
    assert default_path().stat().st_size < 100_000
    kinds = {kind_of(e.id) for e in bank.examples}
    for k in ("static-left", "static-center", "static-right", "crossing-left-to-right",
              "crossing-right-to-left", "approaching-center", "receding-center", "two-static",
              "crossing-and-static", "flying-over"):
        assert k in kinds
    assert {len(e.cues.sources) for e in bank.examples} == {1, 2}
    assert {e.cues.format for e in bank.examples} == {"binaural", "foa"}


def test_examples_pair_measured_cues_with_true_layouts(bank):
    for e in bank.examples:
        lay = e.layout
        assert lay.fps == BANK_FPS and lay.duration == 4.0
        assert [o.source for o in lay.objects] == [s.source_id for s in e.cues.sources]
        assert [o.name for o in lay.objects] == e.labels
        kind = kind_of(e.id)
        x = centres(lay, lay.objects[0].id)
        if kind == "crossing-left-to-right":
            assert x[0] < 0.35 and x[-1] > 0.65, e.id
            assert e.cues.sources[0].azimuth_start_deg > 30 > -30 > e.cues.sources[0].azimuth_end_deg
        elif kind == "crossing-right-to-left":
            assert x[0] > 0.65 and x[-1] < 0.35, e.id
        elif kind == "static-left":
            assert np.all(x < 0.4) and e.cues.sources[0].position == "left", e.id
        elif kind == "static-right":
            assert np.all(x > 0.6) and e.cues.sources[0].position == "right", e.id
        elif kind.startswith("approaching"):
            assert areas(lay, 0)[-1] > 2 * areas(lay, 0)[0], e.id
            assert e.cues.sources[0].loudness_change_db > 3.0, e.id
        elif kind.startswith("receding"):
            assert areas(lay, 0)[-1] < 0.5 * areas(lay, 0)[0], e.id


def _analysis(*tracks: tuple[tuple[float, float], tuple[float, float]]) -> dict:
    """Sources with linear azimuth and loudness ramps ((az0, az1), (loud0, loud1))."""
    t = np.arange(0.0, DURATION_S, HOP_S)
    sources = []
    for i, ((a0, a1), (l0, l1)) in enumerate(tracks):
        f = t / t[-1]
        sources.append({"id": i, "times": t.tolist(), "azimuth_deg": (a0 + (a1 - a0) * f).tolist(),
                        "loudness_db": (l0 + (l1 - l0) * f).tolist(), "active": [True] * t.size})
    return {"format": "binaural", "duration": DURATION_S, "hop_s": HOP_S, "sources": sources}


@pytest.mark.parametrize(("tracks", "want"), [
    ((((60.0, -60.0), (-30.0, -30.0)),), "crossing-left-to-right"),
    ((((-65.0, 55.0), (-30.0, -30.0)),), "crossing-right-to-left"),
    ((((0.0, 0.0), (-40.0, -30.0)),), "approaching-center"),
    ((((-40.0, -40.0), (-25.0, -37.0)),), "receding-right"),
    ((((55.0, 55.0), (-30.0, -30.0)), ((-50.0, -50.0), (-33.0, -33.0))), "two-static"),
])
def test_nearest_examples_share_the_query_geometry(bank, tracks, want):
    scene = summarize(_analysis(*tracks))
    near = bank.nearest(scene, 3)
    assert len(near) == 3
    assert kind_of(near[0].id) == want
    assert all(len(e.cues.sources) == len(tracks) for e in near)
    assert bank.nearest(scene, 0) == [] and len(bank.nearest(scene, 10_000)) == len(bank)


def test_the_bank_rebuilds_deterministically(bank):
    for i in (0, 1):
        a, _ = make_example(i, 0)
        b, _ = make_example(i, 0)
        assert a == b
        shipped = bank.examples[i]
        assert a["id"] == shipped.id and a["labels"] == shipped.labels
        got = SceneCues.from_dict(a["cues"]).sources[0]
        want = shipped.cues.sources[0]
        assert got.azimuth_start_deg == pytest.approx(want.azimuth_start_deg, abs=1.0)
        assert got.azimuth_end_deg == pytest.approx(want.azimuth_end_deg, abs=1.0)
        assert got.loudness_change_db == pytest.approx(want.loudness_change_db, abs=0.5)
        got_boxes = np.array([b["box"] for f in a["layout"]["frames"] for b in f["boxes"]])
        want_boxes = np.array([b.box for f in shipped.layout.frames for b in f.boxes])
        np.testing.assert_allclose(got_boxes, want_boxes, atol=0.01)


def test_mllm_examples_command(tmp_path, capsys):
    out = tmp_path / "bank.json"
    assert main(["mllm-examples", "-o", str(out), "--scenes", "2", "--seed", "3", "-q"]) == 0
    data = json.loads(out.read_text())
    assert data["made_by"] == "spa2v mllm-examples --scenes 2 --seed 3"
    small = ExampleBank.load(out)
    assert len(small) == 2
    assert [kind_of(e.id) for e in small.examples] == ["static-left", "crossing-left-to-right"]
    planner = MLLMPlanner(backend=None, bank=small, examples=5)  # type: ignore[arg-type]
    assert planner.bank is small

    before = out.read_bytes()
    assert main(["mllm-examples", "-o", str(out), "--scenes", "1"]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["mllm-examples", "-o", str(tmp_path / "b.json"), "--scenes", "0"]) == 2
    assert main(["mllm-examples", "-o", str(tmp_path / "b.txt"), "--scenes", "1"]) == 2
    assert not (tmp_path / "b.json").exists() and not (tmp_path / "b.txt").exists()


def test_a_broken_bank_is_an_input_error(tmp_path):
    from spa2v.errors import InputError

    p = tmp_path / "bank.json"
    p.write_text('{"version": 1, "examples": [{"id": "x"}]}')
    with pytest.raises(InputError, match="example 0 is malformed"):
        ExampleBank.load(p)
    with pytest.raises(InputError, match="missing; rebuild it with 'spa2v mllm-examples'"):
        ExampleBank.load(tmp_path / "none.json")
