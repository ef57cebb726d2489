"""Frame-wise cues: GCC-PHAT ITD, coherence, ILD, loudness, FOA intensity and diffuseness."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from spa2v import cues
from spa2v.conventions import ambix_gains, angle_diff_deg

SR = 48000


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n)


def _delayed_pair(delay_samples: int, seconds: float = 1.0, sr: int = SR, seed: int = 0):
    """(2, n): the right channel is the left delayed by ``delay_samples`` (negative: leads)."""
    n = int(seconds * sr)
    pad = 200
    s = _noise(n + 2 * pad, seed)
    left = s[pad:pad + n]
    right = s[pad - delay_samples:pad - delay_samples + n]
    return np.stack([left, right]).astype(np.float32)


def _fractional_pair(delay_samples: float, seconds: float = 1.0, up: int = 8, seed: int = 3):
    """Band-limited noise whose right channel lags by a fractional delay (made at ``up`` x)."""
    k = int(round(delay_samples * up))
    n = int(seconds * SR) * up
    s = _noise(n + 4000 * up, seed)
    left = resample_poly(s[2000 * up:2000 * up + n], 1, up)
    right = resample_poly(s[2000 * up - k:2000 * up - k + n], 1, up)
    edge = 500
    return np.stack([left, right])[:, edge:-edge].astype(np.float32)


# ----------------------------------------------------------------------------- STFT


@pytest.mark.parametrize("sr", [16000, 22050, 44100, 48000])
def test_hop_is_at_most_20_ms_and_frames_cover_the_signal(sr):
    y = _noise(sr * 2)[None].astype(np.float32)
    S = cues.stft(y, sr)
    assert S.hop_s <= 0.02 + 1e-12
    assert S.n_fft >= S.hop
    assert S.X.shape == (1, 1 + (y.shape[-1] - S.n_fft) // S.hop, S.n_fft // 2 + 1)
    assert S.X.dtype == np.complex64
    assert np.allclose(np.diff(S.times), S.hop_s)
    assert S.times[0] == pytest.approx(S.n_fft / 2 / sr)
    assert cues.stft(y, sr, hop_s=0.01).hop_s <= 0.01 + 1e-12


@pytest.mark.parametrize("sr", [16000, 48000])
def test_stft_raises_on_signals_shorter_than_a_frame(sr):
    _, n_fft = cues.frame_params(sr)
    with pytest.raises(ValueError, match="shorter than one analysis frame"):
        cues.stft(np.zeros((2, n_fft - 1), dtype=np.float32), sr)
    assert cues.stft(np.zeros((2, n_fft), dtype=np.float32), sr).X.shape[1] == 1


# ----------------------------------------------------------------------------- ITD


@pytest.mark.parametrize("delay", [3, 10, 24, 40, -6, -24, 0])
def test_gcc_phat_sign_and_value(delay):
    y = _delayed_pair(delay)
    itd_s, peak = cues.gcc_phat(cues.stft(y, SR))
    # right delayed: the left ear leads, the ITD is positive
    assert np.median(itd_s) == pytest.approx(delay / SR, abs=0.25 / SR)
    assert np.all(np.abs(itd_s - delay / SR) <= 0.5 / SR)
    assert np.median(peak) > 0.8


@pytest.mark.parametrize("delay", [0.125, 0.375, 0.625, 1.5, 2.25, -0.5, -3.75])
def test_gcc_phat_sub_sample_accuracy(delay):
    y = _fractional_pair(delay)
    itd_s, _ = cues.gcc_phat(cues.stft(y, SR))
    err = itd_s * SR - delay
    assert abs(np.median(err)) <= 0.25
    assert np.max(np.abs(err)) <= 0.35


def test_gcc_phat_sub_sample_estimates_are_ordered():
    est = [np.median(cues.gcc_phat(cues.stft(_fractional_pair(d), SR))[0]) * SR
           for d in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert np.all(np.diff(est) > 0.05)


@pytest.mark.parametrize("delay", [96, -96, 150])  # 2 ms, -2 ms, 3.1 ms
def test_itd_is_limited_to_one_millisecond(delay):
    itd_s, _ = cues.gcc_phat(cues.stft(_delayed_pair(delay), SR))
    assert np.all(np.abs(itd_s) <= cues.MAX_ITD_S + 1e-9)


def test_gcc_phat_function_axis():
    S = cues.stft(_delayed_pair(12), SR)
    itds, r = cues.gcc_phat_function(S)
    assert r.shape == (S.X.shape[1], itds.size)
    assert np.all(np.diff(itds) > 0)  # columns run from -max to +max
    assert itds[0] == pytest.approx(-itds[-1])
    assert itds[-1] >= cues.MAX_ITD_S - (itds[1] - itds[0])
    best = itds[np.argmax(r.mean(axis=0))]
    assert best == pytest.approx(12 / SR, abs=itds[1] - itds[0])


# ----------------------------------------------------------------------------- coherence


def test_coherence_is_high_for_a_delayed_copy_and_low_for_independent_noise():
    S = cues.stft(_delayed_pair(10), SR)
    itd, _ = cues.gcc_phat(S)
    ic = cues.interaural_coherence(S, itd)
    assert ic.shape == itd.shape
    assert ic.min() > 0.9

    rng = np.random.default_rng(5)
    S2 = cues.stft(rng.standard_normal((2, SR)).astype(np.float32), SR)
    itd2, peak2 = cues.gcc_phat(S2)
    ic2 = cues.interaural_coherence(S2, itd2)
    assert ic2.mean() < 0.3
    assert peak2.mean() < 0.3


def test_coherence_of_a_partly_correlated_pair_lies_between():
    rng = np.random.default_rng(6)
    s, a, b = rng.standard_normal((3, SR))
    y = np.stack([s + a, s + b]).astype(np.float32)  # correlation 0.5
    S = cues.stft(y, SR)
    itd, _ = cues.gcc_phat(S)
    ic = np.median(cues.interaural_coherence(S, itd))
    assert 0.35 < ic < 0.7


# ----------------------------------------------------------------------------- ILD


@pytest.mark.parametrize(("g_left", "g_right"), [(1.0, 0.5), (0.25, 1.0), (0.7, 0.7), (1.0, 0.1)])
def test_ild_sign_and_value(g_left, g_right):
    s = _noise(SR, 2)
    y = np.stack([g_left * s, g_right * s]).astype(np.float32)
    S = cues.stft(y, SR)
    band, broad = cues.ild_db(S)
    expected = 20 * np.log10(g_left / g_right)
    n_frames = S.X.shape[1]
    assert broad.shape == (n_frames,)
    assert band.shape == (n_frames, 24)
    assert np.allclose(broad, expected, atol=0.01)
    assert np.allclose(band, expected, atol=0.05)


def test_band_ild_follows_a_frequency_dependent_gain():
    from scipy.signal import butter, sosfilt

    s = _noise(SR, 4)
    sos = butter(4, 2000, "lowpass", fs=SR, output="sos")
    y = np.stack([s, sosfilt(sos, s)]).astype(np.float32)  # right ear shadowed above 2 kHz
    S = cues.stft(y, SR)
    M, centres = cues.erb_band_matrix(SR, S.n_fft)
    band, _ = cues.ild_db(S, M)
    med = np.median(band, axis=0)
    assert centres.shape == (24,) and np.all(np.diff(centres) > 0)
    assert np.all(np.abs(med[centres < 800]) < 1.0)
    assert np.all(med[centres > 5000] > 15.0)
    assert med[-1] > med[np.argmin(np.abs(centres - 2500))]


def test_erb_bands_partition_the_spectrum():
    M, centres = cues.erb_band_matrix(SR, 1024)
    assert M.shape == (24, 513)
    assert np.all(M.sum(axis=1) >= 1)  # every band holds a bin
    assert np.all(M.sum(axis=0) <= 1)  # no bin counted twice
    f = np.fft.rfftfreq(1024, 1 / SR)
    assert centres[0] > 100 and centres[-1] < 16000
    assert np.all(M[:, f > 16100] == 0)


# ----------------------------------------------------------------------------- loudness


@pytest.mark.parametrize("amp_db", [0.0, -6.0, -20.0])
def test_loudness_of_a_sine_in_dbfs(amp_db):
    t = np.arange(SR) / SR
    y = (10 ** (amp_db / 20) * np.sin(2 * np.pi * 997 * t))[None].astype(np.float32)
    level = cues.frame_energy_db(cues.stft(y, SR))
    assert level.shape[0] == 1
    assert np.allclose(level, amp_db - 3.0103, atol=0.05)


def test_loudness_of_white_noise_matches_its_mean_square():
    y = (0.1 * _noise(SR, 7))[None].astype(np.float32)
    level = cues.frame_energy_db(cues.stft(y, SR))
    assert np.median(level) == pytest.approx(-20.0, abs=0.3)


@pytest.mark.parametrize("slope", [-12.0, 6.0])
def test_loudness_slope_of_a_linear_fade(slope):
    t = np.arange(3 * SR) / SR
    gain_db = -20.0 + slope * t
    y = (10 ** (gain_db / 20) * np.sin(2 * np.pi * 500 * t))[None].astype(np.float32)
    S = cues.stft(y, SR)
    level = cues.frame_energy_db(S)[0]
    est = cues.loudness_slope_db_per_s(level, S.hop_s)
    assert est.shape == level.shape
    mid = est[len(est) // 4: 3 * len(est) // 4]
    assert np.allclose(mid, slope, atol=0.2)
    assert cues.loudness_slope_db_per_s(np.array([-10.0]), 0.02).tolist() == [0.0]


def test_silence_has_a_finite_very_low_level():
    level = cues.frame_energy_db(cues.stft(np.zeros((2, SR), dtype=np.float32), SR))
    assert np.isfinite(level).all() and np.all(level < -100)


# ----------------------------------------------------------------------------- FOA


def _plane_wave(az: float, el: float, seconds: float = 1.0, seed: int = 8) -> np.ndarray:
    s = _noise(int(seconds * SR), seed)
    return (ambix_gains(az, el)[:, None] * s).astype(np.float32)


@pytest.mark.parametrize(("az", "el"), [(0, 0), (30, 0), (-75, 0), (120, 0), (-150, 0),
                                        (180, 0), (45, 40), (-135, -30), (90, 70)])
def test_foa_intensity_direction_of_a_plane_wave(az, el):
    S = cues.stft(_plane_wave(az, el), SR)
    a, e, inorm, energy = cues.foa_intensity(S)
    assert a.shape == e.shape == inorm.shape == energy.shape == S.X.shape[1:]
    strong = energy > 1e-3 * energy.max()
    assert np.all(np.abs(angle_diff_deg(a[strong], az)) < 0.5)
    assert np.all(np.abs(e[strong] - el) < 0.5)
    # a plane wave carries all its energy as intensity: |I| = E for SN3D
    assert np.allclose(inorm[strong], energy[strong], rtol=1e-3)


def test_foa_diffuseness_is_zero_for_a_plane_wave():
    S = cues.stft(_plane_wave(60, 20), SR)
    d = cues.foa_diffuseness(S)
    assert d.shape == (S.X.shape[1],)
    assert np.all(d < 0.05)


def test_foa_diffuseness_is_high_for_independent_noise():
    y = np.random.default_rng(9).standard_normal((4, SR)).astype(np.float32)
    S = cues.stft(y, SR)
    d = cues.foa_diffuseness(S)
    # 1 - |<I>| / <E>: independent channels carry no net intensity
    assert np.median(d) > 0.8


def test_foa_diffuseness_grows_with_added_diffuse_noise():
    rng = np.random.default_rng(10)
    pw = _plane_wave(-30, 0)
    diffuse = rng.standard_normal((4, pw.shape[1])).astype(np.float32)
    diffuse[1:] /= np.sqrt(3.0)  # an isotropic field in SN3D
    meds = []
    for mix in (0.0, 0.5, 2.0):
        S = cues.stft(pw + mix * diffuse * float(np.std(pw[0])), SR)
        meds.append(float(np.median(cues.foa_diffuseness(S))))
    assert meds[0] < meds[1] < meds[2]


@pytest.mark.parametrize(("ild", "unit"), [(0.0, 0.0), (200.0, 1.0), (-200.0, -1.0)])
def test_ild_to_unit(ild, unit):
    assert float(cues.ild_to_unit(ild)) == pytest.approx(unit, abs=1e-9)


# ----------------------------------------------------------------------------- precedence


def test_onset_weights_favour_rising_bins():
    """A noise burst: its first frame weighs ~1, its steady part little, its decay nothing."""
    n = SR
    rng = np.random.default_rng(5)
    env = np.zeros(n)
    on, off = int(0.3 * SR), int(0.6 * SR)
    env[on:off] = 1.0
    env[off:] = np.exp(-(np.arange(n - off) / SR) / 0.05)  # a 50 ms decay, like a room's
    s = rng.standard_normal(n) * env
    S = cues.stft(np.stack([s, s]).astype(np.float32), SR)
    w = cues.onset_weights(S)
    assert w.shape == S.X.shape[1:] and w.min() >= 0.0 and w.max() <= 1.0
    first = int(np.ceil((on - S.n_fft / 2) / S.hop + 0.5))  # first frame wholly in the burst
    steady = slice(first + 4, int((off - S.n_fft) / S.hop) - 1)
    decay = slice(int(off / S.hop) + 2, int((off + 0.2 * SR - S.n_fft) / S.hop))
    assert w[: first - 2].max() == 0.0  # digital silence before the burst
    assert w[first - 1 : first + 1].max(axis=0).mean() > 0.9
    assert w[steady].mean() < 0.2
    assert w[decay].mean() < 0.02  # a chance fluctuation at most


def test_windowed_gcc_is_the_weighted_mean_of_frame_functions():
    y = _delayed_pair(12, seconds=1.0)
    S = cues.stft(y, SR)
    w = np.random.default_rng(2).uniform(0.0, 1.0, S.X.shape[1:]).astype(np.float32)
    starts, win = np.array([0, 10, 25]), 12
    itds, r_win, w_win = cues.gcc_phat_windows(S, starts, win, w)
    itds_f, r = cues.gcc_phat_function(S, weights=w)
    assert np.allclose(itds, itds_f)
    unit, band, _ = cues.unit_cross_spectrum(S)
    frame_w = (w[:, : band.size] * band).sum(axis=-1)
    for i, s in enumerate(starts):
        fw = frame_w[s : s + win]
        expected = (r[s : s + win] * fw[:, None]).sum(axis=0) / fw.sum()
        assert np.allclose(r_win[i], expected, atol=1e-4)
        assert w_win[i] == pytest.approx(fw.sum(), rel=1e-5)
    # a single coherent source: the peak sits at its ITD in every window
    assert np.allclose(itds[np.argmax(r_win, axis=-1)], 12 / SR, atol=0.6 / SR)


def test_stacked_gcc_weights_match_separate_calls():
    S = cues.stft(_delayed_pair(-7, seconds=0.5), SR)
    w = cues.onset_weights(S)
    _, r2 = cues.gcc_phat_function(S, weights=np.stack([0.1 + w, w]))
    _, a = cues.gcc_phat_function(S, weights=0.1 + w)
    _, b = cues.gcc_phat_function(S, weights=w)
    assert np.allclose(r2[0], a, atol=1e-5) and np.allclose(r2[1], b, atol=1e-5)


def _bursts_pair(sr: int, seconds: float = 2.0) -> np.ndarray:
    """Noise bursts (onsets), a pause of digital silence, a delay and a level difference:
    every weighting of the one-pass cues has something to do."""
    rng = np.random.default_rng(7)
    n = int(seconds * sr)
    s = rng.standard_normal(n + 64)
    env = (np.sin(2 * np.pi * 3.0 * np.arange(n + 64) / sr) > 0.2).astype(float)
    env[int(0.8 * sr):int(1.1 * sr)] = 0.0
    s *= env
    left = s[20:20 + n]
    right = 0.6 * s[14:14 + n] + 0.05 * rng.standard_normal(n) * env[:n]
    return np.stack([left, right]).astype(np.float32)


@pytest.mark.parametrize("sr", [48000, 44100, 16000])
def test_two_channel_cues_match_the_separate_cue_functions(sr):
    S = cues.stft(_bursts_pair(sr), sr)
    T = S.X.shape[1]
    floor = 0.1
    active = np.ones(T, dtype=bool)
    active[T // 3: T // 3 + 10] = False
    starts, win = np.arange(0, T - 5, 12), 25
    tc = cues.two_channel_cues(S, onset_floor=floor, active=active, starts=starts, win=win,
                               ild_band_hz=(1500.0, 12000.0), keep_onset_hz=3000.0)
    w_on = cues.onset_weights(S, n_bins=cues.cue_bins(S))
    itds, r = cues.gcc_phat_function(S, weights=floor + w_on)
    assert np.allclose(tc.lag_itd_s, itds)
    assert np.allclose(tc.gcc, r, atol=2e-4)
    pos, pk = cues.parabolic_peak(r, np.argmax(r, axis=-1))
    itd = itds[0] + pos * (itds[1] - itds[0])
    same = np.argmax(r, axis=-1) == np.argmax(tc.gcc, axis=-1)
    assert same.mean() > 0.99
    assert np.allclose(tc.itd_s[same], itd[same], atol=1e-7)
    assert np.allclose(tc.peak, np.clip(pk, 0, 1), atol=2e-4)
    coh = cues.interaural_coherence(S, tc.itd_s)
    assert np.allclose(tc.coherence, coh, atol=1e-3)
    assert np.allclose(tc.ild_db, cues.ild_broadband_db(S), atol=1e-3)
    assert np.allclose(tc.ild_band_db, cues.band_ild_db(S, 1500.0, 12000.0), atol=1e-3)
    _, r_win, w_win = cues.gcc_phat_windows(S, starts, win, w_on * active[:, None])
    assert np.allclose(tc.window_weight, w_win, rtol=1e-4, atol=1e-3)
    assert np.allclose(tc.gcc_windows, r_win, atol=2e-4)
    unit, band, _ = cues.unit_cross_spectrum(S)
    nf = int(np.searchsorted(S.freqs, 3000.0))
    assert tc.onset_bins.shape == (T, nf)
    assert np.allclose(tc.onset_bins, (w_on[:, :nf] * band[:nf]), atol=1e-5)
    # stereo: no onset weighting at all
    st = cues.two_channel_cues(S)
    _, r_plain = cues.gcc_phat_function(S)
    assert np.allclose(st.gcc, r_plain, atol=2e-4)
    assert st.gcc_windows is None and st.onset_bins is None
    # the delay (right lags by 6 samples: left leads) is found
    sounding = np.abs(S.X[0]).sum(axis=-1) > 1.0
    assert np.median(st.itd_s[sounding]) == pytest.approx(6 / sr, abs=0.3 / sr)
