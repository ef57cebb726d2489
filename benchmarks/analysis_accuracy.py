"""Accuracy and speed of ``spa2v analyze`` on scenes with known ground truth.

Binaural scenes are rendered through the measured KEMAR head in ../shared/data (a head
the analysis is not calibrated on: it uses the spherical-head model), FOA scenes through
the real concert-hall response rotated to many azimuths.  Prints one JSON line per figure
and a last line (``"bench": "targets"``) that sets each figure measured in the run against
the issue's target.

    python benchmarks/analysis_accuracy.py [--quick] [--only motion --motion-reps 10]

The motion figure is over two renderings of each case (its seeds fixed since it was
first reported); ``--motion-reps`` renders up to ten (the first two the same), which shows
how far that figure holds on other talkers, notes and noises; ``--only library`` labels
the motion of every sound in the source library (not one of the issue's figures, and not
in the default run).  The two-source run also measures a known limitation (not with
``--quick``): the second source 3, 6 and 9 dB under the first.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy.signal import fftconvolve  # noqa: E402

from spa2v import cues, tracking  # noqa: E402
from spa2v.analysis import analyze_array  # noqa: E402
from spa2v.audio import read_audio, resample  # noqa: E402
from spa2v.conventions import angle_diff_deg, n3d_to_sn3d, position_label  # noqa: E402
from spa2v.hrtf import SofaHrtf  # noqa: E402
from spa2v.simulate import Keyframe, SceneSource, Trajectory, simulate_scene  # noqa: E402
from spa2v.sources import SOURCE_NAMES, make_source  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SR = 48000


EMITTED: list[dict] = []


def emit(**kw):
    EMITTED.append(kw)
    print(json.dumps(kw), flush=True)


# the issue's targets: (bench, the rows' rt60_s (None: anechoic) or "any", field, "<=" or
# ">=", value)
TARGETS = [
    ("static_binaural_kemar", None, "mean_err_deg_abs_le_60", "<=", 3.0),
    ("static_binaural_kemar", 0.5, "mean_err_deg_abs_le_60", "<=", 6.0),
    ("static_binaural_kemar", "any", "mean_err_deg_60_to_80", "<=", 8.0),
    ("static_binaural_kemar", "any", "position_accuracy", ">=", 0.98),
    ("motion_binaural_kemar", "any", "motion_accuracy", ">=", 0.97),
    ("panned_stereo", "any", "position_accuracy", ">=", 0.98),
    ("two_sources_binaural_kemar", "any", "both_within_8deg", ">=", 0.90),
    ("foa_real_hall", "any", "mean_az_err_deg", "<=", 4.0),
    ("foa_real_hall", "any", "mean_el_err_deg", "<=", 6.0),
    ("speed", "any", "binaural_realtime_factor", ">=", 1000.0),
    ("speed", "any", "speedup_vs_baseline", ">=", 5.0),
]


def target_summary(emitted: list[dict]) -> dict:
    """Each target of the figures measured in this run: the figure, the target, met."""
    out = {}
    for bench, rt60, field, op, goal in TARGETS:
        for row in emitted:
            if row.get("bench") != bench or (rt60 != "any" and row.get("rt60_s") != rt60):
                continue
            v = row.get(field)
            if v is None:
                continue
            name = f"{bench}.{field}" + (f"[rt60 {row.get('rt60_s')}]" if "rt60_s" in row else "")
            out[name] = {"value": v, "target": f"{op} {goal}",
                         "met": bool(v <= goal if op == "<=" else v >= goal)}
    return out


def source_signal(name: str, dur: float, seed: int, piano: np.ndarray) -> np.ndarray:
    if name == "piano":
        start = (seed * 12345) % max(1, piano.size - int(dur * SR))
        return piano[start : start + int(dur * SR)]
    return make_source(name, duration_s=dur, sr=SR, seed=seed)


def nearest_errors(est_az, true_az) -> list[float]:
    """Each true azimuth's error to the nearest azimuth found (180 where none is)."""
    return [min((frontal_error(x, a) for x in est_az), default=180.0) for a in true_az]


