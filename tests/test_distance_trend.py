"""Distance trends: when is a level change a change of distance (spa2v.distance)?"""

from __future__ import annotations

import numpy as np
import pytest

from spa2v import cues, distance, tracking
from spa2v.distance import Trend
from spa2v.simulate import Keyframe, SceneSource, Trajectory, simulate_scene
from spa2v.sources import make_source

SR = 48000
HOP_S = 0.02


def _frame_times(seconds: float) -> np.ndarray:
    return np.arange(int(round(seconds / HOP_S))) * HOP_S


# ----------------------------------------------------------------------------- statistics


def test_a_level_ramp_is_a_significant_change():
    t = _frame_times(3.0)
    trend = distance.level_trend(t, -30.0 + 2.0 * t)
    assert trend.change == pytest.approx(2.0 * (t[-1] - t[0]), abs=0.1)
    assert trend.z > 5.0
    assert tracking.level_change_db(t, -30.0 + 2.0 * t) == pytest.approx(trend.change)


def test_phrases_of_a_steady_talker_are_not_a_change(rng):
    """Phrases 0.3 s long at random levels (+-5 dB) over a 2 dB drift: the drift does not
    stand out from them, so it is no change of distance."""
    t = _frame_times(3.0)
    phrase = rng.uniform(-5.0, 5.0, size=int(t[-1] / 0.3) + 1)[(t / 0.3).astype(int)]
    level = -30.0 + 2.0 * t / t[-1] + phrase + rng.normal(0.0, 1.0, t.size)
    assert abs(distance.level_trend(t, level).z) < distance.LEVEL_MIN_Z
    assert tracking.level_change_db(t, level) == 0.0


def test_a_short_track_has_no_trend():
    t = _frame_times(0.4)
    assert distance.level_trend(t, -30.0 + 10.0 * t) == Trend()


def _room_track(rng, band_change_db: float, *, coherence: float = 0.6,
                others: bool = False):
    """A 3 s track whose broadband level rises 3 dB within phrases of +-4 dB and whose
    1-8 kHz level moves ``band_change_db`` within phrases of +-1 dB."""
    t = _frame_times(3.0)
    phrase = rng.uniform(-4.0, 4.0, size=11)[(t / 0.3).astype(int)]
    broad = -30.0 + 3.0 * t / t[-1] + phrase
    band = -40.0 + band_change_db * t / t[-1] + 0.25 * phrase
    active = np.ones(t.size, dtype=bool)
    alone = ~active if others else active
    return t, broad, active, dict(band_level_db=band, alone=alone,
                                  coherence=np.full(t.size, coherence))


def test_in_a_room_the_level_trend_is_read_above_1_khz(rng):
    """Reverberant (coherence 0.6), heard alone: the 1-8 kHz level's trend, which stands
    out where the broadband level's does not."""
    t, broad, active, room = _room_track(rng, 8.0)
    assert abs(distance.level_trend(t, broad).z) < distance.LEVEL_MIN_Z
    trend = distance.track_level_trend(t, broad, active, **room)
    assert trend == distance.level_trend(t, room["band_level_db"])
    assert trend.change == pytest.approx(8.0, abs=1.5) and trend.z > 3.0


@pytest.mark.parametrize("case", ["free_field", "not_alone", "against_the_total", "no_band"])
def test_elsewhere_the_level_trend_is_the_broadband_one(rng, case):
    """A free field (coherence 0.9), another track active, a band that moves against the
    broadband level (a spectrum that shifts) or no band given: the broadband trend."""
    t, broad, active, room = _room_track(
        rng, -8.0 if case == "against_the_total" else 8.0,
        coherence=0.9 if case == "free_field" else 0.6, others=case == "not_alone")
    kw = {} if case == "no_band" else room
    assert distance.track_level_trend(t, broad, active, **kw) == distance.level_trend(t, broad)


