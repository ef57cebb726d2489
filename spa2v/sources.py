"""Built-in procedural sound sources: seeded, deterministic, no data files.

Every source is a small synthesiser over numpy arrays.  ``make_source(name, ...)``
returns float32 mono audio, shape ``(samples,)``, RMS-normalised to -20 dBFS with
10 ms fades at both ends.  The same seed gives identical samples; a different seed
gives a different take of the same kind of sound.

The class table (``spa2v.classes``) names one of these for every sound class.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
from scipy import signal as sps

SOURCE_RMS_DBFS = -20.0
MAX_PEAK = 0.99
"""Very impulsive sources (footsteps) are turned down so that they never clip."""
FADE_S = 0.010

_Synth = Callable[[np.random.Generator, int, int], np.ndarray]


# --------------------------------------------------------------------------- helpers
def _times(n: int, sr: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / sr


def _sos_filter(
    x: np.ndarray, sr: int, kind: str, freq_hz: float | tuple[float, float], order: int = 2
) -> np.ndarray:
    nyq = 0.5 * sr
    if isinstance(freq_hz, tuple):
        wn = (max(freq_hz[0], 1.0) / nyq, min(freq_hz[1], 0.98 * nyq) / nyq)
    else:
        wn = min(max(float(freq_hz), 1.0), 0.98 * nyq) / nyq
    sos = sps.butter(order, wn, btype=kind, output="sos")
    return sps.sosfilt(sos, x)


def _pink(rng: np.random.Generator, n: int, sr: int, *, exponent: float = 1.0) -> np.ndarray:
    """Noise with a ``1 / f**exponent`` power spectrum (1 = pink, 2 = brown), unit RMS."""
    m = max(n, 16)
    spec = rng.standard_normal(m // 2 + 1) + 1j * rng.standard_normal(m // 2 + 1)
    f = np.fft.rfftfreq(m, 1.0 / sr)
    spec *= np.maximum(f, 20.0) ** (-exponent / 2.0)
    spec[0] = 0.0
    y = np.fft.irfft(spec, m)[:n]
    return y / (np.sqrt(np.mean(y**2)) + 1e-12)


def _smooth_random(rng: np.random.Generator, n: int, sr: int, rate_hz: float) -> np.ndarray:
    """A slowly wandering curve in about [-1, 1] with changes at about ``rate_hz``."""
    n_knots = max(int(np.ceil(n / sr * rate_hz)) + 3, 4)
    knots = rng.uniform(-1.0, 1.0, n_knots)
    xk = np.linspace(0.0, n - 1, n_knots)
    return np.interp(np.arange(n), xk, knots).astype(np.float64) if n else np.zeros(0)


def _smooth(x: np.ndarray, sr: int, cutoff_hz: float) -> np.ndarray:
    """Zero-phase low-pass, for control curves (frequency, envelopes)."""
    if len(x) < 32:
        return x
    sos = sps.butter(2, min(cutoff_hz / (0.5 * sr), 0.99), output="sos")
    return sps.sosfiltfilt(sos, x)


def _phase(freq_hz: np.ndarray, sr: int) -> np.ndarray:
    """Phase in radians of an oscillator following ``freq_hz`` per sample."""
    return 2.0 * np.pi * np.cumsum(freq_hz) / sr


def _decay(n: int, sr: int, tau_s: float) -> np.ndarray:
    return np.exp(-_times(n, sr) / tau_s)


def _attack_decay(n: int, sr: int, attack_s: float, tau_s: float) -> np.ndarray:
    t = _times(n, sr)
    return np.minimum(t / max(attack_s, 1e-4), 1.0) * np.exp(-np.maximum(t - attack_s, 0) / tau_s)


def _hann_env(n: int) -> np.ndarray:
    return np.sin(np.pi * (np.arange(n) + 0.5) / max(n, 1)) ** 2


def _add_at(y: np.ndarray, start: int, x: np.ndarray) -> None:
    """``y[start:start+len(x)] += x``, clipped to the bounds of ``y``."""
    a, b = max(start, 0), min(start + len(x), len(y))
    if b > a:
        y[a:b] += x[a - start : b - start]


def _taper(f_hz: np.ndarray, limit_hz: float) -> np.ndarray:
    """1 well below ``limit_hz``, 0 above, a smooth ramp over the last 10 % (no clicks)."""
    return np.clip((limit_hz - f_hz) / (0.1 * limit_hz), 0.0, 1.0)


def _harmonics(
    f0_hz: np.ndarray, sr: int, amps: np.ndarray, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Sum of harmonics ``k * f0`` (k = 1..len(amps)) following ``f0_hz``, faded out towards 0.45 sr."""
    ph = _phase(f0_hz, sr)
    y = np.zeros_like(f0_hz)
    for k, a in enumerate(amps, start=1):
        if a == 0.0:
            continue
        audible = _taper(k * f0_hz, 0.45 * sr)
        offset = rng.uniform(0, 2 * np.pi) if rng is not None else 0.0
        y += a * audible * np.sin(k * ph + offset)
    return y


