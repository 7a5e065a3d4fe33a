"""One experiment's analysis from the two tables (exposures, outcomes) to a plain dict.

    exposures, outcomes --users()--> one row per user (variant, exposures, clicks, orders,
    revenue) --summary()--> per variant KPIs --compare()--> tests per treatment and metric,
    Holm across metrics, sequential intervals; srm() on every analysis; daily() for plots;
    KPI declines per variant (tailwise.experiments.declines) from the tests and the days

Sequential: by default the confidence sequence (stats.sequential, valid however often the
report is read); with a group-sequential plan (cfg.sequential, from the experiment's
definition) this analysis is one look: the looks so far come from the previous report's
`sequential` section (cfg.previous) and the result records them with this one
(tailwise.experiments.group_sequential says why and how).

The user is the randomised unit: CTR per exposure and average order value are ratio
metrics whose variance the delta method takes over users. A user seen in more than one
variant under fixed weights (a changed assignment: something is wrong) is left out and
counted, as GrowthBook does. Under a bandit the weights move, and users whose bucket crosses
a moved boundary change variant by design; leaving them out would drop most of the losing
arms' users, so each of them counts once per variant seen, with the outcomes attributed to
that variant's exposures (`switched`: "split"). The configured weights come from the
exposures' propensities per day unless given, so a bandit whose allocation changes daily
is checked against what it meant to send each day; the sample-ratio check counts every
user once, by the variant of their first exposure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from tailwise.experiments import stats
from tailwise.experiments.declines import DeclinePolicy, declines
from tailwise.experiments.group_sequential import Looks, SequentialPlan, holm_test, next_looks

EXPOSURE_COLUMNS = ("request_id", "user_id", "experiment", "variant", "propensity", "timestamp")
OUTCOME_COLUMNS = ("user_id", "experiment", "variant", "event_type", "revenue", "timestamp")
GUARDRAILS = {"latency_ms": "mean", "error": "rate", "coverage": "mean"}  # optional columns


@dataclass(frozen=True)
class AnalysisConfig:
    control: str | None = None  # default: "control" when present, else the first variant
    alpha: float = 0.05
    sequential: SequentialPlan = field(default_factory=SequentialPlan)
    tuning: float = stats.SEQUENTIAL_TUNING  # the confidence sequence's
    previous: Mapping[str, Any] | None = None  # the last report's `sequential` section
    stopped: bool = False  # the experiment has ended: a group-sequential look is the final one
    weights: Mapping[str, float] | None = None  # default: from the propensities
    click_types: tuple[str, ...] = ("product_view",)
    purchase_types: tuple[str, ...] = ("purchase",)
    notes: list[str] = field(default_factory=list)
    declines: DeclinePolicy = field(default_factory=DeclinePolicy)
    # Users seen in several variants: "drop" them, or "split" them into one unit per
    # variant; None: "split" when the propensities moved (a bandit), else "drop".
    switched: Literal["drop", "split"] | None = None


def check_columns(frame: pd.DataFrame, required: tuple[str, ...], table: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise stats.StatsError(f"{table}: missing columns {missing} (see tailwise.experiments)")


def users(
    exposures: pd.DataFrame, outcomes: pd.DataFrame, cfg: AnalysisConfig, mode: str
) -> tuple[pd.DataFrame, int]:
    """One row per unit of the experiment (a user, or a user and a variant when switched
    users are split: `mode`, from switched_mode); and how many users saw several variants."""
    check_columns(exposures, EXPOSURE_COLUMNS, "exposures")
    check_columns(outcomes, OUTCOME_COLUMNS, "outcomes")
    keys = ["user_id", "variant"]
    table = exposures.groupby(keys).size().rename("exposures").reset_index()
    seen = table.groupby("user_id")["variant"].transform("size")
    multiple = int(table.loc[seen > 1, "user_id"].nunique())
    if mode == "drop":
        table = table.loc[seen == 1]
    table = table.set_index(keys)
    events = outcomes.loc[outcomes["user_id"].isin(table.index.get_level_values("user_id"))]
    clicks = events.loc[events["event_type"].isin(cfg.click_types)].groupby(keys).size()
    bought = events.loc[events["event_type"].isin(cfg.purchase_types)]
    table["clicks"] = clicks.reindex(table.index, fill_value=0)
    table["orders"] = bought.groupby(keys).size().reindex(table.index, fill_value=0)
    revenue = bought.groupby(keys)["revenue"].sum()
    table["revenue"] = revenue.reindex(table.index, fill_value=0.0).astype(float)
    table["converted"] = (table["orders"] > 0).astype(int)
    return table.reset_index(level="variant"), multiple


def switched_mode(exposures: pd.DataFrame, cfg: AnalysisConfig) -> str:
    """cfg.switched, or "split" when some variant's propensity changed (a bandit)."""
    if cfg.switched is not None:
        return cfg.switched
    spread = exposures.groupby("variant")["propensity"].agg(lambda p: p.max() - p.min())
    return "split" if bool((spread.fillna(0) > 1e-6).any()) else "drop"


