"""The spa2v Gradio app: four tabs over :mod:`demo.handlers`.

Start it with ``spa2v demo`` (127.0.0.1:7860 by default).  Requests are queued with a
concurrency limit; each one works in a fresh directory under the demo's data directory
(``$SPA2V_DEMO_DIR``, default ``~/.cache/spa2v/demo``), where the built-in examples are
also made on first start.  Bad input shows the command line's one-line message in the
page; an unexpected failure shows a one-line internal-error message (the traceback goes
to the server's log only).
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import gradio as gr

from demo import handlers
from demo.examples import EXAMPLES, by_title, ensure_examples
from spa2v.errors import InputError
from spa2v.sources import SOURCE_NAMES

TITLE = "spa2v: spatial audio to spatially-aware video, and back"
RUN_MAX_AGE_S = 24 * 3600
FROM_TEXT = "from the text"


def default_data_dir() -> Path:
    env = os.environ.get("SPA2V_DEMO_DIR")
    return Path(env) if env else Path.home() / ".cache" / "spa2v" / "demo"


class _Runs:
    """Fresh per-request directories; old ones are swept at start."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for d in root.iterdir():
            if d.is_dir() and now - d.stat().st_mtime > RUN_MAX_AGE_S:
                shutil.rmtree(d, ignore_errors=True)

    def new(self, kind: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=self.root))


