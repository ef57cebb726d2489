"""Plots shared by the CLI and the demo (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spa2v._typing import PathType
from spa2v.fsutil import atomic_output

COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4"]


def _figure(rows: int, height: float = 2.4):
    """A figure of ``rows`` stacked axes sharing x.

    The figure is a plain ``Figure`` with an Agg canvas, not one of pyplot's (pyplot's
    global state is not thread-safe and the demo plots from several worker threads);
    ``plt.close(fig)`` on it is a harmless no-op.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, height * rows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)
    return plt, fig, axes[:, 0]


def plot_analysis(analysis: dict, path: PathType, *, overwrite: bool = False) -> Path:
    """Azimuth over time per source (active frames) and loudness, as a PNG."""
    has_el = any(s.get("elevation_deg") is not None for s in analysis["sources"])
    plt, fig, axes = _figure(3 if has_el else 2)
    ax = axes[0]
    for s in analysis["sources"]:
        t = np.asarray(s["times"], dtype=float)
        az = np.asarray(s["azimuth_deg"], dtype=float)
        act = np.asarray(s["active"], dtype=bool)
        c = COLORS[s["id"] % len(COLORS)]
        ax.plot(t, np.where(act, az, np.nan), color=c, lw=2,
                label=f"source {s['id']}: {s['position']}, {s['motion']}")
        ax.plot(t, az, color=c, lw=0.7, alpha=0.3)
        if has_el and s.get("elevation_deg") is not None:
            el = np.asarray(s["elevation_deg"], dtype=float)
            axes[1].plot(t, np.where(act, el, np.nan), color=c, lw=2)
        axes[-1].plot(t, s["loudness_db"], color=c, lw=1.5)
    lim = 180 if analysis["format"] == "foa" else 90
    ax.set_ylim(-lim, lim)
    ax.axhspan(-15, 15, color="0.9", zorder=0)
    ax.set_ylabel("azimuth (deg)\n+ = left")
    ax.set_title(f"{analysis['input']}: {analysis['format']}, {len(analysis['sources'])} source(s)")
    if analysis["sources"]:
        ax.legend(loc="upper right", fontsize=8)
    if has_el:
        axes[1].set_ylabel("elevation (deg)")
        axes[1].set_ylim(-90, 90)
    cue = analysis.get("cues", {})
    if "loudness_db" in cue:
        axes[-1].plot(cue["times"], cue["loudness_db"], color="0.5", lw=1, label="mix")
        axes[-1].legend(loc="upper right", fontsize=8)
    axes[-1].set_ylabel("loudness (dBFS)")
    axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    with atomic_output(path, overwrite) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return Path(path)


def plot_trajectories(truth: dict, path: PathType, *, overwrite: bool = False) -> Path:
    """Azimuth, elevation and distance over time of each source of a ground truth
    (:func:`spa2v.simulate.scene_truth`), as a PNG."""
    plt, fig, axes = _figure(3, height=2.0)
    for i, s in enumerate(truth["sources"]):
        c = COLORS[i % len(COLORS)]
        t = np.asarray(s["times"], dtype=float)
        axes[0].plot(t, s["azimuth_deg"], color=c, lw=2,
                     label=f"{s.get('name', f'source {i}')}: {s['position']}, {s['motion']}")
        axes[1].plot(t, s["elevation_deg"], color=c, lw=2)
        axes[2].plot(t, s["distance_m"], color=c, lw=2)
    axes[0].set_ylim(-180, 180)
    axes[0].set_yticks([-180, -90, 0, 90, 180])
    axes[0].axhspan(-15, 15, color="0.9", zorder=0)
    axes[0].set_ylabel("azimuth (deg)\n+ = left")
    axes[0].set_title(f"trajectories ({truth.get('format', '')})")
    if truth["sources"]:
        axes[0].legend(loc="upper right", fontsize=8)
    axes[1].set_ylim(-90, 90)
    axes[1].set_ylabel("elevation (deg)")
    axes[2].set_ylabel("distance (m)")
    axes[2].set_ylim(bottom=0)
    axes[2].set_xlabel("time (s)")
    fig.tight_layout()
    with atomic_output(path, overwrite) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return Path(path)


def plot_alignment(report: dict, path: PathType, *, overwrite: bool = False,
                   title: str | None = None) -> Path:
    """Audio (solid) and picture (dashed) azimuth over time for each pair, as a PNG.

    ``report`` must come from :func:`spa2v.evaluate.evaluate_alignment` with
    ``with_series=True``.
    """
    plt, fig, axes = _figure(1, height=3.2)
    ax = axes[0]
    for k, s in enumerate(report.get("series", [])):
        c = COLORS[k % len(COLORS)]
        pair = next((p for p in report["pairs"] if p["audio_source"] == s["audio_source"]), {})
        err = pair.get("mean_azimuth_error_deg")
        ax.plot(s["times"], s["audio_azimuth_deg"], color=c, lw=2,
                label=f"audio source {s['audio_source']}")
        ax.plot(s["times"], s["video_azimuth_deg"], color=c, lw=2, ls="--",
                label=f"picture track {s['visual_track']}"
                      + (f" (mean error {err:.1f} deg)" if err is not None else ""))
    ax.set_ylim(-90, 90)
    ax.axhspan(-15, 15, color="0.9", zorder=0)
    ax.set_ylabel("azimuth (deg)\n+ = left")
    ax.set_xlabel("time (s)")
    verdict = "aligned" if report["aligned"] else "not aligned"
    ax.set_title((title + ": " if title else "") + verdict
                 + f" (threshold {report['threshold']['max_mean_azimuth_error_deg']:g} deg)")
    if report.get("series"):
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    with atomic_output(path, overwrite) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return Path(path)
