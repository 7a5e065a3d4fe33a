"""Whether a monitoring run asks for retraining: one pure function over its summary.

    RunSummary + RetrainPolicy (params.yaml monitoring.retrain) + when the current model
    was made + now  --should_retrain-->  Decision(retrain, reasons, signals)

Signals are looked for only where there is enough data (the policy's minimum sample
sizes): feature drift above the allowed share, drift of what people do (the incoming
events' columns) above its allowed share, drift of the served scores, a relative
drop of the policy's KPI against its baseline (the median of earlier runs). Any signal
asks for retraining unless the model is younger than the cool-down. Alerts go out on
signals, whether or not the cool-down holds retraining back.
"""

from __future__ import annotations

import math
from datetime import datetime

from monitoring.config import RetrainPolicy
from monitoring.summary import Decision, FeatureDrift, RunSummary


def should_retrain(
    summary: RunSummary,
    policy: RetrainPolicy,
    last_retrain_at: datetime | None,
    now: datetime,
) -> Decision:
    """Retrain when a signal is found with enough data and the cool-down has passed."""
    signals: list[str] = []
    held: list[str] = []
    _feature_drift(summary, policy, signals, held)
    _event_drift(summary, policy, signals, held)
    _prediction_drift(summary, policy, signals, held)
    _kpi_drop(summary, policy, signals, held)
    if not signals:
        return Decision(retrain=False, reasons=[*held, "no drift or KPI drop beyond the policy"])
    if last_retrain_at is not None:
        age_h = (now - last_retrain_at).total_seconds() / 3600
        if age_h < policy.cooldown_hours:
            cooling = (
                f"within cool-down: the model was made {age_h:.1f} h ago "
                f"(< {policy.cooldown_hours:g} h)"
            )
            return Decision(retrain=False, reasons=[*signals, cooling], signals=signals)
    return Decision(retrain=True, reasons=signals, signals=signals)


def _feature_drift(
    summary: RunSummary, policy: RetrainPolicy, signals: list[str], held: list[str]
) -> None:
    _share_drift(
        summary.feature_drift,
        policy.drift_share,
        (policy.min_feature_rows, "min_feature_rows", "feature rows"),
        ("feature drift", "features"),
        signals,
        held,
    )


def _event_drift(
    summary: RunSummary, policy: RetrainPolicy, signals: list[str], held: list[str]
) -> None:
    _share_drift(
        summary.events.drift,
        policy.event_drift_share,
        (policy.min_event_rows, "min_event_rows", "events"),
        ("incoming-event drift", "columns"),
        signals,
        held,
    )


def _share_drift(
    drift: FeatureDrift,
    allowed: float | None,
    minimum: tuple[int, str, str],
    names: tuple[str, str],
    signals: list[str],
    held: list[str],
) -> None:
    """A signal when more than `allowed` of the columns drifted on enough rows."""
    if not drift.measured or allowed is None:
        return
    (least, key, rows), (what, unit) = minimum, names
    if drift.rows_current < least:
        held.append(f"{what} not judged: {drift.rows_current} {rows} < {key} {least}")
    elif drift.share > allowed:
        listed = ", ".join(drift.drifted[:8]) + (" ..." if len(drift.drifted) > 8 else "")
        signals.append(
            f"{what}: {len(drift.drifted)}/{len(drift.columns)} {unit} drifted "
            f"({drift.share:.0%} > {allowed:.0%}): {listed}"
        )


def _prediction_drift(
    summary: RunSummary, policy: RetrainPolicy, signals: list[str], held: list[str]
) -> None:
    drift = summary.prediction_drift
    if not (drift.measured and policy.prediction_drift):
        return
    if drift.rows_current < policy.min_scores:
        held.append(
            f"prediction drift not judged: {drift.rows_current} scores "
            f"< min_scores {policy.min_scores}"
        )
    elif drift.drifted:
        detail = "; ".join(
            f"{c.column} {c.method} {c.score:.3g} (threshold {c.threshold:g})"
            for c in drift.columns
            if c.drifted
        )
        signals.append(f"prediction drift: {detail}")


def _kpi_drop(
    summary: RunSummary, policy: RetrainPolicy, signals: list[str], held: list[str]
) -> None:
    quality, kpi = summary.quality, policy.kpi
    current, baseline = quality.kpis.get(kpi), quality.baseline.get(kpi)
    if not quality.measured or current is None or math.isnan(current):
        return
    if quality.requests < policy.min_requests:
        held.append(
            f"{kpi} not judged: {quality.requests} matured requests "
            f"< min_requests {policy.min_requests}"
        )
        return
    if baseline is None or math.isnan(baseline) or baseline <= 0:
        held.append(f"{kpi} not judged: no baseline from earlier runs yet")
        return
    drop = (baseline - current) / baseline
    if drop > policy.kpi_drop:
        signals.append(
            f"KPI drop: {kpi} {current:.4f} vs baseline {baseline:.4f} "
            f"(-{drop:.0%}, more than {policy.kpi_drop:.0%})"
        )