def _resonance_gain(f_hz: np.ndarray, centre_hz: np.ndarray, bandwidth_hz: np.ndarray) -> np.ndarray:
    """Magnitude of a second-order resonance at ``centre_hz`` (peak 1), evaluated at ``f_hz``."""
    x = f_hz / centre_hz
    q = centre_hz / bandwidth_hz
    return 1.0 / np.sqrt((1.0 - x**2) ** 2 * q**2 + x**2)


def _formant_voice(
    f0_hz: np.ndarray,
    formants_hz: np.ndarray,
    sr: int,
    rng: np.random.Generator,
    *,
    bandwidths_hz: tuple[float, ...] = (90.0, 110.0, 170.0),
    tilt_db_per_oct: float = -12.0,
    max_hz: float = 6000.0,
) -> np.ndarray:
    """Additive source-filter voice: glottal harmonics weighted by moving formants.

    ``formants_hz`` has shape ``(n_formants, samples)``.
    """
    ph = _phase(f0_hz, sr)
    y = np.zeros_like(f0_hz)
    n_harm = int(max_hz / max(float(np.min(f0_hz)), 40.0))
    for k in range(1, n_harm + 1):
        fk = k * f0_hz
        gain = np.zeros_like(f0_hz)
        for i in range(formants_hz.shape[0]):
            bw = bandwidths_hz[min(i, len(bandwidths_hz) - 1)]
            gain += _resonance_gain(fk, formants_hz[i], np.full_like(fk, bw)) * (0.7**i)
        gain *= (2.0 ** (tilt_db_per_oct / 6.02)) ** np.log2(k)
        gain *= fk < min(max_hz, 0.45 * sr)  # harmonics there are ~60 dB down: no click
        y += gain * np.sin(k * ph + rng.uniform(0, 2 * np.pi))
    return y


