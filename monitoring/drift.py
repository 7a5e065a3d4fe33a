"""Evidently runs of a window: feature drift, prediction drift, event data quality.

    logged feature vectors (current, sampled) + reference vectors
      --Report([ValueDrift(column) per feature], include_tests)--> FeatureDrift + snapshot
    served scores (current, sampled) + prediction reference scores
      --Report([ValueDrift("score")], include_tests)------------> PredictionDrift + snapshot
    incoming events + the training window's events
      --Report([DataSummaryPreset]) + checks of our own---------> EventQuality + snapshot
      --Report([ValueDrift(column) per behaviour column])-------> EventQuality.drift + snapshot
        (event type, device, channel, country, the item's top category, where items outside
        the catalogue count as their own category, and price)

Evidently 0.7 API (`evidently.Report`, `Dataset`, `DataDefinition`, `evidently.metrics`).
One ValueDrift per column rather than DataDriftPreset: the preset computes every column's
test three times (DriftedColumnsCount, each ValueDrift, and its overview table) and draws
a Plotly figure for each, which measured 2x slower here for the same verdicts; the tests
ValueDrift attaches (FAIL = drift detected) give the verdict per column without knowing
whether the chosen stat test is a p-value or a distance. Current rows beyond
`drift_sample_rows` are sampled (seeded); bench/monitor_drift.py shows that the sample
finds the same drifted columns as the full data. Evidently is imported inside the
functions: importing it is slow, and commands that never build a report should not pay for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from monitoring.config import MonitoringParams
from monitoring.summary import ColumnDrift, EventQuality, FeatureDrift, PredictionDrift

EVENT_NUMERIC = ("value", "price", "weight")
EVENT_CATEGORICAL = ("event_type", "device", "channel", "country")
BEHAVIOUR_NUMERIC = ["price"]
BEHAVIOUR_CATEGORICAL = ["event_type", "device", "channel", "country", "category"]
NOT_IN_CATALOGUE = "(not in catalogue)"


def feature_drift(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    params: MonitoringParams,
) -> tuple[FeatureDrift, Any]:
    """Per-feature drift; (summary, Evidently snapshot or None when not measured)."""
    result = FeatureDrift(rows_current=len(current), rows_reference=len(reference))
    if not numeric and not categorical:
        result.note = "the version's ranker reads no user-level feature: nothing is logged"
        return result, None
    if current.empty or reference.empty:
        result.note = (
            "no logged feature vectors in the window"
            if current.empty
            else ("the reference has no rows")
        )
        return result, None
    usable = [
        c
        for c in [*numeric, *categorical]
        if c in current.columns and current[c].notna().any() and reference[c].notna().any()
    ]
    empty = [c for c in [*numeric, *categorical] if c not in usable]
    if empty:
        result.note = f"not compared (no values on one side): {', '.join(empty)}"
    if not usable:
        return result, None
    sample = _sample(current, params.drift_sample_rows, params.seed)
    snapshot = _value_drift(
        sample[usable],
        reference[usable],
        [c for c in numeric if c in usable],
        [c for c in categorical if c in usable],
        params,
    )
    result.measured = True
    result.columns = column_verdicts(snapshot.dict())
    return result, snapshot


def prediction_drift(
    current: pd.DataFrame, reference: pd.DataFrame | None, note: str, params: MonitoringParams
) -> tuple[PredictionDrift, Any]:
    """Drift of the served scores (a `score` column) against the prediction reference."""
    result = PredictionDrift(reference=note, rows_current=len(current))
    if reference is None or reference.empty:
        result.note = note
        return result, None
    result.rows_reference = len(reference)
    if current.empty:
        result.note = "no personalised scores served in the window"
        return result, None
    sample = _sample(current[["score"]], params.drift_sample_rows, params.seed)
    snapshot = _value_drift(sample, reference[["score"]], ["score"], [], params)
    result.measured = True
    result.columns = column_verdicts(snapshot.dict())
    return result, snapshot


def event_quality(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    known_types: Iterable[str],
    known_items: set[str] | None = None,
) -> tuple[EventQuality, Any]:
    """Checks of the incoming events, and Evidently's summary next to the reference's."""
    quality = event_checks(current, known_types, known_items)
    if current.empty:
        return quality, None
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataSummaryPreset

    # Columns without a value (value is null unless rated) are in null_share, not in the
    # summary: Evidently divides by their count.
    sides = [current] if reference.empty else [current, reference]
    usable = [
        c
        for c in (*EVENT_NUMERIC, *EVENT_CATEGORICAL)
        if all(c in side.columns and side[c].notna().any() for side in sides)
    ]
    numeric = [c for c in EVENT_NUMERIC if c in usable]
    definition = DataDefinition(
        numerical_columns=numeric, categorical_columns=[c for c in usable if c not in numeric]
    )
    cur = Dataset.from_pandas(_event_frame(current, numeric, usable), data_definition=definition)
    ref = None
    if not reference.empty:
        ref = Dataset.from_pandas(
            _event_frame(reference, numeric, usable), data_definition=definition
        )
    return quality, Report([DataSummaryPreset()]).run(cur, ref)


def event_drift(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    categories: pd.Series | None,
    params: MonitoringParams,
) -> tuple[FeatureDrift, Any]:
    """Behaviour drift of the incoming events; `categories` maps item_id -> category (its
    top level is compared; None: no category column)."""
    cur, ref = (_behaviour(frame, categories) for frame in (current, reference))
    categorical = [c for c in BEHAVIOUR_CATEGORICAL if categories is not None or c != "category"]
    return feature_drift(cur, ref, BEHAVIOUR_NUMERIC, categorical, params)


def _behaviour(events: pd.DataFrame, categories: pd.Series | None) -> pd.DataFrame:
    frame = events.reindex(columns=[*BEHAVIOUR_NUMERIC, *BEHAVIOUR_CATEGORICAL[:-1]]).copy()
    frame["price"] = pd.to_numeric(frame["price"], errors="coerce").astype(float)
    for column in BEHAVIOUR_CATEGORICAL[:-1]:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    if categories is not None and "item_id" in events.columns:
        top = categories.astype(str).str.split("/").str[0]
        frame["category"] = (
            events["item_id"].astype(str).map(top).fillna(NOT_IN_CATALOGUE).to_numpy()
        )
    return frame.reset_index(drop=True)


def event_checks(
    events: pd.DataFrame, known_types: Iterable[str], known_items: set[str] | None = None
) -> EventQuality:
    """Counts a person acts on: duplicates, nulls, unknown types and items, bad prices."""
    quality = EventQuality(rows=len(events))
    if events.empty:
        quality.issues.append("no incoming events in the window")
        return quality
    quality.duplicate_event_ids = int(events["event_id"].duplicated().sum())
    quality.null_share = {c: round(float(events[c].isna().mean()), 6) for c in events.columns}
    types = events["event_type"].astype(str).str.lower()
    quality.event_types = {str(k): int(v) for k, v in types.value_counts().items()}
    allowed = {t.lower() for t in known_types}
    quality.unknown_event_types = {k: v for k, v in quality.event_types.items() if k not in allowed}
    if known_items is not None:
        quality.unknown_items = int((~events["item_id"].astype(str).isin(known_items)).sum())
    if "price" in events.columns:
        price = pd.to_numeric(events["price"], errors="coerce")
        purchase = types == "purchase"
        quality.bad_prices = int((purchase & ~(price > 0)).sum() + (price < 0).sum())
    quality.issues = _issues(quality)
    return quality


def column_verdicts(report: dict[str, Any]) -> list[ColumnDrift]:
    """ValueDrift results of `snapshot.dict()`: score, method, threshold, and the verdict
    from the test Evidently attached to each (FAIL = drift detected)."""
    failed = {
        t["metric_config"]["params"]["column"]: t["status"] == "FAIL"
        for t in report.get("tests", [])
        if t.get("metric_config", {}).get("params", {}).get("type", "").endswith("ValueDrift")
    }
    verdicts = []
    for metric in report.get("metrics", []):
        config = metric.get("config", {})
        if not config.get("type", "").endswith(":ValueDrift"):
            continue
        column = config["column"]
        verdicts.append(
            ColumnDrift(
                column=column,
                method=str(config.get("method")),
                score=float(metric["value"]),
                threshold=float(config.get("threshold")),
                drifted=failed.get(column, False),
            )
        )
    return verdicts


def _value_drift(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    params: MonitoringParams,
) -> Any:
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    report = Report(
        [
            ValueDrift(column=c, method=params.drift_method, threshold=params.drift_threshold)
            for c in [*numeric, *categorical]
        ],
        include_tests=True,
    )
    return report.run(
        Dataset.from_pandas(current.reset_index(drop=True), data_definition=definition),
        Dataset.from_pandas(reference.reset_index(drop=True), data_definition=definition),
    )


def _event_frame(events: pd.DataFrame, numeric: list[str], columns: list[str]) -> pd.DataFrame:
    frame = events[columns].copy()
    for column in numeric:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    for column in columns:
        if column not in numeric:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame.reset_index(drop=True)


def _issues(quality: EventQuality) -> list[str]:
    issues = []
    if quality.duplicate_event_ids:
        issues.append(f"{quality.duplicate_event_ids:,} duplicate event ids")
    if quality.unknown_event_types:
        issues.append(f"unknown event types: {quality.unknown_event_types}")
    for column in ("event_id", "user_id", "item_id", "event_type", "timestamp"):
        share = quality.null_share.get(column, 0.0)
        if share > 0:
            issues.append(f"{column} is null in {share:.1%} of events")
    if quality.unknown_items:
        issues.append(f"{quality.unknown_items:,} events name items not in the catalogue")
    if quality.bad_prices:
        issues.append(f"{quality.bad_prices:,} events with a negative or missing purchase price")
    return issues


def _sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return frame if len(frame) <= n else frame.sample(n=n, random_state=seed)
