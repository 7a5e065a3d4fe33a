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

    def _layout(self) -> _Layout:
        """The table's _Layout, made once per fitted (or loaded) table."""
        layout = getattr(self, "_table_layout", None)
        if layout is None or layout[0] is not self.table:
            self._table_layout = (self.table, _Layout(self.table))
        return self._table_layout[1]

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
        seeds = self.seeds(history, at)
        layout = self._layout()
        # The rows a merge of the seeds with the table gives, in its order (each seed,
        # then its item's neighbours in the table's order), as positions: sums over
        # integer keys then add the same numbers in the same order.
        at_item = layout.items.get_indexer(seeds["item_id"])
        found = np.flatnonzero(at_item >= 0)
        per_seed = layout.counts[at_item[found]]
        seed_rows = np.repeat(found, per_seed)
        offsets = np.arange(len(seed_rows)) - np.repeat(np.cumsum(per_seed) - per_seed, per_seed)
        table_rows = np.repeat(layout.starts[at_item[found]], per_seed) + offsets
        seed_users, users_of = pd.factorize(seeds["user_id"].to_numpy(object))
        width = max(len(layout.neighbours), 1)
        keys = seed_users[seed_rows] * width + layout.neighbour_codes[table_rows]
        values = seeds["seed_weight"].to_numpy(np.float64)[seed_rows] * layout.scores[table_rows]
        sums = pd.Series(values).groupby(keys, sort=False).sum()
        key = sums.index.to_numpy(np.int64)
        return pd.DataFrame(
            {
                "user_id": np.asarray(users_of, dtype=object)[key // width],
                "item_id": layout.neighbours[key % width],
                "score": sums.to_numpy(np.float64),
            }
        )


class _Layout:
    """A neighbours table as arrays: each item's first row and row count, each row's
    neighbour code and score (rows of one item together, in the table's order)."""

    def __init__(self, table: pd.DataFrame) -> None:
        ids = table["item_id"].to_numpy(object)
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.zeros(0, int)
        if not pd.Index(ids[starts]).is_unique:  # one item's rows apart: put them together
            table = table.sort_values("item_id", kind="stable")
            ids = table["item_id"].to_numpy(object)
            starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        self.items = pd.Index(ids[starts], dtype=object)
        self.starts = starts
        self.counts = np.diff(np.r_[starts, len(ids)]).astype(np.int64)
        codes, neighbours = pd.factorize(table["neighbour_id"].to_numpy(object))
        self.neighbour_codes = codes.astype(np.int64)
        self.neighbours = np.asarray(neighbours, dtype=object)
        self.scores = table["score"].to_numpy(np.float64)


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
