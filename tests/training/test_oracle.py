"""Oracle: ranks by the generator's true utility, excludes seen items, maps merged ids."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from tailwise.synthetic.utility import load_ground_truth, true_utility
from training.config import SplitParams
from training.oracle import Oracle, _truth_ids
from training.split import read_events, read_items, temporal_split


@pytest.fixture(scope="module")
def fitted(generated):
    raw, clean = generated
    split = temporal_split(read_events(clean), SplitParams(), read_items(clean))
    oracle = Oracle(raw / "ground_truth", at=split.test_start)
    oracle.fit(split.history("test"), split.candidate_items("test"))
    return raw, split, oracle


def test_ranks_by_true_utility_of_unseen_existing_items(fitted) -> None:
    raw, split, oracle = fitted
    user = split.truth("test").users["user_id"].iloc[0]
    recs = oracle.recommend([user, "not-a-user"], k=5)
    assert oracle.skipped_users == ["not-a-user"]
    assert set(recs["user_id"]) == {user}
    seen = set(split.history("test").query("user_id == @user")["item_id"])
    candidates = set(split.candidate_items("test")["item_id"]) - seen
    assert set(recs["item_id"]) <= candidates
    users, items, world = load_ground_truth(raw)
    ids = sorted(candidates)
    at = int(split.test_start.timestamp())
    utility = true_utility(users, items, world, [user] * len(ids), ids, at=at)
    best = [ids[i] for i in np.argsort(-utility, kind="stable")[:5]]
    assert recs["item_id"].tolist() == best
    np.testing.assert_allclose(recs["score"], np.sort(utility)[::-1][:5])


def test_duplicate_accounts_map_to_the_person() -> None:
    table = pa.table({"user_id": ["u1", "u2"], "duplicate_user_id": [None, "u9"]})
    assert _truth_ids(table) == {"u1": "u1", "u2": "u2", "u9": "u2"}


def test_missing_ground_truth_is_an_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"world\.json"):
        Oracle(tmp_path).fit(None, None)
