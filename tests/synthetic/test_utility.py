"""true_utility reproduces the simulation's deterministic part."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailwise.synthetic import load_ground_truth, true_utility
from tailwise.synthetic.utility import category_logits, item_affinity
from tests.synthetic.conftest import Generated


def test_true_utility_matches_its_components(generated: Generated) -> None:
    users, items, world = load_ground_truth(generated.out)
    u, i = "u0000003", "i000010"
    score = true_utility(users, items, world, [u], [i], device="desktop", weekend=True)
    gu, gi = generated.truth_users.set_index("user_id"), generated.truth_items.set_index("item_id")
    leaf = world["taxonomy"]["leaves"].index(gi.loc[i, "category"])
    cat = category_logits(
        np.asarray([gu.loc[u, "taste"]]),
        np.asarray(world["taxonomy"]["leaf_top"]),
        np.array([1]),
        np.array([True]),
    )[0, leaf]
    aff = item_affinity(
        gi.loc[i, "quality"],
        gi.loc[i, "brand"] in gu.loc[u, "favourite_brands"],
        gi.loc[i, "price"] / world["taxonomy"]["leaf_median_price"][leaf],
        gu.loc[u, "price_sensitivity"],
        None,
    )
    assert score[0] == pytest.approx(cat + gi.loc[i, "popularity_log_share"] + aff)


def test_unavailable_items_score_minus_inf(generated: Generated) -> None:
    users, items, world = load_ground_truth(generated.out)
    created = generated.truth_items["created_at"].iloc[0].timestamp()
    score = true_utility(users, items, world, ["u0000001"], ["i000000"], at=int(created) - 10)
    assert np.isneginf(score[0])


def test_viewed_items_score_higher_than_random(
    generated: Generated, clean_events: pd.DataFrame
) -> None:
    users, items, world = load_ground_truth(generated.out)
    views = clean_events[
        (clean_events["event_type"] == "product_view")
        & clean_events["item_id"].isin(generated.truth_items["item_id"])
    ]
    views = views.sample(min(2000, len(views)), random_state=0)
    seen = true_utility(users, items, world, views["person"], views["item_id"])
    rng = np.random.default_rng(0)
    other = rng.choice(generated.truth_items["item_id"].to_numpy(), len(views))
    unseen = true_utility(users, items, world, views["person"], other)
    assert seen.mean() > unseen.mean() + 1.0


def test_ratings_follow_true_utility(generated: Generated, clean_events: pd.DataFrame) -> None:
    users, items, world = load_ground_truth(generated.out)
    ratings = clean_events[
        (clean_events["event_type"] == "rating")
        & clean_events["item_id"].isin(generated.truth_items["item_id"])
    ]
    score = true_utility(users, items, world, ratings["person"], ratings["item_id"])
    assert np.corrcoef(score, ratings["value"])[0, 1] > 0.3


def test_unknown_id_is_named(generated: Generated) -> None:
    users, items, world = load_ground_truth(generated.out)
    with pytest.raises(KeyError, match="u9999999"):
        true_utility(users, items, world, ["u9999999"], ["i000000"])
