"""Features that carry no information are left out (and recorded); a ranker that cannot
beat its candidates' order keeps that order; short lists are padded from popularity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tests.training.conftest import events
from training.ranker import (
    Examples,
    RankerConfig,
    candidate_order,
    load,
    ndcg_at,
    save,
    train_ranker,
    uninformative,
)
from training.reranker import Reranker

CFG = RankerConfig(n_estimators=5, max_depth=2, min_child_weight=0, n_candidates=4)


def examples(lists: int = 6, size: int = 4) -> Examples:
    rng = np.random.default_rng(0)
    n = lists * size
    X = pd.DataFrame(
        {
            "retrieval_score": rng.random(n),
            "retrieval_rank": np.tile(np.arange(1, size + 1), lists).astype(float),
            "income_band": pd.Series([None] * n, dtype=object),  # a band the data lacks
            "region": ["north"] * n,  # one value everywhere
            "spend": [np.nan] * n,
            "device": rng.choice(["mobile", "desktop"], n),
        }
    )
    y = np.tile([1.0, 0.0, 0.0, 0.0], lists)
    keys = pd.DataFrame(
        {
            "query": np.repeat([f"q{i}" for i in range(lists)], size),
            "user_id": np.repeat([f"u{i}" for i in range(lists)], size),
            "item_id": [f"i{j}" for j in range(n)],
            "retrieval_rank": X["retrieval_rank"],
        }
    )
    return Examples(X, y, np.full(lists, size), keys, ["income_band", "region", "device"])


def test_constant_and_empty_features_are_dropped_and_saved(tmp_path: Path) -> None:
    data = examples()
    assert uninformative(data.X) == ["income_band", "region", "spend"]
    result = train_ranker(CFG, data)  # an empty categorical no longer reaches XGBoost
    assert result.dropped == ["income_band", "region", "spend"]
    assert result.feature_names == ["retrieval_score", "retrieval_rank", "device"]
    assert list(result.categories) == ["device"]
    loaded = load(save(result, tmp_path / "ranker"))
    assert loaded.dropped == result.dropped
    # Serving's input needs only the kept features.
    kept = data.X[result.feature_names]
    np.testing.assert_allclose(loaded.predict(kept), result.predict(data.X))


def test_candidate_order_keeps_the_order_and_reloads(tmp_path: Path) -> None:
    data = examples()
    kept = candidate_order(CFG, "too few lists", ["region"])
    scores = kept.predict(data.X)
    assert ndcg_at(data, scores) == ndcg_at(data, -data.X["retrieval_rank"].to_numpy())
    assert ndcg_at(data, scores) == 1.0  # the relevant row is first in every list
    for _, part in pd.DataFrame({"q": data.keys["query"], "s": scores}).groupby("q"):
        assert part["s"].is_monotonic_decreasing and part["s"].is_unique
    loaded = load(save(kept, tmp_path / "ranker"))
    assert loaded.metrics["scored_by"] == "candidate order"
    assert loaded.metrics["reason"] == "too few lists"
    np.testing.assert_allclose(loaded.predict(data.X), scores)


class FewCandidates:
    """A candidate model that finds nothing for anyone."""

    def recommend(self, users, k, exclude_seen=True):  # type: ignore[no-untyped-def]
        return pd.DataFrame({"user_id": [], "item_id": [], "rank": [], "score": []})


def test_known_users_get_full_lists_padded_from_popularity() -> None:
    history = events(
        ("u1", "a", "2026-10-01", "purchase"),
        ("u1", "b", "2026-10-02"),
        ("u2", "c", "2026-10-02", "purchase"),
        ("u3", "a", "2026-10-03", "add_to_cart"),
        ("u3", "d", "2026-10-03"),
    )
    ranker = candidate_order(CFG, "test")
    reranker = Reranker(None, store=None, cfg=CFG).attach(ranker, FewCandidates(), history)
    recs = reranker.recommend(["u1", "u2"], k=2)
    got = recs.groupby("user_id")["item_id"].apply(list).to_dict()
    assert got == {"u1": ["c", "d"], "u2": ["a", "b"]}  # popular, never seen
    assert recs["rank"].tolist() == [1, 2, 1, 2]
    with_seen = reranker.recommend(["u1"], k=2, exclude_seen=False)
    assert with_seen["item_id"].tolist() == ["a", "c"]
