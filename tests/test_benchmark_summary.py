"""The accuracy benchmark's summary against the issue's targets."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import analysis_accuracy as bench  # noqa: E402


def test_the_summary_reads_each_target_on_its_own_rows():
    rows = [
        dict(bench="static_binaural_kemar", rt60_s=None, mean_err_deg_abs_le_60=2.9,
             mean_err_deg_60_to_80=8.5, position_accuracy=0.99),
        dict(bench="static_binaural_kemar", rt60_s=0.5, mean_err_deg_abs_le_60=5.0,
             mean_err_deg_60_to_80=7.0, position_accuracy=0.97),
        dict(bench="speed", binaural_realtime_factor=1200.0, speedup_vs_baseline=4.3),
    ]
    s = bench.target_summary(rows)
    # the anechoic target (3 deg) is not applied to the room's row, nor the room's to it
    assert s["static_binaural_kemar.mean_err_deg_abs_le_60[rt60 None]"]["met"]
    assert s["static_binaural_kemar.mean_err_deg_abs_le_60[rt60 0.5]"] == {
        "value": 5.0, "target": "<= 6.0", "met": True}
    assert not s["static_binaural_kemar.mean_err_deg_60_to_80[rt60 None]"]["met"]
    assert s["static_binaural_kemar.mean_err_deg_60_to_80[rt60 0.5]"]["met"]
    assert not s["static_binaural_kemar.position_accuracy[rt60 0.5]"]["met"]
    assert s["speed.binaural_realtime_factor"]["met"]
    assert not s["speed.speedup_vs_baseline"]["met"]
    # figures not measured in the run are not reported as met or missed
    assert not any(k.startswith("motion") or k.startswith("foa") for k in s)
    assert len(s) == 8
