"""Cost and effect of the layout guidance modes of the diffusion sampler.

For each model and each mode (``none``, ``mask``, ``energy``) on the same layout and
seed: wall time and peak memory of one ``LayoutSampler.sample`` call (text encoding,
denoising, VAE decoding; not model loading), relative to ``none`` on the same model, and
the in-box attention share (each object's share of its tokens' cross-attention inside its
boxes, averaged over frames, tokens, guided layers and the first ``guidance_steps``
steps, then over objects). Prints one JSON line per model and mode::

    {"mode": "energy", "time_ratio": 1.6, "memory_ratio": 1.1, "memory_ratio_warm": 1.2,
     "in_box_share": 0.52, "in_box_share_none": 0.27, "model": "tiny", ...}

How it measures: every mode runs in its own fresh subprocess (so no mode inherits
another's allocator state), ``--rounds`` times, the modes in a rotated order each round
(so that a slow spell of a shared machine does not always hit the same mode). In each
process, call 1 gives the peak memory of a first call (``memory_ratio``), call 2 that of
a warm call (``memory_ratio_warm``: what call 1 left allocated - caches, lazily built
kernels - is below its baseline, so the ratio of the sampling itself is higher): on
CUDA, ``torch.cuda.max_memory_allocated()`` above what was allocated before the call; on
the CPU, the bytes that glibc's allocator has handed out (``mallinfo2``; the resident
set size without glibc) above their value just before the call, sampled every
millisecond. The ``--repeat`` calls after them give the time, without the sampler of
memory. Ratios use the fastest time over the rounds and the median peaks;
``time_ratio_rounds`` lists each round's ratio to that round's ``none``.
``cpu_time_ratio`` compares the process's CPU time instead (with ``--threads 1``, the
wall time the run would take on an idle core: steadier on a shared machine). The sampler
runs at its defaults (40 steps, guidance in the first 10, up to 5 energy iterations,
background weight 4) unless told otherwise; ``--modes`` adds variants of ``energy``:
``energy:POLICY`` (a recompute policy), ``energy:plain-attention`` (without the lean
attention layers), or both joined by ``+``.

Models: the ``tiny`` presets every test uses (three resolution levels), or the ``tiny4``
presets (``--model tiny4,tiny4-animatediff``): the four levels and block types of
ModelScope (Stable Diffusion 1.5 for AnimateDiff), at 64 x 64 pixels the latent grid of
ModelScope at 256 x 256, so the guidance pass stops where it does in a real model; or
checkpoint directories.

Run: ``python benchmarks/guidance.py [--model tiny,tiny-animatediff] [--size 64x64]
[--frames 8] [--steps 40] [--threads 1] [--rounds 2] [--repeat 1]``
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

MODES = ("none", "mask", "energy")


def benchmark_layout() -> dict:
    """A car crossing the lower half left to right and a bird still at the top right."""
    frames = []
    for k in range(5):
        x = 0.05 + 0.45 * k / 4
        frames.append(
            {
                "t": 0.5 * k,
                "caption": f"The car is {'on the left' if x < 0.3 else 'in the center'}.",
                "boxes": [
                    {"id": 0, "box": [x, 0.5, x + 0.45, 0.95]},
                    {"id": 1, "box": [0.65, 0.08, 0.95, 0.4]},
                ],
            }
        )
    return {
        "version": 1,
        "duration": 2.5,
        "fps": 2,
        "caption": "A car drives from the left to the center while a bird sings on the right.",
        "objects": [{"id": 0, "name": "car"}, {"id": 1, "name": "bird"}],
        "frames": frames,
    }


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _malloc_in_use() -> Callable[[], int] | None:
    """glibc's bytes in use (``mallinfo2``: ``uordblks + hblkhd``), or None elsewhere."""
    try:
        libc = ctypes.CDLL(None)
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2

    def in_use() -> int:
        info = fn()
        return int(info.uordblks + info.hblkhd)

    return in_use


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak CPU memory (bytes) above its value at start, sampled every millisecond.

    It reads what glibc's allocator has handed out (``mallinfo2``), which is what torch's
    CPU tensors and numpy arrays live in; unlike the resident set size it does not count
    freed memory that the allocator keeps. Without glibc it falls back to the resident
    set size (``/proc/self/statm``), and without /proc to ``ru_maxrss``.
    """

    def __init__(self, interval_s: float = 0.001) -> None:
        self.interval_s = interval_s
        self.read = _malloc_in_use()
        self.method = "mallinfo2"
        if self.read is None and Path("/proc/self/statm").exists():
            self.read, self.method = _rss, "rss"
        if self.read is None:
            self.method = "ru_maxrss"
        self.base = self.peak = 0
        self._stop = threading.Event()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.read())
            time.sleep(self.interval_s)

    def __enter__(self) -> PeakMemory:
        if self.read is None:
            self.base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            return self
        self.base = self.peak = self.read()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.read is None:
            self.peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            return
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.read())

    @property
    def delta(self) -> int:
        return max(0, self.peak - self.base)


def worker(args: argparse.Namespace) -> dict:
    """One mode of one model in this process: returns its figures.

    Call 1 measures the peak memory of a first call, call 2 that of a warm one (memory
    that call 1 left allocated, such as caches, is below its baseline); the ``--repeat``
    calls after them are timed, without the memory poller (whose ``mallinfo2`` calls
    would slow them)."""
    import torch

    from generators.video.diffusion.loading import load_components, pick_device, torch_dtype
    from generators.video.diffusion.sampler import LayoutSampler, SamplerConfig
    from spa2v.layout import layout_from_dict

    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    dtype = torch_dtype(args.dtype, device)
    sampler = LayoutSampler(load_components(args.model, dtype=dtype), device=device, dtype=dtype)
    layout = layout_from_dict(benchmark_layout())
    width, height = (int(v) for v in args.size.lower().split("x"))
    guidance, _, options = args.worker.partition(":")
    config = SamplerConfig(
        guidance=guidance, steps=args.steps, num_frames=args.frames, size_px=(width, height)
    )
    for option in filter(None, options.split("+")):
        if option == "plain-attention":
            config.lean_attention = False
        else:
            config.recompute = option
    cuda = torch.device(device).type == "cuda"

    def call():
        if cuda:
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        out = sampler.sample(layout, config, seed=args.seed)
        if cuda:
            torch.cuda.synchronize()
        return out, time.perf_counter() - t0, time.process_time() - c0

    peaks = []
    for _ in range(2):
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            out, wall, cpu = call()
            peaks.append(torch.cuda.max_memory_allocated() - base)
        else:
            with PeakMemory() as meter:
                out, wall, cpu = call()
            peaks.append(meter.delta)
    times, cpu_times = [], []
    for _ in range(max(1, args.repeat)):
        out, wall, cpu = call()
        times.append(wall)
        cpu_times.append(cpu)
    return {
        "mode": args.worker,
        "time_s": min(times),
        "cpu_s": min(cpu_times),
        "peak_bytes": int(peaks[0]),
        "peak_bytes_warm": int(peaks[1]),
        "in_box_share_per_object": [round(float(v), 4) for v in out.in_box_share],
        "energy_iterations": int(sum(len(e) for e in out.energies)),
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
    }


def _run_worker(model: str, mode: str, forwarded: list[str], env: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, f"--worker={mode}", f"--model={model}", *forwarded],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"{model} {mode}: worker failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        default="tiny,tiny-animatediff",
        help="comma-separated: tiny (UNet3D), tiny-animatediff, tiny4, tiny4-animatediff "
        "(four resolution levels, as the real models) or checkpoint directories",
    )
    parser.add_argument("--size", default="64x64", help="sampler size WxH (default 64x64)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=2, help="processes per mode (see above)")
    parser.add_argument("--repeat", type=int, default=1, help="timed calls per process")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None)
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help="comma-separated; energy:none, energy:light, energy:temporal, energy:full pick "
        "the recompute policy, energy:plain-attention turns the lean attention off "
        "(energy:light+plain-attention: both)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    modes = [m for m in args.modes.split(",") if m]
    if "none" not in modes:
        modes.insert(0, "none")
    forwarded = [
        f"--{k}={v}"
        for k, v in vars(args).items()
        if k not in ("worker", "modes", "model", "rounds") and v is not None
    ]
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for model in [m for m in args.model.split(",") if m]:
        rounds: list[dict[str, dict]] = []
        for r in range(max(1, args.rounds)):
            order = modes[r % len(modes) :] + modes[: r % len(modes)]
            rounds.append({mode: _run_worker(model, mode, forwarded, env) for mode in order})
        for line in summarize(rounds, modes):
            line.update(model=model, size=args.size, frames=args.frames, steps=args.steps)
            print(json.dumps(line), flush=True)


def summarize(rounds: list[dict[str, dict]], modes: list[str]) -> list[dict]:
    """One line per mode: the fastest time over the rounds, the median peaks, ratios to
    ``none``'s, and each round's time ratio to that round's ``none``."""

    def best(mode: str, key: str) -> float:
        return min(r[mode][key] for r in rounds)

    def median(mode: str, key: str) -> float:
        return float(np.median([r[mode][key] for r in rounds]))

    share_none = float(np.nanmean(rounds[0]["none"]["in_box_share_per_object"]))
    lines = []
    for mode in modes:
        last = rounds[-1][mode]
        lines.append(
            {
                "mode": mode,
                "time_ratio": round(best(mode, "time_s") / best("none", "time_s"), 3),
                "cpu_time_ratio": round(best(mode, "cpu_s") / best("none", "cpu_s"), 3),
                "memory_ratio": round(
                    median(mode, "peak_bytes") / max(median("none", "peak_bytes"), 1), 3
                ),
                "memory_ratio_warm": round(
                    median(mode, "peak_bytes_warm") / max(median("none", "peak_bytes_warm"), 1),
                    3,
                ),
                "in_box_share": round(float(np.nanmean(last["in_box_share_per_object"])), 4),
                "in_box_share_none": round(share_none, 4),
                "time_ratio_rounds": [
                    round(r[mode]["time_s"] / r["none"]["time_s"], 3) for r in rounds
                ],
                "cpu_time_ratio_rounds": [
                    round(r[mode]["cpu_s"] / r["none"]["cpu_s"], 3) for r in rounds
                ],
                "time_s": round(best(mode, "time_s"), 3),
                "cpu_s": round(best(mode, "cpu_s"), 3),
                "peak_mib": round(median(mode, "peak_bytes") / 2**20, 1),
                "peak_mib_warm": round(median(mode, "peak_bytes_warm") / 2**20, 1),
                "in_box_share_per_object": last["in_box_share_per_object"],
                "energy_iterations": last["energy_iterations"],
                "device": last["device"],
                "dtype": last["dtype"],
            }
        )
    return lines


if __name__ == "__main__":
    main()