def test_the_itd_spread_of_a_window():
    """ITDs that scatter ever wider around their median (a source sinking into the room)."""
    t = _frame_times(3.0)
    itd_us = np.where(np.arange(t.size) % 2 == 0, -1.0, 1.0) * 10.0 ** (1.0 + t / 3.0)
    trend = distance.window_trend(t, itd_us, 0.5, reduce="spread", min_frames=3)
    assert 16.0 < trend.change <= 20.0  # 10 us -> 100 us: 20 dB, less the 1 us floor
    assert trend.z > 5.0


@pytest.mark.parametrize(("level", "direct", "expected"), [
    (Trend(6.0, 3.0), (), 6.0),  # a clear level trend stands on its own
    (Trend(-6.0, -3.0), (Trend(1.0, 2.0),), -6.0),
    (Trend(6.0, 1.0), (), 0.0),  # not significant, nothing confirms it
    (Trend(2.0, 1.5), (Trend(1.0, 2.0), Trend(5.0, 1.5)), 4.0),  # confirmed: the room hid half
    (Trend(-2.0, -1.5), (Trend(-1.0, -2.0), Trend(-5.0, -1.5)), -4.0),
    (Trend(2.0, 1.5), (Trend(1.0, 2.0), Trend(-5.0, -1.5)), 0.0),  # one cue disagrees
    (Trend(2.0, 1.0), (Trend(0.2, 0.3), Trend(0.5, 0.4)), 0.0),  # together too weak
    (Trend(1.0, 1.5), (Trend(3.0, 4.0), Trend(9.0, 4.0)), 0.0),  # below half the threshold
])
def test_distance_change_rule(level, direct, expected):
    assert distance.distance_change_db(level, direct) == pytest.approx(expected)


@pytest.mark.parametrize(("level", "direct", "share", "expected"), [
    # the level moved 1.4 dB, the direct sound's share 2.1 dB more: 3.5 dB of direct sound
    (Trend(-1.4, -0.9), (Trend(-1.3, -1.3), Trend(-0.7, -0.7)), Trend(-2.1, -1.9), -3.5),
    (Trend(0.6, 0.5), (Trend(1.0, 2.8), Trend(2.0, 2.5)), Trend(2.6, 1.5), 3.2),
    # below half the threshold the level counts where its share confirms it, and only so
    (Trend(0.6, 0.5), (Trend(1.0, 2.8), Trend(2.0, 2.5)), None, 0.0),
    (Trend(-1.4, -0.9), (Trend(-1.3, -1.3), Trend(-0.7, -0.7)), Trend(0.5, 0.4), 0.0),
    (Trend(-1.4, -0.9), (Trend(-0.3, -0.3), Trend(-0.2, -0.2)), Trend(-0.5, -0.4), 0.0),
    (Trend(6.0, 3.0), (), Trend(-9.0, -4.0), 6.0),  # a clear level trend stands on its own
    # the share confirms a level that moves; it does not stand for one that does not
    (Trend(0.1, 0.1), (Trend(0.1, 0.1), Trend(0.1, 0.1)), Trend(3.0, 4.0), 0.0),
])
def test_distance_change_rule_with_the_direct_share(level, direct, share, expected):
    assert distance.distance_change_db(level, direct, share) == pytest.approx(expected)


def test_the_direct_share_is_read_from_the_compression_of_the_ild():
    """A diffuse field adds the same power at both ears: as it gains on the direct sound,
    the ILD shrinks with the direct sound's share of the level (8 -> 4 dB: -3 dB)."""
    t = _frame_times(3.0)
    n = t.size
    ild = 8.0 * 2.0 ** (-t / t[-1]) + np.random.default_rng(0).normal(0.0, 0.3, n)
    one = [(np.ones(n, bool), np.full(n, -20.0))]
    args = (np.linspace(-1e-3, 1e-3, 9), np.zeros((n, 9)), np.zeros(n),
            np.array([-90.0, 90.0]), np.array([-7e-4, 7e-4]))
    for sign in (1.0, -1.0):  # either side
        d = distance.DirectSound.of_tracks(*args, one, ild_db=sign * ild)
        share = d.share_trend(t, *one[0])
        assert share.change == pytest.approx(-3.0, abs=0.4)
        assert share.z < -4.0
    # near the median plane there is no ILD to compress; without ILDs, no share
    assert distance.DirectSound.of_tracks(*args, one, ild_db=ild / 8.0).share_trend(
        t, *one[0]) is None
    assert distance.DirectSound.of_tracks(*args, one).share_trend(t, *one[0]) is None
    # the frames another source sounds in, however faint, are not read
    half = np.arange(n) < n // 2
    two = one + [(half, np.full(n, -45.0))]
    d = distance.DirectSound.of_tracks(*args, two, ild_db=np.where(half, 1.0, 8.0) * ild)
    assert d.share_trend(t, *two[0]).change == pytest.approx(-1.5, abs=0.4)


