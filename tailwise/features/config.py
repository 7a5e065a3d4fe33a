"""Typed parameters of the feature build (the `features:` section of params.yaml)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class FeaturesParams(BaseModel):
    """Windows, list lengths, segmentation, engine and DuckDB resources of `build_features`."""

    model_config = ConfigDict(extra="forbid")

    windows: tuple[int, ...] = Field(
        (1, 7, 30), description="Count windows in days; user_daily/item_daily need 1, 7 and 30."
    )
    top_n: int = Field(3, ge=1, description="Length of top_categories / top_brands.")
    recent_items: int = Field(10, ge=1, description="Length of recent_items / rt_last_items.")
    n_segments: int = Field(5, ge=2, description="K of the K-Means user segmentation.")
    seed: int = 42
    segment_cutoff: datetime | None = Field(
        None,
        description="Fit segments on snapshots at or before this instant (default: the end of "
        "the data minus segment_holdout_days).",
    )
    segment_holdout_days: int = Field(
        15,
        ge=0,
        description="Without a cutoff, the last days the segment model never sees (cover the "
        "evaluation windows, so segments used as features hold no later information).",
    )
    duckdb_memory_limit: str = Field(
        "4GB", description="Per DuckDB session: the one of engine duckdb, each worker's in ray."
    )
    duckdb_threads: int = Field(2, ge=1, description="Threads of engine duckdb's session.")
    engine: Literal["duckdb", "ray"] = Field(
        "duckdb",
        description="duckdb: one process (the default on one machine); ray: the same SQL and "
        "functions over user and item shards as Ray tasks, one core each.",
    )
    workers: int = Field(
        2,
        ge=1,
        description="Engine ray: Ray worker CPUs when the build starts Ray itself (with "
        "RAY_ADDRESS set it joins that cluster and uses its CPUs) and the fewest shards.",
    )

    @field_validator("windows")
    @classmethod
    def _standard_windows(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        # Column names (views_1d, ..., sessions_30d) are part of the Feast contract.
        if tuple(sorted(set(value))) != (1, 7, 30):
            raise ValueError(
                f"windows must be (1, 7, 30): the table contract names them, got {value}"
            )
        return (1, 7, 30)
