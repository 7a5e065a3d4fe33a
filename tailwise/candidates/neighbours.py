"""Item-to-item sources: precomputed top neighbours per item, scored from a user's history.

    fit --> neighbours table (item_id, neighbour_id, score): at most `neighbours` rows per item
    user history before `at` --seeds--> (user_id, item_id, seed weight): the user's latest
        `recent_items` distinct items, weighted by 0.5 ** (days since the last event with the
        item / seed_half_life_days) (1 for every seed when the half-life is None)
    --> score(user, j) = sum over seeds s of seed weight(s) * neighbours[s, j]

Subclasses (covisitation.CoVisitation, ease.EaseNeighbours) only build the table; serving
can score from the same table and the history it keeps per user.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tailwise.candidates.base import (
    CandidateSource,
    age_days,
    decay,
    positive_float,
    positive_int,
)

NEIGHBOUR_COLUMNS = ("item_id", "neighbour_id", "score")


class NeighbourSource(CandidateSource):
    """Scores a user's candidates from the neighbours of their recent items."""

    table: pd.DataFrame  # (item_id, neighbour_id, score), set by the subclass's _fit

    def __init__(
        self,
        neighbours: int,
        recent_items: int | None,
        seed_half_life_days: float | None,
    ) -> None:
        self.neighbours = positive_int(neighbours, f"{self.name}: neighbours")
        self.recent_items = (
            None
            if recent_items is None
            else positive_int(recent_items, f"{self.name}: recent_items")
        )
        self.seed_half_life_days = (
            None
            if seed_half_life_days is None
            else positive_float(seed_half_life_days, f"{self.name}: seed_half_life_days")
        )

    def artifact(self) -> dict[str, pd.DataFrame]:
        return {"neighbours": self.table}

    def seeds(self, history: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
        """Each user's latest distinct items and their weights (see the module docstring)."""
        last = history.groupby(["user_id", "item_id"], sort=False)["timestamp"].max()
        last = last.reset_index().sort_values(
            ["user_id", "timestamp", "item_id"], ascending=[True, False, True], kind="stable"
        )
        if self.recent_items is not None:
            last = last.groupby("user_id", sort=False).head(self.recent_items)
        weight = (
            np.ones(len(last))
            if self.seed_half_life_days is None
            else decay(age_days(last["timestamp"], at), self.seed_half_life_days)
        )
        return last[["user_id", "item_id"]].assign(seed_weight=weight)

    def _score(
        self,
        history: pd.DataFrame,
        users: np.ndarray,
        at: pd.Timestamp,
        context: pd.DataFrame | None,
    ) -> pd.DataFrame:
        pairs = self.seeds(history, at).merge(self.table, on="item_id")
        pairs["score"] = pairs["seed_weight"] * pairs["score"]
        scored = pairs.groupby(["user_id", "neighbour_id"], sort=False)["score"].sum()
        return scored.rename_axis(["user_id", "item_id"]).reset_index()


def top_neighbours(pairs: pd.DataFrame, m: int) -> pd.DataFrame:
    """The `m` highest-scored neighbours per item (ties: neighbour_id) of (item_id,
    neighbour_id, score) rows with a positive score, an item never its own neighbour."""
    pairs = pairs[(pairs["item_id"] != pairs["neighbour_id"]) & (pairs["score"] > 0)]
    ordered = pairs.sort_values(
        ["item_id", "score", "neighbour_id"], ascending=[True, False, True], kind="stable"
    )
    kept = ordered.groupby("item_id", sort=False).head(m).reset_index(drop=True)
    return kept.astype({"item_id": str, "neighbour_id": str, "score": np.float64})[
        list(NEIGHBOUR_COLUMNS)
    ]