def frontal_error(est: float, true: float) -> float:
    """Azimuth error with front/back folding allowed (binaural cannot tell them apart)."""
    e = abs(float(angle_diff_deg(est, true)))
    folded = abs(float(angle_diff_deg(est, 180.0 - true)))
    return min(e, folded)


def scene_sources(srcs, trajs, *, dur, seed, piano, gains_db=None) -> list[SceneSource]:
    """The sources of a benchmark scene (the ``i``-th one's signal from ``seed + 7 i``)."""
    gains_db = gains_db or [0.0] * len(srcs)
    return [SceneSource(source_signal(n, dur, seed + 7 * i, piano), t, name=n, gain_db=g)
            for i, (n, t, g) in enumerate(zip(srcs, trajs, gains_db, strict=True))]


def run_scene(srcs, trajs, *, head, rt60, dur, seed, piano, fmt="binaural", gains_db=None):
    ss = scene_sources(srcs, trajs, dur=dur, seed=seed, piano=piano, gains_db=gains_db)
    sim = simulate_scene(ss, fmt=fmt, sr=SR, duration_s=dur, head=head, rt60_s=rt60,
                         noise_snr_db=20.0, seed=seed)
    return sim, analyze_array(sim.audio, SR, fmt)


def bench_static(head, piano, quick):
    azs = np.arange(-80, 81, 20 if quick else 10)
    sources = ["noise", "engine", "babble", "piano"]
    rows = []
    for rt60 in (None, 0.5):
        for i, az in enumerate(azs):
            for j, src in enumerate(sources):
                seed = 100 * i + j
                sim, an = run_scene([src], [Trajectory.static(float(az), 0.0, 2.5)], head=head,
                                    rt60=rt60, dur=2.0, seed=seed, piano=piano)
                truth = sim.truth["sources"][0]
                est = an["sources"][0] if an["sources"] else None
                err = frontal_error(est["mean_azimuth_deg"], az) if est else 180.0
                rows.append(dict(az=float(az), src=src, rt60=rt60, err=err,
                                 pos_ok=bool(est and est["position"] == truth["position"]),
                                 motion_ok=bool(est and est["motion"] == "static"),
                                 n_sources=len(an["sources"])))
    for rt60 in (None, 0.5):
        sel = [r for r in rows if r["rt60"] == rt60]
        inner = [r["err"] for r in sel if abs(r["az"]) <= 60]
        outer = [r["err"] for r in sel if 60 < abs(r["az"]) <= 80]
        emit(bench="static_binaural_kemar", rt60_s=rt60, scenes=len(sel),
             mean_err_deg_abs_le_60=round(float(np.mean(inner)), 2),
             mean_err_deg_60_to_80=round(float(np.mean(outer)), 2) if outer else None,
             position_accuracy=round(float(np.mean([r["pos_ok"] for r in sel])), 4),
             # false alarms: a lone source reported with a second one beside it
             scenes_with_extra_sources=sum(r["n_sources"] > 1 for r in sel),
             per_source={s: round(float(np.mean([r["err"] for r in sel if r["src"] == s
                                                  and abs(r["az"]) <= 60])), 2)
                         for s in ("noise", "engine", "babble", "piano")})
    return rows


