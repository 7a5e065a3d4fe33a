"""The typed content of one run's summary.json: what every other part reads.

    drift.py    -> FeatureDrift, PredictionDrift, EventQuality
    quality.py  -> Quality (KPIs of the matured requests, their baseline)
    run.py      -> RunSummary (+ sample sizes, model, window)
    policy.py   -> Decision (reads a RunSummary, is stored in it)
    report.py   -> summary.json, the index table and trend plots (read back as RunSummary)

The later retraining loop reads these files too, so the fields are plain data.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, computed_field


class ColumnDrift(BaseModel):
    """Evidently's verdict on one column."""

    column: str
    method: str
    score: float
    threshold: float
    drifted: bool


class FeatureDrift(BaseModel):
    """Per-feature drift of the logged user feature vectors against the reference."""

    measured: bool = False
    note: str = ""
    rows_current: int = 0
    rows_reference: int = 0
    columns: list[ColumnDrift] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def drifted(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def share(self) -> float:
        return len(self.drifted) / len(self.columns) if self.columns else 0.0


class PredictionDrift(BaseModel):
    """Drift of the served scores against the model's prediction reference."""

    measured: bool = False
    note: str = ""
    reference: str = ""  # where the reference scores come from, said in the report
    rows_current: int = 0
    rows_reference: int = 0
    columns: list[ColumnDrift] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def drifted(self) -> bool:
        return any(c.drifted for c in self.columns)


class EventQuality(BaseModel):
    """Data quality of the incoming events of the window."""

    rows: int = 0
    duplicate_event_ids: int = 0
    null_share: dict[str, float] = Field(default_factory=dict)
    event_types: dict[str, int] = Field(default_factory=dict)
    unknown_event_types: dict[str, int] = Field(default_factory=dict)
    unknown_items: int = 0
    bad_prices: int = 0
    issues: list[str] = Field(default_factory=list)
    # What people do, per column (event type, device, channel, country, top category,
    # price) against the training window's events: behaviour drift that needs no serving.
    drift: FeatureDrift = Field(default_factory=FeatureDrift)


class Quality(BaseModel):
    """Outcome KPIs of the served requests whose attribution window has closed."""

    measured: bool = False
    note: str = ""
    served_from: datetime | None = None
    served_to: datetime | None = None
    attribution_hours: float = 0.0
    requests: int = 0  # matured personalised requests
    measured_requests: int = 0  # of them, with any relevant later event (Precision/NDCG)
    kpis: dict[str, float] = Field(default_factory=dict)  # ctr@5, conversion@5, ndcg@10, ...
    baseline: dict[str, float] = Field(default_factory=dict)  # median of earlier runs


class Decision(BaseModel):
    """should_retrain's answer: `signals` are what was found wrong (alerts carry them),
    `reasons` explain `retrain` (signals, plus what held it back)."""

    model_config = ConfigDict(frozen=True)

    retrain: bool
    reasons: list[str] = Field(default_factory=list)
    signals: list[str] = Field(default_factory=list)


class RunSummary(BaseModel):
    """One monitoring run."""

    run_id: str
    created_at: datetime
    window: str
    window_start: datetime
    window_end: datetime
    model_version: str
    data_version: str = ""
    model_created_at: datetime | None = None
    requests: int = 0
    personalised_requests: int = 0
    feature_drift: FeatureDrift = Field(default_factory=FeatureDrift)
    prediction_drift: PredictionDrift = Field(default_factory=PredictionDrift)
    events: EventQuality = Field(default_factory=EventQuality)
    quality: Quality = Field(default_factory=Quality)
    decision: Decision | None = None
    alert_sent: bool | None = None  # None: nothing to alert or no webhook configured
    notes: list[str] = Field(default_factory=list)
    seconds: float = 0.0
