"""Popularity within the item groups a user favours: taste shares, the prior, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailwise.candidates import AttributePopularity, default_sources, taste
from tailwise.candidates.base import age_days, decay, top_n
from tests.candidates.conftest import CUT, events, items_of

ITEMS = pd.DataFrame(
    {
        "item_id": ["s1", "s2", "s3", "t1", "t2", "x"],
        "category": ["shoes", "shoes", "shoes", "toys", "toys", None],
    }
)
LOG = events(
    ("a", "s1", 19, 3.0), ("b", "s2", 19, 1.0), ("c", "t1", 19, 4.0), ("d", "t2", 19, 4.0),
    ("e", "x", 19, 9.0), ("me", "s3", 19, 1.0),
)  # fmt: skip


def test_scores_are_taste_times_share_in_group() -> None:
    source = AttributePopularity(ITEMS, half_life_days=1e9, prior=1.0).fit(LOG, CUT)
    share = source.group_share.set_index("group")["share"]
    assert share.to_dict() == pytest.approx({"shoes": 5 / 13, "toys": 8 / 13})
    found = source.candidates(LOG, 5, users=["me"])
    taste_shoes = (1.0 + share["shoes"]) / 2.0  # one unit of own weight + prior 1
    taste_toys = share["toys"] / 2.0
    expected = {"s1": taste_shoes * 3 / 5, "s2": taste_shoes * 1 / 5,
                "t1": taste_toys / 2, "t2": taste_toys / 2}  # fmt: skip
    got = dict(zip(found["item_id"], found["score"], strict=True))
    assert got == pytest.approx(expected)
    assert items_of(found, "me") == ["s1", "t1", "t2", "s2"]
    assert "x" not in set(found["item_id"])  # no category: never a candidate


def test_a_user_without_history_gets_popularity_by_group() -> None:
    source = AttributePopularity(ITEMS, prior=1.0).fit(LOG, CUT)
    found = source.candidates(LOG, 5, users=["nobody"])
    assert items_of(found, "nobody") == ["t1", "t2", "s1", "s2", "s3"]  # s2, s3 tie: by id


def test_catalogue_without_the_column_gives_nothing() -> None:
    source = AttributePopularity(ITEMS[["item_id"]], column="brand").fit(LOG, CUT)
    assert source.candidates(LOG, 5, users=["me"]).empty
    names = [s.name for s in default_sources(False, items=ITEMS)]
    assert "popular_in_category" in names and "popular_in_brand" not in names


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"prior": 0}, "prior"), ({"keep": 0}, "keep"), ({"max_groups": -1}, "max_groups"),
     ({"half_life_days": 0}, "half_life_days"), ({"column": "item_id"}, "column")],
)  # fmt: skip
def test_bad_parameters_are_named(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        AttributePopularity(ITEMS, **kwargs)


def _by_merges(
    source: AttributePopularity, history: pd.DataFrame, users: list[str]
) -> pd.DataFrame:
    """score(user, j) of the module docstring by joins of the fitted tables, row by row."""
    at = source.cut
    history = history[history["timestamp"] < at]
    events = history.merge(source.item_group, on="item_id")
    age = age_days(events["timestamp"], at)
    events = events.assign(taste=events["weight"] * decay(age, source.half_life_days))
    own = events.groupby(["user_id", "group"])["taste"].sum().reset_index()
    total = own.groupby("user_id")["taste"].sum().reindex(users, fill_value=0.0)
    share = source.group_share
    prior = pd.DataFrame(
        {
            "user_id": np.repeat(users, len(share)),
            "group": np.tile(share["group"].to_numpy(), len(users)),
            "taste": np.tile(source.prior * share["share"].to_numpy(), len(users)),
        }
    )
    taste = pd.concat([own, prior]).groupby(["user_id", "group"])["taste"].sum().reset_index()
    taste["taste"] /= taste["user_id"].map(total + source.prior).to_numpy()
    taste = taste.sort_values(["user_id", "taste", "group"], ascending=[True, False, True])
    taste = taste.groupby("user_id", sort=False).head(source.max_groups)
    scored = taste.merge(source.table, on="group")
    return scored.assign(score=scored["taste"] * scored["score"])[["user_id", "item_id", "score"]]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("exclude_seen", [True, False])
def test_top_n_is_that_of_every_score_ties_and_seen_items_included(
    seed: int, exclude_seen: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scores are made a block of users at a time and only the rows that can be in a
    user's top n reach the ranking: the lists equal those of every row's score."""
    monkeypatch.setattr(taste, "BLOCK_CELLS", 400 * seed + 1)  # one user a block, then a few
    rng = np.random.default_rng(seed)
    items = pd.DataFrame(
        {
            "item_id": [f"i{k:03d}" for k in range(120)],
            "category": rng.choice(["a", "b", "c", "d", "e", "f", "g", None], 120),
        }
    )
    log = pd.DataFrame(
        {
            "user_id": rng.choice([f"u{k}" for k in range(40)], 900),
            "item_id": rng.choice(items["item_id"], 900),
            "timestamp": CUT - pd.to_timedelta(rng.integers(0, 40, 900), unit="D"),
            "weight": rng.choice([0.0, 1.0, 1.0, 3.0], 900),  # equal weights: ties
        }
    )
    users = [f"u{k}" for k in range(45)]  # five of them without history
    source = AttributePopularity(items, max_groups=3, keep=12, prior=2.0).fit(log, CUT)
    for n in (1, 5, 17, 60):
        got = source.candidates(log, n, users=users, exclude_seen=exclude_seen)
        seen = log[log["timestamp"] < CUT] if exclude_seen else None  # at the cut: unseen
        want = top_n(_by_merges(source, log, users), n, source.name, seen)
        pd.testing.assert_frame_equal(
            got.reset_index(drop=True), want.reset_index(drop=True), check_exact=False
        )


def test_no_users_no_rows() -> None:
    source = AttributePopularity(ITEMS, prior=1.0).fit(LOG, CUT)
    assert source.candidates(LOG, 5, users=[]).empty
    assert source.candidates(LOG.iloc[:0], 5).empty
