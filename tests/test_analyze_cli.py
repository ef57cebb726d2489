"""``spa2v analyze`` run as a real subprocess: outputs, batches and the exit-status rules.

Every command of this file is started once, concurrently, by a module fixture (each
subprocess spends most of its time importing); the tests then check one run each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from spa2v.conventions import ambix_to_fuma, angle_diff_deg
from spa2v.simulate import SceneSource, Trajectory, simulate_scene
from spa2v.sources import make_source

SR = 16000
SECONDS = 1.5
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
KEMAR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hrtf" / \
    "mit_kemar_normal_pinna.sofa"


@dataclass
class Run:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def err_lines(self) -> list[str]:
        return self.stderr.splitlines()


def _write(path: Path, y: np.ndarray, sr: int = SR) -> Path:
    sf.write(str(path), np.asarray(y, dtype=np.float32).T, sr, subtype="FLOAT")
    return path


def _scene(az: float, fmt: str, el: float = 0.0, head=None, seed: int = 1) -> np.ndarray:
    sig = make_source("noise", duration_s=SECONDS, sr=SR, seed=seed)
    return simulate_scene([SceneSource(sig, Trajectory.static(az, el))], fmt=fmt, sr=SR,
                          duration_s=SECONDS, head=head).audio


def _run(args: list[str], cwd: Path) -> Run:
    env = {k: v for k, v in os.environ.items() if k != "SPA2V_DEBUG"}
    env["MPLBACKEND"] = "Agg"
    p = subprocess.run([sys.executable, "-m", "spa2v", "analyze", *args], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=300)
    return Run(args, p.returncode, p.stdout, p.stderr)


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    d = tmp_path_factory.mktemp("analyze_cli")
    out = d / "out"
    out.mkdir()
    noise = make_source("noise", duration_s=SECONDS, sr=SR, seed=3)
    files = {
        "bin": _write(d / "bin.wav", _scene(40.0, "binaural")),
        "foa": _write(d / "foa.wav", _scene(-100.0, "foa")),
        "fuma": _write(d / "fuma.wav", ambix_to_fuma(_scene(-100.0, "foa"))),
        "ster": _write(d / "ster.wav", np.stack([noise, 0.3 * noise])),
        "short": _write(d / "short.wav", np.full((2, 100), 0.1)),
    }
    bad = d / "bad.wav"
    bad.write_text("not audio at all\n" * 50)
    files["bad"] = bad
    files["gone"] = d / "gone.wav"
    (out / "exists.json").write_text("keep me\n")
    (out / "exists2.json").write_text("replace me\n")
    f = {k: str(v) for k, v in files.items()}
    cases = {
        "stdout": [f["bin"]],
        "json_plot": [f["bin"], "--json", str(out / "a.json"), "--plot", str(out / "a.png")],
        "outdir": [f["bin"], f["foa"], f["ster"], "--out-dir", str(out / "d1"), "--plot", "yes"],
        "batch_one_bad": [f["bin"], f["bad"], f["ster"], "--out-dir", str(out / "d2")],
        "batch_all_bad": [f["bad"], f["gone"], "--out-dir", str(out / "d3")],
        "fuma": [f["fuma"], "--foa-convention", "fuma", "--json", str(out / "fuma.json")],
        "exists_overwrite": [f["bin"], "--json", str(out / "exists2.json"), "--overwrite"],
        # exit status 2
        "short": [f["short"], "--json", str(out / "short.json")],
        "exists": [f["bin"], "--json", str(out / "exists.json")],
        "hrtf_missing": [f["bin"], "--hrtf", str(d / "nope.sofa")],
        "many_no_outdir": [f["bin"], f["ster"]],
        "missing_input": [f["gone"], "--json", str(out / "gone.json")],
        "bad_input": [f["bad"], "--json", str(out / "bad.json"), "--plot", str(out / "bad.png")],
        "json_is_input": [f["bin"], "--json", f["bin"], "--overwrite"],
        "json_and_outdir": [f["bin"], "--json", str(out / "x.json"), "--out-dir", str(out / "x")],
    }
    if KEMAR.exists():
        from spa2v.hrtf import SofaHrtf

        head = SofaHrtf.from_file(KEMAR, SR)
        files["kemar"] = _write(d / "kemar.wav", _scene(-40.0, "binaural", head=head))
        cases["kemar"] = [str(files["kemar"]), "--hrtf", str(KEMAR), "--json",
                          str(out / "kemar.json")]
    before = {k: Path(v).read_bytes() for k, v in f.items() if Path(v).exists()}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(_run, args, d) for name, args in cases.items()}
        runs = {name: fut.result() for name, fut in futures.items()}
    return {"dir": d, "out": out, "files": files, "runs": runs, "before": before}


EXIT_2 = ["short", "exists", "hrtf_missing", "many_no_outdir", "missing_input", "bad_input",
          "json_is_input", "json_and_outdir"]


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------- success


def test_stdout_json_without_json_option(cli):
    r = cli["runs"]["stdout"]
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    out = json.loads(r.stdout)  # stdout is the JSON and nothing else
    assert out["input"] == "bin.wav" and out["format"] == "binaural"
    assert out["sample_rate"] == SR and out["duration"] == pytest.approx(SECONDS)
    assert len(out["sources"]) == 1
    assert out["sources"][0]["mean_azimuth_deg"] == pytest.approx(40.0, abs=3.0)
    assert out["sources"][0]["position"] == "left"


def test_json_and_plot_are_written(cli):
    r = cli["runs"]["json_plot"]
    assert r.returncode == 0, r.stderr
    out = _json(cli["out"] / "a.json")
    assert out["format"] == "binaural" and out["sources"][0]["position"] == "left"
    assert out["sources"][0]["elevation_deg"] is None
    png = (cli["out"] / "a.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 5000
    assert "bin.wav" in r.stdout  # the one-line summary
    assert not any(p.name.startswith(".") for p in cli["out"].iterdir())  # no temporaries


def test_out_dir_writes_one_json_and_png_per_stem(cli):
    r = cli["runs"]["outdir"]
    assert r.returncode == 0, r.stderr
    d1 = cli["out"] / "d1"
    assert sorted(p.name for p in d1.iterdir()) == sorted(
        ["bin.json", "bin.png", "foa.json", "foa.png", "ster.json", "ster.png"])
    assert _json(d1 / "bin.json")["format"] == "binaural"
    foa = _json(d1 / "foa.json")
    assert foa["format"] == "foa"
    assert abs(float(angle_diff_deg(foa["sources"][0]["mean_azimuth_deg"], -100.0))) < 5.0
    assert foa["sources"][0]["behind"] is True
    assert isinstance(foa["sources"][0]["elevation_deg"], list)
    ster = _json(d1 / "ster.json")
    assert ster["format"] == "stereo" and ster["sources"][0]["position"] == "left"
    for stem in ("bin", "foa", "ster"):
        assert (d1 / f"{stem}.png").read_bytes().startswith(PNG_SIGNATURE)


def test_batch_with_one_bad_file_writes_the_others(cli):
    r = cli["runs"]["batch_one_bad"]
    assert r.returncode == 0
    d2 = cli["out"] / "d2"
    assert sorted(p.name for p in d2.iterdir()) == ["bin.json", "ster.json"]
    errors = [ln for ln in r.err_lines if "error" in ln]
    assert len(errors) == 1
    assert str(cli["files"]["bad"]) in errors[0]
    assert "Traceback" not in r.stderr


def test_batch_with_every_file_bad_exits_2(cli):
    r = cli["runs"]["batch_all_bad"]
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = r.err_lines
    # one line per failed input (each naming it), plus at most one summary line
    assert str(cli["files"]["bad"]) in r.stderr and str(cli["files"]["gone"]) in r.stderr
    assert 2 <= len(lines) <= 3
    assert all(ln.startswith("spa2v analyze: error:") for ln in lines)
    d3 = cli["out"] / "d3"
    assert not d3.exists() or list(d3.iterdir()) == []


def test_fuma_input_is_converted(cli):
    r = cli["runs"]["fuma"]
    assert r.returncode == 0, r.stderr
    out = _json(cli["out"] / "fuma.json")
    assert out["format"] == "foa"
    assert abs(float(angle_diff_deg(out["sources"][0]["mean_azimuth_deg"], -100.0))) < 5.0


def test_overwrite_replaces_an_existing_output(cli):
    r = cli["runs"]["exists_overwrite"]
    assert r.returncode == 0, r.stderr
    assert _json(cli["out"] / "exists2.json")["format"] == "binaural"


def test_hrtf_option_with_the_kemar_file(cli):
    if "kemar" not in cli["runs"]:
        pytest.skip("shared KEMAR SOFA file absent")
    r = cli["runs"]["kemar"]
    assert r.returncode == 0, r.stderr
    out = _json(cli["out"] / "kemar.json")
    assert out.get("head_model") == KEMAR.name
    assert out["sources"][0]["mean_azimuth_deg"] == pytest.approx(-40.0, abs=4.0)


# ----------------------------------------------------------------------------- exit status 2


@pytest.mark.parametrize("case", EXIT_2)
def test_exit_2_paths_print_exactly_one_line(cli, case):
    r = cli["runs"][case]
    assert r.returncode == 2, (case, r.stderr)
    assert "Traceback" not in r.stderr
    assert len(r.err_lines) == 1, r.stderr
    assert r.err_lines[0].startswith("spa2v") and "error:" in r.err_lines[0]
    assert r.stdout == ""


@pytest.mark.parametrize(("case", "named"), [
    ("short", "short.wav"), ("exists", "exists.json"), ("hrtf_missing", "nope.sofa"),
    ("missing_input", "gone.wav"), ("bad_input", "bad.wav"), ("json_is_input", "bin.wav"),
])
def test_exit_2_line_names_the_file(cli, case, named):
    assert named in cli["runs"][case].stderr


def test_short_clip_says_it_is_too_short(cli):
    line = cli["runs"]["short"].stderr
    assert "shorter than one analysis frame" in line
    assert not (cli["out"] / "short.json").exists()


def test_existing_output_is_left_untouched(cli):
    assert "--overwrite" in cli["runs"]["exists"].stderr
    assert (cli["out"] / "exists.json").read_text() == "keep me\n"


def test_failed_runs_leave_no_output_and_inputs_untouched(cli):
    out = cli["out"]
    for name in ("gone.json", "bad.json", "bad.png", "short.json", "x.json"):
        assert not (out / name).exists(), name
    assert not (out / "x").exists()
    assert not any(p.name.startswith(".") for p in out.rglob("*"))  # no temporaries
    for key, data in cli["before"].items():
        assert cli["files"][key].read_bytes() == data, key


def test_several_inputs_need_out_dir(cli):
    assert "--out-dir" in cli["runs"]["many_no_outdir"].stderr
