"""The application face: audio -> analysis -> layout -> video, as library calls.

The CLI and the demo call these; planners and generators are found by name through
``spa2v.registry``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spa2v._typing import PathType
from spa2v.analysis import analyze_file
from spa2v.audio import read_audio
from spa2v.conventions import Camera
from spa2v.errors import InputError
from spa2v.fsutil import check_output
from spa2v.layout import SceneLayout, load_layout, save_layout
from spa2v.registry import load


@dataclass
class PlanOptions:
    planner: str = "rule"
    labels: list[str] | None = None
    caption: str | None = None
    fps: float = 4.0
    fmt: str | None = None
    foa_convention: str = "ambix"
    hrtf: PathType | None = None
    camera: Camera | None = None
    background: str | None = None
    max_sources: int = 4
    # MLLM planner (planners.mllm): a chat-completions server or a local transformers dir.
    endpoint: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    model_path: PathType | None = None
    examples: int = 3
    temperature: float = 0.5
    retries: int = 2
    timeout_s: float = 60.0
    send_audio: bool = False
    max_new_tokens: int | None = None  # local model reply budget (None: derived)


@dataclass
class RenderOptions:
    generator: str = "animatic"
    fps: int = 24
    size: tuple[int, int] = (512, 288)
    seed: int = 0
    overlay: bool = False
    # Diffusion generator (generators.video.diffusion): a checkpoint dir or "tiny".
    model: str | None = None
    guidance: str | None = None
    steps: int | None = None
    device: str | None = None
    dtype: str | None = None
    cpu_offload: bool = False


def _instantiate(cls, opts):
    """A planner or generator from its class: ``from_options(opts)`` where it has one."""
    from_options = getattr(cls, "from_options", None)
    return from_options(opts) if callable(from_options) else cls()


def plan(audio_path: PathType, opts: PlanOptions | None = None) -> tuple[SceneLayout, dict]:
    """Analyse a recording and plan its Video Scene Layout; returns (layout, analysis)."""
    opts = opts or PlanOptions()
    analysis = analyze_file(audio_path, fmt=opts.fmt, foa_convention=opts.foa_convention,
                            hrtf=opts.hrtf, max_sources=opts.max_sources)
    if not analysis["sources"]:
        raise InputError("no sound source was found (silence or only noise); "
                         "there is nothing to place in a video", audio_path)
    planner = _instantiate(load("planners", opts.planner), opts)
    extra = {"audio_path": audio_path} if getattr(planner, "wants_audio", False) else {}
    layout = planner.plan(analysis, labels=opts.labels, caption=opts.caption, fps=opts.fps,
                          camera=opts.camera, background=opts.background, **extra)
    return layout, analysis


def render(
    layout: SceneLayout | PathType,
    out_path: PathType,
    opts: RenderOptions | None = None,
    *,
    audio_path: PathType | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Render a layout to an MP4, with ``audio_path``'s audio as its soundtrack."""
    opts = opts or RenderOptions()
    if not isinstance(layout, SceneLayout):
        layout = load_layout(layout)
    audio = read_audio(audio_path) if audio_path is not None else None
    gen = _instantiate(load("video_generators", opts.generator), opts)
    return gen.render(layout, out_path, audio=audio, fps=opts.fps, size=opts.size,
                      seed=opts.seed, overlay=opts.overlay, overwrite=overwrite,
                      progress=progress)


def generate(
    audio_path: PathType,
    out_path: PathType,
    plan_opts: PlanOptions | None = None,
    render_opts: RenderOptions | None = None,
    *,
    layout_out: PathType | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> tuple[Path, SceneLayout]:
    """Audio -> video, the main job.  Outputs are checked before any work is done."""
    check_output(out_path, overwrite=overwrite, inputs=[audio_path])
    if layout_out is not None:
        check_output(layout_out, overwrite=overwrite, inputs=[audio_path, out_path])
    layout, _ = plan(audio_path, plan_opts)
    video = render(layout, out_path, render_opts, audio_path=audio_path, overwrite=overwrite,
                   progress=progress)
    if layout_out is not None:
        save_layout(layout, layout_out, overwrite=overwrite)
    return video, layout
