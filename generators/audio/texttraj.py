"""What the rules read about a source (``SourceState``) -> its ``Trajectory``.

Also the relative placement of two sources ("a dog to the left of a car") and the
spreading of sources that no word gives a direction.  The geometry is tabled in
``generators.audio.textspec``'s docstring.
"""

from __future__ import annotations

import numpy as np

from generators.audio.textwords import (
    APPROACH_FAR_M,
    APPROACH_NEAR_M,
    CORNER_AZ,
    DEFAULT_DISTANCE_M,
    FLY_OVER_HEIGHT_M,
    LINE_HALF_ANGLE_DEG,
    MAX_STEP_DEG,
    MOTION_FRACTION,
    MOTION_SIDE_DEG,
    NEAR_DISTANCE_M,
    PASS_BY_DISTANCE_M,
    RELATIVE_LATERAL_DEG,
    RELATIVE_PAIR_DEG,
    RISE_ELEVATION_DEG,
    SPREAD_DEG,
    VERY_NEAR_DISTANCE_M,
    Direction,
    SourceState,
)
from spa2v.conventions import angle_diff_deg, position_label, wrap_deg
from spa2v.simulate import Keyframe, Trajectory


def _window(st: SourceState, duration_s: float) -> tuple[float, float]:
    """Start and end of the motion: the middle part of the clip its speed allows."""
    frac = MOTION_FRACTION[st.speed]
    t0 = 0.5 * (1.0 - frac) * duration_s
    return t0, duration_s - t0


def _steps(az_from: float, az_to: float, rotation: str | None) -> float:
    """Signed azimuth change from one waypoint to the next."""
    if rotation == "ccw":
        return float(np.mod(az_to - az_from, 360.0))
    if rotation == "cw":
        return -float(np.mod(az_from - az_to, 360.0))
    d = float(angle_diff_deg(az_to, az_from))
    return 180.0 if d == -180.0 else d


def _mirror(d: Direction) -> Direction:
    az = d.azimuth_deg
    if az is None:
        return Direction(None, 0.0 if d.elevation_deg else None)
    if position_label(az) == "center":  # front <-> back
        return Direction(float(wrap_deg(az + 180.0)), d.elevation_deg)
    return Direction(-az, d.elevation_deg)


def base_place(st: SourceState) -> Direction:
    """The static place of a source: its first position (azimuth and elevation merged)."""
    az = next((p.azimuth_deg for p in st.positions if p.azimuth_deg is not None), None)
    words = {p.word for p in st.positions if p.word in ("front", "back", "left", "right")}
    if len(words) == 2 and frozenset(words) in CORNER_AZ:  # "behind you, on the left"
        az = CORNER_AZ[frozenset(words)]
    el = next((p.elevation_deg for p in st.positions if p.elevation_deg is not None), None)
    if st.elevation_deg is not None:
        el = st.elevation_deg
    return Direction(az, el, st.distance_m)


