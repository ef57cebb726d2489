"""Built-in procedural sources: determinism, level, and that each sounds like its kind."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sps

from spa2v.classes import SOUND_CLASSES
from spa2v.sources import SOURCE_NAMES, make_source

SR = 16000


def _band_fraction(y: np.ndarray, sr: int, lo: float, hi: float) -> float:
    f, p = sps.welch(y, sr, nperseg=2048)
    return float(p[(f >= lo) & (f < hi)].sum() / p.sum())


@pytest.mark.parametrize("name", SOURCE_NAMES)
def test_source_is_mono_float32_at_minus_20_dbfs_with_fades(name):
    y = make_source(name, duration_s=2.0, sr=SR, seed=3)
    assert y.shape == (2 * SR,) and y.dtype == np.float32
    assert np.isfinite(y).all()
    rms_db = 20 * np.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
    peak = np.max(np.abs(y))
    assert peak <= 0.99 + 1e-6
    # -20 dBFS unless the peak limit had to turn a very impulsive source down
    assert rms_db == pytest.approx(-20.0, abs=0.05) or peak == pytest.approx(0.99, abs=1e-3)
    assert rms_db > -32.0
    assert abs(y[0]) < 1e-3 and abs(y[-1]) < 1e-3  # faded in and out


@pytest.mark.parametrize("name", SOURCE_NAMES)
def test_same_seed_same_samples_other_seed_other_samples(name):
    a = make_source(name, duration_s=1.0, sr=SR, seed=7)
    b = make_source(name, duration_s=1.0, sr=SR, seed=7)
    c = make_source(name, duration_s=1.0, sr=SR, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_unknown_name_lists_the_names():
    with pytest.raises(ValueError, match="unknown source 'violin'.*noise.*engine"):
        make_source("violin", duration_s=1.0, sr=SR)


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_bad_duration(bad):
    with pytest.raises(ValueError, match="duration"):
        make_source("noise", duration_s=bad, sr=SR)


def test_every_class_names_an_existing_source():
    for c in SOUND_CLASSES:
        assert c.source in SOURCE_NAMES, c


def test_pink_noise_falls_3_db_per_octave():
    y = make_source("noise", duration_s=8.0, sr=SR, seed=0)
    f, p = sps.welch(y, SR, nperseg=4096)
    octaves = [(250, 500), (500, 1000), (1000, 2000), (2000, 4000)]
    band_db = [10 * np.log10(p[(f >= lo) & (f < hi)].mean()) for lo, hi in octaves]
    assert np.diff(band_db) == pytest.approx([-3.0] * 3, abs=0.6)


def test_engine_is_harmonic_and_broadband():
    y = make_source("engine", duration_s=4.0, sr=SR, seed=1)
    # most energy low, but enough above 1 kHz to carry interaural cues
    assert _band_fraction(y, SR, 20, 1000) > 0.5
    assert _band_fraction(y, SR, 1000, 6000) > 0.03


def test_birds_live_between_2_and_6_khz_with_pauses():
    y = make_source("birds", duration_s=4.0, sr=SR, seed=2)
    assert _band_fraction(y, SR, 1900, 6500) > 0.9
    frame_rms = np.sqrt(np.mean(y[: len(y) // 400 * 400].reshape(-1, 400) ** 2, axis=1))
    assert np.mean(frame_rms < 0.05 * frame_rms.max()) > 0.2  # silent gaps between phrases


def test_siren_is_a_strong_tone_in_the_siren_range():
    y = make_source("siren", duration_s=4.0, sr=SR, seed=4)
    f, t, z = sps.stft(y, SR, nperseg=2048)
    peak_hz = f[np.argmax(np.abs(z), axis=0)][2:-2]
    assert np.median(peak_hz) == pytest.approx(900, abs=450)
    assert np.ptp(peak_hz) > 150  # it moves (two-tone or wail)


@pytest.mark.parametrize("seed", [0, 5])
def test_babble_has_syllable_rate_envelope(seed):
    y = make_source("babble", duration_s=6.0, sr=SR, seed=seed).astype(np.float64)
    env = np.sqrt(sps.sosfiltfilt(sps.butter(2, 20 / (SR / 2), output="sos"), y**2).clip(0))
    env = env[:: SR // 100]
    # deeply modulated (noise or an engine stay below 0.2) ...
    assert np.std(env) / np.mean(env) > 0.5
    # ... at a syllabic rate
    f, p = sps.periodogram(env - env.mean(), 100)
    syllabic = (f >= 1.5) & (f <= 8.0)
    assert 1.5 <= f[syllabic][np.argmax(p[syllabic])] <= 6.0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_babble_has_a_speech_long_term_spectrum(seed):
    """The long-term average speech spectrum (Byrne et al. 1994) peaks at 250-500 Hz and is
    about 8-10 dB down at 1 kHz and 13 dB down at 2 kHz (third octaves): the first
    formants carry much of a voice's energy, not only its fundamental."""
    sr = 48000
    y = make_source("babble", duration_s=8.0, sr=sr, seed=seed).astype(np.float64)
    f, p = sps.welch(y, sr, nperseg=8192)
    centres = 1000.0 * 2.0 ** (np.arange(-9, 8) / 3)  # 125 Hz .. 5 kHz third octaves
    lv = np.array([10 * np.log10(p[(f >= c / 2 ** (1 / 6)) & (f < c * 2 ** (1 / 6))].sum())
                   for c in centres])
    lv -= lv.max()
    band = dict(zip(np.round(centres).astype(int).tolist(), lv.tolist(), strict=True))
    assert centres[np.argmax(lv)] < 700.0
    assert -18.0 < band[1000] < -4.0
    assert -24.0 < band[2000] < -8.0
    assert np.mean([band[k] for k in (397, 500, 630)]) > -10.0  # first formants


@pytest.mark.parametrize("seed", [0, 6])
def test_footsteps_are_periodic(seed):
    y = make_source("footsteps", duration_s=6.0, sr=SR, seed=seed).astype(np.float64)
    env = sps.sosfiltfilt(sps.butter(2, 30 / (SR / 2), output="sos"), np.abs(y))[:: SR // 200]
    env -= env.mean()
    ac = np.correlate(env, env, "full")[len(env) - 1 :]
    ac /= ac[0]
    # strongly self-similar one step later (0.4 to 0.65 s), not half a step later
    assert ac[80:131].max() > 0.4
    assert ac[20:60].max() < 0.2


def test_guitar_plucks_are_tonal():
    y = make_source("guitar", duration_s=3.0, sr=SR, seed=0)
    f, p = sps.welch(y, SR, nperseg=8192)
    # Karplus-Strong strings: sharp spectral peaks, far from noise
    assert np.max(p) / np.median(p) > 1e3
