"""The analysis of exposures/outcomes: KPIs per variant, a real effect found, SRM flagged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailwise.experiments.analysis import AnalysisConfig, analyse, expected_weights
from tailwise.experiments.stats import StatsError
from tests.experiments.tables import DAY0, experiment_tables


def test_a_better_variant_is_found_and_the_split_passes() -> None:
    rng = np.random.default_rng(7)
    exp, out = experiment_tables(
        rng, 6000, {"control": 0.5, "b": 0.5}, {"control": 0.05, "b": 0.08}, latency=True
    )
    result = analyse("exp", exp, out, AnalysisConfig())
    assert result["control"] == "control" and not result["srm"]["flagged"]
    b = result["comparisons"]["b"]
    assert b["ctr"]["significant"] and b["ctr"]["sequential"]["significant"]
    assert b["ctr"]["difference"] == pytest.approx(0.03, abs=0.01)
    assert set(b) == {"ctr", "conversion", "revenue_per_user", "aov"}
    assert b["aov"]["p_value"] > 0.001  # same order values in both arms
    v = result["variants"]["control"]
    assert v["ctr"] == pytest.approx(v["clicks"] / v["exposures"])
    assert v["users"] + result["variants"]["b"]["users"] == 6000
    assert {"latency_ms", "error"} <= set(result["guardrails"])
    assert len(result["daily"]) == 2 * 5


def test_srm_is_flagged_when_the_split_misses_the_weights() -> None:
    rng = np.random.default_rng(8)
    exp, out = experiment_tables(
        rng, 20000, {"control": 0.48, "b": 0.52}, {"control": 0.05, "b": 0.05}
    )
    cfg = AnalysisConfig(weights={"control": 0.5, "b": 0.5})
    result = analyse("exp", exp, out, cfg)
    assert result["srm"]["flagged"] and any("sample-ratio" in n for n in result["notes"])
    # Without given weights, the propensities (0.48 / 0.52) say the split is as meant.
    assert not analyse("exp", exp, out, AnalysisConfig())["srm"]["flagged"]
    assert expected_weights(exp) == pytest.approx({"control": 0.48, "b": 0.52})


def test_users_in_two_variants_are_left_out_and_bad_tables_are_named() -> None:
    rng = np.random.default_rng(9)
    exp, out = experiment_tables(rng, 500, {"control": 0.5, "b": 0.5}, {"control": 0.1, "b": 0.1})
    first = exp.iloc[0]
    other = "b" if first["variant"] == "control" else "control"
    exp.loc[len(exp)] = {**first.to_dict(), "variant": other, "request_id": "extra"}
    result = analyse("exp", exp, out, AnalysisConfig())
    assert any("1 users saw more than one variant" in n for n in result["notes"])
    with pytest.raises(StatsError, match="exposures: missing columns \\['propensity'\\]"):
        analyse("exp", exp.drop(columns="propensity"), out, AnalysisConfig())
    with pytest.raises(StatsError, match="no exposures"):
        analyse("other", exp, out, AnalysisConfig())
    with pytest.raises(StatsError, match="one variant"):
        analyse("exp", exp.assign(variant="b"), out, AnalysisConfig())
    with pytest.raises(StatsError, match="--control 'z'"):
        analyse("exp", exp, out, AnalysisConfig(control="z"))


def test_users_switched_by_a_bandit_count_once_per_variant_with_that_variants_outcomes() -> None:
    rng = np.random.default_rng(11)
    exp, out = experiment_tables(rng, 600, {"control": 0.5, "b": 0.5}, {"control": 0.1, "b": 0.3})
    # Day 4 on, the bandit moves weight to b: every later exposure of 40 control users is b's,
    # with the new propensity, and their clicks there are b's outcomes.
    late = exp["timestamp"] >= DAY0 + pd.Timedelta(days=3)
    moved_users = exp.loc[late & (exp["variant"] == "control"), "user_id"].unique()[:40]
    moved = late & exp["user_id"].isin(moved_users)
    exp.loc[late, "propensity"] = np.where(exp.loc[late, "variant"] == "b", 0.8, 0.2)
    exp.loc[moved, ["variant", "propensity"]] = ["b", 0.8]
    out = out.drop(columns="variant").merge(exp[["request_id", "variant"]], on="request_id")
    switched = int(exp.groupby("user_id")["variant"].nunique().gt(1).sum())
    assert switched > 0
    result = analyse("exp", exp, out, AnalysisConfig())
    assert result["switched"] == {"users": switched, "mode": "split"}
    assert result["users"] == exp["user_id"].nunique()
    units = sum(v["users"] for v in result["variants"].values())
    assert units == exp["user_id"].nunique() + switched
    for variant, kpis in result["variants"].items():
        rows = out.loc[(out["variant"] == variant) & (out["event_type"] == "product_view")]
        assert kpis["clicks"] == len(rows)
        assert kpis["exposures"] == int((exp["variant"] == variant).sum())
    # Fixed weights would leave them out; the check of the split counts first exposures.
    dropped = analyse("exp", exp, out, AnalysisConfig(switched="drop"))
    assert sum(v["users"] for v in dropped["variants"].values()) == result["users"] - switched
    assert sum(dropped["srm"]["observed"].values()) == result["users"]