def build_trajectory(st: SourceState, duration_s: float, default_az: float) -> Trajectory:
    """The path of one source over ``duration_s`` (``default_az`` when nothing gives one)."""
    base = base_place(st)
    if "azimuth_deg" in st.relation_fixed:
        base.azimuth_deg = st.relation_fixed["azimuth_deg"]
    if "distance_m" in st.relation_fixed and st.distance_m is None:
        base.distance_m = st.relation_fixed["distance_m"]
    if "elevation_deg" in st.relation_fixed and base.elevation_deg is None:
        base.elevation_deg = st.relation_fixed["elevation_deg"]
    az0 = base.azimuth_deg if base.azimuth_deg is not None else default_az
    el0 = base.elevation_deg if base.elevation_deg is not None else 0.0
    r0 = base.distance_m if base.distance_m is not None else DEFAULT_DISTANCE_M

    if st.path in ("passby", "flyover"):
        return _line(st, duration_s, base, az0)

    t0, t1 = _window(st, duration_s)
    # azimuth / elevation waypoints
    points: list[Direction] = []
    if st.start is not None or st.waypoints:
        start = st.start
        if start is None:
            start = Direction(base.azimuth_deg, base.elevation_deg) if base.azimuth_deg is not None \
                else _mirror(st.waypoints[0])
        points = [start, *st.waypoints]
    elif st.crossing is not None:
        side = MOTION_SIDE_DEG if st.crossing == "left_to_right" else -MOTION_SIDE_DEG
        points = [Direction(side, None), Direction(-side, None)]
    az_list: list[float] = []
    el_list: list[float] = []
    for i, p in enumerate(points):
        az = p.azimuth_deg
        if az is None:
            prev = next((q.azimuth_deg for q in reversed(points[:i]) if q.azimuth_deg is not None),
                        None)
            nxt = next((q.azimuth_deg for q in points[i + 1:] if q.azimuth_deg is not None), None)
            az = prev if prev is not None else nxt if nxt is not None else az0
        az_list.append(az)
        el_list.append(p.elevation_deg if p.elevation_deg is not None else el0)

    if st.path == "circle":
        start_az = az_list[0] if az_list else az0
        sign = -1.0 if st.rotation == "cw" else 1.0
        az_u = [start_az, start_az + sign * 360.0 * st.laps]
        el_u = [el_list[0] if el_list else el0] * 2
    elif az_list:
        az_u, el_u = [az_list[0]], [el_list[0]]
        for a, e in zip(az_list[1:], el_list[1:], strict=True):
            az_u.append(az_u[-1] + _steps(az_u[-1], a, st.rotation))
            el_u.append(e)
    else:
        az_u, el_u = [az0], [el0]

    # elevation motion replaces the elevation track
    if st.elevation_motion is not None:
        lo, hi = (el0, RISE_ELEVATION_DEG) if el0 < RISE_ELEVATION_DEG - 1 else (0.0, el0)
        e0, e1 = (lo, hi) if st.elevation_motion == "rise" else (hi, lo)
        el_u = list(np.linspace(e0, e1, len(az_u))) if len(az_u) > 1 else [e0, e1]
        if len(az_u) == 1:
            az_u = [az_u[0], az_u[0]]

    # distance track
    if st.distance_motion == "approach":
        far = base.distance_m if base.distance_m is not None else APPROACH_FAR_M
        r_track = [far, max(far / 4.0, VERY_NEAR_DISTANCE_M)]
    elif st.distance_motion == "recede":
        near = base.distance_m if base.distance_m is not None else APPROACH_NEAR_M
        r_track = [near, near * 4.0]
    else:
        r_track = [r0, r0]

    return _keyframes(az_u, el_u, r_track, t0, t1, duration_s)