def test_direct_sound_cues_are_read_where_a_track_is_heard_alone():
    n = 100
    half = np.arange(n) < n // 2
    tracks = [(np.ones(n, bool), np.full(n, -20.0)),  # the track in question
              (~half, np.full(n, -23.0)),  # a second source, as loud, in the second half
              (half, np.full(n, -40.0))]  # a faint one (a reflection) in the first half
    d = distance.DirectSound.of_tracks(np.linspace(-1e-3, 1e-3, 9), np.zeros((n, 9)),
                                       np.zeros(n), np.array([-90.0, 90.0]),
                                       np.array([-7e-4, 7e-4]), tracks)
    assert np.array_equal(d.alone(*tracks[0]), half)
    assert not d.alone(*tracks[1]).any()


# ----------------------------------------------------------------------------- scenes


def _render(name: str, seed: int, keyframes, seconds: float, rt60_s: float | None) -> np.ndarray:
    sig = make_source(name, duration_s=seconds, sr=SR, seed=seed)
    sim = simulate_scene([SceneSource(sig, Trajectory(tuple(keyframes)))], fmt="binaural", sr=SR,
                         duration_s=seconds, rt60_s=rt60_s, seed=seed)
    return sim.audio


@pytest.mark.parametrize(("r0", "r1"), [(6.0, 1.0), (1.0, 6.0)])
def test_the_direct_sound_stands_out_as_a_source_nears_in_a_room(r0, r1):
    """A noise 6 m -> 1 m (and back) in a room with RT60 0.5 s: the GCC-PHAT peaks higher at
    the source's ITD and the frames' ITDs scatter less as the direct sound gains on the
    reverberation, and the other way round."""
    y = _render("noise", 3, [Keyframe(0.0, 30.0, 0.0, r0), Keyframe(3.0, 30.0, 0.0, r1)], 3.0,
                0.5)
    an = tracking.analyze_signal(y, SR, "binaural")
    s = an.sources[0]
    S = cues.stft(y, SR)
    itds, r = cues.gcc_phat_function(S)
    itd_s, _ = cues.gcc_phat(S)
    cal = tracking.spherical_calibration(SR)
    d = distance.DirectSound.of_tracks(itds, r, itd_s, tracking.AZ_GRID, cal.itd_s,
                                       [(s.active, s.loudness_db)])
    height, spread = d.trends(s.times, s.azimuth_deg, s.active, s.loudness_db)
    sign = 1.0 if r1 < r0 else -1.0
    assert sign * height.z > 1.0 and sign * height.change > 1.0
    assert sign * spread.z > 0.0


@pytest.mark.parametrize(("name", "rt60_s", "seed"), [
    ("babble", None, 1), ("babble", None, 2), ("babble", None, 3),
    ("music", None, 1), ("music", None, 2),
    ("babble", 0.5, 1),
    ("babble", 0.5, 2),
    ("babble", 0.5, 3),
])
def test_a_source_that_stays_put_is_static(name, rt60_s, seed):
    """Speech and music change their level phrase by phrase; 2 s of it from 2 m is not an
    approach (the anechoic talkers 1 and 3 were issue 3's known failures)."""
    y = _render(name, seed, [Keyframe(0.0, 30.0, 0.0, 2.0)], 2.0, rt60_s)
    an = tracking.analyze_signal(y, SR, "binaural")
    assert [s.motion for s in an.sources] == ["static"] * len(an.sources)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(("r0", "r1", "label"), [(6.0, 1.0, "approaching"),
                                                 (1.0, 6.0, "receding")])
