"""Typed view of `params.yaml`: one section per pipeline stage.

DVC stages declare the keys they read; code reads them only through these models, so a
typo in params.yaml is an error naming the key instead of a silently ignored value.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tailwise.features.config import FeaturesParams
from tailwise.repeats import RecommendParams
from tailwise.synthetic.config import GenerateConfig


class ParamsError(ValueError):
    """params.yaml is missing, unreadable or has a bad value (the message names the key)."""


class IngestParams(BaseModel):
    """How raw rows are validated, weighted and cleaned."""

    model_config = ConfigDict(extra="forbid")

    event_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "page_view": 0.1,
            "product_view": 1.0,
            "add_to_cart": 3.0,
            "purchase": 5.0,
            "rating": 2.0,
        },
        description="Implicit-feedback weight per event type; types not listed are quarantined.",
    )
    value_weighted_types: list[str] = Field(
        default_factory=lambda: ["rating"],
        description="Event types whose weight is scaled by value / rating_scale_max.",
    )
    rating_scale_max: float = 5.0
    age_min: int = 13
    age_max: int = 110
    price_max: float = 1_000_000.0
    earliest_timestamp: datetime = Field(
        datetime(1970, 1, 1),
        description="Timestamps before this (UTC) are invalid; the default admits any era.",
    )
    future_tolerance_hours: float = 24.0
    name_similarity: float = Field(
        88.0, ge=0, le=100, description="Name score (0-100) needed when only the phone matches."
    )
    consent_default: bool = Field(
        False, description="Consent assumed when a source has no consent column at all."
    )
    max_quarantine_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Ingest stops (exit 3) when one reason removes more than this share of a "
        "table's rows; 1 stops only when a table keeps nothing.",
    )
    duckdb_memory_limit: str = "4GB"
    duckdb_threads: int = Field(2, ge=1)

    @field_validator("event_weights")
    @classmethod
    def _weights_non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if v < 0}
        if bad:
            raise ValueError(f"event weights must be >= 0, got {bad}")
        # Event types are compared lower-cased.
        return {k.lower(): v for k, v in value.items()}

    @field_validator("value_weighted_types")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [v.lower() for v in value]


class Params(BaseModel):
    """All stages' parameters."""

    model_config = ConfigDict(extra="allow")

    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    ingest: IngestParams = Field(default_factory=IngestParams)
    features: FeaturesParams = Field(default_factory=FeaturesParams)
    recommend: RecommendParams = Field(default_factory=RecommendParams)


def load_params(path: Path) -> Params:
    """Parse params.yaml into typed models; a missing file means all defaults."""
    if not path.exists():
        return Params()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of stage sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(f"{path}: {_describe(exc)}") from exc


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
    )
