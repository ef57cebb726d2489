"""The demo's work, one function per tab, over file paths: no Gradio in here.

Each handler writes into a fresh directory of its own (``out_dir``) and returns the paths
it made; bad input raises :class:`spa2v.errors.InputError` with the same one-line message
the command line prints.  The audio-to-video tab calls :mod:`spa2v.pipeline`; the other
tabs run the ``spa2v`` commands in-process (``spa2v.cli``), so the demo does exactly what
the command line does.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spa2v.errors import InputError
from spa2v.layout import SceneLayout, save_layout
from spa2v.pipeline import PlanOptions, RenderOptions, plan, render

Progress = Callable[[float, str], None]


def _no_progress(fraction: float, desc: str) -> None:
    pass


def parse_labels(text: str | None) -> list[str] | None:
    """``"car, dog"`` -> ``["car", "dog"]``; empty -> None."""
    labels = [s.strip() for s in (text or "").replace(";", ",").split(",") if s.strip()]
    return labels or None


def run_command(argv: Sequence[str]) -> None:
    """Run one ``spa2v`` command in-process; bad input raises ``InputError``.

    Unlike :func:`spa2v.cli.main` nothing is printed and errors are raised, not turned
    into exit codes, so concurrent requests don't share a captured stderr.
    """
    from spa2v.cli import build_parser

    parser = build_parser()
    try:
        args = parser.parse_args([str(a) for a in argv])
    except SystemExit as exc:  # a usage error (already one line on the server's stderr)
        raise InputError(f"invalid options for spa2v {argv[0]}") from exc
    args.quiet = True
    args._run(args)


# --------------------------------------------------------------------------- audio -> video
@dataclass
class AudioToVideo:
    video: Path
    cue_plot: Path
    storyboard: Path
    layout_json: Path
    layout: dict
    summary: str
    analysis: dict = field(repr=False, default_factory=dict)


def audio_to_video(
    audio_path: str | Path | None,
    out_dir: Path,
    *,
    planner: str = "rule",
    endpoint: str | None = None,
    mllm_model: str | None = None,
    generator: str = "animatic",
    video_model: str | None = None,
    guidance: str | None = None,
    steps: int | None = None,
    labels: str | None = None,
    caption: str | None = None,
    size: tuple[int, int] = (512, 288),
    fps: int = 24,
    seed: int = 0,
    progress: Progress = _no_progress,
) -> AudioToVideo:
    """Analyse, plan and render one recording (audio, or a video's soundtrack)."""
    from spa2v.plots import plot_analysis

    if not audio_path:
        raise InputError("upload a binaural, stereo or FOA recording (or a video), "
                         "or pick a built-in example")
    if planner == "mllm" and not endpoint:
        raise InputError("the MLLM planner needs an endpoint URL (an OpenAI-compatible server)")
    if generator == "diffusion" and not video_model:
        raise InputError("the diffusion generator needs a checkpoint directory or 'tiny'")
    plan_opts = PlanOptions(planner=planner, labels=parse_labels(labels),
                            caption=(caption or "").strip() or None, endpoint=endpoint or None,
                            model=mllm_model or None, retries=1, timeout_s=60.0)
    render_opts = RenderOptions(generator=generator, fps=fps, size=size, seed=seed,
                                model=video_model or None, guidance=guidance or None,
                                steps=steps)
    progress(0.05, "analysing the spatial cues and planning the layout")
    layout, analysis = plan(audio_path, plan_opts)
    progress(0.35, "plotting")
    cue_plot = plot_analysis(analysis, out_dir / "cues.png")
    storyboard = draw_storyboard(layout, out_dir / "layout.png")
    layout_json = save_layout(layout, out_dir / "layout.json")
    progress(0.45, f"rendering the video ({generator})")
    video = render(layout, out_dir / "video.mp4", render_opts, audio_path=audio_path)
    progress(1.0, "done")
    return AudioToVideo(video=video, cue_plot=cue_plot, storyboard=storyboard,
                        layout_json=layout_json, layout=layout.to_dict(),
                        summary=describe(analysis, layout), analysis=analysis)


def describe(analysis: dict, layout: SceneLayout) -> str:
    """A few Markdown lines: the format, each source where it is heard, the plan."""
    lines = [f"**{analysis['format']}**, {analysis['duration']:.1f} s, "
             f"{len(analysis['sources'])} source(s); planner: `{layout.planner or 'rule'}`"]
    names = {o.source: o.name for o in layout.objects if o.source is not None}
    for s in analysis["sources"]:
        name = names.get(s["id"], f"source {s['id']}")
        lines.append(f"- **{name}**: {s['position']} (mean azimuth {s['mean_azimuth_deg']:+.0f} "
                     f"deg), {s['motion'].replace('_', ' ')}, confidence {s['confidence']:.2f}")
    lines.append(f"\n*{layout.caption}*")
    return "\n".join(lines)


def draw_storyboard(layout: SceneLayout, path: Path, *, panels: int = 6,
                    size: tuple[int, int] = (320, 180)) -> Path:
    """Evenly spaced animatic frames with the layout's boxes drawn, in a 3-column grid."""
    import cv2

    from generators.video.animatic import AnimaticRenderer

    fps = max(1, math.ceil(panels / max(layout.duration, 1e-3)))
    frames = list(AnimaticRenderer().frames(layout, fps=fps, size=size, overlay=True))
    pick = np.unique(np.linspace(0, len(frames) - 1, min(panels, len(frames))).round().astype(int))
    tiles = [frames[i] for i in pick]
    cols = 3
    while len(tiles) % cols:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.concatenate(tiles[r:r + cols], axis=1) for r in range(0, len(tiles), cols)]
    grid = np.concatenate(rows, axis=0)
    if not cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path


