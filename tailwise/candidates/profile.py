"""Popular items among people like the user: popularity shaped by their profile.

    profiles (user_id + profile columns: age_band, gender, country, income_band, ...)
    + events before the cut --ProfilePopularity.fit-->
        base   (item_id, score): the `keep` items of most event weight, score = P(j), the
               item's share of all the weight
        lift   (column, value, item_id, lift): log(P(j | column = value) / P(j)) over those
               items, P(j | v) = (w(v, j) + m * P(j)) / (W(v) + m), where w(v, j) is the
               weight people holding v put on j, W(v) all their weight, and
               m = prior_users * the mean weight per user: a value held by few people
               stays close to everyone's popularity
    a user's profile values --> score(user, j) = P(j) * exp(sum over the columns of
        lift(column, the user's value, j))

Naive Bayes over the profile columns: a demographic prior that gives people without
history a list shaped by those like them, and the ranker a feature for everyone. A value
that is missing, or that nobody held before the cut, adds nothing; a column that holds
one value for everyone (ingest's "unknown" where a dataset has no such attribute) is
left out, as it would only repeat overall popularity. Columns nested in
another (region within country) count their shared part twice, so the default set leaves
region out.

The profile values come from the feature store's user profile (training.union reads its
offline source; serving the online row), passed to `candidates` in the context frame as
`profile_<column>`; a source fitted with `profiles` also reads them there when no context
carries them. The fitted tables hold items and groups only: no row per user is stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from tailwise.candidates.base import (
    CandidateSource,
    broadcast,
    positive_float,
    positive_int,
)

PREFIX = "profile_"
UNKNOWN = ""  # a missing value; profile_context never gives it to a group
DEFAULT_COLUMNS = ("age_band", "gender", "country", "income_band")


def profile_key(column: str) -> str:
    """The context key (frame column or request mapping key) of a profile column."""
    return f"{PREFIX}{column}"


def profile_context(profiles: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """user_id + `profile_<column>` of each of `columns` that `profiles` has (strings,
    None where unknown), one row per user (the last one given)."""
    if "user_id" not in profiles.columns:
        raise ValueError("profiles must have a user_id column")
    present = [c for c in columns if c in profiles.columns]
    frame = profiles[["user_id", *present]].drop_duplicates("user_id", keep="last")
    out = pd.DataFrame({"user_id": frame["user_id"].astype(str).to_numpy(object)})
    for column in present:
        values = frame[column].astype(object)
        out[profile_key(column)] = values.map(text).to_numpy(object)
    return out


class ProfilePopularity(CandidateSource):
    """Items popular among people who share the user's profile values (module docstring)."""

    name = "popular_for_profile"

    def __init__(
        self,
        profiles: pd.DataFrame | None = None,
        columns: Sequence[str] = DEFAULT_COLUMNS,
        prior_users: float = 100.0,
        keep: int = 500,
    ) -> None:
        if isinstance(columns, str):
            columns = [c for c in columns.split(",") if c]
        if not columns or not all(isinstance(c, str) and c for c in columns):
            raise ValueError(f"{self.name}: columns must be profile column names, got {columns!r}")
        if "user_id" in columns:
            raise ValueError(f"{self.name}: columns must not include user_id")
        self.prior_users = positive_float(prior_users, f"{self.name}: prior_users")
        self.keep = positive_int(keep, f"{self.name}: keep")
        self.profiles = None if profiles is None else profile_context(profiles, columns)
        if self.profiles is not None:  # columns the profile table lacks or holds one value of
            distinct = self.profiles.nunique(dropna=True)
            columns = [c for c in columns if int(distinct.get(profile_key(c), 0)) >= 2]
        self.columns = ",".join(columns)  # a scalar setting: write_sources stores it

    @property
    def column_list(self) -> list[str]:
        return [c for c in self.columns.split(",") if c]

    def _fit(self, events: pd.DataFrame) -> None:
        if self.profiles is None:
            raise ValueError(f"{self.name}: fit needs the user profiles (profiles=...)")
        weights = events.groupby("item_id", sort=True)["weight"].sum()
        weights = weights[weights > 0]
        total = float(weights.sum())
        base = weights.rename("score").rename_axis("item_id").reset_index()
        base = base.sort_values(["score", "item_id"], ascending=[False, True], kind="stable")
        base = base.head(self.keep).reset_index(drop=True)
        share = base["score"].to_numpy(np.float64) / total if total > 0 else base["score"] * 0
        self.base = base.assign(score=share)
        users = events["user_id"].nunique()
        m = self.prior_users * (total / users) if users else 1.0
        joined = events[["user_id", "item_id", "weight"]].merge(
            self.profiles, on="user_id", how="left"
        )
        kept = joined[joined["item_id"].isin(set(self.base["item_id"]))]
        p = pd.Series(share, index=self.base["item_id"].to_numpy())
        parts = []
        for column in self.column_list:
            key = profile_key(column)
            held = joined[joined[key].notna()]
            group_total = held.groupby(key, sort=True)["weight"].sum()
            group_total = group_total[group_total > 0]
            on_items = kept[kept[key].notna()].groupby([key, "item_id"], sort=True)["weight"].sum()
            for value, w_value in group_total.items():
                w = on_items.get(value, pd.Series(dtype=np.float64))
                w = w.reindex(p.index, fill_value=0.0).to_numpy(np.float64)
                conditional = (w + m * p.to_numpy()) / (w_value + m)
                parts.append(
                    pd.DataFrame(
                        {
                            "column": column,
                            "value": str(value),
                            "item_id": p.index.to_numpy(object),
                            "lift": np.log(conditional / p.to_numpy()),
                        }
                    )
                )
        empty = pd.DataFrame(
            {"column": [], "value": [], "item_id": [], "lift": pd.Series(dtype=np.float64)}
        )
        self.lift = pd.concat(parts, ignore_index=True) if parts else empty

    def artifact(self) -> dict[str, pd.DataFrame]:
        return {"base": self.base, "lift": self.lift}

    def _score(
        self,
        history: pd.DataFrame,
        users: np.ndarray,
        at: pd.Timestamp,
        context: pd.DataFrame | None,
    ) -> pd.DataFrame:
        values = self._values(users, context)
        items = self.base["item_id"].to_numpy(object)
        log_base = np.log(self.base["score"].to_numpy(np.float64))
        lifts = {
            (str(c), str(v)): part.set_index("item_id")["lift"].reindex(items).to_numpy()
            for (c, v), part in self.lift.groupby(["column", "value"], sort=False)
        }
        frames = []
        for combo, group in values.groupby(list(values.columns), dropna=False, sort=False):
            combo = combo if isinstance(combo, tuple) else (combo,)
            score = log_base.copy()
            for column, value in zip(values.columns, combo, strict=True):
                lift = lifts.get((column, str(value)))
                if lift is not None:
                    score = score + np.nan_to_num(lift)
            ranked = pd.DataFrame({"item_id": items, "score": np.exp(score)})
            frames.append(broadcast(group.index.to_numpy(object), ranked))
        return pd.concat(frames, ignore_index=True) if frames else broadcast(users, self.base)

    def _values(self, users: np.ndarray, context: pd.DataFrame | None) -> pd.DataFrame:
        """Each user's profile value per column (None where unknown), indexed by user."""
        columns = self.column_list
        given = None
        keys = [profile_key(c) for c in columns]
        if context is not None and any(k in context.columns for k in keys):
            given = context
        elif getattr(self, "profiles", None) is not None:  # a loaded source has none
            given = self.profiles
        out = pd.DataFrame(index=pd.Index(users, name="user_id"), columns=columns, dtype=object)
        if given is not None:
            frame = given.drop_duplicates("user_id", keep="last")
            frame = frame.set_index(frame["user_id"].astype(str).to_numpy(object))
            for column, key in zip(columns, keys, strict=True):
                if key in frame.columns:
                    out[column] = frame[key].reindex(out.index).to_numpy(object)
        return out.astype(object).where(out.notna(), UNKNOWN)


def request_profile(row: Mapping[str, object], columns: Iterable[str]) -> dict[str, object]:
    """The context entries of a request from a user's online feature row."""
    return {profile_key(c): text(row.get(c)) for c in columns}


def text(value: object) -> str | None:
    """A profile value as text; None for a missing or empty one."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    text = str(value)
    return text or None