def bench_motion(head, piano, quick, reps=2):
    cases = {
        "left_to_right": lambda a: [Keyframe(0, 60 + a, 0, 4), Keyframe(4, -60 + a, 0, 4)],
        "right_to_left": lambda a: [Keyframe(0, -60 + a, 0, 4), Keyframe(4, 60 + a, 0, 4)],
        "approaching": lambda a: [Keyframe(0, 25 + a, 0, 8), Keyframe(4, 25 + a, 0, 2)],
        "receding": lambda a: [Keyframe(0, -25 + a, 0, 2), Keyframe(4, -25 + a, 0, 8)],
        "static": lambda a: [Keyframe(0, 35 + a, 0, 3)],
    }
    rows = []
    for rt60 in (None, 0.5):
        for k, (label, make) in enumerate(cases.items()):
            for j, src in enumerate(["noise", "engine", "babble", "piano"]):
                for rep in range(1 if quick else reps):
                    seed = 1000 + 50 * k + 10 * j + rep  # (reps <= 10: seeds stay apart)
                    offset = float(np.random.default_rng(seed).uniform(-10, 10))
                    sim, an = run_scene([src], [Trajectory(make(offset))], head=head, rt60=rt60,
                                        dur=4.0, seed=seed, piano=piano)
                    truth = sim.truth["sources"][0]["motion"]
                    est = an["sources"][0]["motion"] if an["sources"] else None
                    rows.append(dict(label=label, truth=truth, est=est, src=src, rt60=rt60))
    acc = float(np.mean([r["truth"] == r["est"] for r in rows]))
    wrong = [(r["truth"], r["est"], r["src"], r["rt60"]) for r in rows if r["truth"] != r["est"]]
    by_case = {f"{label} {'rt60 0.5' if rt60 else 'anechoic'}":
               round(float(np.mean([r["truth"] == r["est"] for r in rows
                                    if r["label"] == label and r["rt60"] == rt60])), 3)
               for rt60 in (None, 0.5) for label in cases}
    emit(bench="motion_binaural_kemar", scenes=len(rows), motion_accuracy=round(acc, 4),
         by_case=by_case, wrong=wrong[:12])
    return rows


def bench_motion_library(head, piano, quick, seeds=4):
    """Motion labels of every sound in the source library and the piano (3 s, 30 degrees
    off centre: static at 2.5 m, approaching 6 -> 1.5 m, receding 1.5 -> 6 m; anechoic and
    RT60 0.5 s).  Not one of the issue's figures: a guard against tuning the distance
    trend to the motion figure's four sounds (a level that helps a piano's bass notes may
    hurt a train's horn)."""
    cases = {
        "static": [Keyframe(0, 30, 0, 2.5)],
        "approaching": [Keyframe(0, 30, 0, 6.0), Keyframe(3, 30, 0, 1.5)],
        "receding": [Keyframe(0, -30, 0, 1.5), Keyframe(3, -30, 0, 6.0)],
    }
    names = [*SOURCE_NAMES, "piano"]
    rows = []
    for rt60 in (None, 0.5):
        for label, kfs in cases.items():
            for i, src in enumerate(names):
                for rep in range(1 if quick else seeds):
                    seed = 5000 + 100 * i + rep
                    sim, an = run_scene([src], [Trajectory(kfs)], head=head, rt60=rt60,
                                        dur=3.0, seed=seed, piano=piano)
                    est = an["sources"][0]["motion"] if an["sources"] else None
                    rows.append(dict(label=label, src=src, rt60=rt60, ok=est == label,
                                     extra=len(an["sources"]) > 1))

    def acc(sel):
        return round(float(np.mean([r["ok"] for r in sel])), 3)

    emit(bench="motion_library_binaural_kemar", scenes=len(rows), motion_accuracy=acc(rows),
         by_case={f"{label} {'rt60 0.5' if rt60 else 'anechoic'}":
                  acc([r for r in rows if r["label"] == label and r["rt60"] == rt60])
                  for rt60 in (None, 0.5) for label in cases},
         by_source={s: acc([r for r in rows if r["src"] == s]) for s in names},
         # the share of a sound's scenes that report more than its one source
         extra_sources_by_source={s: round(float(np.mean([r["extra"] for r in rows
                                                          if r["src"] == s])), 3)
                                  for s in names})
    return rows


def two_source_scenes(n: int) -> list[tuple[int, str, str, float, float]]:
    """The two-source scenes: ``(index, source 1, source 2, azimuth 1, azimuth 2)``, the
    azimuths at least 30 degrees apart (fixed since the figure was first reported)."""
    rng = np.random.default_rng(7)
    pairs = [("noise", "engine"), ("babble", "noise"), ("engine", "babble"), ("piano", "noise")]
    out = []
    for i in range(n):
        while True:
            a1, a2 = rng.uniform(-70, 70, 2)
            if abs(a1 - a2) >= 30:
                break
        out.append((i, *pairs[i % len(pairs)], float(a1), float(a2)))
    return out


