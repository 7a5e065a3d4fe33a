"""Typed configuration of the serving app: where the models are, the rules, the limits.

`ServingConfig` is built once at the entry point (`tailwise serve`, a `serve deploy`
config file or a test) and passed to `serving.app.build`, which hands it to the
deployment. Values that are secrets or endpoints (REDIS_URL, the Feast project, API keys)
come from the environment through `tailwise.settings.Settings` and `TAILWISE_API_KEYS`.
The `serving:` section of params.yaml holds the rules and limits an ML engineer tunes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RulesConfig(BaseModel):
    """Business rules applied after ranking (serving.rules)."""

    model_config = ConfigDict(extra="forbid")

    exclude_purchased: bool | None = Field(
        None,
        description="Never recommend what the user bought; None: the model version decides"
        " (its manifest's recommend.allow_repeats: excluded unless repeats are allowed).",
    )
    exclude_seen: bool | None = Field(
        None,
        description="Also leave out every item the user interacted with; None: the model"
        " version decides, as for exclude_purchased.",
    )
    max_per_category: int = Field(
        3, ge=1, description="At most this many items of one category in a response."
    )
    boosts: dict[str, float] = Field(
        default_factory=dict,
        description="Category (leaf or top level) -> score multiplier > 0 (e.g. promotions).",
    )
    exclude_categories: list[str] = Field(
        default_factory=list, description="Categories (leaf or top level) never recommended."
    )

    def for_version(self, allow_repeats: bool) -> RulesConfig:
        """These rules with the purchased/seen rule settled: a field left None follows the
        version's repeat decision (repeats allowed -> nothing the user had is excluded;
        not allowed -> nothing they had is recommended, as evaluation scored it); True
        and False override it."""
        default = not allow_repeats
        return self.model_copy(
            update={
                "exclude_purchased": default
                if self.exclude_purchased is None
                else self.exclude_purchased,
                "exclude_seen": default if self.exclude_seen is None else self.exclude_seen,
            }
        )


class AutoscalingConfig(BaseModel):
    """Ray Serve's replica autoscaling on ongoing requests (its `autoscaling_config`)."""

    model_config = ConfigDict(extra="forbid")

    min_replicas: int = Field(
        1, ge=1, description="Fewest replicas; at least 1 so /readyz always has an answer."
    )
    max_replicas: int = Field(..., ge=1, description="Most replicas.")
    target_ongoing_requests: float = Field(
        ..., gt=0, description="Requests in flight per replica the autoscaler aims for."
    )
    upscale_delay_s: float = Field(30.0, ge=0, description="Load held this long adds replicas.")
    downscale_delay_s: float = Field(
        600.0, ge=0, description="Quiet held this long removes replicas."
    )

    @model_validator(mode="after")
    def _ordered(self) -> AutoscalingConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"autoscaling.min_replicas ({self.min_replicas}) must not exceed "
                f"autoscaling.max_replicas ({self.max_replicas})"
            )
        return self


