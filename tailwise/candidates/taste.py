"""Popular items of the catalogue groups a user favours (category, brand, ...).

    items (item_id, `column`) + events before the cut --AttributePopularity.fit-->
        item_group   (item_id, group): each item's value of `column`
        group_items  (group, item_id, score): the `keep` items of most event weight in each
                     group, score = the item's share of its group's weight
        group_share  (group, share): each group's share of all the weight
    user history before `at` --> w(user, g) = the user's weight in group g, each event
        weighted 0.5 ** (its age in days / half_life_days)
    --> taste(user, g) = (w(user, g) + prior * share(g)) / (sum over g of w(user, g) + prior),
        kept for the user's `max_groups` highest groups
    --> score(user, j) = taste(user, group of j) * share of j in its group

An estimate of P(group | user) * P(item | group), the user's taste shrunk towards
everyone's by `prior` (in event-weight units), so a user with little history still gets
a full list and one without history gets overall popularity by group. Items without a
value of `column`, and catalogues without the column, give no candidates.

Scores are computed as arrays over (users x the table's items), a block of users at a
time, and a user's top n keeps, before the ranking, only the scores at or above the
user's n-th best among the items they have not seen: every list in full would be users
x max_groups x keep rows (millions in a label window) only to be cut to n.
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


class AttributePopularity(CandidateSource):
    """Items popular in the groups (values of an item column) the user engages with."""

    def __init__(
        self,
        items: pd.DataFrame,
        column: str = "category",
        half_life_days: float = 30.0,
        prior: float = 5.0,
        keep: int = 100,
        max_groups: int = 50,
    ) -> None:
        if not isinstance(items, pd.DataFrame) or "item_id" not in items.columns:
            raise ValueError("attribute popularity: items must be a DataFrame with an item_id")
        if not isinstance(column, str) or column == "item_id":
            raise ValueError(
                f"attribute popularity: column must name an item column, got {column!r}"
            )
        self.column = column
        self.name = f"popular_in_{column}"
        self.half_life_days = positive_float(half_life_days, f"{self.name}: half_life_days")
        self.prior = positive_float(prior, f"{self.name}: prior")
        self.keep = positive_int(keep, f"{self.name}: keep")
        self.max_groups = positive_int(max_groups, f"{self.name}: max_groups")
        values = (
            items[column]
            if column in items.columns
            else pd.Series(None, index=items.index, dtype=object)
        )
        known = items.loc[values.notna(), ["item_id"]].assign(group=values.dropna().astype(str))
        self.item_group = known.astype({"item_id": str}).drop_duplicates("item_id")

    def _fit(self, events: pd.DataFrame) -> None:
        weights = events.groupby("item_id")["weight"].sum().rename("weight").reset_index()
        grouped = weights.merge(self.item_group, on="item_id")
        grouped = grouped[grouped["weight"] > 0]
        by_group = grouped.groupby("group")["weight"].sum()
        share = by_group / by_group.sum()
        self.group_share = share.rename("share").rename_axis("group").reset_index()
        grouped = grouped.assign(score=grouped["weight"] / grouped["group"].map(by_group))
        grouped = grouped.sort_values(
            ["group", "score", "item_id"], ascending=[True, False, True], kind="stable"
        )
        table = grouped.groupby("group", sort=False).head(self.keep)
        self.table = table[["group", "item_id", "score"]].reset_index(drop=True)

    def artifact(self) -> dict[str, pd.DataFrame]:
        return {
            "item_group": self.item_group,
            "group_items": self.table,
            "group_share": self.group_share,
        }

    def _score(
        self,
        history: pd.DataFrame,
        users: np.ndarray,
        at: pd.Timestamp,
        context: pd.DataFrame | None,
    ) -> pd.DataFrame:
        return self._score_top(history, users, at, context, None, None)

    def _score_top(
        self,
        history: pd.DataFrame,
        users: np.ndarray,
        at: pd.Timestamp,
        context: pd.DataFrame | None,
        n: int | None,
        seen: pd.DataFrame | None,
    ) -> pd.DataFrame:
        """score(user, j) of the module docstring for every item of the user's kept groups,
        BLOCK_CELLS (user, item) pairs at a time. With `n`, only the rows at or above each
        user's n-th best score among the items not in `seen` are returned: every row of
        the user's top n (ties included) once `seen` is left out, and no other."""
        groups = _Groups(self)
        user_index = pd.Index(users)
        at_item = groups.item_index.get_indexer(history["item_id"].astype(str))
        event_user = user_index.get_indexer(history["user_id"].astype(str))
        mine = (at_item >= 0) & (event_user >= 0)
        event_user, event_group = event_user[mine], groups.item_group[at_item[mine]]
        weight = history["weight"].to_numpy(np.float64)[mine]
        taste = weight * decay(age_days(history["timestamp"][mine], at), self.half_life_days)
        order = np.argsort(event_user, kind="stable")  # each user's events in their order
        event_user, event_group, taste = event_user[order], event_group[order], taste[order]
        seen_user, seen_row = groups.seen(seen, user_index)
        size = max(1, BLOCK_CELLS // max(len(groups.table_item), len(groups.names), 1))
        parts = [(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))]
        for first in range(0, len(users), size):
            last = min(first + size, len(users))
            lo, hi = np.searchsorted(event_user, [first, last])
            values = groups.taste(
                event_user[lo:hi] - first,
                event_group[lo:hi],
                taste[lo:hi],
                last - first,
                self.prior,
            )
            held = (seen_user >= first) & (seen_user < last)
            rows, columns, scores = groups.scores(
                values, self.max_groups, n, (seen_user[held] - first, seen_row[held])
            )
            parts.append((rows + first, columns, scores))
        user_codes, item_rows, scores = (np.concatenate([p[k] for p in parts]) for k in range(3))
        return pd.DataFrame(
            {
                "user_id": np.asarray(users, dtype=object)[user_codes],
                "item_id": groups.table_item[item_rows],
                "score": scores,
            }
        )