def bench_two_sources(head, piano, quick):
    n = 12 if quick else 30
    ok = 0
    errs = []
    level_errs = []
    level_errs_sph = []
    missed = []
    for i, s1, s2, a1, a2 in two_source_scenes(n):
        trajs = [Trajectory.static(a1, 0, 2.5), Trajectory.static(a2, 0, 2.5)]
        sim, an = run_scene([s1, s2], trajs, head=head, rt60=None, dur=3.0, seed=5000 + i,
                            piano=piano)
        est = [s["mean_azimuth_deg"] for s in an["sources"]]
        lvl = relative_level_error(an, [s1, s2], trajs, (a1, a2), head=head, seed=5000 + i,
                                   piano=piano)
        if lvl is not None:
            level_errs.append(lvl)
        if not quick:
            # the same scene through the spherical head the analysis models: how much of
            # the level error is the head's
            _, an_sph = run_scene([s1, s2], trajs, head=None, rt60=None, dur=3.0,
                                  seed=5000 + i, piano=piano)
            lvl = relative_level_error(an_sph, [s1, s2], trajs, (a1, a2), head=None,
                                       seed=5000 + i, piano=piano)
            if lvl is not None:
                level_errs_sph.append(lvl)
        found = nearest_errors(est, (a1, a2))
        errs.extend(found)
        hit = all(e <= 8.0 for e in found)
        ok += hit
        if not hit:
            missed.append(dict(scene=i, sources=[s1, s2], az=[round(a1, 1), round(a2, 1)],
                               found_az=[round(float(x), 1) for x in est]))
    emit(bench="two_sources_binaural_kemar", scenes=n, both_within_8deg=round(ok / n, 4),
         mean_err_deg=round(float(np.mean(errs)), 2), missed=missed,
         # each found pair's level difference against the one the sources have alone
         level_difference_scenes=len(level_errs),
         level_difference_mean_abs_err_db=round(float(np.mean(np.abs(level_errs))), 2)
         if level_errs else None,
         level_difference_within_6db=round(float(np.mean(np.abs(level_errs) <= 6.0)), 4)
         if level_errs else None,
         level_difference_mean_abs_err_db_spherical_head=round(
             float(np.mean(np.abs(level_errs_sph))), 2) if level_errs_sph else None)
    if not quick:
        bench_quieter_second(head, piano)


QUIETER_GAINS_DB = (0.0, -3.0, -6.0, -9.0)


def bench_quieter_second(head, piano, n=12):
    """A known limitation, measured: the first ``n`` two-source scenes with the second
    source as loud and 3, 6 and 9 dB down (anechoic, through KEMAR); both found within 8
    degrees."""
    found = {}
    for gain in QUIETER_GAINS_DB:
        hits = []
        for i, s1, s2, a1, a2 in two_source_scenes(n):
            trajs = [Trajectory.static(a1, 0, 2.5), Trajectory.static(a2, 0, 2.5)]
            _, an = run_scene([s1, s2], trajs, head=head, rt60=None, dur=3.0, seed=5000 + i,
                              piano=piano, gains_db=[0.0, gain])
            est = [s["mean_azimuth_deg"] for s in an["sources"]]
            hits.append(all(e <= 8.0 for e in nearest_errors(est, (a1, a2))))
        found[f"{gain:g}dB"] = round(float(np.mean(hits)), 4)
    emit(bench="two_sources_quieter_binaural_kemar", scenes_per_gain=n,
         both_within_8deg=found)


def relative_level_error(an, names, trajs, azs, *, head, seed, piano):
    """The error (dB) of the level difference between the two sources found nearest
    ``azs``, over the frames where both are active, against the difference of the
    sources rendered alone (each with the scene's gain and noise), or ``None`` where the
    two are not found apart."""
    if not an["sources"]:
        return None
    tracks = [min(an["sources"], key=lambda s: frontal_error(s["mean_azimuth_deg"], a))
              for a in azs]
    if tracks[0] is tracks[1]:
        return None
    act = [np.asarray(t["active"], dtype=bool) for t in tracks]
    both = act[0] & act[1]
    if both.sum() < 5:
        return None
    power = []
    # the signal the scene gave each source, rendered alone
    for src in scene_sources(names, trajs, dur=3.0, seed=seed, piano=piano):
        solo = simulate_scene([src], fmt="binaural", sr=SR, duration_s=3.0, head=head,
                              noise_snr_db=None, seed=seed, normalize=False)
        power.append(cues.stft(solo.audio, SR).frame_power.sum(axis=0)[both].mean())
    est = [np.mean(10.0 ** (np.asarray(t["loudness_db"], dtype=float)[both] / 10.0))
           for t in tracks]
    return float(10 * np.log10(est[1] / est[0]) - 10 * np.log10(power[1] / power[0]))


