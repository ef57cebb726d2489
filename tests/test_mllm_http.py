"""The MLLM planner against a real chat-completions server on 127.0.0.1, scripted per case.

Each case ends in a valid layout: the model's where its reply is usable, the rule
planner's otherwise, with one ``warning: mllm planner: ...`` line per failure.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from planners.mllm import MLLMPlanner
from planners.mllm.backends import OpenAIChatBackend, chat_completions_url
from planners.mllm.prompt import SYSTEM_INSTRUCTION, layout_reply
from planners.rule import RulePlanner
from spa2v.errors import InputError
from spa2v.layout import SceneLayout, to_text

HOP_S = 0.02
DURATION_S = 4.0
LABELS = ["car", "dog"]
MARK = "SCRIPTED caption: a car passes a barking dog"


# --------------------------------------------------------------------------- the server
class ChatServer(ThreadingHTTPServer):
    """Answers POST .../chat/completions from a script; records every request."""

    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: list[tuple] = []
        self.requests: list[dict] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def handle_error(self, request, client_address) -> None:  # a client that gave up
        pass


class _Handler(BaseHTTPRequestHandler):
    server: ChatServer

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "headers": dict(self.headers),
                                     "body": body})
        action = self.server.script.pop(0) if len(self.server.script) > 1 else \
            self.server.script[0]
        kind = action[0]
        if kind == "status":
            self._send(action[1], action[2].encode(), "text/plain")
            return
        if kind == "sleep":
            time.sleep(action[1])
            text = action[2]
        else:
            text = action[1]
        reply = {"id": "chatcmpl-1", "object": "chat.completion", "model": body.get("model"),
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": text}}]}
        self._send(200, json.dumps(reply).encode(), "application/json")

    def _send(self, status: int, data: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server() -> Iterator[ChatServer]:
    srv = ChatServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


# --------------------------------------------------------------------------- the scene
def _source(sid: int, az: np.ndarray, loud_db: float, conf: float, motion: str) -> dict:
    t = np.arange(0.0, DURATION_S, HOP_S)
    az = np.broadcast_to(az, t.shape)
    return {"id": sid, "times": t.round(4).tolist(), "azimuth_deg": az.round(2).tolist(),
            "elevation_deg": None, "loudness_db": [loud_db] * t.size, "active": [True] * t.size,
            "mean_azimuth_deg": round(float(np.mean(az)), 2), "position": "center",
            "motion": motion, "behind": False, "confidence": conf}


@pytest.fixture(scope="module")
def analysis() -> dict:
    """A car crossing from the left (+60) to the right (-60) and a quieter dog on the right."""
    t = np.arange(0.0, DURATION_S, HOP_S)
    az = 60.0 - 120.0 * t / t[-1]
    return {
        "input": "street.wav", "format": "binaural", "sample_rate": 48000,
        "duration": DURATION_S, "hop_s": HOP_S,
        "sources": [_source(0, az, -30.0, 0.913, "left_to_right"),
                    _source(1, np.array(-45.0), -36.0, 0.774, "static")],
        "cues": {"times": t.round(4).tolist(), "ild_db": (0.15 * az).round(2).tolist(),
                 "itd_ms": (0.011 * az).round(4).tolist()},
    }


@pytest.fixture(scope="module")
def model_layout(analysis) -> SceneLayout:
    """What the scripted model answers: a plausible layout with a recognisable caption."""
    rule = RulePlanner().plan(analysis, labels=LABELS)
    return rule.model_copy(update={"caption": MARK})


def planner(server: ChatServer, **kw) -> MLLMPlanner:
    timeout_s = kw.pop("timeout_s", 10.0)
    return MLLMPlanner(OpenAIChatBackend(server.url, "test-model", timeout_s=timeout_s), **kw)


def warnings_of(capsys) -> list[str]:
    return [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]


def last_user_text(request: dict) -> str:
    content = request["body"]["messages"][-1]["content"]
    return content if isinstance(content, str) else content[0]["text"]


def assert_model_made(layout: SceneLayout, model: SceneLayout) -> None:
    assert layout.planner == "mllm:test-model"
    assert layout.caption == MARK
    assert [o.source for o in layout.objects] == [0, 1]
    for f_got, f_want in zip(layout.frames, model.frames, strict=True):
        got = {b.id: b.box for b in f_got.boxes}
        for b in f_want.boxes:
            np.testing.assert_allclose(got[b.id], b.box, atol=2e-3)


def assert_fallback(layout: SceneLayout, analysis: dict, reason_part: str) -> None:
    assert layout.planner.startswith("rule (fallback: ")
    assert reason_part in layout.planner
    rule = RulePlanner().plan(analysis, labels=LABELS)
    assert [f.boxes for f in layout.frames] == [f.boxes for f in rule.frames]
    assert layout.meta["mllm"]["errors"]


# --------------------------------------------------------------------------- the cases
def test_valid_json_reply_is_used_and_request_carries_cues_and_examples(
    server, analysis, model_layout, capsys
):
    server.script = [("text", layout_reply(model_layout))]
    layout = planner(server).plan(analysis, labels=LABELS)
    assert_model_made(layout, model_layout)
    assert layout.meta["mllm"]["attempts"] == 1
    assert warnings_of(capsys) == []

    (req,) = server.requests
    assert req["path"] == "/v1/chat/completions"
    body = req["body"]
    assert body["model"] == "test-model" and body["temperature"] == 0.5
    msgs = body["messages"]
    assert msgs[0] == {"role": "system", "content": SYSTEM_INSTRUCTION}
    assert "video director" in msgs[0]["content"]
    # k = 3 examples: user/assistant pairs between the system and the final user message
    assert [m["role"] for m in msgs[1:]] == ["user", "assistant"] * 3 + ["user"]
    for m in msgs[2:-1:2]:
        ex = SceneLayout.model_validate({**json.loads(m["content"]), "camera": {}})
        assert ex.fps == 4.0  # examples are shown at the requested keyframe rate
    text = msgs[-1]["content"]
    t = np.asarray(analysis["sources"][0]["times"])
    az = np.asarray(analysis["sources"][0]["azimuth_deg"])
    ild = np.asarray(analysis["cues"]["ild_db"])
    first = t <= 0.5
    assert f"start {np.mean(az[first]):+.1f}" in text  # azimuth at the start
    assert f"start {np.mean(ild[first]):+.1f}" in text  # ILD at the start
    assert "confidence 0.91" in text and "confidence 0.77" in text
    assert "motion left_to_right" in text and "source 0 = car, source 1 = dog" in text
    assert "16 frames" in text


def test_examples_k_sets_the_number_of_examples(server, analysis, model_layout):
    server.script = [("text", layout_reply(model_layout))]
    planner(server, examples=1).plan(analysis, labels=LABELS)
    planner(server, examples=0).plan(analysis, labels=LABELS)
    roles = [[m["role"] for m in r["body"]["messages"]] for r in server.requests]
    assert roles == [["system", "user", "assistant", "user"], ["system", "user"]]


def test_text_form_reply_is_used(server, analysis, model_layout, capsys):
    server.script = [("text", to_text(model_layout))]
    layout = planner(server).plan(analysis, labels=LABELS)
    assert_model_made(layout, model_layout)
    assert layout.meta["mllm"]["reply_form"] == "text"
    assert [o.name for o in layout.objects] == LABELS
    assert warnings_of(capsys) == []


def test_reply_in_prose_and_code_fences_is_used(server, analysis, model_layout, capsys):
    reply = ("Sure! Here is the scene layout you asked for:\n\n```json\n"
             + json.dumps(json.loads(layout_reply(model_layout)), indent=2)
             + "\n```\n\nThe car enters from the left {as heard}. Let me know if you need more.")
    server.script = [("text", reply)]
    layout = planner(server).plan(analysis, labels=LABELS)
    assert_model_made(layout, model_layout)
    assert warnings_of(capsys) == []


def test_invalid_json_is_retried_with_the_error_then_falls_back(server, analysis, capsys):
    bad = '{"caption": "a car", "objects": [{"id": 0, "name": "car"}], "frames": [{"t": 0.0 "boxes'
    server.script = [("text", bad)]
    layout = planner(server, retries=2).plan(analysis, labels=LABELS)
    assert_fallback(layout, analysis, "invalid JSON")
    assert len(server.requests) == 3
    for i, req in enumerate(server.requests[1:], start=1):
        msgs = req["body"]["messages"]
        assert msgs[-2] == {"role": "assistant", "content": bad}  # its own reply, then the fault
        assert "invalid JSON" in msgs[-1]["content"] and "line 1, column" in msgs[-1]["content"]
        assert len(msgs) == len(server.requests[0]["body"]["messages"]) + 2 * i
    lines = warnings_of(capsys)
    assert len(lines) == 4
    assert all(f"mllm planner: reply {i}/3 invalid: invalid JSON" in lines[i - 1]
               for i in (1, 2, 3))
    assert lines[3].startswith("warning: mllm planner: falling back to the rule planner: ")


def test_a_retry_that_fixes_the_fault_is_used(server, analysis, model_layout, capsys):
    server.script = [("text", "I think the car is on the left."),
                     ("text", layout_reply(model_layout))]
    layout = planner(server).plan(analysis, labels=LABELS)
    assert_model_made(layout, model_layout)
    assert layout.meta["mllm"]["attempts"] == 2
    assert "no JSON object found" in last_user_text(server.requests[1])
    (line,) = warnings_of(capsys)
    assert "reply 1/3 invalid: no JSON object found" in line


def test_boxes_out_of_range_are_clamped_and_used(server, analysis, model_layout, capsys):
    d = json.loads(layout_reply(model_layout))
    for f in d["frames"]:
        for b in f["boxes"]:
            x1, y1, x2, y2 = b["box"]
            b["box"] = [x1 - 0.12, y1 - 0.6, x2 + 0.12, y2 + 0.3]  # sticks out of the frame
    server.script = [("text", json.dumps(d))]
    layout = planner(server).plan(analysis, labels=LABELS)
    assert layout.planner == "mllm:test-model" and layout.caption == MARK
    assert layout.meta["mllm"]["clamped_boxes"] > 0
    boxes = np.array([b.box for f in layout.frames for b in f.boxes])
    assert boxes.min() >= 0.0 and boxes.max() <= 1.0
    assert np.any(boxes[:, 1] == 0.0) and np.any(boxes[:, 3] == 1.0)
    assert warnings_of(capsys) == []


def test_a_reply_that_drops_an_object_falls_back(server, analysis, model_layout, capsys):
    d = json.loads(layout_reply(model_layout))
    d["objects"] = d["objects"][:1]
    for f in d["frames"]:
        f["boxes"] = [b for b in f["boxes"] if b["id"] == 0]
    server.script = [("text", json.dumps(d))]
    layout = planner(server, retries=1).plan(analysis, labels=LABELS)
    assert_fallback(layout, analysis, "source 1 has no object")
    assert "source 1 has no object" in last_user_text(server.requests[1])
    lines = warnings_of(capsys)
    assert len(lines) == 3 and "reply 2/2 invalid: the layout has 1 object" in lines[1]


def test_a_reply_slower_than_the_timeout_falls_back(server, analysis, model_layout, capsys):
    server.script = [("sleep", 2.0, layout_reply(model_layout))]
    t0 = time.monotonic()
    layout = planner(server, retries=1, timeout_s=0.4).plan(analysis, labels=LABELS)
    assert time.monotonic() - t0 < 1.9  # it did not wait for the slow replies
    assert_fallback(layout, analysis, "timed out")
    lines = warnings_of(capsys)
    assert [("request 1/2 failed" in lines[0]), ("request 2/2 failed" in lines[1])] == [True, True]
    assert "within 0.4 s (timed out)" in lines[0]
    assert "falling back to the rule planner" in lines[2]


def test_http_500_falls_back(server, analysis, capsys):
    server.script = [("status", 500, "internal server error: out of memory")]
    layout = planner(server, retries=0).plan(analysis, labels=LABELS)
    assert_fallback(layout, analysis, "HTTP 500")
    lines = warnings_of(capsys)
    assert len(lines) == 2
    assert "request 1/1 failed: HTTP 500 from" in lines[0] and "out of memory" in lines[0]


def test_no_server_falls_back(analysis, capsys):
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as probe:
        port = probe.server_address[1]  # a port nobody listens on once closed
    backend = OpenAIChatBackend(f"http://127.0.0.1:{port}", "m", timeout_s=2.0)
    layout = MLLMPlanner(backend, retries=0).plan(analysis, labels=LABELS)
    assert layout.planner.startswith("rule (fallback: ") and "cannot connect" in layout.planner
    assert "cannot connect to" in warnings_of(capsys)[0]


def test_send_audio_adds_a_mono_16k_input_audio_part(server, analysis, model_layout, tmp_path):
    sr = 48000
    t = np.arange(int(1.5 * sr)) / sr
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 440 * t)])
    wav = tmp_path / "scene.wav"
    sf.write(wav, (0.5 * stereo).T.astype(np.float32), sr)
    server.script = [("text", layout_reply(model_layout))]
    layout = planner(server, send_audio=True).plan(analysis, labels=LABELS, audio_path=wav)
    assert layout.meta["mllm"]["audio"] is True
    content = server.requests[0]["body"]["messages"][-1]["content"]
    assert content[0]["type"] == "text" and "Source 0" in content[0]["text"]
    part = content[1]
    assert part["type"] == "input_audio" and part["input_audio"]["format"] == "wav"
    y, rate = sf.read(io.BytesIO(base64.b64decode(part["input_audio"]["data"])))
    assert rate == 16000 and y.ndim == 1 and abs(len(y) - 1.5 * 16000) <= 2
    assert np.sqrt(np.mean(y**2)) == pytest.approx(0.75 * 0.5 / np.sqrt(2), rel=0.02)


def test_api_key_from_the_named_variable(server, analysis, model_layout, monkeypatch):
    monkeypatch.setenv("SPA2V_TEST_KEY", "sk-test-123")
    server.script = [("text", layout_reply(model_layout))]
    backend = OpenAIChatBackend(server.url, "test-model", api_key_env="SPA2V_TEST_KEY")
    MLLMPlanner(backend).plan(analysis, labels=LABELS)
    assert server.requests[0]["headers"]["Authorization"] == "Bearer sk-test-123"
    monkeypatch.delenv("SPA2V_TEST_KEY")
    with pytest.raises(InputError, match="SPA2V_TEST_KEY"):
        OpenAIChatBackend(server.url, "test-model", api_key_env="SPA2V_TEST_KEY")


def test_options_need_a_model(server):
    with pytest.raises(InputError, match="--endpoint URL --model NAME.*--model-path DIR"):
        MLLMPlanner.from_options(SimpleNamespace(endpoint=None, model_path=None))
    with pytest.raises(InputError, match="--model NAME"):
        MLLMPlanner.from_options(SimpleNamespace(endpoint=server.url, model=None))
    with pytest.raises(InputError, match="http"):
        MLLMPlanner.from_options(SimpleNamespace(endpoint="localhost:8000", model="m"))
    p = MLLMPlanner.from_options(SimpleNamespace(endpoint=server.url, model="m", examples=5,
                                                 temperature=0.2, retries=0, timeout_s=3.0))
    assert (p.k, p.temperature, p.retries, p.backend.timeout_s) == (5, 0.2, 0, 3.0)


@pytest.mark.parametrize(("endpoint", "url"), [
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1/chat/completions"),
    ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1/chat/completions"),
    ("https://api.example.com/v1/chat/completions", "https://api.example.com/v1/chat/completions"),
    ("http://localhost:11434/api/v1", "http://localhost:11434/api/v1/chat/completions"),
])
def test_endpoint_urls(endpoint, url):
    assert chat_completions_url(endpoint) == url


# --------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def crossing_wav(tmp_path_factory):
    from spa2v.audio import write_wav
    from spa2v.simulate import Keyframe, SceneSource, Trajectory, simulate_scene
    from spa2v.sources import make_source

    sr = 48000
    traj = Trajectory((Keyframe(0.0, 65.0, 0.0, 4.0), Keyframe(4.0, -65.0, 0.0, 4.0)))
    sim = simulate_scene([SceneSource(make_source("engine", duration_s=4.0, sr=sr, seed=3), traj,
                                      name="car")], fmt="binaural", sr=sr, duration_s=4.0)
    path = tmp_path_factory.mktemp("cli") / "car.wav"
    write_wav(path, sim.audio, sr)
    return path


def test_cli_plan_uses_the_server(server, crossing_wav, tmp_path, capsys):
    from spa2v.analysis import analyze_file
    from spa2v.cli import main

    analysis = analyze_file(crossing_wav, max_sources=1)
    scripted = RulePlanner().plan(analysis, labels=["car"]).model_copy(update={"caption": MARK})
    server.script = [("text", layout_reply(scripted))]
    out = tmp_path / "layout.json"
    rc = main(["plan", str(crossing_wav), "-o", str(out), "--planner", "mllm", "--endpoint",
               server.url, "--model", "test-model", "--examples", "2", "--temperature", "0.2",
               "--max-sources", "1", "--label", "car", "-q"])
    assert rc == 0, capsys.readouterr().err
    saved = json.loads(out.read_text())
    assert saved["planner"] == "mllm:test-model" and saved["caption"] == MARK
    body = server.requests[0]["body"]
    assert body["temperature"] == 0.2
    assert [m["role"] for m in body["messages"]].count("assistant") == 2
    assert f"confidence {analysis['sources'][0]['confidence']:.2f}" in last_user_text(
        server.requests[0])


def test_cli_generate_records_the_fallback(server, crossing_wav, tmp_path, capsys):
    from spa2v.cli import main

    server.script = [("status", 500, "model crashed")]
    video, layout_out = tmp_path / "out.mp4", tmp_path / "layout.json"
    rc = main(["generate", str(crossing_wav), "-o", str(video), "--layout-out", str(layout_out),
               "--planner", "mllm", "--endpoint", server.url, "--mllm-model", "test-model",
               "--retries", "1", "--max-sources", "1", "--fps", "4", "--size", "96x64", "-q"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert video.stat().st_size > 0
    saved = json.loads(layout_out.read_text())
    assert saved["planner"].startswith("rule (fallback: no usable reply after 2 attempts")
    assert "HTTP 500" in saved["planner"]
    warns = [ln for ln in err.splitlines() if ln.startswith("warning: mllm planner:")]
    assert len(warns) == 3 and "model crashed" in warns[0]
    assert len(server.requests) == 2


@pytest.mark.parametrize(("extra", "message"), [
    ([], "needs a model: --endpoint URL --model NAME"),
    (["--endpoint", "http://127.0.0.1:9/v1"], "--endpoint needs --model NAME"),
    (["--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--api-key-env",
      "SPA2V_SURELY_UNSET_VAR"], "SPA2V_SURELY_UNSET_VAR"),
    (["--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--model-path", "."],
     "not both"),
])
def test_cli_usage_errors(crossing_wav, tmp_path, capsys, extra, message):
    from spa2v.cli import main

    out = tmp_path / "layout.json"
    rc = main(["plan", str(crossing_wav), "-o", str(out), "--planner", "mllm", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0]
    assert not out.exists()