BLOCK_CELLS = 4_000_000  # (user, table item) scores held at once


class _Groups:
    """A fitted AttributePopularity's tables as arrays over its groups in text order."""

    def __init__(self, source: AttributePopularity) -> None:
        shares, item_group, table = source.group_share, source.item_group, source.table
        named = set(shares["group"].astype(str)) | set(item_group["group"].astype(str))
        self.names = pd.Index(sorted(named), dtype=object)
        self.shares = np.zeros(len(self.names))
        self.shares[self.names.get_indexer(shares["group"].astype(str))] = shares["share"]
        self.item_index = pd.Index(item_group["item_id"].astype(str))
        self.item_group = self.names.get_indexer(item_group["group"].astype(str))
        self.table_group = self.names.get_indexer(table["group"].astype(str))
        self.table_item = table["item_id"].astype(str).to_numpy(object)
        self.table_score = table["score"].to_numpy(np.float64)

    def taste(
        self,
        users: np.ndarray,
        groups: np.ndarray,
        taste: np.ndarray,
        size: int,
        prior: float,
    ) -> np.ndarray:
        """taste(user, g) for `size` users from their events' (user, group, taste)."""
        width = len(self.names)
        own = np.bincount(users * width + groups, weights=taste, minlength=size * width)
        total = np.bincount(users, weights=taste, minlength=size)
        shrunk = own.reshape(size, width) + prior * self.shares
        return np.asarray(shrunk / (total[:, None] + prior), dtype=np.float64)

    def scores(
        self,
        values: np.ndarray,
        max_groups: int,
        n: int | None,
        seen: tuple[np.ndarray, np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user row, table row, score) of the items of each user's kept groups, given
        their taste `values`; with `n`, those at or above the user's n-th best score among
        the items not `seen` ((user row, table row) pairs)."""
        score = values[:, self.table_group] * self.table_score
        valid = self.kept(values, max_groups)[:, self.table_group]
        if n is not None:
            usable = valid.copy()
            usable[seen] = False
            valid &= score >= _nth_best(np.where(usable, score, -np.inf), n)[:, None]
        rows, columns = np.nonzero(valid)
        return rows, columns, score[rows, columns]

    @staticmethod
    def kept(values: np.ndarray, max_groups: int) -> np.ndarray:
        """Each row's `max_groups` highest values (ties: the group first in text order)."""
        if values.shape[1] <= max_groups:
            return np.ones(values.shape, dtype=bool)
        best = np.argsort(-values, axis=1, kind="stable")[:, :max_groups]
        kept = np.zeros(values.shape, dtype=bool)
        np.put_along_axis(kept, best, True, axis=1)
        return kept

    def seen(self, seen: pd.DataFrame | None, users: pd.Index) -> tuple[np.ndarray, np.ndarray]:
        """(user code, table row) of the pairs of `seen` that the table holds."""
        if seen is None or seen.empty:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        rows = pd.Index(self.table_item).get_indexer(seen["item_id"].astype(str))
        codes = users.get_indexer(seen["user_id"].astype(str))
        held = (rows >= 0) & (codes >= 0)
        return codes[held], rows[held]


def _nth_best(scores: np.ndarray, n: int) -> np.ndarray:
    """Each row's n-th highest value (-inf for a row with fewer than n finite values)."""
    if scores.shape[1] <= n:
        return np.full(len(scores), -np.inf)
    return -np.partition(-scores, n - 1, axis=1)[:, n - 1]
