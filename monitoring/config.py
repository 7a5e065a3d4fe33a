"""Typed parameters of the monitoring stage (the `monitoring:` section of params.yaml).

    params.yaml --load_monitoring_params--> MonitoringParams (+ TAILWISE_ALERT_WEBHOOK)
        window, reference and sampling sizes, attribution  -> windows / reference / drift /
                                                              quality
        retrain: RetrainPolicy                             -> policy.should_retrain
        alert_webhook, alert_timeout_seconds               -> alerts.post_alert

The entry point builds the object once and passes it down. The webhook URL may carry a
token, so the environment variable wins over params.yaml (which is committed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

WEBHOOK_ENV = "TAILWISE_ALERT_WEBHOOK"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
KPI_NAMES = ("ctr", "conversion", "precision", "ndcg")


class MonitoringConfigError(ValueError):
    """The monitoring parameters are wrong; the message names the key and the value."""


def parse_duration(text: str, name: str = "window") -> timedelta:
    """'1d', '12h', '30m', '2w' -> timedelta; anything else is an error naming `name`."""
    match = _DURATION.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise MonitoringConfigError(
            f"{name}: expected a positive duration like 30m, 12h, 1d or 2w, got {text!r}"
        )
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


class RetrainPolicy(BaseModel):
    """When a run asks for retraining (see policy.should_retrain)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    drift_share: float | None = Field(
        0.3,
        ge=0,
        le=1,
        description="Retrain when more than this share of features drift (null: never).",
    )
    event_drift_share: float | None = Field(
        0.3,
        ge=0,
        le=1,
        description="Retrain when more than this share of incoming-event columns drift "
        "(null: never).",
    )
    min_event_rows: int = Field(
        500, ge=1, description="Incoming events needed before their drift is judged."
    )
    prediction_drift: bool = Field(True, description="Retrain when the served scores drift.")
    kpi: str = Field("ctr@10", description="The KPI whose drop asks for retraining.")
    kpi_drop: float = Field(
        0.2, gt=0, le=1, description="Relative drop of `kpi` against its baseline that counts."
    )
    min_feature_rows: int = Field(
        500, ge=1, description="Logged feature vectors needed before feature drift is judged."
    )
    min_scores: int = Field(
        1000, ge=1, description="Served scores needed before prediction drift is judged."
    )
    min_requests: int = Field(
        500, ge=1, description="Matured served requests needed before a KPI drop is judged."
    )
    cooldown_hours: float = Field(
        24.0, ge=0, description="No retraining this soon after the current model was made."
    )

    @field_validator("kpi")
    @classmethod
    def _kpi_at_k(cls, value: str) -> str:
        name, _, k = value.partition("@")
        if name not in KPI_NAMES or not k.isdigit() or int(k) < 1:
            raise ValueError(f"expected one of {list(KPI_NAMES)} followed by @K, got {value!r}")
        return value


class MonitoringParams(BaseModel):
    """Everything `tailwise monitor run` reads from params.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: str = Field("1d", description="Default length of the current window.")
    reference_days: float = Field(
        14, gt=0, description="The last days of the training window the reference is drawn from."
    )
    reference_rows: int = Field(
        10_000, ge=100, description="Feature vectors (and events) in the cached reference sample."
    )
    drift_sample_rows: int = Field(
        20_000, ge=100, description="At most this many current rows go into a drift test."
    )
    drift_method: str | None = Field(
        None, description="Evidently stat test for every column (null: Evidently's choice)."
    )
    drift_threshold: float | None = Field(
        None, gt=0, description="Drift threshold of that test (null: the test's default)."
    )
    seed: int = 0
    attribution_hours: float = Field(
        24.0, gt=0, description="An event this long after a serve is attributed to it."
    )
    click_event_types: tuple[str, ...] = ("product_view", "add_to_cart", "purchase")
    conversion_event_types: tuple[str, ...] = ("purchase",)
    ks: tuple[int, ...] = Field((5, 10), description="Cut-offs K of the quality KPIs.")
    kpi_baseline_runs: int = Field(
        7, ge=1, description="KPI baseline: median of this many previous runs of the same model."
    )
    retrain: RetrainPolicy = Field(default_factory=RetrainPolicy)
    alert_webhook: str | None = Field(
        None, description=f"URL that alerts are POSTed to; {WEBHOOK_ENV} overrides it."
    )
    alert_timeout_seconds: float = Field(5.0, gt=0, le=60)

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("click_event_types", "conversion_event_types")
    @classmethod
    def _lower(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("needs at least one event type")
        return tuple(v.lower() for v in value)

    @field_validator("ks")
    @classmethod
    def _ks(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(k < 1 for k in value):
            raise ValueError(f"expected cut-offs >= 1, got {list(value)}")
        return tuple(sorted(set(value)))

    @field_validator("alert_webhook")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s):// URL, got {value!r}")
        return value or None

    @property
    def window_length(self) -> timedelta:
        return parse_duration(self.window)

    @property
    def attribution(self) -> timedelta:
        return timedelta(hours=self.attribution_hours)


def load_monitoring_params(
    path: Path, env: Mapping[str, str] | None = None, **overrides: Any
) -> MonitoringParams:
    """The `monitoring:` section of params.yaml (defaults where absent), the webhook from
    `env` when set there, then `overrides` (command-line options)."""
    from tailwise.params import ParamsError, load_params

    section = dict((load_params(path).model_extra or {}).get("monitoring") or {})
    webhook = (env or {}).get(WEBHOOK_ENV)
    if webhook:
        section["alert_webhook"] = webhook
    section.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return MonitoringParams.model_validate(section)
    except ValidationError as exc:
        detail = "; ".join(
            f"monitoring.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ParamsError(f"{path}: {detail}") from exc