def first_variants(exposures: pd.DataFrame) -> pd.Series:
    """Users per variant of their first exposure (what the sample-ratio check counts)."""
    first = exposures.sort_values("timestamp", kind="stable").drop_duplicates("user_id")
    return first["variant"].astype(str).value_counts()


def summary(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per variant: users, exposures, clicks, orders, CTR, conversion, AOV, revenue per user."""
    out = {}
    for variant, g in table.groupby("variant"):
        exposures, orders = int(g["exposures"].sum()), int(g["orders"].sum())
        out[str(variant)] = {
            "users": len(g),
            "exposures": exposures,
            "clicks": int(g["clicks"].sum()),
            "orders": orders,
            "revenue": float(g["revenue"].sum()),
            "ctr": g["clicks"].sum() / exposures if exposures else float("nan"),
            "conversion": float(g["converted"].mean()),
            "aov": g["revenue"].sum() / orders if orders else float("nan"),
            "revenue_per_user": float(g["revenue"].mean()),
        }
    return out


def metric_tests(c: pd.DataFrame, t: pd.DataFrame, alpha: float) -> dict[str, stats.TestResult]:
    """The four KPIs' tests of one treatment against the control (metrics that cannot be
    tested, e.g. AOV without orders in an arm, are left out)."""
    tests: dict[str, stats.TestResult] = {
        "ctr": stats.ratio_delta(c["clicks"], c["exposures"], t["clicks"], t["exposures"], alpha),
        "conversion": stats.two_proportions(
            int(c["converted"].sum()), len(c), int(t["converted"].sum()), len(t), alpha
        ),
        "revenue_per_user": stats.welch(c["revenue"], t["revenue"], alpha),
    }
    if c["orders"].sum() > 0 and t["orders"].sum() > 0:
        tests["aov"] = stats.ratio_delta(
            c["revenue"], c["orders"], t["revenue"], t["orders"], alpha
        )
    return tests


def compare(
    table: pd.DataFrame, control: str, cfg: AnalysisConfig, looks: Looks | None = None
) -> dict[str, Any]:
    """Every treatment against the control: tests, Holm across metrics, and the sequential
    test: the confidence sequence, or at `looks` the group-sequential boundaries."""
    out: dict[str, Any] = {}
    groups = {str(v): g for v, g in table.groupby("variant")}
    for variant, t in groups.items():
        if variant == control:
            continue
        if len(t) < 2 or len(groups[control]) < 2:
            out[variant] = {"error": "fewer than 2 users in an arm"}
            continue
        tests = metric_tests(groups[control], t, cfg.alpha)
        names = list(tests)
        adjusted = stats.holm([tests[m].p_value for m in names], cfg.alpha)
        if looks is not None:
            sequential = holm_test(tests, looks, cfg.alpha, cfg.sequential.spending)
        else:
            sequential = confidence_sequences(tests, cfg)
        out[variant] = {
            m: {
                **tests[m].as_dict(),
                "p_holm": adjusted[k],
                "significant": adjusted[k] < cfg.alpha,
                "sequential": sequential[m],
            }
            for k, m in enumerate(names)
        }
    return out


def confidence_sequences(
    tests: Mapping[str, stats.TestResult], cfg: AnalysisConfig
) -> dict[str, dict[str, Any]]:
    """Per metric: the always-valid interval and p-value, Holm-adjusted across the metrics."""
    seq = {m: stats.sequential(t, cfg.alpha, cfg.tuning) for m, t in tests.items()}
    adjusted = stats.holm([s.p_value for s in seq.values()], cfg.alpha)
    return {
        m: {
            "method": "confidence_sequence",
            "ci_low": s.ci_low,
            "ci_high": s.ci_high,
            "p_value": s.p_value,
            "p_holm": p,
            "significant": p < cfg.alpha,
        }
        for (m, s), p in zip(seq.items(), adjusted, strict=True)
    }


def sequential_section(
    exposures: pd.DataFrame, cfg: AnalysisConfig
) -> tuple[dict[str, Any], Looks | None]:
    """The report's `sequential` section and, under a group-sequential plan, the looks."""
    plan = cfg.sequential
    if not plan.group:
        return {"method": plan.method, "tuning": cfg.tuning}, None
    end = str(pd.to_datetime(exposures["timestamp"], utc=True).max())
    users = int(exposures["user_id"].nunique())
    looks = next_looks(cfg.previous, users, end, plan, cfg.alpha, cfg.stopped)
    return looks.section(plan, cfg.alpha), looks