# --------------------------------------------------------------------------- text -> FOA
@dataclass
class TextToFoa:
    foa: Path
    binaural_preview: Path
    trajectory_plot: Path
    truth: dict


def text_to_foa(
    text: str,
    out_dir: Path,
    *,
    trajectory: str | None = None,
    source: str | None = None,
    source_file: str | Path | None = None,
    duration_s: float | None = None,
    progress: Progress = _no_progress,
) -> TextToFoa:
    """``spa2v foa --text``, then a binaural preview and the trajectory plot."""
    from spa2v.audio import read_audio, write_wav
    from spa2v.decode import foa_to_binaural
    from spa2v.plots import plot_trajectories

    if not (text or "").strip():
        raise InputError("type a sentence that says what sounds and where, e.g. "
                         "'a police siren moves from the left to the right'")
    foa, truth_path = out_dir / "foa.wav", out_dir / "truth.json"
    argv = ["foa", "--text", text.strip(), "-o", foa, "--truth", truth_path]
    if trajectory and trajectory.strip():
        argv += ["--trajectory", trajectory.strip()]
    if source_file:
        argv += ["--source", source_file]
    elif source and source != "from the text":
        argv += ["--source", source]
    if duration_s:
        argv += ["--duration", f"{float(duration_s):g}"]
    progress(0.1, "generating FOA")
    run_command(argv)
    progress(0.6, "binaural preview")
    y, sr = read_audio(foa)
    preview = write_wav(out_dir / "binaural_preview.wav", foa_to_binaural(y, sr), sr,
                        subtype="PCM_16")
    truth = json.loads(truth_path.read_text())
    plot = plot_trajectories(truth, out_dir / "trajectory.png")
    progress(1.0, "done")
    return TextToFoa(foa=foa, binaural_preview=preview, trajectory_plot=plot, truth=truth)


# --------------------------------------------------------------------------- spatialize
@dataclass
class Spatialized:
    binaural: Path
    trajectory_plot: Path
    cue_plot: Path
    summary: str


def spatialize(
    mono_path: str | Path | None,
    text: str,
    out_dir: Path,
    *,
    progress: Progress = _no_progress,
) -> Spatialized:
    """``spa2v spatialize IN --text``, then the trajectory and the analysis of the result."""
    from spa2v.analysis import analyze_file
    from spa2v.plots import plot_analysis, plot_trajectories

    if not mono_path:
        raise InputError("upload a mono recording, or pick the built-in example")
    if not (text or "").strip():
        raise InputError("type where the sound is, e.g. 'on the far right' or "
                         "'moves from the left to the right'")
    out, truth_path = out_dir / "binaural.wav", out_dir / "truth.json"
    progress(0.1, "spatializing")
    run_command(["spatialize", mono_path, "--text", text.strip(), "-o", out,
                 "--truth", truth_path])
    progress(0.6, "analysing the result")
    truth = json.loads(truth_path.read_text())
    traj = plot_trajectories(truth, out_dir / "trajectory.png")
    analysis = analyze_file(out)
    cues = plot_analysis(analysis, out_dir / "cues.png")
    lines = [f"- heard **{s['position']}**, {s['motion'].replace('_', ' ')} "
             f"(mean azimuth {s['mean_azimuth_deg']:+.0f} deg)" for s in analysis["sources"]]
    progress(1.0, "done")
    return Spatialized(binaural=out, trajectory_plot=traj, cue_plot=cues,
                       summary="\n".join(lines) or "no source found in the result")


# --------------------------------------------------------------------------- evaluate
@dataclass
class Evaluation:
    report_json: Path
    plot: Path
    report: dict
    summary: str


def evaluate(
    audio_path: str | Path | None,
    video_path: str | Path | None,
    out_dir: Path,
    *,
    layout_path: str | Path | None = None,
    progress: Progress = _no_progress,
) -> Evaluation:
    """``spa2v eval``: does the video show each sound where it is heard?"""
    if not audio_path:
        raise InputError("upload the spatial recording (binaural, stereo or FOA)")
    if not video_path:
        raise InputError("upload the video to check against the recording")
    report_path, plot = out_dir / "report.json", out_dir / "alignment.png"
    argv = ["eval", "--audio", audio_path, "--video", video_path, "--json", report_path,
            "--plot", plot]
    if layout_path:
        argv += ["--layout", layout_path]
    progress(0.1, "tracking the sounds and the objects in the picture")
    run_command(argv)
    report = json.loads(report_path.read_text())
    progress(1.0, "done")
    return Evaluation(report_json=report_path, plot=plot, report=report,
                      summary=summarize_report(report))


def summarize_report(report: dict) -> str:
    """The verdict and its threshold in a line of Markdown, then one line per matched pair."""
    verdict = "**aligned**" if report.get("aligned") else "**not aligned**"
    thr = report.get("threshold") or report.get("thresholds")
    head = f"{verdict}" + (f" (threshold: {thr})" if thr is not None else "")
    lines = [head]
    for pair in report.get("pairs", []):
        bits = [f"{k.replace('_', ' ')} {v:.2f}" if isinstance(v, float) else
                f"{k.replace('_', ' ')} {v}" for k, v in pair.items()
                if isinstance(v, int | float | str | bool) and k not in ("audio_id", "video_id")]
        lines.append("- " + ", ".join(bits))
    return "\n".join(lines)
