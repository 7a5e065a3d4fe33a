"""One monitoring run, from the served log to the report, the decision and the alert.

    served requests of the window --(model version: --model, else the most served)-->
      reference (cached per model + data version, else built from Feast)
      feature vectors logged --feature_drift--> FeatureDrift
      served scores + first served window --prediction_drift--> PredictionDrift
      incoming events + reference events --event_quality--> EventQuality
    served requests of the window shifted back by the attribution window (their outcomes
      are all in) + events up to the window's end --quality--> ctr/conversion/precision/ndcg
    earlier runs of the model --kpi_baseline--> baseline;  should_retrain --> Decision
    signals --post_alert--> webhook;  write_run + write_index --> monitoring/reports/

Everything that touches the outside (Feast, the clock, the webhook URL) comes in through
the arguments, so the test suite runs the whole thing on Parquet files it writes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from monitoring.alerts import alert_payload, post_alert
from monitoring.config import MonitoringParams
from monitoring.drift import event_drift, event_quality, feature_drift, prediction_drift
from monitoring.policy import should_retrain
from monitoring.quality import attribute, outcome_kpis, ranking_kpis, relevant_after
from monitoring.reference import (
    FeatureSource,
    ModelInfo,
    Reference,
    coerce_columns,
    load_or_build_reference,
    personalised_scores,
    read_model,
    score_reference,
)
from monitoring.report import (
    REPORT,
    Section,
    drift_table,
    kpi_baseline,
    load_runs,
    run_id,
    write_index,
    write_run,
)
from monitoring.summary import Quality, RunSummary
from monitoring.windows import (
    Window,
    feature_rows,
    first_served,
    load_events,
    load_requests,
    served_items,
)

logger = logging.getLogger(__name__)
REFERENCE_DIR = "reference"


@dataclass(frozen=True)
class RunPaths:
    models: Path  # data/models
    served: Path  # data/served (requests/, events/)
    clean: Path  # data/clean (events/, items.parquet): the reference's events
    out: Path  # monitoring/reports


@dataclass
class RunResult:
    summary: RunSummary
    folder: Path
    index: Path

    @property
    def report(self) -> Path:
        return self.folder / REPORT


def run_monitor(
    params: MonitoringParams,
    paths: RunPaths,
    end: datetime,
    source: Callable[[ModelInfo], FeatureSource],
    known_event_types: Iterable[str],
    model_version: str | None = None,
    now: datetime | None = None,
    step: Callable[[str], None] = lambda _: None,
) -> RunResult:
    """Monitor the window of `params.window` ending at `end`; write its report and the index."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    window = Window.ending(end, params.window_length)
    step(f"reading served requests of {window}")
    requests = load_requests(paths.served, window)
    model = read_model(paths.models, model_version or _most_served(requests))
    requests = requests.loc[requests["model_version"] == model.version].reset_index(drop=True)
    reference = load_or_build_reference(
        model, paths.out / REFERENCE_DIR, params, paths.clean / "events", source, step
    )
    summary = RunSummary(
        run_id=run_id(window, params.window),
        created_at=now,
        window=params.window,
        window_start=window.start,
        window_end=window.end,
        model_version=model.version,
        data_version=model.data_version,
        model_created_at=model.created_at,
        requests=len(requests),
        notes=[f"{len(requests):,} requests of model {model.version} in the window"],
    )
    summary.notes.append(_reference_note(reference))
    step("feature drift")
    sections = [_feature_section(summary, requests, reference, params)]
    step("prediction drift")
    sections.append(_prediction_section(summary, requests, model, paths, window, params))
    step("incoming events")
    sections += _events_section(summary, paths, window, reference, known_event_types, params)
    step("outcome KPIs")
    summary.quality = measure_quality(paths.served, model, window, params)
    summary.quality.baseline = kpi_baseline(
        load_runs(paths.out), model.version, window.end, params.kpi_baseline_runs
    )
    summary.decision = should_retrain(summary, params.retrain, model.created_at, now)
    if summary.decision.signals:
        step("alert")
        report = (paths.out / summary.run_id / REPORT).resolve()
        sent = post_alert(
            params.alert_webhook, alert_payload(summary, str(report)), params.alert_timeout_seconds
        )
        summary.alert_sent = sent if params.alert_webhook else None
    summary.seconds = round(time.perf_counter() - started, 2)
    step("writing the report")
    folder = write_run(paths.out, summary, sections)
    index = write_index(paths.out, params.retrain.kpi, params.retrain.drift_share)
    return RunResult(summary, folder, index)