def expected_weights(exposures: pd.DataFrame) -> dict[str, float]:
    """What each variant was meant to get, from the propensities of each user's first
    exposure, day by day: the day's median propensity per variant (normalised) times the
    day's new users, summed over days and normalised."""
    first = exposures.sort_values("timestamp").drop_duplicates("user_id")
    day = pd.to_datetime(first["timestamp"], utc=True).dt.floor("D")
    total: dict[str, float] = {}
    for _, g in first.groupby(day):
        share = g.groupby("variant")["propensity"].median()
        if share.sum() <= 0:
            continue
        for variant, w in (share / share.sum() * len(g)).items():
            total[str(variant)] = total.get(str(variant), 0.0) + float(w)
    all_variants = {str(v) for v in first["variant"].unique()}
    if not total or set(total) != all_variants:
        raise stats.StatsError("exposures: propensity missing or 0; give the weights instead")
    mass = sum(total.values())
    return {v: w / mass for v, w in total.items()}


def guardrails(exposures: pd.DataFrame, control: str, alpha: float) -> dict[str, Any]:
    """Latency, error rate and coverage per variant and their tests, when the columns exist."""
    out: dict[str, Any] = {}
    for column, kind in GUARDRAILS.items():
        if column not in exposures.columns or exposures[column].isna().all():
            continue
        values = exposures[["variant", column]].dropna()
        groups = {str(v): g[column].astype(float).to_numpy() for v, g in values.groupby("variant")}
        entry: dict[str, Any] = {"per_variant": {v: float(x.mean()) for v, x in groups.items()}}
        if control in groups:
            tests = {}
            for variant, x in groups.items():
                if variant == control or len(x) < 2 or len(groups[control]) < 2:
                    continue
                c = groups[control]
                result = (
                    stats.two_proportions(int(c.sum()), len(c), int(x.sum()), len(x), alpha)
                    if kind == "rate"
                    else stats.welch(c, x, alpha)
                )
                tests[variant] = result.as_dict()
            entry["tests"] = tests
        out[column] = entry
    return out