def bench_stereo(quick):
    """Amplitude-panned studio stereo: constant-power pan law; truth from the tangent law."""
    rng = np.random.default_rng(3)
    n = 30 if quick else 90
    ok = 0
    for i in range(n):
        pan = rng.uniform(-1, 1)  # -1 = hard right, +1 = hard left
        theta = (1 - pan) * np.pi / 4  # 0 = left only
        gl, gr = np.cos(theta), np.sin(theta)
        src = make_source(["noise", "engine", "babble", "music"][i % 4], duration_s=2.0, sr=SR,
                          seed=i)
        y = np.stack([gl * src, gr * src]).astype(np.float32)
        y += 0.01 * rng.standard_normal(y.shape).astype(np.float32)
        truth_az = float(tracking.stereo_pan_to_azimuth(20 * np.log10(gl / gr)))
        an = analyze_array(y, SR, "stereo")
        ok += bool(an["sources"]) and an["sources"][0]["position"] == position_label(truth_az)
    emit(bench="panned_stereo", scenes=n, position_accuracy=round(ok / n, 4))


def bench_foa(piano, quick):
    ir, sr_ir = read_audio(DATA / "foa" / "IR_Gewandhaus_SH1.wav", check=False)
    ir = n3d_to_sn3d(resample(ir, sr_ir, SR))
    rows = []
    azs = np.arange(-180, 180, 30 if quick else 15)
    for i, az in enumerate(azs):
        src = piano[: SR * 3] if i % 2 else make_source("noise", duration_s=3.0, sr=SR, seed=i)
        y = np.stack([fftconvolve(src, h)[: src.size] for h in ir]).astype(np.float32)
        c, s = np.cos(np.deg2rad(az)), np.sin(np.deg2rad(az))
        x, yy = y[3].copy(), y[1].copy()
        y[3], y[1] = c * x - s * yy, s * x + c * yy  # rotate about the vertical axis
        an = analyze_array(y, SR, "foa")
        if not an["sources"]:
            rows.append((180.0, 90.0))
            continue
        best = an["sources"][0]
        act = np.asarray(best["active"])
        el = float(np.median(np.asarray(best["elevation_deg"])[act]))
        rows.append((abs(float(angle_diff_deg(best["mean_azimuth_deg"], az))), abs(el - (-10.0))))
    r = np.asarray(rows)
    emit(bench="foa_real_hall", scenes=len(rows), mean_az_err_deg=round(float(r[:, 0].mean()), 2),
         mean_el_err_deg=round(float(r[:, 1].mean()), 2),
         note="truth: the hall's direct sound at az 0 + rotation, el -10 (data README)")


def bench_speed():
    rng = np.random.default_rng(0)
    dur = 10.0
    sim = simulate_scene([SceneSource(make_source("engine", duration_s=dur, sr=SR, seed=1),
                                      Trajectory([Keyframe(0, 60, 0, 4), Keyframe(dur, -60, 0, 4)]))],
                         fmt="binaural", sr=SR, duration_s=dur, noise_snr_db=30.0)
    y = sim.audio
    foa = simulate_scene([SceneSource(make_source("engine", duration_s=dur, sr=SR, seed=1),
                                      Trajectory.static(30, 10, 3))],
                         fmt="foa", sr=SR, duration_s=dur).audio
    tracking.spherical_calibration(SR)  # built once per process, cached

    def best_of(fn, n=30):
        """Best wall time and best CPU time (this process) of ``n`` calls.  The machine may
        be shared: CPU time is what the code costs, wall time includes waiting for a core."""
        wall, cpu = [], []
        for _ in range(n):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        return min(wall), min(cpu)

    t_bin, c_bin = best_of(lambda: tracking.analyze_signal(y, SR, "binaural"))
    t_foa, _ = best_of(lambda: tracking.analyze_signal(foa, SR, "foa"))
    t_base, c_base = best_of(lambda: baseline_binaural(y, SR))  # same cues, frame by frame
    emit(bench="speed", clip_s=dur, binaural_realtime_factor=round(dur / t_bin, 1),
         foa_realtime_factor=round(dur / t_foa, 1), baseline_realtime_factor=round(dur / t_base, 1),
         speedup_vs_baseline=round(t_base / t_bin, 2),
         cpu_speedup_vs_baseline=round(c_base / c_bin, 2), threads=1)
    _ = rng