class ServingConfig(BaseModel):
    """Everything the serving deployment needs besides environment settings."""

    model_config = ConfigDict(extra="forbid")

    models_dir: Path = Field(Path("data/models"), description="Model versions folder.")
    model_version: str | None = Field(None, description="Version to serve (default: LATEST).")
    clean_dir: Path = Field(
        Path("data/clean"), description="Clean data: consent, identity merges, history bootstrap."
    )
    spill_dir: Path = Field(
        Path(".tailwise/spill"), description="Local durable log of events while Redis is down."
    )
    params_path: Path = Field(Path("params.yaml"), description="Ingestion rules for events.")
    content_dir: Path = Field(
        Path("content"), description="Content templates and their slot manifest (/content)."
    )
    ray_address: str | None = Field(
        None,
        description="Ray cluster to serve on: 'auto' (the one this machine belongs to),"
        " 'host:port' of its head, or 'ray://host:port'; None starts a local Ray instance."
        " Model versions and clean data must be at the same paths on every node.",
    )
    proxy_location: Literal["EveryNode", "HeadOnly"] = Field(
        "EveryNode",
        description="Where Ray Serve runs its HTTP proxies: every node with a replica (behind"
        " a load balancer), or the head node only.",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    num_replicas: int | None = Field(
        None, ge=1, description="Fixed replica count (default: Ray Serve's, or autoscaling)."
    )
    autoscaling: AutoscalingConfig | None = Field(
        None, description="Replicas follow the ongoing requests (exclusive with num_replicas)."
    )
    max_replicas_per_node: int | None = Field(
        None,
        ge=1,
        description="At most this many replicas on one node (1: every replica on its own"
        " node, so losing a node loses one replica).",
    )
    max_ongoing_requests: int = Field(
        14,
        ge=1,
        description="Ray Serve's per-replica slots; above max_in_flight, so that requests past"
        " it reach the replica's fast 503, and not far above, so that a 503 waits behind few.",
    )
    max_in_flight: int = Field(
        12,
        ge=1,
        description="Requests a replica works on at once during a burst; past it a fast 503"
        " with Retry-After (serving.overload).",
    )
    standing_in_flight: int | None = Field(
        None,
        ge=1,
        description="Requests a replica works on at once under a standing queue (in flight not"
        " below half of this for standing_queue_ms): past it a fast 503 (serving.overload)."
        " Default: 8, or max_in_flight when that is lower.",
    )
    standing_queue_ms: float = Field(
        300.0,
        gt=0,
        description="How long in flight must stay at or above half of standing_in_flight to"
        " count as a standing queue (overload) rather than a burst.",
    )
    max_queued_requests: int = Field(
        8, ge=-1, description="Ray Serve's queue per replica past max_ongoing_requests (-1: none)."
    )
    retry_after_seconds: int = Field(1, ge=0, description="Retry-After of a 503 when overloaded.")
    n_candidates: int = Field(200, ge=1, le=5000, description="Retriever's top N to rank.")
    cache_ttl_seconds: int = Field(300, ge=0, description="Per-user response cache; 0 = off.")
    require_key_for_recommend: bool = Field(
        False, description="Whether POST /recommend needs X-API-Key like the write endpoints."
    )
    log_feature_sample: float = Field(
        0.05, ge=0, le=1, description="Share of served requests logged with feature vectors."
    )
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Larger bodies get 413.")
    redis_timeout_seconds: float = Field(0.25, gt=0, description="Per Redis call.")
    redis_durability: Literal["refuse", "warn"] = Field(
        "refuse",
        description="A Redis that can lose acknowledged events (no append-only file, or"
        " fsync less often than per write without WAITAOF): refuse to serve, or warn.",
    )
    personal_ids: Literal["refuse", "pseudonymise"] = Field(
        "refuse",
        description="A user id that is an e-mail address or phone number: refuse it (422),"
        " or replace it by its keyed pseudonym (needs TAILWISE_HMAC_KEY, as ingestion).",
    )
    rules: RulesConfig = Field(default_factory=RulesConfig)
    api_keys: list[str] = Field(
        default_factory=list,
        description="Write-scope X-API-Key values, for /events (default: TAILWISE_API_KEYS;"
        " generated if unset).",
    )
    admin_keys: list[str] = Field(
        default_factory=list,
        description="Admin-scope X-API-Key values, for /admin/* (default: TAILWISE_ADMIN_KEYS;"
        " generated if unset). A key is in one scope only.",
    )

    @model_validator(mode="after")
    def _shedder_in_front(self) -> ServingConfig:
        if self.max_ongoing_requests <= self.max_in_flight:
            raise ValueError(
                f"max_ongoing_requests ({self.max_ongoing_requests}) must exceed max_in_flight "
                f"({self.max_in_flight}): requests past max_in_flight must reach the replica "
                "to be refused with a 503 (serving.overload)"
            )
        if self.standing_in_flight is not None and self.standing_in_flight > self.max_in_flight:
            raise ValueError(
                f"standing_in_flight ({self.standing_in_flight}) must not exceed max_in_flight "
                f"({self.max_in_flight}): it is the tighter limit used under a standing queue"
            )
        return self

    @property
    def standing_limit(self) -> int:
        """standing_in_flight, or its default: 8, or max_in_flight when that is lower."""
        if self.standing_in_flight is not None:
            return self.standing_in_flight
        return min(8, self.max_in_flight)

    @model_validator(mode="after")
    def _one_replica_policy(self) -> ServingConfig:
        scaling = self.autoscaling
        if scaling is None:
            return self
        if self.num_replicas is not None:
            raise ValueError(
                f"num_replicas ({self.num_replicas}) and autoscaling are exclusive: set "
                "autoscaling.min_replicas / max_replicas instead, or drop autoscaling"
            )
        if scaling.target_ongoing_requests > self.max_in_flight:
            raise ValueError(
                f"autoscaling.target_ongoing_requests ({scaling.target_ongoing_requests:g}) "
                f"must not exceed max_in_flight ({self.max_in_flight}): a replica refuses "
                "requests past max_in_flight, so the target would never be reached and no "
                "replica would be added"
            )
        return self

    def resolved(self) -> ServingConfig:
        """Absolute paths: Ray Serve replicas may run in another working directory."""
        update: dict[str, Any] = {
            name: getattr(self, name).resolve()
            for name in ("models_dir", "clean_dir", "spill_dir", "params_path", "content_dir")
        }
        return self.model_copy(update=update)