def _feature_section(
    summary: RunSummary, requests: pd.DataFrame, reference: Reference, params: MonitoringParams
) -> Section:
    logged = coerce_columns(feature_rows(requests), reference.numeric, reference.categorical)
    drift, snapshot = feature_drift(
        logged, reference.features, reference.numeric, reference.categorical, params
    )
    summary.feature_drift = drift
    if len(logged) > params.drift_sample_rows:
        summary.notes.append(
            f"feature drift on a sample of {params.drift_sample_rows:,} of {len(logged):,} vectors"
        )
    overview = (
        [drift_table(f"{drift.share:.0%} of features drifted", drift.columns)]
        if drift.measured
        else []
    )
    title = "Feature drift (logged feature vectors vs the training window)"
    return Section(title, snapshot, drift.note, overview)


def _prediction_section(
    summary: RunSummary,
    requests: pd.DataFrame,
    model: ModelInfo,
    paths: RunPaths,
    window: Window,
    params: MonitoringParams,
) -> Section:
    items = served_items(requests)
    if len(items):
        lists = items.drop_duplicates("request_id")
        summary.personalised_requests = int((~lists["cold_start"]).sum())
    first = first_served(paths.served, model.version)
    reference, note = score_reference(
        model, paths.out / REFERENCE_DIR, paths.served, window, params.window_length, params, first
    )
    scores = personalised_scores(items, max(params.ks))
    summary.prediction_drift, snapshot = prediction_drift(scores, reference, note, params)
    summary.notes.append(note)
    return Section("Prediction drift (served scores)", snapshot, note)


def _events_section(
    summary: RunSummary,
    paths: RunPaths,
    window: Window,
    reference: Reference,
    known_event_types: Iterable[str],
    params: MonitoringParams,
) -> list[Section]:
    events = load_events(paths.served / "events", window)
    known, categories = _catalogue(paths.clean / "items.parquet")
    summary.events, snapshot = event_quality(events, reference.events, known_event_types, known)
    drift, drift_snapshot = event_drift(events, reference.events, categories, params)
    summary.events.drift = drift
    overview = (
        [drift_table(f"{drift.share:.0%} of event columns drifted", drift.columns)]
        if drift.measured
        else []
    )
    return [
        Section(
            "Incoming events: behaviour drift (vs the training window's events)",
            drift_snapshot,
            drift.note,
            overview,
        ),
        Section(
            "Incoming events: data quality (vs the training window's events)",
            snapshot,
            "; ".join(summary.events.issues) or "no issues found",
        ),
    ]


def _reference_note(reference: Reference) -> str:
    how = "reference built" if reference.built else "reference read from cache"
    return (
        f"{how}: {len(reference.features):,} feature vectors of {reference.meta.get('days')}; "
        f"{reference.meta.get('source', '')}"
    )


def measure_quality(
    served: Path, model: ModelInfo, window: Window, params: MonitoringParams
) -> Quality:
    """KPIs of the requests served one attribution window before `window`: by its end,
    every outcome they can be credited with has had time to arrive."""
    matured = window.shift(-params.attribution)
    quality = Quality(
        served_from=matured.start, served_to=matured.end, attribution_hours=params.attribution_hours
    )
    items = served_items(load_requests(served, matured, model.version))
    items = items.loc[~items["cold_start"]].reset_index(drop=True)
    quality.requests = int(items["request_id"].nunique())
    if items.empty:
        quality.note = f"no personalised requests served in {matured} (outcomes window)"
        return quality
    events = load_events(served / "events", Window(matured.start, window.end))
    attributed = attribute(
        items, events, params.attribution, params.click_event_types, params.conversion_event_types
    )
    kpis = outcome_kpis(attributed, params.ks)
    relevant = relevant_after(items, events, params.attribution, params.click_event_types)
    ranking, quality.measured_requests = ranking_kpis(items, relevant, params.ks)
    quality.kpis = {k: round(v, 6) for k, v in {**kpis, **ranking}.items() if math.isfinite(v)}
    quality.measured = True
    return quality


def _most_served(requests: pd.DataFrame) -> str | None:
    """The version that served most of the window (None: the models folder's LATEST)."""
    versions = requests["model_version"].dropna()
    return str(versions.value_counts().index[0]) if len(versions) else None


def _catalogue(path: Path) -> tuple[set[str] | None, pd.Series | None]:
    """The catalogue's item ids and item_id -> category (None when missing)."""
    if not path.exists():
        return None, None
    items = pd.read_parquet(path)
    ids = items["item_id"].astype(str)
    if "category" not in items.columns:
        return set(ids), None
    return set(ids), items.set_index(ids)["category"]
