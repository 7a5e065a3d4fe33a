"""Time-decayed co-visitation: items people touched close together in time, lately.

events before the cut --> each user's latest `max_history` distinct items (last event time)
--> pairs (i, j) of one user's items touched within `window_days` of each other,
    weighted 0.5 ** (days from the later of the two to the cut / half_life_days)
--> w(i, j) summed over users; normalize='cosine' divides by sqrt(w(i) * w(j)), w(i) the
    item's own decayed user count, so very popular items do not neighbour everything
--> the top `neighbours` j per i (neighbours.NeighbourSource scores users from it, the
    user's recent items weighted with the same half-life)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tailwise.candidates.base import age_days, decay, positive_float, positive_int
from tailwise.candidates.neighbours import NeighbourSource, top_neighbours

NORMALIZE = ("none", "cosine")


class CoVisitation(NeighbourSource):
    """Item-item co-visitation counts with exponential time decay (see the module docstring)."""

    name = "covisitation"

    def __init__(
        self,
        half_life_days: float = 30.0,
        window_days: float | None = 3.0,
        neighbours: int = 100,
        recent_items: int = 20,
        max_history: int = 30,
        normalize: str = "none",
    ) -> None:
        self.half_life_days = positive_float(half_life_days, "covisitation: half_life_days")
        self.window_days = (
            None
            if window_days is None
            else positive_float(window_days, "covisitation: window_days")
        )
        self.max_history = positive_int(max_history, "covisitation: max_history")
        if normalize not in NORMALIZE:
            raise ValueError(
                f"covisitation: normalize must be one of {NORMALIZE}, got {normalize!r}"
            )
        self.normalize = normalize
        super().__init__(neighbours, recent_items, self.half_life_days)

    def _fit(self, events: pd.DataFrame) -> None:
        last = events.groupby(["user_id", "item_id"], sort=False)["timestamp"].max().reset_index()
        last = last.sort_values(
            ["user_id", "timestamp", "item_id"], ascending=[True, False, True], kind="stable"
        )
        last = last.groupby("user_id", sort=False).head(self.max_history)
        last["w"] = decay(age_days(last["timestamp"], self.cut), self.half_life_days)
        pairs = last.merge(last, on="user_id", suffixes=("", "_n"))
        pairs = pairs[pairs["item_id"] != pairs["item_id_n"]]
        if self.window_days is not None:
            gap = (pairs["timestamp"] - pairs["timestamp_n"]).abs()
            pairs = pairs[gap <= pd.Timedelta(days=self.window_days)]
        # The later event of the pair dates it: its weight is the larger of the two.
        pairs = pairs.assign(score=np.maximum(pairs["w"], pairs["w_n"]))
        table = pairs.groupby(["item_id", "item_id_n"], sort=False)["score"].sum().reset_index()
        table = table.rename(columns={"item_id_n": "neighbour_id"})
        if self.normalize == "cosine":
            own = last.groupby("item_id")["w"].sum()
            norm = np.sqrt(
                table["item_id"].map(own).to_numpy() * table["neighbour_id"].map(own).to_numpy()
            )
            table["score"] = table["score"] / norm
        self.table = top_neighbours(table, self.neighbours)
