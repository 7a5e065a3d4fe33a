"""Buy-again: the user's own past items, for catalogues where people choose the same again.

    user history before `at` --> per (user, item): events, days since the last one
    --> score = events + 0.5 ** (days since the last event / half_life_days)
        (more events first; among equal counts, the more recent)

Only meaningful where repeats are allowed (recommend.allow_repeats, tailwise.repeats): every
candidate is an item the user already had, so asking for it with exclude_seen=True is an
error naming the parameter rather than a silently empty list.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from tailwise.candidates.base import CandidateSource, age_days, decay, positive_float


class BuyAgain(CandidateSource):
    """The user's past items by count, then recency."""

    name = "buy_again"

    def __init__(self, half_life_days: float = 14.0) -> None:
        self.half_life_days = positive_float(half_life_days, "buy_again: half_life_days")

    def _fit(self, events: pd.DataFrame) -> None:
        """Nothing to learn: the source reads each user's own history when it scores."""

    def artifact(self) -> dict[str, pd.DataFrame]:
        return {}

    def candidates(
        self,
        histories: pd.DataFrame,
        n: int,
        users: Iterable[str] | None = None,
        at: pd.Timestamp | str | None = None,
        exclude_seen: bool = True,
        context: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """As CandidateSource.candidates; exclude_seen must be False (repeats allowed)."""
        if exclude_seen:
            raise ValueError(
                "buy_again: exclude_seen must be False; the source only proposes items the "
                "user already had, so use it only where recommend.allow_repeats allows repeats"
            )
        return super().candidates(histories, n, users, at, exclude_seen, context)

    def _score(
        self,
        history: pd.DataFrame,
        users: np.ndarray,
        at: pd.Timestamp,
        context: pd.DataFrame | None,
    ) -> pd.DataFrame:
        grouped = history.groupby(["user_id", "item_id"], sort=False)["timestamp"]
        stats = grouped.agg(["size", "max"]).reset_index()
        recency = decay(age_days(stats["max"], at), self.half_life_days)
        stats["score"] = stats["size"].to_numpy(np.float64) + recency
        return stats[["user_id", "item_id", "score"]]