def test_music_approaching_and_receding_in_a_room(r0, r1, label, seed):
    """In a room (RT60 0.5 s) the reverberant field holds the level up far from the source:
    a 16 dB change of the direct sound moves the total level by 5 to 9 dB only."""
    y = _render("music", seed, [Keyframe(0.0, 30.0, 0.0, r0), Keyframe(3.0, 30.0, 0.0, r1)],
                3.0, 0.5)
    an = tracking.analyze_signal(y, SR, "binaural")
    assert len(an.sources) == 1
    assert an.sources[0].motion == label


@pytest.mark.parametrize(("name", "seed", "r0", "r1", "label"), [
    ("babble", 1171, 2.0, 8.0, "receding"),
    ("piano", 1131, 8.0, 2.0, "approaching"),
    ("babble", 1121, 8.0, 2.0, "approaching"),  # read above 1 kHz (track_level_trend)
])
def test_a_talker_and_a_piano_in_a_room_on_an_unknown_head(kemar_sofa, name, seed, r0, r1,
                                                           label):
    """Through the measured KEMAR head in a room (RT60 0.5 s, three of the motion
    benchmark's scenes): 12 dB of direct sound move the total level by 1.4-3.7 dB, within
    the talker's and the piano's own ups and downs, but the ILD's compression gives the
    direct sound's share of it, or the level above 1 kHz follows it more closely."""
    from spa2v.audio import read_audio
    from spa2v.hrtf import SofaHrtf

    if name == "piano":
        path = kemar_sofa.parents[1] / "audio" / "piano_mono.flac"
        p, _ = read_audio(path, sr=SR, mono=True)
        p = p[0] / np.sqrt(np.mean(p[0] ** 2)) * 0.1
        start = (seed * 12345) % (p.size - 4 * SR)
        sig = p[start : start + 4 * SR]
    else:
        sig = make_source(name, duration_s=4.0, sr=SR, seed=seed)
    az = (25.0 if label == "approaching" else -25.0) + float(
        np.random.default_rng(seed).uniform(-10, 10))
    y = simulate_scene([SceneSource(sig, Trajectory((Keyframe(0.0, az, 0.0, r0),
                                                     Keyframe(4.0, az, 0.0, r1))))],
                       fmt="binaural", sr=SR, duration_s=4.0, rt60_s=0.5, noise_snr_db=20.0,
                       seed=seed, head=SofaHrtf.from_file(kemar_sofa, SR)).audio
    an = tracking.analyze_signal(y, SR, "binaural")
    assert [s.motion for s in an.sources] == [label]


@pytest.mark.parametrize(("name", "seed"), [("bark", 2), ("bark", 3), ("bark", 4), ("bark", 6),
                                            ("footsteps", 1)])
def test_a_sparse_sound_is_heard_only_while_it_sounds(name, seed):
    """A dog that barks a few times, or a few footsteps, over a background noise 20 dB down:
    most frames are the noise's, so the median frame sits on the floor, not above it.  The
    pauses are still pauses (a track active on the noise floor takes its level, 30 dB
    under the barks, for a receding source, or splits at the silence into two)."""
    sig = make_source(name, duration_s=3.0, sr=SR, seed=seed)
    y = simulate_scene([SceneSource(sig, Trajectory.static(30.0, 0.0, 2.5))], fmt="binaural",
                       sr=SR, duration_s=3.0, noise_snr_db=20.0, seed=seed).audio
    an = tracking.analyze_signal(y, SR, "binaural")
    assert [s.motion for s in an.sources] == ["static"]
    s = an.sources[0]
    half = int(round(an.hop_s * SR / 2))
    centre = np.round(s.times * SR).astype(int)
    dry = np.array([np.mean(sig[max(c - half, 0):c + half] ** 2) + 1e-20 for c in centre])
    dry_db = 10 * np.log10(dry / dry.max())
    sounding, silent = dry_db > -10.0, dry_db < -30.0
    assert silent.mean() > 0.5  # (the scene is more pause than sound)
    # (a footstep of two frames may fall to the activity's majority vote over five)
    assert s.active[sounding].mean() >= 0.8
    assert s.active[silent].mean() <= 0.1
