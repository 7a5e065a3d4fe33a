"""Repeat consumption: whether a user may be recommended what they already had.

One setting, `recommend.allow_repeats` in params.yaml: `true`, `false`, or `auto`, which
looks at the history: when at least `auto_threshold` of the purchases (of all events, if
the log has no purchases) are of an item the same user had before, repeats are allowed.
The decision is made once at training time, written to the version's manifest and read
from there by evaluation, `tailwise recommend` and serving.

`user_item_history` is the one definition of the per-(user, item) history features the
ranker uses when repeats are allowed; training computes them at each label cut and
serving from the per-user history it keeps in Redis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

HISTORY_FEATURES = ("x_user_item_events", "x_days_since_user_item")
REPEAT_EVENT_TYPES = ("purchase",)


class RecommendParams(BaseModel):
    """The `recommend:` section of params.yaml."""

    model_config = ConfigDict(extra="forbid")

    allow_repeats: Literal["auto"] | bool = Field(
        "auto", description="Recommend items a user already had: true, false or auto."
    )
    auto_threshold: float = Field(
        0.25,
        gt=0,
        le=1,
        description="auto allows repeats when this share of purchases are re-buys.",
    )


@dataclass(frozen=True)
class RepeatDecision:
    """What was decided and why (written to the manifest under `recommend`)."""

    allow_repeats: bool
    setting: str
    repeat_share: float
    basis: str

    def describe(self) -> str:
        how = "set" if self.setting != "auto" else f"auto: {self.repeat_share:.0%} of {self.basis}"
        verdict = "allowed" if self.allow_repeats else "not allowed"
        return f"repeats {verdict} (recommend.allow_repeats {how} are repeats)"

    def as_manifest(self) -> dict[str, object]:
        return {
            "allow_repeats": self.allow_repeats,
            "setting": self.setting,
            "repeat_share": round(self.repeat_share, 4),
            "basis": self.basis,
        }


def repeat_share(events: pd.DataFrame) -> tuple[float, str]:
    """Share of events (purchases when there are any) of an item the user had before."""
    frame = events[events["event_type"].isin(REPEAT_EVENT_TYPES)]
    basis = "purchases"
    if frame.empty:
        frame, basis = events, "events"
    if frame.empty:
        return 0.0, basis
    ordered = frame.sort_values("timestamp", kind="stable")
    repeated = ordered.duplicated(subset=["user_id", "item_id"], keep="first")
    return float(repeated.mean()), basis


def decide_repeats(params: RecommendParams, events: pd.DataFrame) -> RepeatDecision:
    """The repeat decision for a training history (user_id, item_id, event_type, timestamp)."""
    share, basis = repeat_share(events)
    if params.allow_repeats == "auto":
        allowed = share >= params.auto_threshold
        return RepeatDecision(allowed, "auto", share, basis)
    return RepeatDecision(
        bool(params.allow_repeats), str(params.allow_repeats).lower(), share, basis
    )


def user_item_history(
    events: pd.DataFrame, at: pd.Timestamp, pairs: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per (user_id, item_id): how many events the user had with the item before `at` and
    the days since the last one. With `pairs`, one row per pair (0 events and NaN days
    where there is no history), in the order of `pairs`."""
    before = events[events["timestamp"] < at]
    grouped = before.groupby(["user_id", "item_id"], sort=False, observed=True)["timestamp"]
    stats = grouped.agg(["size", "max"]).reset_index()
    stats["x_user_item_events"] = stats["size"].astype("float64")
    age = (at - stats["max"]).dt.total_seconds() / 86400.0
    stats["x_days_since_user_item"] = age.astype("float64")
    stats = stats[["user_id", "item_id", *HISTORY_FEATURES]]
    if pairs is None:
        return stats
    out = pairs[["user_id", "item_id"]].merge(stats, on=["user_id", "item_id"], how="left")
    out["x_user_item_events"] = out["x_user_item_events"].fillna(0.0)
    out["x_days_since_user_item"] = out["x_days_since_user_item"].astype("float64")
    return out


def history_from_counts(
    count: np.ndarray, last_seconds: np.ndarray, now_seconds: float
) -> np.ndarray:
    """The same two features from kept per-item counts and last-event times (epoch seconds;
    NaN where the user never had the item): serving's side of `user_item_history`."""
    days = np.where(np.isnan(last_seconds), np.nan, (now_seconds - last_seconds) / 86400.0)
    return np.column_stack([np.nan_to_num(count.astype("float64")), days])