def _keyframes(az_u: list[float], el_u: list[float], r_track: list[float], t0: float, t1: float,
               duration_s: float) -> Trajectory:
    """Keyframes from an unwrapped azimuth path (times spread by angular distance)."""
    az = np.asarray(az_u, dtype=np.float64)
    el = np.asarray(el_u, dtype=np.float64)
    if len(az) == 1 and r_track[0] == r_track[1]:
        return Trajectory((Keyframe(0.0, float(wrap_deg(az[0])), float(el[0]), r_track[0]),))
    # subdivide long steps so that interpolation keeps the way round
    fine_az, fine_el = [az[0]], [el[0]]
    for i in range(1, len(az)):
        n = max(1, int(np.ceil(abs(az[i] - az[i - 1]) / MAX_STEP_DEG - 1e-9)))
        for k in range(1, n + 1):
            fine_az.append(az[i - 1] + (az[i] - az[i - 1]) * k / n)
            fine_el.append(el[i - 1] + (el[i] - el[i - 1]) * k / n)
    fa, fe = np.asarray(fine_az), np.asarray(fine_el)
    if len(fa) == 1:
        fa, fe = np.repeat(fa, 2), np.repeat(fe, 2)
    seg = np.abs(np.diff(fa)) + np.abs(np.diff(fe))
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    frac = cum / cum[-1] if cum[-1] > 0 else np.linspace(0.0, 1.0, len(fa))
    times = t0 + frac * (t1 - t0)
    r = np.interp(frac, [0.0, 1.0], r_track)
    kfs = []
    if t0 > 1e-9:
        kfs.append(Keyframe(0.0, float(wrap_deg(fa[0])), float(fe[0]), float(r[0])))
    for t, a, e, d in zip(times, fa, fe, r, strict=True):
        kfs.append(Keyframe(round(float(t), 6), float(wrap_deg(a)), float(e), float(d)))
    if t1 < duration_s - 1e-9:
        kfs.append(Keyframe(float(duration_s), float(wrap_deg(fa[-1])), float(fe[-1]), float(r[-1])))
    # a distance-only motion has duplicate times when the path is one point: drop repeats
    uniq: list[Keyframe] = []
    for k in kfs:
        if uniq and abs(k.t - uniq[-1].t) < 1e-9:
            uniq[-1] = k
        else:
            uniq.append(k)
    return Trajectory(tuple(uniq))


def _line(st: SourceState, duration_s: float, base: Direction, az0: float) -> Trajectory:
    """Pass-by (horizontal line in front or behind) or fly-over (a line overhead)."""
    half = np.deg2rad(LINE_HALF_ANGLE_DEG[st.speed])
    # direction of travel from the waypoints / crossing words (default left to right)
    a_start = st.start.azimuth_deg if st.start is not None else None
    a_end = st.waypoints[-1].azimuth_deg if st.waypoints else None
    if st.path == "passby":
        d = base.distance_m if base.distance_m is not None else PASS_BY_DISTANCE_M
        behind = any(p.azimuth_deg is not None and abs(p.azimuth_deg) > 90
                     for p in [*st.positions, *([st.start] if st.start else [])])
        x = -d if behind else d
        sign = 1.0  # +1: from the left (+y) to the right (-y)
        if a_start is not None and abs(np.sin(np.deg2rad(a_start))) > 0.2:
            sign = float(np.sign(np.sin(np.deg2rad(a_start))))
        elif a_end is not None and abs(np.sin(np.deg2rad(a_end))) > 0.2:
            sign = -float(np.sign(np.sin(np.deg2rad(a_end))))
        elif st.crossing == "right_to_left":
            sign = -1.0
        half_len = (st.speed_m_s * duration_s / 2.0 if st.speed_m_s
                    else d * float(np.tan(half)))
        el = base.elevation_deg or 0.0
        z = d * float(np.tan(np.deg2rad(el))) if abs(el) < 80 else 0.0
        start, end = (x, sign * half_len, z), (x, -sign * half_len, z)
    else:
        h = base.distance_m if base.distance_m is not None else FLY_OVER_HEIGHT_M
        half_len = st.speed_m_s * duration_s / 2.0 if st.speed_m_s else h * float(np.tan(half))
        heading = 0.0  # start direction (azimuth) of the line; default from the front
        if a_start is not None:
            heading = a_start
        elif a_end is not None:
            heading = a_end + 180.0
        elif st.crossing is not None:
            heading = 90.0 if st.crossing == "left_to_right" else -90.0
        if 45.0 <= abs(float(wrap_deg(heading))) <= 135.0:
            heading = 90.0 * np.sign(float(wrap_deg(heading)))
        hr = np.deg2rad(heading)
        start = (half_len * np.cos(hr), half_len * np.sin(hr), h)
        end = (-start[0], -start[1], h)
    return Trajectory.line(start, end, duration_s)



