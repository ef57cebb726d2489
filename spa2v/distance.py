"""Distance trends of a source track: is a level change a change of distance?

A source that approaches or recedes changes the level of its direct sound by
``20 log10(r0 / r1)``.  Two things blur that in a recording:

* the source's own dynamics (phrases of speech, notes of music) raise and lower the level
  of a source that stays put, so a trend must stand out from the level's ups and downs
  (a t-test on the slope of the level over short windows, not a fixed threshold);
* a diffuse field (the room's reverberation, background noise) does not follow the
  source's distance, so in a room the total level changes much less than the direct
  sound: a talker who walks from 8 m to 2 m in a room with an RT60 of 0.5 s gains 12 dB
  of direct sound but only a few dB of total level.  Above 1 kHz, where the head's
  directivity lifts the direct sound at the near ear, the level follows it more closely,
  so a binaural track heard alone in a room has its level trend read there
  (:func:`track_level_trend`).

Where a binaural level trend is too weak on its own, cues of the direct sound's dominance
can confirm it: as a source comes closer its direct sound stands out from the diffuse
field, so the GCC-PHAT function of each frame peaks higher at the source's ITD and the
frames' ITDs scatter less around it (a receding source's localisation blurs), and its
high-frequency ILD grows: the diffuse field is as loud at both ears, so it compresses the
head's ILD by the direct sound's share of the level.  All three are ratios of the direct
sound to the rest, so, unlike the level, they do not follow the source's dynamics.  They
are read only on frames where the track is the one source.  Where the ILD can be read (a
source off to a side), the direct sound's change is the level's change plus that of its
share; elsewhere the room is taken to hide half of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri, stdtr

from spa2v.conventions import DISTANCE_MIN_CHANGE_DB

LEVEL_WINDOW_S = 0.25
"""The level trend is fitted to the level (energy mean) of windows this long."""
REVERBERANT_BAND_HZ = (1000.0, 8000.0)
"""In a reverberant recording, a track's level trend is read in this band (the louder
ear's level) instead of the broadband level (:func:`track_level_trend`)."""
REVERBERANT_MAX_COHERENCE = 0.8
"""A track is taken as heard in a room where the median interaural coherence of its
frames is under this.  Through KEMAR at 20 dB SNR, a talker, a piano, an engine or noise
alone in a free field keeps 0.86-0.96, in a room with an RT60 of 0.5 s 0.34-0.81; sparse
sounds (barks, birds), whose frames between events hold only the background noise, can
fall to 0.54 in a free field, where the 1-8 kHz level changes as the broadband one does."""
BAND_MIN_ALONE = 0.9
"""The band level is a frame's, not a track's: it is read for a track heard alone (no
other track active) in at least this share of its active frames."""
DIRECT_WINDOW_S = 0.5
"""The direct-sound cues are averaged over windows this long (enough frames for an ITD
spread)."""
LEVEL_MIN_Z = 2.0
"""A level trend counts when its slope is this many standard errors from zero (as a
normal z-score, from the t distribution of the fit)."""
CONFIRMED_MIN_Z = 2.0
"""Combined z-score (level and direct-sound cues, Stouffer) of a confirmed trend."""
DIFFUSE_MASKING = 2.0
"""A level trend that the direct-sound cues confirm is taken as the diffuse field's share
of a direct-path change at least this many times larger (with the direct sound at most as
strong as the diffuse field, the total level moves by half the direct sound's dB or less)."""
MAX_Z = 4.0
"""Each cue's z-score is clipped to this before they are combined (no one cue decides)."""
OVERLAP_DB = 6.0
"""Another track within this many dB of a track's level masks its direct-sound cues."""
SHARE_MIN_LEVEL_DB = 0.5
"""With the direct sound's share, a level trend counts from this change on (the share
confirms a level that moves; it does not stand for one that does not)."""
SHARE_MIN_ILD_DB = 2.0
"""The direct sound's share is read from the ILD's compression where the track's ILD
(median over its frames) is at least this large: a source near the median plane has
little ILD to compress."""


@dataclass(frozen=True)
class Trend:
    """A linear trend of a per-frame value over a track.

    Attributes
    ----------
    change : float
        Slope times the track's span, in the value's units (dB for a level).
    z : float
        The slope's significance as a normal z-score (0 where it cannot be judged).
    """

    change: float = 0.0
    z: float = 0.0


