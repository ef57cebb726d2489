"""``spa2v simulate``: render a scene with known ground truth."""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import numpy as np

from spa2v.errors import InputError
from spa2v.fsutil import atomic_output, check_output

NAME = "simulate"
HELP = "render a moving or static source to binaural or FOA audio with its ground truth"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from spa2v.sources import SOURCE_NAMES

    p.add_argument("-o", "--output", required=True, metavar="OUT.wav", help="audio to write")
    p.add_argument("--format", required=True, choices=("binaural", "foa"),
                   help="binaural (left, right) or first-order Ambisonics (AmbiX W, Y, Z, X)")
    p.add_argument("--source", default="noise", metavar="NAME|FILE",
                   help=f"a built-in source ({', '.join(SOURCE_NAMES)}), a sound class such as "
                        "'car' or 'dog', or a mono/multichannel audio file (downmixed, looped "
                        "or trimmed to the duration); default noise")
    p.add_argument("--azimuth", type=float, default=0.0, metavar="DEG",
                   help="start azimuth: 0 front, +90 left, -90 right (default 0)")
    p.add_argument("--to-azimuth", type=float, default=None, metavar="DEG",
                   help="end azimuth; the source sweeps along the shorter way round "
                        "(through the numeric midpoint when exactly opposite)")
    p.add_argument("--elevation", type=float, default=0.0, metavar="DEG", help="default 0")
    p.add_argument("--distance", type=float, default=2.0, metavar="M", help="default 2 m")
    p.add_argument("--to-distance", type=float, default=None, metavar="M",
                   help="end distance (approaching or receding)")
    p.add_argument("--trajectory", default=None, metavar="TEXT",
                   help="keyframes 'az,el,dist@t; az,el,dist@t' instead of the options above")
    p.add_argument("--duration", type=float, default=4.0, metavar="S", help="default 4 s")
    p.add_argument("--reverb", type=float, default=None, metavar="RT60_S",
                   help="add a room with this reverberation time in seconds")
    p.add_argument("--snr", type=float, default=None, metavar="DB",
                   help="add diffuse pink background noise at this signal-to-noise ratio")
    p.add_argument("--hrtf", default=None, metavar="FILE.sofa",
                   help="measured HRTFs for binaural output (default: spherical head model)")
    p.add_argument("--sample-rate", type=int, default=48000, metavar="HZ", help="default 48000")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed of the built-in source, the reverb tail and the noise")
    p.add_argument("--truth", default=None, metavar="OUT.json", help="write the ground truth here")


def _finite(name: str, value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value}")


def _check_args(args: argparse.Namespace) -> None:
    for name in ("azimuth", "to_azimuth", "elevation", "distance", "to_distance", "duration",
                 "reverb", "snr"):
        _finite("--" + name.replace("_", "-"), getattr(args, name))
    if not 0.0 < args.duration <= 3600.0:
        raise InputError(f"--duration must be in (0, 3600] seconds, got {args.duration}")
    for name in ("distance", "to_distance"):
        v = getattr(args, name)
        if v is not None and not v > 0:
            raise InputError(f"--{name.replace('_', '-')} must be positive, got {v}")
    if not -90.0 <= args.elevation <= 90.0:
        raise InputError(f"--elevation must be within [-90, 90], got {args.elevation}")
    if args.reverb is not None and not 0.05 <= args.reverb <= 10.0:
        raise InputError(f"--reverb (RT60) must be within [0.05, 10] seconds, got {args.reverb}")
    if not 8000 <= args.sample_rate <= 192000:
        raise InputError(f"--sample-rate must be within [8000, 192000] Hz, got {args.sample_rate}")
    if args.hrtf is not None and args.format != "binaural":
        raise InputError("--hrtf applies to binaural output only")
    if Path(args.output).suffix.lower() != ".wav":
        raise InputError("output must be a .wav file", args.output)


def _trajectory(args: argparse.Namespace):
    from spa2v.simulate import Keyframe, Trajectory

    if args.trajectory is not None:
        return Trajectory.parse(args.trajectory)
    start = Keyframe(0.0, args.azimuth, args.elevation, args.distance)
    if args.to_azimuth is None and args.to_distance is None:
        return Trajectory((start,))
    az1 = args.azimuth if args.to_azimuth is None else args.to_azimuth
    r1 = args.distance if args.to_distance is None else args.to_distance
    end = Keyframe(args.duration, az1, args.elevation, r1)
    mid = []
    if abs(((az1 - args.azimuth) + 180.0) % 360.0 - 180.0) == 180.0:  # opposite: say which way
        mid = [Keyframe(args.duration / 2, (args.azimuth + az1) / 2, args.elevation,
                        (args.distance + r1) / 2)]
    return Trajectory((start, *mid, end))