def daily(exposures: pd.DataFrame, outcomes: pd.DataFrame, cfg: AnalysisConfig) -> pd.DataFrame:
    """Per day and variant: exposures, allocation (share of exposures and mean propensity),
    clicks, orders, revenue, CTR and revenue per exposure."""
    day = pd.to_datetime(exposures["timestamp"], utc=True).dt.floor("D")
    e = exposures.assign(day=day).groupby(["day", "variant"])
    frame = pd.DataFrame({"exposures": e.size(), "propensity": e["propensity"].mean()})
    o = outcomes.assign(day=pd.to_datetime(outcomes["timestamp"], utc=True).dt.floor("D"))
    clicks = o.loc[o["event_type"].isin(cfg.click_types)].groupby(["day", "variant"]).size()
    bought = o.loc[o["event_type"].isin(cfg.purchase_types)].groupby(["day", "variant"])
    frame["clicks"] = clicks.reindex(frame.index, fill_value=0)
    frame["orders"] = bought.size().reindex(frame.index, fill_value=0)
    frame["revenue"] = bought["revenue"].sum().reindex(frame.index, fill_value=0.0)
    frame["share"] = frame["exposures"] / frame.groupby(level="day")["exposures"].transform("sum")
    frame["ctr"] = frame["clicks"] / frame["exposures"]
    frame["revenue_per_exposure"] = frame["revenue"] / frame["exposures"]
    return frame.reset_index()


def analyse(
    name: str, exposures: pd.DataFrame, outcomes: pd.DataFrame, cfg: AnalysisConfig
) -> dict[str, Any]:
    """The whole analysis of experiment `name` as a JSON-ready dict."""
    check_columns(exposures, EXPOSURE_COLUMNS, "exposures")
    check_columns(outcomes, OUTCOME_COLUMNS, "outcomes")
    exposures = exposures.loc[exposures["experiment"] == name]
    outcomes = outcomes.loc[outcomes["experiment"] == name]
    if exposures.empty:
        raise stats.StatsError(f"experiment {name!r}: no exposures")
    mode = switched_mode(exposures, cfg)
    table, multiple = users(exposures, outcomes, cfg, mode)
    variants = sorted(table["variant"].astype(str).unique())
    if len(variants) < 2:
        raise stats.StatsError(
            f"experiment {name!r} has one variant {variants}: nothing to compare"
        )
    control = cfg.control or ("control" if "control" in variants else variants[0])
    if control not in variants:
        raise stats.StatsError(f"--control {control!r} is not a variant of {name}: {variants}")
    weights = dict(cfg.weights) if cfg.weights else expected_weights(exposures)
    counts = first_variants(exposures)
    srm = stats.srm({v: int(counts.get(v, 0)) for v in weights}, weights)
    notes = list(cfg.notes)
    if multiple and mode == "drop":
        notes.append(f"{multiple} users saw more than one variant and are left out")
    elif multiple:
        notes.append(
            f"{multiple} users saw more than one variant as the allocation moved; each counts "
            "once per variant seen, with the outcomes of that variant's exposures"
        )
    if srm.flagged:
        notes.append(
            f"sample-ratio mismatch (p = {srm.p_value:.2g} < {stats.SRM_THRESHOLD}): the "
            "split does not match the weights; do not trust the comparisons before finding why"
        )
    days = daily(exposures, outcomes, cfg)
    sequential, looks = sequential_section(exposures, cfg)
    if looks is not None and looks.after_final:
        notes.append(
            f"look {looks.current.number} was the group-sequential plan's final look; later "
            "data is not tested (no alpha is left)"
        )
    result: dict[str, Any] = {
        "experiment": name,
        "control": control,
        "alpha": cfg.alpha,
        "users": int(exposures["user_id"].nunique()),
        "switched": {"users": multiple, "mode": mode},
        "start": str(pd.to_datetime(exposures["timestamp"], utc=True).min()),
        "end": str(pd.to_datetime(exposures["timestamp"], utc=True).max()),
        "variants": summary(table),
        "srm": {**srm.__dict__, "weights": weights, "threshold": stats.SRM_THRESHOLD},
        "sequential": sequential,
        "comparisons": compare(table, control, cfg, looks),
        "guardrails": guardrails(exposures, control, cfg.alpha),
        "daily": _records(days),
        "notes": notes,
    }
    found = declines(result, cfg.declines)
    result["declines"] = [d.as_dict() for d in found]
    notes.extend(f"KPI decline: {d.message}" for d in found)
    return result


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    frame = frame.assign(day=frame["day"].dt.strftime("%Y-%m-%d"))
    return [
        {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()}
        for r in frame.to_dict("records")
    ]
