"""Repeat consumption in training: the buy-again baseline, evaluation that lets seen items
count when repeats are allowed (and not otherwise), and the ranker's buy-again candidates
with their history features."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tailwise.repeats import HISTORY_FEATURES, RecommendParams
from tests.training.conftest import events, items
from training.baselines import BuyAgain, MostPopular
from training.config import EvaluationParams, SplitParams
from training.evaluate import best_baseline, evaluate_baselines
from training.reranker import buy_again_candidates, candidates_at

TRAIN = events(
    ("u1", "milk", "2026-10-01", "purchase"),
    ("u1", "milk", "2026-10-03", "purchase"),
    ("u1", "eggs", "2026-10-04", "purchase"),
    ("u2", "tea", "2026-10-02", "purchase"),
    ("u2", "bread", "2026-10-05", "purchase"),
    ("u3", "bread", "2026-10-05", "purchase"),
)
CATALOGUE = items("milk", "eggs", "tea", "bread", "jam")


def top(recs: pd.DataFrame, user: str) -> list[str]:
    return recs[recs.user_id == user].sort_values("rank")["item_id"].tolist()


def test_buy_again_lists_frequent_then_recent_past_items_then_popular() -> None:
    model = BuyAgain().fit(TRAIN, CATALOGUE)
    recs = model.recommend(["u1", "u2", "nobody"], k=4, exclude_seen=False)
    assert top(recs, "u1")[:2] == ["milk", "eggs"]  # twice, then once
    assert top(recs, "u2")[:2] == ["bread", "tea"]  # both once: the latest first
    assert top(recs, "u1")[2] == "bread"  # then the most popular other item
    assert top(recs, "nobody") == top(MostPopular().fit(TRAIN, CATALOGUE).recommend(["x"], 4), "x")
    unseen = model.recommend(["u1"], k=3, exclude_seen=True)
    assert not set(unseen["item_id"]) & {"milk", "eggs"}


def write_clean(folder: Path, log: pd.DataFrame, catalogue: pd.DataFrame) -> Path:
    (folder / "events").mkdir(parents=True)
    log.to_parquet(folder / "events" / "part-0.parquet", index=False)
    catalogue.to_parquet(folder / "items.parquet", index=False)
    return folder


def rebuy_log(users: int = 12, weeks: int = 8) -> pd.DataFrame:
    """Every user buys the same two staples every week, one other item early and one of
    three new items in the last week."""
    rows = []
    for u in range(users):
        for w in range(weeks):
            day = pd.Timestamp("2026-09-01") + pd.Timedelta(days=7 * w + u % 3)
            for staple in (f"s{u % 4}", f"s{(u + 1) % 4}"):
                rows.append((f"u{u}", staple, str(day.date()), "purchase"))
        rows.append((f"u{u}", f"x{u}", "2026-09-02", "purchase"))
        rows.append((f"u{u}", f"n{u % 3}", "2026-10-24", "purchase"))
    return events(*rows)


def test_repeats_allowed_buy_again_is_a_baseline_and_seen_items_count(tmp_path: Path) -> None:
    log = rebuy_log()
    catalogue = items(*sorted(set(log["item_id"])))
    clean = write_clean(tmp_path / "clean", log, catalogue)
    params = EvaluationParams(split=SplitParams(min_window_users=5))
    allowed = evaluate_baselines(clean, params, recommend=RecommendParams(allow_repeats="auto"))
    assert "buy_again" in set(allowed.table["model"])
    assert any("repeats allowed" in note for note in allowed.notes)
    # Relevant items are the staples the users bought before: buy-again finds them.
    assert allowed.value("buy_again", "ndcg", 10) > 0.7
    assert allowed.value("buy_again", "ndcg", 10) > allowed.value("most_popular", "ndcg", 10)
    best = best_baseline(allowed)
    assert best is not None and best[1] == allowed.value("buy_again", "ndcg", 10)


def test_repeats_not_allowed_keeps_seen_items_out(tmp_path: Path) -> None:
    log = rebuy_log()
    catalogue = items(*sorted(set(log["item_id"])))
    clean = write_clean(tmp_path / "clean", log, catalogue)
    params = EvaluationParams(split=SplitParams(min_window_users=1))
    result = evaluate_baselines(clean, params, recommend=RecommendParams(allow_repeats=False))
    assert "buy_again" not in set(result.table["model"])
    assert any("repeats not allowed" in note for note in result.notes)
    assert not any("had seen" in note for note in result.notes)  # no seen item recommended


def test_ranker_candidates_add_past_items_with_history_features() -> None:
    history = TRAIN.assign(user_id=TRAIN["user_id"].astype(str))
    at = pd.Timestamp("2026-10-06", tz="UTC")
    model = MostPopular().fit(history, CATALOGUE)
    rows = candidates_at(model, ["u1"], history, at, n=1, exclude_seen=False, repeats=True)
    # n // 4 -> at least one past item joins the model's top-1 when it is not in it.
    assert set(rows["item_id"]) >= {"milk"}
    assert rows["retrieval_rank"].is_monotonic_increasing
    milk = rows[rows["item_id"] == "milk"].iloc[0]
    assert milk["x_user_item_events"] == 2.0
    assert milk["x_days_since_user_item"] == 3.0
    assert all(name in rows.columns for name in HISTORY_FEATURES)
    plain = candidates_at(model, ["u1"], history, at, n=1)
    assert not set(HISTORY_FEATURES) & set(plain.columns)
    first = buy_again_candidates(history, ["u1", "u2"], 1)
    assert list(zip(first["user_id"], first["item_id"], strict=True)) == [
        ("u1", "milk"),
        ("u2", "bread"),
    ]
