"""Typed parameters of the offline evaluation (the `evaluation:` section of params.yaml).

`SplitParams` says where the time windows are cut and what counts as a relevant
interaction; `EvaluationParams` adds the cut-offs K and the baselines' knobs. Both are
plain pydantic models: the entry point builds them and passes them down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class SplitParams(BaseModel):
    """Temporal train / validation / test windows and the definition of a positive event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    validation_days: float = Field(
        7, ge=0, description="Length of the validation window, just before the test window."
    )
    test_days: float = Field(
        7, gt=0, description="Length of the test window, ending at the last event."
    )
    positive_event_types: tuple[str, ...] = Field(
        ("product_view", "add_to_cart", "purchase", "rating"),
        description="Event types that make an item relevant in a window.",
    )
    rated_event_types: tuple[str, ...] = Field(
        ("rating",), description="Positive types that count only when value >= min_rating."
    )
    min_rating: float = Field(3.0, description="Lowest rating value that is a positive event.")
    min_window_users: int = Field(
        20,
        ge=1,
        description="Fewest users with a relevant item a validation, test or ranker label "
        "window must hold (training.windows).",
    )
    fallback: Literal["quantile", "error"] = Field(
        "quantile",
        description="When a window holds too few users: 'quantile' windows (the last "
        "fallback_share of events by time), or 'error' (stop, naming the parameter).",
    )
    fallback_share: float = Field(
        0.1, gt=0, le=0.45, description="Share of events by time in each quantile window."
    )

    @field_validator("positive_event_types", "rated_event_types")
    @classmethod
    def _lower(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Event types are compared lower-cased, as in ingest.event_weights.
        return tuple(v.lower() for v in value)


class EvaluationParams(BaseModel):
    """Windows, cut-offs and baseline settings of `evaluate_baselines`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    split: SplitParams = Field(default_factory=SplitParams)
    ks: tuple[int, ...] = Field((5, 10, 20), description="Cut-offs K of every @K metric.")
    recent_days: float = Field(7, gt=0, description="Window of RecentlyPopular, in days.")
    cooccurrence_recent_items: int = Field(
        20, ge=1, description="How many of a user's latest distinct items seed ItemCooccurrence."
    )
    cooccurrence_normalize: Literal["none", "cosine"] = Field(
        "none", description="ItemCooccurrence scores: raw co-occurrence counts or cosine."
    )
    # Defaults chosen on the validation window of the 5000-user demo set: EASE is flat
    # for lambda 1000..5000 there, raw counts beat cosine by ~0.006 NDCG@10.
    ease_lambda: float = Field(1000.0, gt=0, description="L2 regularisation of EASE.")
    ease_max_items: int = Field(
        20_000, ge=1, description="EASE inverts an items x items matrix: refuse larger catalogues."
    )

    @field_validator("ks")
    @classmethod
    def _positive_sorted(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        bad = [k for k in value if k < 1]
        if bad or not value:
            raise ValueError(f"ks must be a non-empty list of integers >= 1, got {list(value)}")
        return tuple(sorted(set(value)))


class TuneParams(BaseModel):
    """How `training.tune` searches (the `training.tune` section of params.yaml).

    Trials run `max_concurrent_trials` at a time with `cpus_per_trial` each, inside a Ray
    started with `cpus`; the search stops after `num_samples` trials or `time_budget_s`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        False, description="The training stages search first (`tailwise train --tune` too)."
    )
    num_samples: int = Field(20, ge=1, description="Trials to run at most.")
    time_budget_s: float = Field(3600.0, gt=0, description="Wall-clock budget of the search.")
    max_concurrent_trials: int = Field(2, ge=1)
    cpus: int = Field(2, ge=1, description="CPUs given to the Ray started for the search.")
    cpus_per_trial: int = Field(1, ge=1)
    seed: int = Field(0, description="Seed of the Optuna sampler.")
    metric: str = Field("ndcg@10", description="<metric>@<k> on the validation window.")
    grace_period: int = Field(1, ge=1, description="ASHA: reports before a trial may stop.")
    evaluate_base: bool = Field(
        True, description="Run the base config as the first trial (a reference point)."
    )
    storage: Path = Field(Path("data/tuning/ray"), description="Ray Tune's results folder.")

    @field_validator("metric")
    @classmethod
    def _metric_at_k(cls, value: str) -> str:
        name, _, k = value.partition("@")
        if not name or not k.isdigit() or int(k) < 1:
            raise ValueError(f"metric must look like 'ndcg@10' (<metric>@<k>), got {value!r}")
        return value.lower()
