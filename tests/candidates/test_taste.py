"""Popularity within the item groups a user favours: taste shares, the prior, errors."""

from __future__ import annotations

import pandas as pd
import pytest

from tailwise.candidates import AttributePopularity, default_sources
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