def load_source(spec: str, *, duration_s: float, sr: int, seed: int) -> tuple[np.ndarray, str]:
    """A mono signal of exactly ``duration_s`` from a built-in name, a class name or a file."""
    from spa2v.classes import GENERIC, lookup
    from spa2v.sources import SOURCE_NAMES, make_source

    n = int(round(duration_s * sr))
    path = Path(spec)
    if path.exists():
        from spa2v.audio import read_audio

        y, _ = read_audio(path, sr=sr, mono=True)
        y = y[0]
        if not np.any(y):
            raise InputError("is silent", path)
        reps = -(-n // len(y))
        return np.tile(y, reps)[:n].astype(np.float32), path.stem
    key = spec.strip().lower()
    if key in SOURCE_NAMES:
        return make_source(key, duration_s=duration_s, sr=sr, seed=seed), key
    cls = lookup(key)
    if cls is not GENERIC or key in GENERIC.synonyms:
        return make_source(cls.source, duration_s=duration_s, sr=sr, seed=seed), cls.name
    if path.suffix or "/" in spec or "\\" in spec:
        raise InputError("no such file", path)
    raise InputError(f"unknown source {spec!r}: not a file, a built-in source "
                     f"({', '.join(SOURCE_NAMES)}) or a sound class")


_NUMBER_LIST = re.compile(r"\[(\s*(?:-?[0-9.eE+-]+|true|false|null)(?:,\s*(?:-?[0-9.eE+-]+|true|false|null))*\s*)\]")


def dumps_truth(truth: dict) -> str:
    """Indented JSON with every list of numbers on one line."""
    text = json.dumps(truth, indent=1)
    return _NUMBER_LIST.sub(lambda m: "[" + ", ".join(m.group(1).split()).replace(",,", ",") + "]",
                            text)


def write_outputs(args: argparse.Namespace, sim, inputs: list[str]) -> None:
    """``args.output``'s audio, then ``args.truth``'s ground truth when asked for; no
    half-written result set on failure (shared by the audio-making commands)."""
    from spa2v.audio import write_wav

    out = Path(args.output)
    write_wav(out, sim.audio, sim.sr, overwrite=args.overwrite, inputs=tuple(inputs))
    if args.truth is not None:
        try:
            with atomic_output(args.truth, args.overwrite, inputs=inputs) as tmp:
                tmp.write_text(dumps_truth(sim.truth) + "\n")
        except BaseException:
            out.unlink(missing_ok=True)
            raise


def run(args: argparse.Namespace) -> int:
    from spa2v.hrtf import SofaHrtf
    from spa2v.simulate import SceneSource, simulate_scene

    _check_args(args)
    out = Path(args.output)
    inputs = [p for p in (args.source, args.hrtf) if p is not None and Path(p).exists()]
    check_output(out, overwrite=args.overwrite, inputs=inputs)
    if args.truth is not None:
        if Path(args.truth).resolve() == out.resolve():
            raise InputError("--truth and --output name the same file", args.truth)
        check_output(args.truth, overwrite=args.overwrite, inputs=inputs)

    traj = _trajectory(args)
    signal, name = load_source(args.source, duration_s=args.duration, sr=args.sample_rate,
                               seed=args.seed)
    head = SofaHrtf.from_file(args.hrtf, args.sample_rate) if args.hrtf else None
    sim = simulate_scene([SceneSource(signal, traj, name=name)], fmt=args.format,
                         sr=args.sample_rate, duration_s=args.duration, head=head,
                         rt60_s=args.reverb, noise_snr_db=args.snr, seed=args.seed)
    sim.truth["sources"][0]["signal"] = str(args.source)
    write_outputs(args, sim, inputs)
    if not getattr(args, "quiet", False):
        s = sim.truth["sources"][0]
        print(f"wrote {out} ({args.format}, {sim.audio.shape[0]} channels, {args.duration:g} s, "
              f"{sim.sr} Hz): {name} {s['position']}, {s['motion']}"
              + (f"; truth {args.truth}" if args.truth else ""))
    return 0