def apply_relation(kind: str, side: str, a: SourceState, b: SourceState) -> str:
    """Fix A relative to B (and B when it has nothing of its own); returns the meaning."""
    ba, bb = base_place(a), base_place(b)
    if kind in ("lateral", "next"):
        offset = RELATIVE_LATERAL_DEG if kind == "lateral" else SPREAD_DEG
        sgn = 1.0 if side != "right" else -1.0
        if bb.azimuth_deg is not None or b.start is not None or b.waypoints:
            ref = bb.azimuth_deg if bb.azimuth_deg is not None else (
                b.start.azimuth_deg if b.start is not None else b.waypoints[0].azimuth_deg) or 0.0
            a.relation_fixed["azimuth_deg"] = float(wrap_deg(ref + sgn * offset))
        elif ba.azimuth_deg is not None:
            b.relation_fixed["azimuth_deg"] = float(wrap_deg(ba.azimuth_deg - sgn * offset))
        else:
            pair = RELATIVE_PAIR_DEG if kind == "lateral" else SPREAD_DEG / 2
            a.relation_fixed["azimuth_deg"] = sgn * pair
            b.relation_fixed["azimuth_deg"] = -sgn * pair
        if kind == "next":
            r = bb.distance_m or DEFAULT_DISTANCE_M
            a.relation_fixed.setdefault("distance_m", r)
        return f"{'left' if sgn > 0 else 'right'} of" if kind == "lateral" else "next to"
    if kind in ("front", "behind", "nearer", "farther"):
        nearer = kind in ("front", "nearer")
        if bb.distance_m is not None:
            a.relation_fixed["distance_m"] = bb.distance_m * (0.5 if nearer else 2.0)
        elif ba.distance_m is not None:
            b.relation_fixed["distance_m"] = ba.distance_m * (2.0 if nearer else 0.5)
        else:
            a.relation_fixed["distance_m"] = NEAR_DISTANCE_M if nearer else 2 * DEFAULT_DISTANCE_M
            b.relation_fixed["distance_m"] = 3 * NEAR_DISTANCE_M if nearer else 0.75 * DEFAULT_DISTANCE_M
        if kind in ("front", "behind") and bb.azimuth_deg is not None:
            a.relation_fixed.setdefault("azimuth_deg", bb.azimuth_deg)
        elif kind in ("front", "behind"):
            a.relation_fixed.setdefault("same_direction_as", b)
        return "nearer than" if nearer else "farther than"
    el_b = bb.elevation_deg or 0.0
    if kind == "above":
        a.relation_fixed["elevation_deg"] = float(min(el_b + 40.0, 90.0))
        if bb.azimuth_deg is not None:
            a.relation_fixed.setdefault("azimuth_deg", bb.azimuth_deg)
        return "above"
    a.relation_fixed["elevation_deg"] = float(max(el_b - 30.0, -90.0))
    if bb.azimuth_deg is not None:
        a.relation_fixed.setdefault("azimuth_deg", bb.azimuth_deg)
    return "below"



def default_azimuths(states: list[SourceState]) -> list[float]:
    """Azimuth for sources no word gives a direction: spread around the front."""
    def unset(st: SourceState) -> bool:
        return (base_place(st).azimuth_deg is None and st.start is None and not st.waypoints
                and st.path is None and st.crossing is None
                and "azimuth_deg" not in st.relation_fixed)

    followers = {i: st.relation_fixed["same_direction_as"] for i, st in enumerate(states)
                 if unset(st) and "same_direction_as" in st.relation_fixed}
    free = [i for i, st in enumerate(states) if unset(st) and i not in followers]
    out = [0.0] * len(states)
    if len(free) > 1:
        offsets = (np.arange(len(free)) - (len(free) - 1) / 2.0) * -SPREAD_DEG * 2
        for i, off in zip(free, offsets, strict=True):
            out[i] = float(off)
    for i, leader in followers.items():  # "a dog in front of the car": the car's direction
        j = next(k for k, st in enumerate(states) if st is leader)
        out[i] = out[j] if unset(leader) else (base_place(leader).azimuth_deg or 0.0)
    return out


