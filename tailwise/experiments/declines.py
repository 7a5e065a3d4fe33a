"""KPI declines per variant, read off an analysis: what the report flags and alerts carry.

    analyse() result --declines(result, policy)--> [Decline]
      against the control: a variant whose KPI is significantly below the control's by the
        report's sequential test (the always-valid confidence sequence, or a crossed
        group-sequential boundary), Holm-adjusted across the metrics, and lower by more
        than `policy.drop` (relative); the sequential test keeps the false-alarm rate at
        alpha however often the report is read (or at the planned looks)
      against its own baseline: a variant whose clicks or orders per exposure on its last
        day are significantly below its earlier days' (counts as Poisson rates: scipy's
        exact binomial test of the last day's share of the count, Holm across variants and
        metrics) by more than `policy.drop`; only days with at least
        `policy.min_exposures` exposures count, and two earlier ones are needed

A decline is a flag, not a decision: the report shows it, `tailwise experiments report`
posts it to the monitoring webhook (monitoring.alerts), and people decide.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import binomtest

from tailwise.experiments import stats

DAILY_METRICS = {"ctr": "clicks", "orders_per_exposure": "orders"}  # metric: daily count


class DeclinePolicy(BaseModel):
    """params.yaml `experiments.declines` (ExperimentsParams)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    drop: float = Field(
        0.1, gt=0, le=1, description="Relative drop of a KPI that counts as a decline."
    )
    min_exposures: int = Field(
        200, ge=1, description="Exposures a day needs before it is judged or used as baseline."
    )


@dataclass(frozen=True)
class Decline:
    variant: str
    metric: str
    against: str  # "control" or "baseline"
    value: float
    reference: float
    relative: float  # (reference - value) / reference
    p_value: float | None = None  # Holm-adjusted (against the control: the sequential
    # test's; None for a group-sequential test, whose decision is its boundary)

    @property
    def message(self) -> str:
        what = "the control" if self.against == "control" else "its earlier days"
        p = f", p = {self.p_value:.2g}" if self.p_value is not None else ""
        return (
            f"{self.variant}: {self.metric} {self.value:.4g} is {self.relative:.0%} below "
            f"{what} ({self.reference:.4g}{p})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "message": self.message}


def declines(result: dict[str, Any], policy: DeclinePolicy) -> list[Decline]:
    """Every decline in an analysis (tailwise.experiments.analysis.analyse's result)."""
    return [*_below_control(result, policy), *_below_baseline(result, policy)]


def _below_control(result: dict[str, Any], policy: DeclinePolicy) -> list[Decline]:
    found = []
    for variant, tests in result["comparisons"].items():
        if "error" in tests:
            continue
        for metric, t in tests.items():
            control, value, seq = t["control"], t["treatment"], t["sequential"]
            if not _finite(control, value) or control <= 0 or not seq["significant"]:
                continue
            relative = (control - value) / control
            if relative > policy.drop:
                found.append(
                    Decline(variant, metric, "control", value, control, relative, seq["p_holm"])
                )
    return found


def _below_baseline(result: dict[str, Any], policy: DeclinePolicy) -> list[Decline]:
    days = pd.DataFrame(result.get("daily") or [])
    if days.empty:
        return []
    days = days.loc[days["exposures"] >= policy.min_exposures].sort_values("day")
    candidates = []
    for variant, g in days.groupby("variant"):
        if len(g) < 3:
            continue
        last, earlier = g.iloc[-1], g.iloc[:-1]
        for metric, count in DAILY_METRICS.items():
            n_last, n_before = int(last["exposures"]), int(earlier["exposures"].sum())
            k_last, k_before = int(last[count]), int(earlier[count].sum())
            if k_before == 0:
                continue
            value, base = k_last / n_last, k_before / n_before
            # Counts per exposure as Poisson rates: given the total, the last day's count is
            # binomial with its share of the exposures when the rate did not change.
            p = binomtest(k_last, k_last + k_before, n_last / (n_last + n_before), "less").pvalue
            candidates.append(
                Decline(str(variant), metric, "baseline", value, base, (base - value) / base, p)
            )
    adjusted = stats.holm([d.p_value or 1.0 for d in candidates], result["alpha"])
    return [
        replace(d, p_value=p)
        for d, p in zip(candidates, adjusted, strict=True)
        if p < result["alpha"] and d.relative > policy.drop
    ]


def _finite(*values: Any) -> bool:
    return all(v is not None and pd.notna(v) for v in values)