def window_trend(times: np.ndarray, values: np.ndarray, window_s: float, *,
                 reduce: str = "energy", min_frames: int = 2) -> Trend:
    """Trend of ``values`` reduced over windows of ``window_s`` seconds, and its z-score.

    Parameters
    ----------
    times : np.ndarray, shape ``(n,)``
        Increasing frame times in seconds (the frames to use, e.g. a track's active ones).
    values : np.ndarray, shape ``(n,)``
    window_s : float
    reduce : {"energy", "mean_db", "spread"}
        Per window: the energy mean of levels in dB, the mean of linear values in dB
        (``10 log10``, floored at -30 dB), or the spread
        ``20 log10(1 + median |v - median v|)`` (``values`` in microseconds).
    min_frames : int
        Windows with fewer frames are left out; at least three windows are needed.
    """
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if times.size < 3 or times[-1] <= times[0]:
        return Trend()
    span = float(times[-1] - times[0])
    n_win = max(2, int(round(span / window_s)))
    edges = np.linspace(times[0], times[-1] + 1e-9, n_win + 1)
    which = np.clip(np.searchsorted(edges, times, side="right") - 1, 0, n_win - 1)
    counts = np.bincount(which, minlength=n_win)
    keep = counts >= min_frames
    if keep.sum() < 3:
        return Trend()
    t_c = np.bincount(which, weights=times, minlength=n_win)[keep] / counts[keep]
    if reduce == "energy":
        e = np.bincount(which, weights=10.0 ** (values / 10.0), minlength=n_win)[keep]
        v_c = 10.0 * np.log10(e / counts[keep] + 1e-30)
    elif reduce == "mean_db":
        m = np.bincount(which, weights=values, minlength=n_win)[keep] / counts[keep]
        v_c = 10.0 * np.log10(np.clip(m, 1e-3, None))
    elif reduce == "spread":
        centre = _group_median(which, values, counts)
        mad = _group_median(which, np.abs(values - centre[which]), counts)
        v_c = 20.0 * np.log10(1.0 + mad[keep])
    else:
        raise ValueError(f"unknown reduction {reduce!r}")
    slope, z = _slope_z(t_c, v_c)
    return Trend(float(slope * span), z)


