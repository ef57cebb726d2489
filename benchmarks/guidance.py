"""Cost and effect of the layout guidance modes of the diffusion sampler.

For each mode (``none``, ``mask``, ``energy``) on the same model, layout and seed: wall
time and peak memory of one ``LayoutSampler.sample`` call (text encoding, denoising,
VAE decoding; not model loading), relative to ``none``, and the in-box attention share
(each object's share of its tokens' cross-attention inside its boxes, averaged over
frames, tokens, guided layers and the first ``guidance_steps`` steps, then over objects).
Prints one JSON line per mode::

    {"mode": "energy", "time_ratio": 1.6, "memory_ratio": 1.1,
     "in_box_share": 0.52, "in_box_share_none": 0.27, ...}

How it measures: every mode runs in its own fresh subprocess (so no mode inherits
another's allocator state). Run 1 gives the peak memory: on CUDA,
``torch.cuda.max_memory_allocated()`` above what was allocated before the call; on the
CPU (whose allocator tracemalloc cannot see), the peak resident set size above the one
just before the call, sampled every millisecond from ``/proc/self/statm`` (``ru_maxrss``
where there is no /proc). Later runs give the time (the fastest; with ``--repeat 1``,
run 1's). ``cpu_time_ratio`` compares the process's CPU time instead (with ``--threads
1``, the wall time the run would take on an idle core: steadier on a shared machine).
The sampler runs at its defaults (40 steps, guidance in the first 10, up to 5
energy iterations, background weight 4) unless told otherwise.

Run: ``python benchmarks/guidance.py --model tiny [--size 64x64] [--frames 8]
[--steps 40] [--threads 1] [--repeat 2]``
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
    """One mode in this process: returns its figures."""
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
    guidance, _, recompute = args.worker.partition(":")
    config = SamplerConfig(
        guidance=guidance, steps=args.steps, num_frames=args.frames, size_px=(width, height)
    )
    if recompute:
        config.recompute = recompute
    cuda = torch.device(device).type == "cuda"
    times, cpu_times, peak, out = [], [], 0, None
    for run in range(max(1, args.repeat)):
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        meter = PeakMemory() if run == 0 and not cuda else None
        t0, c0 = time.perf_counter(), time.process_time()
        if meter is not None:
            with meter:
                out = sampler.sample(layout, config, seed=args.seed)
        else:
            out = sampler.sample(layout, config, seed=args.seed)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
        if run == 0:
            peak = torch.cuda.max_memory_allocated() - base if cuda else meter.delta
    first = 1 if len(times) > 1 else 0
    return {
        "mode": args.worker,
        "time_s": min(times[first:]),
        "cpu_s": min(cpu_times[first:]),
        "peak_bytes": int(peak),
        "in_box_share_per_object": [round(float(v), 4) for v in out.in_box_share],
        "energy_iterations": int(sum(len(e) for e in out.energies)),
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="tiny, tiny-animatediff or a directory")
    parser.add_argument("--size", default="64x64", help="sampler size WxH (default 64x64)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=2, help="runs per mode (see above)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None)
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help="comma-separated; energy:none, energy:light, energy:full pick the recompute policy",
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
        if k not in ("worker", "modes") and v is not None
    ]
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    results = {}
    for mode in modes:
        proc = subprocess.run(
            [sys.executable, __file__, f"--worker={mode}", *forwarded],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if proc.returncode != 0:
            sys.exit(f"{mode}: worker failed:\n{proc.stderr[-2000:]}")
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    base = results["none"]
    share_none = float(np.nanmean(base["in_box_share_per_object"]))
    for mode in modes:
        r = results[mode]
        print(
            json.dumps(
                {
                    "mode": mode,
                    "time_ratio": round(r["time_s"] / base["time_s"], 3),
                    "cpu_time_ratio": round(r["cpu_s"] / base["cpu_s"], 3),
                    "memory_ratio": round(r["peak_bytes"] / max(base["peak_bytes"], 1), 3),
                    "in_box_share": round(float(np.nanmean(r["in_box_share_per_object"])), 4),
                    "in_box_share_none": round(share_none, 4),
                    "time_s": round(r["time_s"], 3),
                    "cpu_s": round(r["cpu_s"], 3),
                    "peak_mib": round(r["peak_bytes"] / 2**20, 1),
                    "in_box_share_per_object": r["in_box_share_per_object"],
                    "energy_iterations": r["energy_iterations"],
                    "model": args.model,
                    "size": args.size,
                    "frames": args.frames,
                    "steps": args.steps,
                    "device": r["device"],
                    "dtype": r["dtype"],
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