def baseline_binaural(y: np.ndarray, sr: int) -> np.ndarray:
    """A straightforward baseline computing the same cues: librosa's STFT, then numpy frame
    by frame (GCC-PHAT ITD with parabolic refinement, coherence, band ILD, loudness) and
    the same ITD-to-azimuth mapping."""
    import librosa

    hop, n_fft = cues.frame_params(sr)
    L = librosa.stft(y[0], n_fft=n_fft, hop_length=hop)
    R = librosa.stft(y[1], n_fft=n_fft, hop_length=hop)
    M, _ = cues.erb_band_matrix(sr, n_fft)
    cal = tracking.spherical_calibration(sr)
    max_lag = int(np.ceil(1e-3 * sr))
    out = []
    for t in range(L.shape[1]):
        lt, rt = L[:, t], R[:, t]
        c = lt * np.conj(rt)
        r = np.fft.irfft(c / (np.abs(c) + 1e-12), n=n_fft)
        r = np.concatenate([r[-max_lag:], r[: max_lag + 1]])
        k = int(np.clip(np.argmax(r), 1, r.size - 2))
        den = r[k - 1] - 2 * r[k] + r[k + 1]
        lag = k - max_lag + (0.5 * (r[k - 1] - r[k + 1]) / den if den != 0 else 0.0)
        itd = -lag / sr
        cc = np.fft.irfft(c, n=n_fft)
        pl, pr = np.abs(lt) ** 2, np.abs(rt) ** 2
        coh = abs(cc[int(round(-itd * sr)) % n_fft]) * n_fft / 2 / np.sqrt(pl.sum() * pr.sum() + 1e-12)
        ild = 10 * np.log10((M @ pl + 1e-12) / (M @ pr + 1e-12))
        loud = 10 * np.log10(pl.sum() + pr.sum() + 1e-12)
        out.append((cal.az_from_itd(np.array([itd]))[0], coh, ild.mean(), loud))
    return np.asarray(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer scenes")
    ap.add_argument("--only", default=None,
                    help="comma list: static,motion,two,stereo,foa,speed,library (library: "
                         "not run by default)")
    ap.add_argument("--motion-reps", type=int, default=2,
                    help="renderings of each motion case, 1-10 (default 2: the reported figure)")
    args = ap.parse_args()
    if not 1 <= args.motion_reps <= 10:
        ap.error("--motion-reps must be within 1..10")
    if not DATA.exists():
        print(f"needs the measured data in {DATA}", file=sys.stderr)
        return 2
    only = set(args.only.split(",")) if args.only else None

    def want(k):
        return only is None or k in only

    head = SofaHrtf.from_file(DATA / "hrtf" / "mit_kemar_normal_pinna.sofa", SR)
    piano, _ = read_audio(DATA / "audio" / "piano_mono.flac", sr=SR, mono=True)
    piano = piano[0] / (np.sqrt(np.mean(piano[0] ** 2)) + 1e-12) * 0.1
    t0 = time.time()
    if want("speed"):
        bench_speed()
    if want("static"):
        bench_static(head, piano, args.quick)
    if want("motion"):
        bench_motion(head, piano, args.quick, args.motion_reps)
    if only is not None and "library" in only:
        bench_motion_library(head, piano, args.quick)
    if want("two"):
        bench_two_sources(head, piano, args.quick)
    if want("stereo"):
        bench_stereo(args.quick)
    if want("foa"):
        bench_foa(piano, args.quick)
    summary = target_summary(EMITTED)
    emit(bench="targets", met=sum(v["met"] for v in summary.values()), of=len(summary),
         figures=summary)
    emit(bench="done", wall_s=round(time.time() - t0, 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