def _group_median(group: np.ndarray, values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Median of ``values`` in each group (``counts`` samples each; 0 where empty)."""
    v = values[np.lexsort((values, group))]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    c = np.maximum(counts, 1)
    lo = starts + (c - 1) // 2
    hi = starts + c // 2
    m = 0.5 * (v[np.minimum(lo, v.size - 1)] + v[np.minimum(hi, v.size - 1)])
    return np.where(counts > 0, m, 0.0)


def _slope_z(t: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and its significance as a z-score (t distribution, n - 2 dof)."""
    n = t.size
    tc = t - t.mean()
    sxx = float(np.sum(tc**2))
    if sxx <= 0.0:
        return 0.0, 0.0
    slope = float(np.sum(tc * (v - v.mean())) / sxx)
    resid = v - v.mean() - slope * tc
    se = float(np.sqrt(np.sum(resid**2) / (n - 2) / sxx))
    if se <= 1e-12 * max(abs(slope), 1.0):  # an exact line
        return slope, float(np.sign(slope)) * 40.0
    p = float(np.clip(stdtr(n - 2, slope / se), 1e-15, 1.0 - 1e-15))
    return slope, float(ndtri(p))


def level_trend(times: np.ndarray, level_db: np.ndarray) -> Trend:
    """Trend of a track's level (energy mean over ``LEVEL_WINDOW_S`` windows)."""
    return window_trend(times, level_db, LEVEL_WINDOW_S, reduce="energy")


def track_level_trend(times: np.ndarray, level_db: np.ndarray, active: np.ndarray, *,
                      band_level_db: np.ndarray | None = None,
                      alone: np.ndarray | None = None,
                      coherence: np.ndarray | None = None) -> Trend:
    """The level trend of a track (frames ``times``, level ``level_db``, ``active``).

    In a room, the broadband level understates a change of distance: the reverberant
    field does not follow the source, and it is strongest where speech and music hold most
    of their energy and their phrasing, below 1 kHz.  Above it, the head's directivity
    raises the direct sound at the near ear over the diffuse field by several dB, and the
    level there follows the direct sound more closely (through KEMAR in a room with an
    RT60 of 0.5 s, a talker walking from 8 to 2 m: broadband +2.9 dB at z = 1.5, 1-8 kHz
    +5.7 dB at z = 3.3; one walking away: -1.4 dB at z = -0.9, -5.7 dB at z = -2.5).

    So where the track is heard alone (``alone``: no other track active, in at least
    ``BAND_MIN_ALONE`` of its active frames) and in a room (the median interaural
    ``coherence`` of those frames under ``REVERBERANT_MAX_COHERENCE``), the trend is that
    of ``band_level_db``, the frames' level in ``REVERBERANT_BAND_HZ`` (up to a constant),
    as long as it changes the same way as the broadband level: a change of distance moves
    both alike, while a source whose spectrum shifts (music approaching on ever lower
    notes) can move the band against the total.  Elsewhere it is the trend of the
    broadband level of the active frames.  Over 240 distance scenes of the motion
    benchmark's four sounds (ten renderings of each case) and 360 of the source library
    (through KEMAR, half of them in the room), this made 14 motion labels right that the
    broadband level got wrong, and 3 wrong (two static pianos, a receding siren).
    """
    act = np.asarray(active, dtype=bool)
    times = np.asarray(times)
    broad = level_trend(times[act], np.asarray(level_db)[act])
    if band_level_db is None or alone is None or coherence is None:
        return broad
    use = act & np.asarray(alone, dtype=bool)
    if (use.sum() < max(3, BAND_MIN_ALONE * act.sum())
            or float(np.median(np.asarray(coherence)[use])) >= REVERBERANT_MAX_COHERENCE):
        return broad
    band = level_trend(times[use], np.asarray(band_level_db)[use])
    return band if np.sign(band.change) == np.sign(broad.change) else broad


@dataclass(frozen=True)
class DirectSound:
    """Per-frame binaural cues of the direct sound, shared by the tracks of one analysis.

    Attributes
    ----------
    lags_s : np.ndarray, shape ``(lags,)``
        The ITD of each column of ``gcc`` (increasing).
    gcc : np.ndarray, shape ``(frames, lags)``
        Each frame's GCC-PHAT function.
    itd_s : np.ndarray, shape ``(frames,)``
        Each frame's ITD (the peak of ``gcc``).
    az_grid_deg, itd_table_s : np.ndarray, shape ``(A,)``
        The head model: the ITD of each azimuth.
    track_level_db : np.ndarray, shape ``(tracks, frames)``
        Every track's level, ``-inf`` where it is not active.
    ild_db : np.ndarray, shape ``(frames,)``, optional
        Each frame's high-frequency ILD (left over right).
    """

    lags_s: np.ndarray
    gcc: np.ndarray
    itd_s: np.ndarray
    az_grid_deg: np.ndarray
    itd_table_s: np.ndarray
    track_level_db: np.ndarray
    ild_db: np.ndarray | None = None

    @classmethod
    def of_tracks(cls, lags_s, gcc, itd_s, az_grid_deg, itd_table_s,
                  tracks: list[tuple[np.ndarray, np.ndarray]], *,
                  ild_db: np.ndarray | None = None) -> DirectSound:
        """The cues of an analysis whose tracks have these ``(active, level_db)``."""
        n = np.asarray(itd_s).shape[0]
        levels = np.array([np.where(act, lvl, -np.inf) for act, lvl in tracks],
                          dtype=float).reshape(len(tracks), n)
        return cls(np.asarray(lags_s), np.asarray(gcc), np.asarray(itd_s),
                   np.asarray(az_grid_deg), np.asarray(itd_table_s), levels,
                   None if ild_db is None else np.asarray(ild_db, dtype=float))

    @property
    def one_track(self) -> np.ndarray:
        """Frames where at most one track is active, ``(frames,)``."""
        return np.isfinite(self.track_level_db).sum(axis=0) <= 1

    def alone(self, active: np.ndarray, level_db: np.ndarray) -> np.ndarray:
        """Frames where a track is active and no other track comes within ``OVERLAP_DB``."""
        near = self.track_level_db >= np.asarray(level_db)[None, :] - OVERLAP_DB
        return np.asarray(active, dtype=bool) & (near.sum(axis=0) <= 1)

    def trends(self, times: np.ndarray, azimuth_deg: np.ndarray, active: np.ndarray,
               level_db: np.ndarray) -> tuple[Trend, Trend]:
        """Trends of the direct sound's dominance along a track (both rise as it nears).

        Returns the trend of the GCC-PHAT height at the track's ITD (dB) and that of the
        frames' ITD spread (negated: a falling spread is a rising dominance), both over
        ``DIRECT_WINDOW_S`` windows of the frames where the track is heard alone.
        """
        use = self.alone(active, level_db)
        if use.sum() < 3:
            return Trend(), Trend()
        itd_track = np.interp(azimuth_deg[use], self.az_grid_deg, self.itd_table_s)
        col = np.clip(np.searchsorted(self.lags_s, itd_track), 1, self.lags_s.size - 2)
        # the peak of the frame's GCC-PHAT within one lag of the track's ITD
        height = self.gcc[np.nonzero(use)[0][:, None], col[:, None] + np.arange(-1, 2)].max(1)
        t = times[use]
        h = window_trend(t, height, DIRECT_WINDOW_S, reduce="mean_db", min_frames=3)
        s = window_trend(t, self.itd_s[use] * 1e6, DIRECT_WINDOW_S, reduce="spread",
                         min_frames=3)
        return h, Trend(-s.change, -s.z)

    def share_trend(self, times: np.ndarray, active: np.ndarray,
                    level_db: np.ndarray) -> Trend | None:
        """Trend of the direct sound's share of a track's level (dB), from its ILD.

        The diffuse field adds the same power at both ears, so a frame's ILD is about the
        head's ILD times the direct sound's share of the level; the trend of the ILD's
        magnitude (mean over ``DIRECT_WINDOW_S`` windows, in dB) is the share's.  ``None``
        without ILDs, or where the track's ILD is under ``SHARE_MIN_ILD_DB`` (near the
        median plane).  Only the frames where no other track sounds are read: a frame's
        ILD is every source's, and another one, however faint, moves it.
        """
        if self.ild_db is None:
            return None
        use = np.asarray(active, dtype=bool) & self.one_track
        if use.sum() < 3:
            return None
        ild = self.ild_db[use]
        side = float(np.median(ild))
        if abs(side) < SHARE_MIN_ILD_DB:
            return None
        return window_trend(np.asarray(times)[use], np.sign(side) * ild, DIRECT_WINDOW_S,
                            reduce="mean_db", min_frames=3)


def stands_alone(level: Trend) -> bool:
    """Whether a level trend is a change of distance without confirmation."""
    return abs(level.change) >= DISTANCE_MIN_CHANGE_DB and abs(level.z) >= LEVEL_MIN_Z


def needs_confirmation(level: Trend) -> bool:
    """Whether direct-sound cues could make a level trend a change of distance."""
    return (not stands_alone(level)
            and abs(level.change) >= DISTANCE_MIN_CHANGE_DB / DIFFUSE_MASKING)


def distance_change_db(level: Trend, direct: tuple[Trend, ...] = (),
                       share: Trend | None = None) -> float:
    """Estimated change of the direct sound's level (dB) from a track's trends; 0 if none.

    A level trend of at least ``DISTANCE_MIN_CHANGE_DB`` that stands out from the level's
    own ups and downs (z >= ``LEVEL_MIN_Z``) is taken as it is (it needs no share: the
    change is the level's).  A weaker one counts when the direct-sound cues ``direct`` (and
    the trend of the direct sound's ``share`` of the level, where it could be read)
    confirm it: every cue moves the same way as the level and together (Stouffer's z) they
    reach ``CONFIRMED_MIN_Z``.  With a share, the level's change must be at least
    ``SHARE_MIN_LEVEL_DB``, and the direct sound changed by the level's change plus its
    share's; without one, the level's change must be at least half the threshold, and the
    diffuse field is taken to hide half of the direct sound's (``DIFFUSE_MASKING``).  The
    change may still fall short of ``DISTANCE_MIN_CHANGE_DB``: a small change is not a
    motion.
    """
    if stands_alone(level):
        return level.change
    if not direct:
        return 0.0
    if share is None and not needs_confirmation(level):
        return 0.0
    if share is not None and abs(level.change) < SHARE_MIN_LEVEL_DB:
        return 0.0
    c = level.change
    cues = list(direct) + ([share] if share is not None else [])
    zs = np.clip([level.z] + [d.z for d in cues], -MAX_Z, MAX_Z)
    if np.any(np.sign(zs) != np.sign(c)):
        return 0.0
    if abs(float(zs.sum())) / np.sqrt(zs.size) < CONFIRMED_MIN_Z:
        return 0.0
    return c + share.change if share is not None else DIFFUSE_MASKING * c
