"""First-order Ambisonics to headphones: a virtual-loudspeaker binaural decode.

The FOA signal is decoded to eight virtual loudspeakers on the corners of a cube
(azimuth +-45 and +-135 deg, elevation +-35.26 deg: a regular first-order layout) with
max-rE weights, and each loudspeaker feed is rendered through the same head model the
simulator uses (:func:`spa2v.simulate.simulate_scene`).  It is a listening preview:
first order cannot carry sharp interaural time differences, so lateral sources sound
(and analyse) nearer the front than the FOA's own intensity vectors say (a source at
60 deg comes out near 35 deg); left, centre and right are kept.
"""

from __future__ import annotations

import numpy as np

from spa2v.conventions import ambix_gains
from spa2v.hrtf import HeadModel

_EL_DEG = float(np.degrees(np.arctan(1.0 / np.sqrt(2.0))))
CUBE_DEG = tuple((az, el) for el in (_EL_DEG, -_EL_DEG) for az in (45.0, 135.0, -135.0, -45.0))
"""Virtual loudspeaker directions (azimuth, elevation) in degrees."""

_MAX_RE_ORDER1_3D = 0.5774  # first-order max-rE weight in 3-D: cos(54.74 deg)
_SPEAKER_DISTANCE_M = 2.0


def foa_decoder(directions_deg=CUBE_DEG) -> np.ndarray:
    """Decoding matrix ``(speakers, 4)`` from AmbiX (W, Y, Z, X; SN3D) to loudspeaker feeds."""
    az, el = (np.asarray(v, dtype=float) for v in zip(*directions_deg, strict=True))
    enc = np.asarray(ambix_gains(az, el), dtype=float)  # (4, speakers)
    weights = np.array([1.0, 3.0 * _MAX_RE_ORDER1_3D, 3.0 * _MAX_RE_ORDER1_3D,
                        3.0 * _MAX_RE_ORDER1_3D])
    return (enc * weights[:, None]).T / len(az)


def foa_to_binaural(foa: np.ndarray, sr: int, *, head: HeadModel | None = None) -> np.ndarray:
    """Binaural ``(2, samples)`` float32 from AmbiX FOA ``(4, samples)``, peak-normalised to -3 dBFS.

    Parameters
    ----------
    foa : np.ndarray, shape (4, samples)
    sr : int
    head : head model, optional
        The spherical head (default) or a :class:`spa2v.hrtf.SofaHrtf`.
    """
    from spa2v.simulate import SceneSource, Trajectory, simulate_scene

    foa = np.asarray(foa, dtype=np.float32)
    if foa.ndim != 2 or foa.shape[0] != 4:
        raise ValueError(f"expected FOA of shape (4, samples), got {foa.shape}")
    feeds = (foa_decoder() @ foa.astype(np.float64)).astype(np.float32)
    # The virtual speakers sit at a fixed distance, so their propagation delay is common.
    sources = [
        SceneSource(feed, Trajectory.static(az, el, _SPEAKER_DISTANCE_M), name=f"speaker {i}")
        for i, (feed, (az, el)) in enumerate(zip(feeds, CUBE_DEG, strict=True))
    ]
    sim = simulate_scene(sources, fmt="binaural", sr=sr, duration_s=foa.shape[1] / sr, head=head)
    return sim.audio