def _guard(fn: Callable) -> Callable:
    """Readable errors in the page: InputError's line as is, anything else in one line."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except InputError as exc:
            raise gr.Error(str(exc), title="Cannot do that", print_exception=False) from None
        except Exception as exc:  # the page gets one line; the log gets the traceback
            traceback.print_exc(file=sys.stderr)
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise gr.Error(f"internal error: {type(exc).__name__}: {first}",
                           print_exception=False) from None

    return wrapper


def _progress_fn(progress: gr.Progress) -> handlers.Progress:
    return lambda fraction, desc: progress(fraction, desc=desc)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise InputError(f"video size must look like 512x288, got {text!r}") from None
    return w, h


def build_app(data_dir: Path | None = None, *, concurrency: int = 2) -> gr.Blocks:
    """The app, with its examples made in ``data_dir`` when missing (not launched)."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    example_paths = ensure_examples(data_dir / "examples")
    runs = _Runs(data_dir / "runs")
    spatial_titles = [ex.title for ex in EXAMPLES if ex.kind == "spatial"]
    mono_titles = [ex.title for ex in EXAMPLES if ex.kind == "mono"]

    def example_path(title: str | None) -> str | None:
        return str(example_paths[by_title(title).key]) if title else None

    # ------------------------------------------------------------ handlers for the page
    @_guard
    def run_audio_to_video(upload, example, labels, caption, planner, endpoint, mllm_model,
                           generator, video_model, guidance, steps, size,
                           progress=gr.Progress()):
        path = upload or example_path(example)
        if not upload and example and not (labels or "").strip():
            labels = ", ".join(by_title(example).labels)
        res = handlers.audio_to_video(
            path, runs.new("a2v"), planner=planner, endpoint=endpoint, mllm_model=mllm_model,
            generator=generator, video_model=video_model, guidance=guidance,
            steps=int(steps) if steps else None, labels=labels, caption=caption,
            size=_size(size), progress=_progress_fn(progress))
        return (str(res.video), res.summary, str(res.cue_plot), str(res.storyboard),
                str(res.layout_json), res.layout, [path, str(res.video), str(res.layout_json)])

    @_guard
    def run_text_to_foa(text, trajectory, source, source_file, duration,
                        progress=gr.Progress()):
        res = handlers.text_to_foa(text, runs.new("foa"), trajectory=trajectory,
                                   source=None if source == FROM_TEXT else source,
                                   source_file=source_file, duration_s=duration or None,
                                   progress=_progress_fn(progress))
        return str(res.foa), str(res.binaural_preview), str(res.trajectory_plot), res.truth

    @_guard
    def run_spatialize(upload, example, text, progress=gr.Progress()):
        res = handlers.spatialize(upload or example_path(example), text, runs.new("spatialize"),
                                  progress=_progress_fn(progress))
        return str(res.binaural), res.summary, str(res.trajectory_plot), str(res.cue_plot)

    @_guard
    def run_evaluate(audio, video, layout, progress=gr.Progress()):
        res = handlers.evaluate(audio, video, runs.new("eval"), layout_path=layout,
                                progress=_progress_fn(progress))
        return res.summary, str(res.plot), str(res.report_json), res.report

    def use_last(last):
        if not last:
            raise gr.Error("run the audio-to-video tab first", title="Nothing yet")
        return tuple(last)

    # ------------------------------------------------------------ the page
    with gr.Blocks(title=TITLE) as app:
        gr.Markdown(f"# {TITLE}\nUpload a binaural, stereo or first-order Ambisonics "
                    "recording and see where each sound is, then watch the video it becomes; "
                    "type a sentence and hear it move around you.")
        last_a2v = gr.State(None)
        with gr.Tab("Audio to video", id="a2v"):
            with gr.Row():
                with gr.Column(scale=1):
                    a_upload = gr.File(label="Recording: binaural, stereo or FOA audio, or a video",
                                       type="filepath", elem_id="a2v-upload")
                    a_example = gr.Dropdown(spatial_titles, value=spatial_titles[0],
                                            label="or a built-in example (used when nothing "
                                            "is uploaded)", elem_id="a2v-example")
                    a_labels = gr.Textbox(label="What is heard, loudest first (optional)",
                                          placeholder="car, dog")
                    a_caption = gr.Textbox(label="Caption (optional)")
                    with gr.Accordion("Planner and generator", open=False):
                        a_planner = gr.Radio(["rule", "mllm"], value="rule", label="Planner")
                        a_endpoint = gr.Textbox(label="MLLM endpoint (OpenAI-compatible)",
                                                placeholder="http://127.0.0.1:8000/v1")
                        a_mllm = gr.Textbox(label="MLLM model name")
                        a_generator = gr.Radio(["animatic", "diffusion"], value="animatic",
                                               label="Video generator")
                        a_ckpt = gr.Textbox(label="Diffusion checkpoint directory, or 'tiny'")
                        a_guidance = gr.Radio(["energy", "mask", "none"], value="energy",
                                              label="Layout guidance")
                        a_steps = gr.Number(label="Denoising steps (empty: the default)",
                                            precision=0)
                        a_size = gr.Textbox(value="512x288", label="Video size (WxH)")
                    a_run = gr.Button("Make the video", variant="primary", elem_id="a2v-run")
                with gr.Column(scale=2):
                    a_video = gr.Video(label="Video (with the original audio)",
                                       elem_id="a2v-video", interactive=False)
                    a_summary = gr.Markdown(elem_id="a2v-summary")
                    a_cues = gr.Image(label="Where each sound is: azimuth and loudness",
                                      type="filepath", interactive=False)
                    a_board = gr.Image(label="Layout keyframes", type="filepath",
                                       interactive=False)
                    a_layout_file = gr.File(label="Layout (VSL JSON)", interactive=False)
                    a_layout = gr.JSON(label="Layout")
            a_run.click(run_audio_to_video,
                        [a_upload, a_example, a_labels, a_caption, a_planner, a_endpoint,
                         a_mllm, a_generator, a_ckpt, a_guidance, a_steps, a_size],
                        [a_video, a_summary, a_cues, a_board, a_layout_file, a_layout, last_a2v],
                        api_name="audio_to_video")

        with gr.Tab("Text to FOA", id="foa"):
            with gr.Row():
                with gr.Column():
                    f_text = gr.Textbox(label="Sentence", elem_id="foa-text",
                                        value="a police siren moves from the left to the right")
                    f_traj = gr.Textbox(label="Trajectory keyframes (optional)",
                                        placeholder="60,0,3@0; -60,0,3@5  (az,el,dist@t)")
                    f_source = gr.Dropdown([FROM_TEXT, *SOURCE_NAMES], value=FROM_TEXT,
                                           label="Source sound")
                    f_file = gr.File(label="or your own mono sound", type="filepath")
                    f_duration = gr.Number(value=5.0, label="Duration (s)")
                    f_run = gr.Button("Generate", variant="primary")
                with gr.Column():
                    f_preview = gr.Audio(label="Binaural preview (headphones)", type="filepath",
                                         interactive=False)
                    f_foa = gr.File(label="FOA (AmbiX) WAV", interactive=False)
                    f_plot = gr.Image(label="Trajectory", type="filepath", interactive=False)
                    f_truth = gr.JSON(label="Ground truth")
            f_run.click(run_text_to_foa, [f_text, f_traj, f_source, f_file, f_duration],
                        [f_foa, f_preview, f_plot, f_truth], api_name="text_to_foa")

        with gr.Tab("Text-guided spatialization", id="spatialize"):
            with gr.Row():
                with gr.Column():
                    s_upload = gr.File(label="Mono recording", type="filepath")
                    s_example = gr.Dropdown(mono_titles, value=mono_titles[0],
                                            label="or a built-in example")
                    s_text = gr.Textbox(label="Where is it?", value="moves from the left to "
                                        "the right")
                    s_run = gr.Button("Spatialize", variant="primary")
                with gr.Column():
                    s_out = gr.Audio(label="Binaural (headphones)", type="filepath",
                                     interactive=False)
                    s_summary = gr.Markdown()
                    s_traj = gr.Image(label="Trajectory", type="filepath", interactive=False)
                    s_cues = gr.Image(label="Analysis of the result", type="filepath",
                                      interactive=False)
            s_run.click(run_spatialize, [s_upload, s_example, s_text],
                        [s_out, s_summary, s_traj, s_cues], api_name="spatialize")

        with gr.Tab("Evaluate", id="eval"):
            with gr.Row():
                with gr.Column():
                    e_audio = gr.File(label="Spatial recording", type="filepath")
                    e_video = gr.File(label="Video", type="filepath")
                    e_layout = gr.File(label="Layout (optional: use its boxes instead of "
                                       "tracking the picture)", type="filepath")
                    e_last = gr.Button("Use the last audio-to-video result")
                    e_run = gr.Button("Evaluate", variant="primary")
                with gr.Column():
                    e_summary = gr.Markdown()
                    e_plot = gr.Image(label="Audio and video azimuth over time",
                                      type="filepath", interactive=False)
                    e_file = gr.File(label="Report (JSON)", interactive=False)
                    e_report = gr.JSON(label="Report")
            e_last.click(use_last, [last_a2v], [e_audio, e_video, e_layout], queue=False,
                         api_visibility="private")
            e_run.click(run_evaluate, [e_audio, e_video, e_layout],
                        [e_summary, e_plot, e_file, e_report], api_name="evaluate")

    app.queue(default_concurrency_limit=concurrency, max_size=32)
    app.spa2v_paths = [str(data_dir)]  # for launch(allowed_paths=...)
    return app


def launch(host: str = "127.0.0.1", port: int = 7860, *, data_dir: Path | None = None,
           concurrency: int = 2, block: bool = True, quiet: bool = False):
    """Build and start the app; with ``block=False`` return ``(app, url)`` at once."""
    app = build_app(data_dir, concurrency=concurrency)
    _, url, _ = app.launch(server_name=host, server_port=port, prevent_thread_lock=not block,
                           allowed_paths=app.spa2v_paths, quiet=quiet, show_error=True,
                           footer_links=["api"])
    return app, url
