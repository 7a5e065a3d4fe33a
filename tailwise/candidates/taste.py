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
        events = history.merge(self.item_group, on="item_id")
        events = events.assign(
            taste=events["weight"] * decay(age_days(events["timestamp"], at), self.half_life_days)
        )
        own = events.groupby(["user_id", "group"], sort=False)["taste"].sum().reset_index()
        total = own.groupby("user_id")["taste"].sum().reindex(users, fill_value=0.0)
        shares = self.group_share.set_index("group")["share"]
        prior = pd.DataFrame(
            {
                "user_id": np.repeat(users, len(shares)),
                "group": np.tile(shares.index.to_numpy(), len(users)),
                "taste": np.tile(self.prior * shares.to_numpy(), len(users)),
            }
        )
        taste = pd.concat([own, prior]).groupby(["user_id", "group"], sort=False)["taste"].sum()
        taste = taste.reset_index()
        taste["taste"] /= taste["user_id"].map(total + self.prior).to_numpy()
        taste = taste.sort_values(["user_id", "taste", "group"], ascending=[True, False, True])
        taste = taste.groupby("user_id", sort=False).head(self.max_groups)
        scored = taste.merge(self.table, on="group")
        scored["score"] = scored["taste"] * scored["score"]
        return scored[["user_id", "item_id", "score"]]
