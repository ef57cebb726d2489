"""The Gradio demo: its handlers, the app over HTTP with gradio_client, and a real browser."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from demo import handlers  # noqa: E402
from demo.examples import EXAMPLES, ensure_examples  # noqa: E402
from spa2v.errors import InputError  # noqa: E402
from spa2v.layout import load_layout  # noqa: E402
from spa2v.video import probe_video  # noqa: E402

CAR = "A car passes from left to right (binaural)"
A2V_DEFAULTS = dict(example=CAR, labels="", caption="", planner="rule", endpoint="",
                    mllm_model="", generator="animatic", video_model="", guidance="energy",
                    steps=None, size="256x144")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("demo-data")


@pytest.fixture(scope="module")
def examples(data_dir) -> dict[str, Path]:
    return ensure_examples(data_dir / "examples")


@pytest.fixture(scope="module")
def server(data_dir, examples):
    from demo.app import launch

    app, url = launch("127.0.0.1", _free_port(), data_dir=data_dir, block=False, quiet=True)
    yield url
    app.close()


@pytest.fixture(scope="module")
def client(server):
    return gradio_client.Client(server, verbose=False)


def _a2v(client, upload=None, **overrides):
    kw = dict(A2V_DEFAULTS, **overrides)
    upload = gradio_client.handle_file(str(upload)) if upload is not None else None
    return client.predict(upload, kw["example"], kw["labels"], kw["caption"], kw["planner"],
                          kw["endpoint"], kw["mllm_model"], kw["generator"], kw["video_model"],
                          kw["guidance"], kw["steps"], kw["size"], api_name="/audio_to_video")


def _video_path(value) -> str:
    return value["video"] if isinstance(value, dict) else value


# --------------------------------------------------------------------------- handlers
def test_examples_are_made_once_and_reused(data_dir, examples) -> None:
    assert set(examples) == {ex.key for ex in EXAMPLES}
    stamp = {k: p.stat().st_mtime_ns for k, p in examples.items()}
    again = ensure_examples(data_dir / "examples")
    assert {k: p.stat().st_mtime_ns for k, p in again.items()} == stamp


def test_audio_to_video_handler_makes_every_output(tmp_path, examples) -> None:
    res = handlers.audio_to_video(examples["car_crossing"], tmp_path, labels="car",
                                  size=(256, 144))
    meta = probe_video(res.video)
    assert (meta["width"], meta["height"]) == (256, 144)
    assert meta["audio_codec"] == "aac"
    layout = load_layout(res.layout_json)
    assert [o.name for o in layout.objects] == ["car"]
    assert res.analysis["sources"][0]["motion"] == "left_to_right"
    assert "**car**" in res.summary and "left to right" in res.summary
    for png in (res.cue_plot, res.storyboard):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.txt", b"this is not audio at all\n" * 50, "notes.txt"),
        ("empty.wav", b"", "empty.wav"),
    ],
)
def test_audio_to_video_handler_rejects_bad_uploads(tmp_path, name, content, message) -> None:
    bad = tmp_path / name
    bad.write_bytes(content)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputError, match=message):
        handlers.audio_to_video(bad, out)
    assert not list(out.iterdir())  # no partial output


def test_three_channel_file_is_refused_by_name(tmp_path, write_audio) -> None:
    path = write_audio("three.wav", np.random.default_rng(0).normal(0, 0.1, (3, 48000)), 48000)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputError, match=r"three\.wav.*3 channels"):
        handlers.audio_to_video(path, out)


def test_labels_are_split_on_commas() -> None:
    assert handlers.parse_labels(" car, dog ;bird,") == ["car", "dog", "bird"]
    assert handlers.parse_labels("  ") is None


# --------------------------------------------------------------------------- over HTTP
def test_audio_to_video_tab_over_http(client) -> None:
    video, summary, cues, board, layout_file, layout = _a2v(client)
    assert probe_video(_video_path(video))["audio_codec"] == "aac"
    assert layout["objects"][0]["name"] == "car"
    assert json.loads(Path(layout_file).read_text())["version"] == 1
    assert "left to right" in summary
    assert Path(cues).exists() and Path(board).exists()


def test_text_to_foa_tab_over_http(client) -> None:
    foa, preview, plot, truth = client.predict(
        "a police siren moves from the left to the right", "", "from the text", None, 3.0,
        api_name="/text_to_foa")
    import soundfile as sf

    assert sf.info(foa).channels == 4
    assert sf.info(preview).channels == 2
    assert truth["sources"][0]["motion"] == "left_to_right"
    assert Path(plot).exists()


def test_spatialize_tab_over_http(client) -> None:
    out, summary, traj, cues = client.predict(None, "A guitar, mono (for spatialization)",
                                              "on the far right", api_name="/spatialize")
    import soundfile as sf

    assert sf.info(out).channels == 2
    assert "right" in summary
    assert Path(traj).exists() and Path(cues).exists()


def test_evaluate_tab_over_http(client, examples) -> None:
    video, *_ = _a2v(client)
    summary, plot, report_file, report = client.predict(
        gradio_client.handle_file(str(examples["car_crossing"])),
        gradio_client.handle_file(_video_path(video)), None, api_name="/evaluate")
    assert report["aligned"] is True
    assert summary.startswith("**aligned**")
    assert Path(plot).exists() and Path(report_file).exists()


def test_bad_upload_shows_the_message_and_the_app_keeps_serving(client, tmp_path) -> None:
    bad = tmp_path / "holiday.txt"
    bad.write_text("not audio\n" * 100)
    with pytest.raises(gradio_client.exceptions.AppError, match="holiday.txt") as err:
        _a2v(client, upload=bad)
    assert "Traceback" not in str(err.value)
    three = tmp_path / "three.wav"
    import soundfile as sf

    sf.write(three, np.random.default_rng(1).normal(0, 0.1, (48000, 3)), 48000)
    with pytest.raises(gradio_client.exceptions.AppError, match="3 channels"):
        _a2v(client, upload=three)
    video, *_ = _a2v(client)  # still serving
    assert probe_video(_video_path(video))["audio_codec"] == "aac"


def test_two_requests_at_once_are_queued_and_both_complete(server, data_dir) -> None:
    before = set((data_dir / "runs").glob("a2v-*"))
    clients = [gradio_client.Client(server, verbose=False) for _ in range(2)]
    kw = dict(A2V_DEFAULTS)
    args = (None, kw["example"], "", "", "rule", "", "", "animatic", "", "energy", None,
            "256x144")
    jobs = [c.submit(*args, api_name="/audio_to_video") for c in clients]
    results = [j.result(timeout=240) for j in jobs]
    for r in results:
        assert probe_video(_video_path(r[0]))["audio_codec"] == "aac"
    new_runs = set((data_dir / "runs").glob("a2v-*")) - before
    assert len(new_runs) == 2  # each request worked in its own directory
    for run in new_runs:
        assert (run / "video.mp4").exists() and (run / "layout.json").exists()


# --------------------------------------------------------------------------- in a browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                    "(.ci/run installs it)")
def test_browser_runs_the_example_and_shows_the_video(server, tmp_path) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(server, wait_until="domcontentloaded")
            page.locator("#a2v-run").wait_for(state="visible", timeout=60_000)
            page.locator("#a2v-run").click()
            video = page.locator("#a2v-video video[src]")
            video.wait_for(state="attached", timeout=180_000)
            assert video.get_attribute("src")
            page.get_by_text("left to right").first.wait_for(timeout=30_000)
            shot = tmp_path / "demo.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000

            # A file that is not audio: the page shows the one-line message.
            bad = tmp_path / "not-audio.txt"
            bad.write_text("hello\n" * 200)
            page.locator("#a2v-upload input[type=file]").set_input_files(str(bad))
            page.wait_for_timeout(1000)
            page.locator("#a2v-run").click()
            page.get_by_text("not-audio.txt", exact=False).last.wait_for(timeout=60_000)
            assert page.get_by_text("Traceback").count() == 0
        finally:
            browser.close()

