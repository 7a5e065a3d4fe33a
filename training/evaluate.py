"""The offline evaluation harness: any recommender, one split window, tidy metrics.

    Split --truth(window)--> evaluated users + relevant items
      |                           |
      +--history(window)--> model.fit --> model.recommend(users, max K) --> metrics
                                                                              |
    EvaluationResult.table: model, slice, k, metric, value, users  <----------+

A model plugs in by having `fit(train_events, items)` and `recommend(user_ids, k,
exclude_seen=True) -> DataFrame[user_id, item_id, rank, score]` (see `Recommender`).
With `fit=True` the harness fits it on `split.history(window)` and the items existing at
the window's start, so nothing from the window can leak into the model; with `fit=False`
the caller vouches for that. When the split allows repeats (`Split.allow_repeats`), models
are asked with exclude_seen=False and items the user had count as relevant. Slices: 'all', 'new' / 'returning' users, and
'segment=<label>' when a user -> segment mapping is given.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from tailwise.ranking_metrics import (
    METRICS,
    per_user_metrics,
    summarise,
    user_slices,
    validate_recommendations,
)
from tailwise.repeats import RecommendParams, decide_repeats
from training.baselines import EASE, BuyAgain, ItemCooccurrence, MostPopular, RecentlyPopular
from training.config import EvaluationParams
from training.oracle import Oracle
from training.split import Split, read_events, read_items, temporal_split
from training.windows import plan_windows


class Recommender(Protocol):
    """What the harness needs from a model."""

    def fit(self, train_events: pd.DataFrame, items: pd.DataFrame | None) -> Any: ...

    def recommend(
        self, user_ids: Iterable[str], k: int, exclude_seen: bool = True
    ) -> pd.DataFrame: ...


@dataclass
class EvaluationResult:
    """Metrics of several models on one window.

    table: model, slice, k, metric, value, users (means over the slice's users).
    per_user: model, user_id, status, k and one column per user-level metric.
    timings: model -> {'fit_s', 'recommend_s'}. notes: things a reader should know."""

    window: str
    window_start: pd.Timestamp
    window_end: pd.Timestamp
    table: pd.DataFrame
    per_user: pd.DataFrame
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def model_metrics(self) -> dict[str, dict[str, float]]:
        """{model: {'<metric>@<k>': value}} of the 'all' slice (a version's metrics.json)."""
        overall = self.table.loc[self.table["slice"] == "all"]
        metrics: dict[str, dict[str, float]] = {}
        for row in overall.itertuples():
            metrics.setdefault(row.model, {})[f"{row.metric}@{row.k}"] = round(float(row.value), 6)
        return metrics

    def value(self, model: str, metric: str, k: int, slice: str = "all") -> float:
        """One number of the table, e.g. value('ease', 'ndcg', 10)."""
        t = self.table
        hit = t[(t.model == model) & (t.metric == metric) & (t.k == k) & (t.slice == slice)]
        if len(hit) != 1:
            raise KeyError(f"no value for model={model!r} metric={metric!r} k={k} slice={slice!r}")
        return float(hit["value"].iloc[0])

    def to_markdown(
        self,
        slices: Sequence[str] | None = None,
        ks: Sequence[int] | None = None,
        metrics: Sequence[str] = METRICS,
    ) -> str:
        """One table per slice (rows: model x K, columns: metrics) plus timings."""
        t = self.table
        lines = [
            f"Window `{self.window}`: {self.window_start:%Y-%m-%d %H:%M} .. "
            f"{self.window_end:%Y-%m-%d %H:%M} UTC",
        ]
        for name in slices or list(dict.fromkeys(t["slice"])):
            part = t[(t["slice"] == name) & t["metric"].isin(metrics)]
            if ks is not None:
                part = part[part["k"].isin(ks)]
            if part.empty:
                continue
            # dropna=False: a slice without users has NaN metrics, still one row per model.
            wide = part.pivot_table(
                index=["model", "k"], columns="metric", values="value", sort=False, dropna=False
            )
            wide = wide[[m for m in metrics if m in wide.columns]]
            lines += ["", f"### {name} ({int(part['users'].iloc[0]):,} users)", ""]
            lines += _markdown_rows(
                ["model", "k", *wide.columns],
                [[m, str(k), *(f"{v:.4f}" for v in row)] for (m, k), row in wide.iterrows()],
            )
        if self.timings:
            lines += ["", "### timings (s)", ""]
            lines += _markdown_rows(
                ["model", "fit", "recommend"],
                [
                    [m, f"{t.get('fit_s', float('nan')):.2f}", f"{t['recommend_s']:.2f}"]
                    for m, t in self.timings.items()
                ],
            )
        lines += [f"\n- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def evaluate(
    recommenders: Mapping[str, Recommender],
    split: Split,
    ks: Sequence[int] = (5, 10, 20),
    segments: Mapping[str, str] | pd.Series | None = None,
    *,
    window: str = "test",
    fit: bool = False,
) -> EvaluationResult:
    """Score each recommender on `window` of `split` (see the module docstring)."""
    truth = split.truth(window)
    users = truth.users["user_id"].to_numpy()
    items = split.candidate_items(window) if split.items is not None else None
    history = split.history(window)
    catalogue_size = len(items) if items is not None else history["item_id"].nunique()
    slices = user_slices(truth.users, segments)
    seen = history[["user_id", "item_id"]].drop_duplicates().assign(_seen=True)
    tables, per_users, timings, notes = [], [], {}, []
    for name, model in recommenders.items():
        timing = {}
        if fit:
            started = time.perf_counter()
            model.fit(history, items)
            timing["fit_s"] = time.perf_counter() - started
        started = time.perf_counter()
        recs = model.recommend(users, max(ks), exclude_seen=not split.allow_repeats)
        timing["recommend_s"] = time.perf_counter() - started
        timings[name] = timing
        timing_note = getattr(model, "timing_note", None)  # a model that shares work says so
        if timing_note:
            notes.append(f"{name}: {timing_note}")
        recs = validate_recommendations(recs)
        leaked = recs.merge(seen, on=["user_id", "item_id"])["_seen"].sum()
        if leaked and not split.allow_repeats:
            notes.append(f"{name}: {leaked:,} recommendations were items the user had seen")
        skipped = getattr(model, "skipped_users", None)
        if skipped:
            notes.append(f"{name}: {len(skipped):,} users not in the ground truth were skipped")
        per_user = per_user_metrics(recs, truth.relevant, ks)
        tables.append(summarise(per_user, recs, slices, catalogue_size).assign(model=name))
        per_users.append(per_user.assign(model=name))
    table = pd.concat(tables, ignore_index=True)[
        ["model", "slice", "k", "metric", "value", "users"]
    ]
    per_user = pd.concat(per_users, ignore_index=True).merge(
        truth.users[["user_id", "status"]], on="user_id"
    )
    kind = "relevant item (repeats allowed)" if split.allow_repeats else "relevant unseen item"
    notes.append(
        f"{len(users):,} users with >= 1 {kind}, "
        f"{len(truth.relevant):,} relevant pairs, catalogue {catalogue_size:,} items"
    )
    return EvaluationResult(
        window=window,
        window_start=split.start(window),
        window_end=split.end if window == "test" else split.test_start,
        table=table,
        per_user=per_user[["model", "user_id", "status", *per_user.columns[1:-2]]],
        timings=timings,
        notes=notes,
    )


BASELINES = ("most_popular", "recently_popular", "item_cooccurrence", "ease", "buy_again")


def baselines(params: EvaluationParams, allow_repeats: bool = False) -> dict[str, Recommender]:
    """The unfitted baselines configured by `params`; buy_again too when repeats are allowed."""
    models: dict[str, Recommender] = {
        "most_popular": MostPopular(),
        "recently_popular": RecentlyPopular(days=params.recent_days),
        "item_cooccurrence": ItemCooccurrence(
            recent_items=params.cooccurrence_recent_items, normalize=params.cooccurrence_normalize
        ),
        "ease": EASE(lambda_=params.ease_lambda, max_items=params.ease_max_items),
    }
    if allow_repeats:
        models["buy_again"] = BuyAgain()
    return models


def best_baseline(
    result: EvaluationResult, k: int = 10, metric: str = "ndcg"
) -> tuple[str, float] | None:
    """The baseline with the highest `metric`@k on the 'all' slice, and that value."""
    t = result.table
    rows = t[t["model"].isin(BASELINES) & (t["metric"] == metric) & (t["k"] == k)]
    rows = rows[rows["slice"] == "all"]
    if rows.empty:
        return None
    best = rows.sort_values("value", ascending=False, kind="stable").iloc[0]
    return str(best["model"]), float(best["value"])


def quality_summary(result: EvaluationResult, model: str, k: int = 10) -> dict[str, Any]:
    """The version's NDCG@k on the test window next to the best baseline's (the manifest's
    `quality`, so a reader of the version folder sees whether it beats a simple method)."""
    best = best_baseline(result, k)
    try:
        value: float | None = round(result.value(model, "ndcg", k), 6)
    except KeyError:
        value = None
    return {
        "metric": f"ndcg@{k}",
        "window": result.window,
        "version": value,
        "best_baseline": best[0] if best else None,
        "best_baseline_value": round(best[1], 6) if best else None,
        "beats_best_baseline": None if value is None or best is None else value >= best[1],
    }


def segments_at(features: Path | None, before: pd.Timestamp) -> pd.Series | None:
    """Each user's segment name in their latest feature snapshot at or before `before`
    (None without feature tables, so results are not sliced by segment)."""
    if features is None or not (features / "user_daily.parquet").exists():
        return None
    daily = pd.read_parquet(
        features / "user_daily.parquet", columns=["user_id", "event_timestamp", "segment_name"]
    )
    daily = daily.loc[daily["event_timestamp"] <= before].sort_values("event_timestamp")
    latest = daily.drop_duplicates("user_id", keep="last")
    return pd.Series(latest["segment_name"].to_numpy(), index=latest["user_id"])


def evaluate_baselines(
    clean_dir: Path,
    params: EvaluationParams,
    ground_truth_dir: Path | None = None,
    features: Path | None = None,
    recommend: RecommendParams | None = None,
) -> EvaluationResult:
    """Fit the baselines (+ the oracle with ground truth) on train + validation, score test;
    slice by segment when feature tables are given. Windows are fitted to the data
    (training.windows) and repeats decided on the history (recommend.allow_repeats)."""
    events, items = read_events(clean_dir), read_items(clean_dir)
    decision = decide_repeats(recommend or RecommendParams(), events)
    plan = plan_windows(events, params.split, allow_repeats=decision.allow_repeats)
    split = temporal_split(events, plan.split, items, decision.allow_repeats)
    models = baselines(params, decision.allow_repeats)
    if ground_truth_dir is not None:
        models["oracle"] = Oracle(ground_truth_dir, at=split.test_start)
    segments = segments_at(features, split.test_start)
    result = evaluate(models, split, params.ks, segments, window="test", fit=True)
    result.notes += [plan.describe(), decision.describe()]
    return result


def _markdown_rows(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m training.evaluate --clean DIR [--ground-truth DIR]`: print the table."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--clean", type=Path, required=True)
    parser.add_argument("--ground-truth", type=Path, default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = evaluate_baselines(args.clean, EvaluationParams(), args.ground_truth)
    print(result.to_markdown())
    print(f"wall time {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
