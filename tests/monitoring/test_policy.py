"""should_retrain on hand-made summaries: sample sizes, drift, KPI drops, cool-down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitoring.config import RetrainPolicy
from monitoring.policy import should_retrain
from monitoring.summary import ColumnDrift, FeatureDrift, PredictionDrift, Quality, RunSummary

NOW = datetime(2026, 11, 3, tzinfo=UTC)
OLD_MODEL = NOW - timedelta(days=10)
POLICY = RetrainPolicy(
    drift_share=0.3,
    kpi="ctr@10",
    kpi_drop=0.2,
    min_feature_rows=500,
    min_scores=1000,
    min_requests=500,
    cooldown_hours=24,
)


def columns(drifted: int, total: int = 10) -> list[ColumnDrift]:
    return [
        ColumnDrift(
            column=f"f{i}", method="K-S p_value", score=0.01, threshold=0.05, drifted=i < drifted
        )
        for i in range(total)
    ]


def summary(
    drifted: int = 0,
    feature_rows: int = 5000,
    kpi: float | None = None,
    baseline: float | None = None,
    requests: int = 5000,
    scores_drift: bool = False,
) -> RunSummary:
    quality = Quality()
    if kpi is not None:
        quality = Quality(
            measured=True,
            requests=requests,
            kpis={"ctr@10": kpi},
            baseline={} if baseline is None else {"ctr@10": baseline},
        )
    return RunSummary(
        run_id="r",
        created_at=NOW,
        window="1d",
        window_start=NOW - timedelta(days=1),
        window_end=NOW,
        model_version="v1",
        feature_drift=FeatureDrift(
            measured=True,
            rows_current=feature_rows,
            rows_reference=10_000,
            columns=columns(drifted),
        ),
        prediction_drift=PredictionDrift(
            measured=True,
            rows_current=20_000,
            columns=[
                ColumnDrift(
                    column="score",
                    method="Wasserstein distance (normed)",
                    score=0.4 if scores_drift else 0.01,
                    threshold=0.1,
                    drifted=scores_drift,
                )
            ],
        ),
        quality=quality,
    )


def test_quiet_window_does_not_retrain() -> None:
    decision = should_retrain(summary(drifted=1), POLICY, OLD_MODEL, NOW)
    assert not decision.retrain and not decision.signals
    assert decision.reasons == ["no drift or KPI drop beyond the policy"]


def test_drift_above_the_threshold_retrains_and_says_which_features() -> None:
    decision = should_retrain(summary(drifted=4), POLICY, OLD_MODEL, NOW)
    assert decision.retrain
    assert decision.reasons == ["feature drift: 4/10 features drifted (40% > 30%): f0, f1, f2, f3"]
    assert decision.signals == decision.reasons


def test_below_the_minimum_sample_nothing_is_judged() -> None:
    decision = should_retrain(
        summary(drifted=9, feature_rows=120, kpi=0.01, baseline=0.5, requests=100),
        POLICY,
        OLD_MODEL,
        NOW,
    )
    assert not decision.retrain and not decision.signals
    assert "feature drift not judged: 120 feature rows < min_feature_rows 500" in decision.reasons
    assert "ctr@10 not judged: 100 matured requests < min_requests 500" in decision.reasons


def test_within_the_cool_down_a_signal_alerts_but_does_not_retrain() -> None:
    decision = should_retrain(summary(drifted=8), POLICY, NOW - timedelta(hours=5), NOW)
    assert not decision.retrain
    assert decision.signals and decision.signals[0].startswith("feature drift: 8/10")
    assert decision.reasons[-1] == "within cool-down: the model was made 5.0 h ago (< 24 h)"
    after = should_retrain(summary(drifted=8), POLICY, NOW - timedelta(hours=25), NOW)
    assert after.retrain


def test_a_kpi_drop_beyond_the_allowed_share_retrains() -> None:
    decision = should_retrain(summary(kpi=0.30, baseline=0.40), POLICY, OLD_MODEL, NOW)
    assert decision.retrain
    assert decision.reasons == ["KPI drop: ctr@10 0.3000 vs baseline 0.4000 (-25%, more than 20%)"]
    small = should_retrain(summary(kpi=0.35, baseline=0.40), POLICY, OLD_MODEL, NOW)
    assert not small.retrain
    first = should_retrain(summary(kpi=0.10), POLICY, OLD_MODEL, NOW)
    assert not first.retrain
    assert "ctr@10 not judged: no baseline from earlier runs yet" in first.reasons


def test_prediction_drift_counts_unless_the_policy_ignores_it() -> None:
    decision = should_retrain(summary(scores_drift=True), POLICY, OLD_MODEL, NOW)
    assert decision.retrain and decision.reasons[0].startswith("prediction drift: score")
    ignoring = POLICY.model_copy(update={"prediction_drift": False})
    assert not should_retrain(summary(scores_drift=True), ignoring, OLD_MODEL, NOW).retrain


def _with_event_drift(base: RunSummary, drifted: int, rows: int = 5000) -> RunSummary:
    base.events.drift = FeatureDrift(
        measured=True, rows_current=rows, rows_reference=10_000, columns=columns(drifted, 6)
    )
    return base


def test_incoming_event_drift_retrains_and_names_the_columns() -> None:
    decision = should_retrain(_with_event_drift(summary(), 3), POLICY, OLD_MODEL, NOW)
    assert decision.retrain
    assert decision.reasons == ["incoming-event drift: 3/6 columns drifted (50% > 30%): f0, f1, f2"]
    quiet = should_retrain(_with_event_drift(summary(), 1), POLICY, OLD_MODEL, NOW)
    assert not quiet.retrain


def test_event_drift_needs_enough_events_and_can_be_switched_off() -> None:
    few = should_retrain(_with_event_drift(summary(), 6, rows=100), POLICY, OLD_MODEL, NOW)
    assert not few.retrain
    assert "incoming-event drift not judged: 100 events < min_event_rows 500" in few.reasons
    off = POLICY.model_copy(update={"event_drift_share": None, "drift_share": None})
    decision = should_retrain(_with_event_drift(summary(drifted=9), 6), off, OLD_MODEL, NOW)
    assert not decision.retrain  # neither feature nor event drift is a trigger any more