def _finish(y: np.ndarray, sr: int) -> np.ndarray:
    """RMS-normalise to -20 dBFS (peak at most ``MAX_PEAK``), 10 ms fades, float32."""
    y = np.asarray(y, dtype=np.float64)
    y = y - np.mean(y)
    n_fade = min(int(round(FADE_S * sr)), len(y) // 2)
    if n_fade > 0:
        ramp = np.sin(0.5 * np.pi * (np.arange(n_fade) + 0.5) / n_fade) ** 2
        y[:n_fade] *= ramp
        y[len(y) - n_fade :] *= ramp[::-1]
    rms = np.sqrt(np.mean(y**2))
    if rms > 0:
        y = y * (10.0 ** (SOURCE_RMS_DBFS / 20.0) / rms)
        y = y * min(1.0, MAX_PEAK / np.max(np.abs(y)))
    return y.astype(np.float32)


# --------------------------------------------------------------------------- sources
def _noise(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    return _pink(rng, n, sr)


def _engine(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Four-stroke engine: firing-frequency harmonics with RPM wander plus combustion noise."""
    firing_hz = rng.uniform(28.0, 45.0)
    wander = 0.12 * _smooth_random(rng, n, sr, 0.5) + 0.03 * _smooth_random(rng, n, sr, 3.0)
    f0 = firing_hz * (1.0 + _smooth(wander, sr, 2.0))
    n_harm = 60
    k = np.arange(1, n_harm + 1)
    amps = (k ** -0.8) * rng.uniform(0.5, 1.0, n_harm)
    amps[1::2] *= 1.4  # even firing orders dominate a four-cylinder engine
    tonal = _harmonics(f0, sr, amps, rng)
    tonal = _sos_filter(tonal, sr, "lowpass", 1800.0)
    # combustion noise, pulsed at the firing rate: broadband enough to localise
    pulses = (0.5 + 0.5 * np.cos(_phase(f0, sr))) ** 4
    hiss = _sos_filter(rng.standard_normal(n), sr, "bandpass", (250.0, 6000.0))
    exhaust = _sos_filter(_pink(rng, n, sr), sr, "lowpass", 900.0)
    y = tonal / np.std(tonal) + 0.45 * hiss * (0.3 + pulses) / np.std(hiss) + 0.35 * exhaust
    return y


def _siren(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = _times(n, sr)
    if rng.random() < 0.5:  # two-tone "nee-naw"
        lo, hi = rng.uniform(650, 750), rng.uniform(900, 1000)
        period = rng.uniform(0.9, 1.3)
        square = (np.mod(t / period + rng.random(), 1.0) < 0.5).astype(np.float64)
        f0 = lo + (hi - lo) * _smooth(square, sr, 30.0)
    else:  # wail: a slow rising and falling sweep
        period = rng.uniform(3.0, 5.0)
        ph = 2 * np.pi * t / period + rng.uniform(0, 2 * np.pi)
        f0 = 900.0 + 450.0 * np.sin(ph) * np.abs(np.sin(ph)) ** 0.3
    f0 = f0 * (1.0 + 0.004 * np.sin(2 * np.pi * 6.0 * t))
    amps = np.array([1.0, 0.35, 0.5, 0.15, 0.25, 0.08, 0.12, 0.05])
    y = _harmonics(f0, sr, amps)
    return y + 0.02 * _sos_filter(rng.standard_normal(n), sr, "bandpass", (500.0, 4000.0))


def _footstep(rng: np.random.Generator, sr: int) -> np.ndarray:
    m = int(0.25 * sr)
    heel = _sos_filter(rng.standard_normal(m), sr, "bandpass", (rng.uniform(150, 300), 3500.0))
    heel *= _attack_decay(m, sr, 0.002, rng.uniform(0.012, 0.025))
    scuff_start = int(rng.uniform(0.03, 0.06) * sr)
    scuff = np.zeros(m)
    scuff[scuff_start:] = _sos_filter(rng.standard_normal(m - scuff_start), sr, "bandpass",
                                      (1500.0, 7000.0))
    scuff[scuff_start:] *= 0.25 * _attack_decay(m - scuff_start, sr, 0.004, 0.02)
    thump = np.sin(2 * np.pi * rng.uniform(60, 90) * _times(m, sr)) * _decay(m, sr, 0.02)
    return heel + scuff + 0.8 * thump


def _footsteps(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    y = np.zeros(n)
    interval = rng.uniform(0.45, 0.6)
    t = rng.uniform(0.0, 0.3)
    i = 0
    while t < n / sr:
        step = _footstep(rng, sr) * rng.uniform(0.7, 1.0) * (1.0 if i % 2 == 0 else 0.85)
        _add_at(y, int(t * sr), step)
        t += interval * (1.0 + rng.uniform(-0.06, 0.06))
        i += 1
    return y


def _chirp(rng: np.random.Generator, sr: int) -> np.ndarray:
    dur = rng.uniform(0.05, 0.15)
    m = int(dur * sr)
    u = np.linspace(0.0, 1.0, m)
    f_a, f_b = rng.uniform(2000, 6000, 2)
    curve = rng.choice(["up", "down", "arch"])
    if curve == "arch":
        f = f_a + (f_b - f_a) * np.sin(np.pi * u)
    else:
        lo, hi = sorted((f_a, f_b))
        f = lo * (hi / lo) ** (u if curve == "up" else 1.0 - u)
    f = f * (1.0 + 0.03 * np.sin(2 * np.pi * rng.uniform(40, 80) * u * dur))
    ph = _phase(f, sr)
    return _hann_env(m) * (np.sin(ph) + 0.15 * np.sin(2 * ph))


def _birds(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    y = np.zeros(n)
    t = rng.uniform(0.0, 0.3)
    while t < n / sr:
        for _ in range(rng.integers(3, 7)):
            c = _chirp(rng, sr) * rng.uniform(0.5, 1.0)
            _add_at(y, int(t * sr), c)
            t += len(c) / sr + rng.uniform(0.02, 0.08)
        t += rng.uniform(0.3, 1.0)
    return y + 0.003 * _sos_filter(rng.standard_normal(n), sr, "highpass", 1500.0)


_VOWELS_HZ = np.array([  # F1, F2, F3 of a few vowels
    [730, 1090, 2440], [530, 1840, 2480], [270, 2290, 3010],
    [570, 840, 2410], [300, 870, 2240], [660, 1720, 2410], [490, 1350, 1690],
], dtype=np.float64)


def _babble(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """One talker: glottal harmonics through moving formants, ~4 Hz syllables, fricatives."""
    # syllable boundaries and per-syllable vowel targets
    starts, vowels, voiced = [0], [], []
    while starts[-1] < n:
        vowels.append(_VOWELS_HZ[rng.integers(len(_VOWELS_HZ))] * rng.uniform(0.95, 1.1))
        voiced.append(rng.random() > 0.12)  # short pauses
        starts.append(starts[-1] + int(rng.uniform(0.17, 0.32) * sr))
    starts_arr = np.array(starts)
    idx = np.clip(np.searchsorted(starts_arr, np.arange(n), side="right") - 1, 0, len(vowels) - 1)
    formants = np.stack([_smooth(np.array(vowels)[idx, i], sr, 12.0) for i in range(3)])
    # syllabic envelope: a raised-cosine hump per syllable
    pos = (np.arange(n) - starts_arr[idx]) / (starts_arr[idx + 1] - starts_arr[idx])
    env = np.sin(np.pi * pos) ** 0.8 * np.array(voiced)[idx]
    phrase = 0.6 + 0.4 * (_smooth_random(rng, n, sr, 0.7) > -0.7)
    env = _smooth(env * phrase, sr, 25.0).clip(0.0, None)
    base_f0 = rng.uniform(105.0, 210.0)
    f0 = base_f0 * (1.0 + 0.12 * _smooth(_smooth_random(rng, n, sr, 3.0), sr, 4.0))
    f0 *= 1.0 - 0.1 * (np.arange(n) / max(n, 1) % 1.0)  # slight declination
    # glottal pulses fall 12 dB an octave, radiation from the lips lifts them 6 dB
    voice = _formant_voice(f0, formants, sr, rng, tilt_db_per_oct=-6.0)
    voice = voice / (np.std(voice) + 1e-12)
    # fricatives ("s", "sh", "f") at some syllable boundaries
    fric = np.zeros(n)
    hiss = _sos_filter(rng.standard_normal(n), sr, "bandpass", (3000.0, 9000.0))
    for s in starts_arr[1:-1]:
        if rng.random() < 0.35:
            m = int(rng.uniform(0.06, 0.12) * sr)
            _add_at(fric, int(s - m // 2), _hann_env(m))
    return voice * env + 0.35 * hiss / np.std(hiss) * fric


_MAJOR_PENTATONIC = np.array([0, 2, 4, 7, 9])


def _tone(freq_hz: float, dur_s: float, sr: int, rng: np.random.Generator,
          amps: np.ndarray, release_s: float = 0.25) -> np.ndarray:
    """A harmonic note with an ADSR envelope."""
    m = int((dur_s + release_s) * sr)
    t = _times(m, sr)
    a, d, s_level = 0.01, 0.12, 0.55
    env = np.where(t < a, t / a, np.where(t < a + d, 1.0 - (1.0 - s_level) * (t - a) / d, s_level))
    env = np.where(t > dur_s, s_level * np.exp(-(t - dur_s) / (release_s / 4.0)), env)
    env *= np.exp(-t / 1.5)
    f = np.full(m, freq_hz) * (1.0 + 0.002 * np.sin(2 * np.pi * 5.0 * t))
    return env * _harmonics(f, sr, amps, rng)


def _music(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Melody on a pentatonic scale over a bass line, harmonic tones with ADSR."""
    y = np.zeros(n)
    root = 220.0 * 2 ** (rng.integers(0, 12) / 12)
    beat = 60.0 / rng.uniform(90, 130)
    amps_mel = 1.0 / np.arange(1, 9) ** 1.5
    amps_bass = np.array([1.0, 0.5, 0.25, 0.12])
    t, step = 0.0, 2
    while t < n / sr:
        step = int(np.clip(step + rng.integers(-2, 3), 0, 9))
        semis = _MAJOR_PENTATONIC[step % 5] + 12 * (step // 5)
        dur = beat * rng.choice([0.5, 1.0, 1.0, 2.0])
        _add_at(y, int(t * sr), _tone(root * 2 ** (semis / 12), dur * 0.9, sr, rng, amps_mel))
        t += dur
    for i, tb in enumerate(np.arange(0.0, n / sr, 2 * beat)):
        semis = [0, -5, -3, -7][i % 4] - 12
        _add_at(y, int(tb * sr), 0.6 * _tone(root * 2 ** (semis / 12), 1.8 * beat, sr, rng,
                                              amps_bass))
    return y


def _bark_one(rng: np.random.Generator, sr: int) -> np.ndarray:
    dur = rng.uniform(0.12, 0.22)
    m = int(dur * sr)
    u = np.linspace(0, 1, m)
    f0 = rng.uniform(350, 550) * (1.0 + 0.35 * np.sin(np.pi * np.minimum(u * 1.6, 1.0))) * (
        1.0 - 0.3 * u)
    formants = np.stack([np.full(m, rng.uniform(700, 1000)), np.full(m, rng.uniform(1500, 2000)),
                         np.full(m, 2800.0)])
    voice = _formant_voice(f0, formants, sr, rng, bandwidths_hz=(200.0, 250.0, 300.0),
                           tilt_db_per_oct=-6.0)
    voice /= np.std(voice) + 1e-12
    rasp = _sos_filter(rng.standard_normal(m), sr, "bandpass", (500.0, 5000.0))
    env = _attack_decay(m, sr, 0.01, dur / 3.0) * _hann_env(m) ** 0.2
    return env * (voice + 0.5 * rasp / np.std(rasp))


def _bark(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    y = np.zeros(n)
    t = rng.uniform(0.0, 0.3)
    while t < n / sr:
        for _ in range(rng.integers(1, 4)):
            b = _bark_one(rng, sr) * rng.uniform(0.7, 1.0)
            _add_at(y, int(t * sr), b)
            t += len(b) / sr + rng.uniform(0.08, 0.2)
        t += rng.uniform(0.4, 1.1)
    return y


def _meow_one(rng: np.random.Generator, sr: int) -> np.ndarray:
    dur = rng.uniform(0.5, 0.9)
    m = int(dur * sr)
    u = np.linspace(0, 1, m)
    peak = rng.uniform(0.3, 0.5)
    f0 = rng.uniform(450, 600) * (1.0 + 0.5 * np.exp(-((u - peak) / 0.25) ** 2)) * (1 - 0.25 * u)
    # "m-ee-ow": the formants open, then close towards an "ow"
    f1 = 600 + 500 * np.sin(np.pi * np.minimum(u / 0.6, 1.0))
    f2 = np.where(u < 0.5, 1300 + 1200 * u / 0.5, 2500 - 1500 * (u - 0.5) / 0.5)
    formants = np.stack([f1, f2, np.full(m, 3300.0)])
    voice = _formant_voice(f0, formants, sr, rng, bandwidths_hz=(150.0, 200.0, 250.0),
                           tilt_db_per_oct=-8.0)
    env = np.minimum(u / 0.08, 1.0) * np.minimum((1 - u) / 0.25, 1.0) ** 1.5
    return voice * env


def _meow(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    y = np.zeros(n)
    t = rng.uniform(0.0, 0.4)
    while t < n / sr:
        mw = _meow_one(rng, sr)
        _add_at(y, int(t * sr), mw / (np.std(mw) + 1e-12))
        t += len(mw) / sr + rng.uniform(0.4, 1.2)
    return y


def _pluck(freq_hz: float, dur_s: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Karplus-Strong plucked string (the delay-line recursion run by ``lfilter``)."""
    period = max(int(round(sr / freq_hz)), 2)
    m = int(dur_s * sr)
    excitation = np.zeros(m)
    burst = rng.uniform(-1.0, 1.0, period)
    burst = _sos_filter(burst, sr, "lowpass", rng.uniform(3000, 6000), order=1)
    excitation[:period] = burst
    loss = 0.996 ** (440.0 / freq_hz) ** 0.5
    a = np.zeros(period + 2)
    a[0], a[period], a[period + 1] = 1.0, -0.5 * loss, -0.5 * loss
    y = sps.lfilter([1.0], a, excitation)
    return y * np.minimum(_times(m, sr)[::-1] / 0.02, 1.0)


def _guitar(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    y = np.zeros(n)
    chords = [[0, 4, 7, 12, 16], [5, 9, 12, 17, 21], [7, 11, 14, 19, 23], [-3, 0, 4, 9, 12]]
    root = 110.0 * 2 ** (rng.integers(0, 7) / 12)
    beat = 60.0 / rng.uniform(80, 110) / 2
    t, i = 0.0, 0
    while t < n / sr:
        chord = chords[(i // 8) % len(chords)]
        semis = chord[[0, 2, 1, 3, 4, 3, 2, 1][i % 8]]
        _add_at(y, int(t * sr), rng.uniform(0.7, 1.0) * _pluck(root * 2 ** (semis / 12), 1.5, sr,
                                                                 rng))
        t += beat * (1.0 + rng.uniform(-0.03, 0.03))
        i += 1
    return y


def _kick(sr: int) -> np.ndarray:
    m = int(0.35 * sr)
    t = _times(m, sr)
    f = 50.0 + 110.0 * np.exp(-t / 0.03)
    return np.sin(_phase(f, sr)) * _decay(m, sr, 0.12)


def _snare(rng: np.random.Generator, sr: int) -> np.ndarray:
    m = int(0.25 * sr)
    noise = _sos_filter(rng.standard_normal(m), sr, "bandpass", (1000.0, 8000.0))
    body = np.sin(2 * np.pi * 185.0 * _times(m, sr))
    return 0.7 * noise * _decay(m, sr, 0.06) + 0.6 * body * _decay(m, sr, 0.04)


def _hat(rng: np.random.Generator, sr: int) -> np.ndarray:
    m = int(0.08 * sr)
    return 0.35 * _sos_filter(rng.standard_normal(m), sr, "highpass", 7000.0) * _decay(m, sr, 0.015)


def _drums(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    y = np.zeros(n)
    eighth = 60.0 / rng.uniform(90, 125) / 2
    kick, snare = _kick(sr), _snare(rng, sr)
    kick_steps = {0, 4} | ({5} if rng.random() < 0.5 else {3})
    for i, t in enumerate(np.arange(0.0, n / sr, eighth)):
        step = i % 8
        jitter = int(rng.normal(0.0, 0.004) * sr)
        start = int(t * sr) + jitter
        if step in kick_steps:
            _add_at(y, start, kick * rng.uniform(0.85, 1.0))
        if step in (2, 6):
            _add_at(y, start, snare * rng.uniform(0.85, 1.0))
        _add_at(y, start, _hat(rng, sr) * (1.0 if step % 2 == 0 else 0.6))
    return y


def _helicopter(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = _times(n, sr)
    blade_hz = rng.uniform(17.0, 23.0) * (1.0 + 0.02 * _smooth_random(rng, n, sr, 0.3))
    ph = _phase(blade_hz, sr)
    slap = (0.5 + 0.5 * np.cos(ph)) ** 12
    noise = _sos_filter(rng.standard_normal(n), sr, "bandpass", (150.0, 4000.0))
    rotor = _harmonics(blade_hz, sr, np.array([1.0, 0.7, 0.5, 0.35, 0.25, 0.15, 0.1, 0.08]))
    turbine = np.sin(_phase(np.full(n, rng.uniform(3000, 5000)) * (1 + 0.003 * np.sin(t)), sr))
    wash = _sos_filter(_pink(rng, n, sr), sr, "lowpass", 600.0)
    return (noise / np.std(noise) * (0.15 + 1.5 * slap) + 0.6 * rotor / np.std(rotor)
            + 0.04 * turbine + 0.5 * wash)


def _jet(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    roar = _sos_filter(_pink(rng, n, sr, exponent=1.3), sr, "lowpass", 3500.0)
    roar *= 1.0 + 0.15 * _smooth(_smooth_random(rng, n, sr, 2.0), sr, 3.0)
    hiss = _sos_filter(rng.standard_normal(n), sr, "bandpass", (2000.0, 9000.0))
    whine_hz = rng.uniform(4500, 7000) * (1.0 + 0.01 * _smooth_random(rng, n, sr, 0.5))
    whine = np.sin(_phase(whine_hz, sr))
    return roar / np.std(roar) + 0.25 * hiss / np.std(hiss) + 0.03 * whine


def _train(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    rumble = _sos_filter(_pink(rng, n, sr, exponent=2.0), sr, "lowpass", 250.0)
    rumble /= np.std(rumble)
    squeal = _sos_filter(rng.standard_normal(n), sr, "bandpass", (800.0, 5000.0))
    y = rumble + 0.2 * squeal / np.std(squeal)
    # clack-clack of the bogies over rail joints
    clack_m = int(0.06 * sr)
    car_s = rng.uniform(0.9, 1.3)
    for t in np.arange(rng.uniform(0, 0.4), n / sr, car_s):
        for dt in (0.0, rng.uniform(0.1, 0.14)):
            c = _sos_filter(rng.standard_normal(clack_m), sr, "bandpass", (300.0, 4000.0))
            _add_at(y, int((t + dt) * sr), 2.5 * c * _attack_decay(clack_m, sr, 0.001, 0.01))
    # a horn: a chord of harmonic tones, once or twice
    chord = np.array([311.1, 370.0, 440.0]) * rng.uniform(0.9, 1.1)
    n_horns = 1 + int(rng.random() < 0.5)
    for j in range(n_horns):
        start_s = (0.15 + 0.45 * j) * n / sr + rng.uniform(0, 0.2)
        dur = min(rng.uniform(0.8, 1.5), max(n / sr - start_s, 0.05))
        m = int(dur * sr)
        env = np.minimum(_times(m, sr) / 0.05, 1.0) * np.minimum(_times(m, sr)[::-1] / 0.1, 1.0)
        horn = sum(_harmonics(np.full(m, f), sr, np.array([1.0, 0.6, 0.4, 0.3, 0.2, 0.1]))
                   for f in chord)
        _add_at(y, int(start_s * sr), 0.9 * env * horn / (np.std(horn) + 1e-12))
    return y


_SYNTHS: dict[str, _Synth] = {
    "noise": _noise,
    "engine": _engine,
    "siren": _siren,
    "footsteps": _footsteps,
    "birds": _birds,
    "babble": _babble,
    "music": _music,
    "bark": _bark,
    "meow": _meow,
    "guitar": _guitar,
    "drums": _drums,
    "helicopter": _helicopter,
    "jet": _jet,
    "train": _train,
}

SOURCE_NAMES: tuple[str, ...] = tuple(_SYNTHS)
"""Names accepted by ``make_source``."""


def make_source(name: str, *, duration_s: float, sr: int, seed: int = 0) -> np.ndarray:
    """Synthesise a built-in source.

    Parameters
    ----------
    name : str
        One of ``SOURCE_NAMES``.
    duration_s : float
        Length in seconds (> 0).
    sr : int
        Sample rate in Hz.
    seed : int
        The same seed gives identical samples.

    Returns
    -------
    y : np.ndarray, float32, shape ``(samples,)``
        Mono audio at -20 dBFS RMS with 10 ms fades (quieter only where that
        peak would clip).

    Examples
    --------
    >>> y = make_source("siren", duration_s=2.0, sr=16000, seed=1)
    >>> y.shape
    (32000,)
    """
    key = str(name).strip().lower()
    if key not in _SYNTHS:
        raise ValueError(f"unknown source {name!r}; choose one of {', '.join(SOURCE_NAMES)}")
    if not duration_s > 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    if int(sr) <= 0:
        raise ValueError(f"sr must be positive, got {sr}")
    n = max(int(round(duration_s * sr)), 1)
    rng = np.random.default_rng([zlib.crc32(key.encode()), int(seed) % (2**32)])
    y = _SYNTHS[key](rng, n, int(sr))
    return _finish(y[:n], int(sr))
