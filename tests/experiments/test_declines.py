"""KPI declines per variant: significantly below the control, or below its own earlier days;
flagged in the analysis, not raised by noise or by a variant that does better."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailwise.experiments.analysis import AnalysisConfig, analyse
from tailwise.experiments.declines import DeclinePolicy
from tests.experiments.tables import DAY0, experiment_tables


def test_a_variant_significantly_below_the_control_is_flagged_a_better_one_is_not() -> None:
    exp, out = experiment_tables(
        np.random.default_rng(1),
        6000,
        {"control": 0.34, "worse": 0.33, "better": 0.33},
        {"control": 0.10, "worse": 0.06, "better": 0.13},
    )
    result = analyse("exp", exp, out, AnalysisConfig())
    found = [d for d in result["declines"] if d["against"] == "control"]
    assert {d["variant"] for d in found} == {"worse"}
    ctr = next(d for d in found if d["metric"] == "ctr")
    assert ctr["relative"] == pytest.approx(0.4, abs=0.1) and ctr["p_value"] < 0.05
    assert "worse: ctr" in ctr["message"] and "below the control" in ctr["message"]
    assert any(n.startswith("KPI decline: worse") for n in result["notes"])


def test_a_drop_smaller_than_the_policy_is_not_flagged() -> None:
    exp, out = experiment_tables(
        np.random.default_rng(2), 20000, {"control": 0.5, "b": 0.5}, {"control": 0.10, "b": 0.095}
    )
    strict = analyse("exp", exp, out, AnalysisConfig(declines=DeclinePolicy(drop=0.2)))
    assert strict["declines"] == []


def test_a_variant_whose_last_day_falls_below_its_earlier_days_is_flagged() -> None:
    rng = np.random.default_rng(4)
    exp, out = experiment_tables(
        rng, 8000, {"control": 0.5, "b": 0.5}, {"control": 0.1, "b": 0.1}, days=5
    )
    steady = analyse("exp", exp, out, AnalysisConfig())
    assert [d for d in steady["declines"] if d["against"] == "baseline"] == []
    # b's clicks on the last day: two in three are lost (a broken deploy of that variant).
    last = (pd.to_datetime(out["timestamp"]) >= DAY0 + pd.Timedelta(days=4)) & (
        out["variant"] == "b"
    )
    lost = last & (rng.random(len(out)) < 2 / 3)
    broken = analyse("exp", exp, out.loc[~lost], AnalysisConfig())
    found = [d for d in broken["declines"] if d["against"] == "baseline"]
    assert {d["variant"] for d in found} == {"b"}
    ctr = next(d for d in found if d["metric"] == "ctr")  # the lost clicks' orders go too
    assert ctr["relative"] > 0.5 and ctr["p_value"] < 0.05


def test_the_policy_is_checked_per_field() -> None:
    with pytest.raises(ValueError, match="drop"):
        DeclinePolicy(drop=0)
    with pytest.raises(ValueError, match="min_exposures"):
        DeclinePolicy(min_exposures=0)
