"""Features that carry no information are left out (and recorded); a ranker that cannot
beat its candidates' order keeps that order; short lists are padded from popularity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

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
from training.reranker import Reranker, _holdout, fit_examples

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


def lists_with_signal(users: int, signal: dict[str, float]) -> Examples:
    """One list of 4 per user; the relevant row is the candidates' first in 60% of lists,
    else one of the others, and feature `hint` marks it with probability signal[user]
    (else it marks one of the other rows)."""
    rng = np.random.default_rng(1)
    names = [f"u{i:03d}" for i in range(users)]
    rows = []
    for user in names:
        relevant = 1 if rng.random() < 0.6 else int(rng.integers(2, 5))
        others = [r for r in (1, 2, 3, 4) if r != relevant]
        marked = relevant if rng.random() < signal.get(user, 1.0) else int(rng.choice(others))
        for rank in (1, 2, 3, 4):
            rows.append((user, rank, float(rank == relevant), float(rank == marked), rng.random()))
    frame = pd.DataFrame(rows, columns=["user_id", "rank", "y", "hint", "noise"])
    X = frame.assign(retrieval_rank=frame["rank"].astype(float))[
        ["retrieval_rank", "hint", "noise"]
    ]
    keys = pd.DataFrame(
        {
            "query": "0|" + frame["user_id"],
            "user_id": frame["user_id"],
            "item_id": [f"i{j}" for j in range(len(frame))],
            "retrieval_rank": frame["rank"],
        }
    )
    return Examples(X, frame["y"].to_numpy(), np.full(users, 4), keys, [])


CROSS_FITTED = RankerConfig(
    n_estimators=30, max_depth=2, min_child_weight=0, n_candidates=4, validation_share=0.2
)
GUARDED = CROSS_FITTED.model_copy(update={"cross_fit_below": 0})  # two held-out shares


def test_held_out_users_split_three_ways_disjoint_and_complete() -> None:
    data = lists_with_signal(100, {})
    train, stop, guard = _holdout(data, GUARDED)
    assert stop is not None and guard is not None
    sets = [set(part.keys["user_id"]) for part in (train, stop, guard)]
    assert [len(s) for s in sets] == [60, 20, 20]
    assert set.union(*sets) == set(data.keys["user_id"])
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    again = _holdout(data, GUARDED)  # seeded
    assert set(again[2].keys["user_id"]) == sets[2]  # type: ignore[union-attr]


def test_guard_users_take_no_part_in_early_stopping_then_join_the_refit(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import training.reranker as reranker

    calls: list[tuple[set[str], set[str]]] = []
    real = reranker.train_ranker

    def spy(cfg, train, validation=None):  # type: ignore[no-untyped-def]
        calls.append((set(train.keys["user_id"]), set(validation.keys["user_id"])))
        return real(cfg, train, validation)

    monkeypatch.setattr(reranker, "train_ranker", spy)
    data = lists_with_signal(100, {})  # hint marks the relevant row for everyone
    _, stop, guard = _holdout(data, GUARDED)
    result = fit_examples(data, GUARDED)
    assert result.metrics["scored_by"] == "ranker"
    assert result.metrics["guard_users"] == 20 and result.metrics["guard_lists"] == 20
    assert result.metrics["guard_ndcg@10"] > result.metrics["candidate_order_ndcg@10"]
    guard_users = set(guard.keys["user_id"])  # type: ignore[union-attr]
    stop_users = set(stop.keys["user_id"])  # type: ignore[union-attr]
    (first_train, first_stop), (final_train, final_stop) = calls
    assert first_stop == final_stop == stop_users
    assert not first_train & guard_users  # the guard's figure is not one it was fitted to
    assert final_train == first_train | guard_users
    assert result.metrics["train_groups"] == 80


def test_a_ranker_that_only_fits_the_users_it_saw_keeps_the_candidates_order() -> None:
    # The hint marks the relevant row for the users the ranker trains and stops on, and the
    # candidates' first row for the guard's: early stopping cannot see the difference.
    _, _, guard = _holdout(lists_with_signal(100, {}), GUARDED)
    misleading = {user: 0.0 for user in guard.keys["user_id"]}  # type: ignore[union-attr]
    result = fit_examples(lists_with_signal(100, misleading), GUARDED)
    assert result.metrics["scored_by"] == "candidate order"
    assert result.metrics["validation_ndcg@10"] == 1.0  # early stopping's users: perfect
    assert result.metrics["guard_ndcg@10"] < result.metrics["candidate_order_ndcg@10"]
    assert "20 held-out lists" in result.metrics["reason"]
    assert result.feature_names == ["retrieval_rank"]


def test_too_few_users_to_hold_out_keep_the_candidates_order_and_name_the_setting() -> None:
    for cfg, users in ((GUARDED, 12), (CROSS_FITTED, 24)):
        result = fit_examples(lists_with_signal(users, {}), cfg)
        assert result.metrics["scored_by"] == "candidate order"
        assert f"only {users} users" in result.metrics["reason"]
        assert "training.ranker.validation_share" in result.metrics["reason"]
    unchecked = fit_examples(
        lists_with_signal(12, {}), GUARDED.model_copy(update={"validation_share": 0.0})
    )
    assert "scored_by" not in unchecked.metrics and unchecked.feature_names


def test_cross_fitting_picks_the_rounds_out_of_fold_and_fits_everyone(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import training.reranker as reranker

    calls: list[tuple[set[str], set[str] | None, bool]] = []
    real = reranker.train_ranker

    def spy(cfg, train, validation=None, curve=False):  # type: ignore[no-untyped-def]
        held = None if validation is None else set(validation.keys["user_id"])
        calls.append((set(train.keys["user_id"]), held, curve))
        return real(cfg, train, validation, curve)

    monkeypatch.setattr(reranker, "train_ranker", spy)
    data = lists_with_signal(100, {})
    result = fit_examples(data, CROSS_FITTED)
    assert result.metrics["scored_by"] == "ranker" and result.metrics["cross_fit_folds"] == 5
    folds, (everyone, final_held, _) = calls[:5], calls[5]
    assert len(calls) == 6 and final_held is None and len(everyone) == 100
    for train, held, curve in folds:  # each fold scored by a ranker that never saw it
        assert held is not None and not train & held and len(held) == 20 and curve
    assert set.union(*(held for _, held, _ in folds if held)) == everyone
    assert 1 <= result.metrics["rounds"] <= 30
    assert result.model.n_estimators == result.metrics["rounds"]
    assert result.metrics["guard_lists"] == 100  # every user checked out of fold
    assert result.metrics["guard_ndcg@10"] > result.metrics["candidate_order_ndcg@10"]


def test_cross_fitting_keeps_the_candidates_order_when_the_features_are_noise() -> None:
    data = lists_with_signal(100, {})
    noise = Examples(data.X.drop(columns="hint"), data.y, data.groups, data.keys, data.categorical)
    overfits = CROSS_FITTED.model_copy(
        update={"max_depth": 6, "learning_rate": 1.0, "subsample": 1.0, "colsample_bytree": 1.0}
    )
    result = fit_examples(noise, overfits)  # every round fits the noise of its folds
    assert result.metrics["scored_by"] == "candidate order"
    assert result.metrics["guard_ndcg@10"] < result.metrics["candidate_order_ndcg@10"]
    assert "100 held-out lists" in result.metrics["reason"]


def test_a_source_order_that_beats_the_ranker_on_the_guard_is_kept() -> None:
    # The hint fits the users the ranker trains and stops on, and misleads on the guard's
    # (as above); a union source ("ease") ranks the relevant row first in 80% of every
    # user's lists, which the fused order does not know.
    _, _, guard = _holdout(lists_with_signal(100, {}), GUARDED)
    misleading = {user: 0.0 for user in guard.keys["user_id"]}  # type: ignore[union-attr]
    base = lists_with_signal(100, misleading)
    rng = np.random.default_rng(5)
    ease_rank = np.where(base.y > 0, 1.0, 2.0 + np.tile([0.0, 1.0, 2.0, 2.0], 100))
    for list_no in np.flatnonzero(rng.random(100) < 0.2):  # ease puts a wrong row first
        rows = slice(4 * list_no, 4 * list_no + 4)
        ease_rank[rows] = ease_rank[rows][::-1]
    X = base.X.assign(
        ease_rank=ease_rank,
        ease_norm=1.0 / ease_rank,
        x_cat_rank=rng.integers(1, 5, len(ease_rank)).astype(float),  # a rank, no source
    )
    data = Examples(X, base.y, base.groups, base.keys, [])
    result = fit_examples(data, GUARDED)
    assert result.metrics["best_order"] == "ease_rank"
    assert result.metrics["best_order_ndcg@10"] > result.metrics["candidate_order_ndcg@10"]
    assert result.metrics["guard_ndcg@10"] < result.metrics["best_order_ndcg@10"]
    assert result.metrics["scored_by"] == "candidate order"
    assert result.feature_names == ["ease_rank"] and result.metrics["order"] == "ease_rank"
    assert "below the order of the candidate source ease" in result.metrics["reason"]
    assert ndcg_at(data, result.predict(X)) == ndcg_at(data, -ease_rank)


def test_a_source_order_must_win_by_more_than_one_standard_error() -> None:
    from training.reranker import _checked

    users = 60
    y = np.tile([1.0, 0.0, 0.0, 0.0], users)  # the relevant row is each list's first
    keys = pd.DataFrame(
        {
            "query": np.repeat([f"0|u{i:02d}" for i in range(users)], 4),
            "user_id": np.repeat([f"u{i:02d}" for i in range(users)], 4),
            "item_id": [f"i{j}" for j in range(4 * users)],
            "retrieval_rank": np.tile([4.0, 3.0, 2.0, 1.0], users),  # fused: worst first
        }
    )

    def ranks_right(right: np.ndarray) -> np.ndarray:
        """Rank 1 on the relevant row in the lists where `right`, else last."""
        return np.concatenate([[1.0, 2, 3, 4] if r else [4.0, 2, 3, 1] for r in right])

    ranker = -ranks_right(np.arange(users) % 2 == 0)  # right for every other user
    for share, kept in ((0.55, None), (0.95, "ease_rank")):
        ease = ranks_right(np.arange(users) < share * users)  # right for the first share
        X = pd.DataFrame({"retrieval_rank": keys["retrieval_rank"], "ease_rank": ease})
        X["ease_norm"] = 1.0 / ease
        checked = _checked(Examples(X, y, np.full(users, 4), keys, []), ranker)
        assert checked["best_source_order"] == "ease_rank"
        assert checked["best_source_ndcg@10"] > checked["guard_ndcg@10"]
        assert checked["best_order"] == kept, (share, checked)


def new_user_lists(users: int, new: int, profile_right: float) -> tuple[Examples, np.ndarray]:
    """Lists of `users` people, the first `new` with no event before the cut; the
    relevant row is each list's first. The ranker is right for every returning person
    and every other new one; the profile source for the first `profile_right` share of
    the new ones and never for the others."""
    y = np.tile([1.0, 0.0, 0.0, 0.0], users)
    ids = [f"u{i:03d}" for i in range(users)]
    keys = pd.DataFrame(
        {
            "query": np.repeat([f"0|{u}" for u in ids], 4),
            "user_id": np.repeat(ids, 4),
            "item_id": [f"i{j}" for j in range(4 * users)],
            "retrieval_rank": np.tile([4.0, 3.0, 2.0, 1.0], users),
        }
    )

    def ranks_right(right: np.ndarray) -> np.ndarray:
        return np.concatenate([[1.0, 2, 3, 4] if r else [4.0, 2, 3, 1] for r in right])

    index = np.arange(users)
    is_new = index < new
    ranker = -ranks_right(~is_new | (index % 2 == 0))
    profile = ranks_right(is_new & (index < profile_right * new))
    X = pd.DataFrame(
        {
            "retrieval_rank": keys["retrieval_rank"],
            "popular_for_profile_rank": profile,
            "popular_for_profile_norm": 1.0 / profile,
            "user_events": np.repeat(np.where(is_new, 0.0, 5.0), 4),
        }
    )
    return Examples(X, y, np.full(users, 4), keys, []), ranker


def test_people_without_history_get_a_source_order_that_beats_the_ranker_on_them() -> None:
    from training.reranker import _checked

    lists, ranker = new_user_lists(200, 60, profile_right=1.0)
    checked = _checked(lists, ranker)
    assert checked["best_order"] is None  # the ranker wins overall
    assert checked["new_user_lists"] == 60
    assert checked["new_user_order"] == "popular_for_profile_rank"
    assert checked["new_user_best_ndcg@10"] == pytest.approx(1.0)
    assert checked["new_user_ndcg@10"] < checked["new_user_best_ndcg@10"]


@pytest.mark.parametrize(("users", "new", "right"), [(200, 60, 0.55), (200, 20, 1.0)])
def test_no_new_user_order_without_a_clear_win_or_enough_lists(users, new, right) -> None:  # type: ignore[no-untyped-def]
    from training.reranker import _checked

    lists, ranker = new_user_lists(users, new, profile_right=right)
    checked = _checked(lists, ranker)
    assert checked["new_user_order"] is None
    assert checked["new_user_lists"] == new


def test_new_user_scores_replace_only_the_lists_of_people_without_history() -> None:
    from tailwise.candidates.features import new_user_scores

    scores = np.array([0.3, 0.1, 0.9, 0.2])
    events = np.array([0.0, 0.0, 4.0, np.nan])  # NaN: no history features at all
    ranks = np.array([2.0, 1.0, 1.0, 3.0])
    got = new_user_scores(scores, events, ranks)
    np.testing.assert_array_equal(got, [-2.0, -1.0, 0.9, -3.0])
    np.testing.assert_array_equal(new_user_scores(scores, events, None), scores)


def test_the_new_user_check_reads_both_held_out_shares() -> None:
    lists, _ = new_user_lists(200, 100, profile_right=1.0)
    _, stop, guard = _holdout(lists, GUARDED)
    held = set(stop.keys["user_id"]) | set(guard.keys["user_id"])  # type: ignore[union-attr]
    new = {f"u{i:03d}" for i in range(100)}
    result = fit_examples(lists, GUARDED)
    assert result.metrics["guard_users"] == len(set(guard.keys["user_id"]))  # type: ignore[union-attr]
    assert result.metrics["new_user_lists"] == len(held & new)
    assert result.metrics["new_user_lists"] > len(set(guard.keys["user_id"]) & new)  # type: ignore[union-attr]
