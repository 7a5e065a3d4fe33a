"""The harness: tidy table, slices, markdown, fitting on history, the baseline run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.training.conftest import events, items
from training.baselines import MostPopular
from training.config import EvaluationParams, SplitParams
from training.evaluate import EvaluationResult, evaluate, evaluate_baselines
from training.split import temporal_split


class Fixed:
    """A recommender that returns a fixed list: checks the harness, not a model."""

    def __init__(self, ranked: dict[str, list[str]]) -> None:
        self.ranked = ranked
        self.fitted_on: pd.DataFrame | None = None

    def fit(self, train_events, items):
        self.fitted_on = train_events
        return self

    def recommend(self, user_ids, k, exclude_seen=True):
        rows = [
            (u, item, r + 1, 1.0 / (r + 1))
            for u in user_ids
            for r, item in enumerate(self.ranked.get(u, [])[:k])
        ]
        return pd.DataFrame(rows, columns=["user_id", "item_id", "rank", "score"])


def small_split():
    log = events(
        ("u1", "a", "2026-10-01"),
        ("u2", "a", "2026-10-02", "purchase"),
        ("u1", "b", "2026-10-20"),
        ("u2", "c", "2026-10-25"),  # test: relevant to returning u2
        ("u3", "b", "2026-10-26"),  # test: relevant to new u3
        ("u1", "c", "2026-10-31"),  # test: relevant to returning u1
    )
    return temporal_split(log, SplitParams(), items("a", "b", "c", "d"))


def test_table_slices_and_fitting_on_history() -> None:
    split = small_split()
    fixed = Fixed({"u1": ["c", "d"], "u2": ["d", "c"], "u3": ["d"]})
    result = evaluate(
        {"fixed": fixed, "pop": MostPopular()}, split, ks=[1, 2],
        segments={"u1": "s1", "u2": "s1"}, fit=True,
    )  # fmt: skip
    assert fixed.fitted_on["timestamp"].max() < split.test_start
    table = result.table
    assert list(table.columns) == ["model", "slice", "k", "metric", "value", "users"]
    assert set(table["slice"]) == {"all", "new", "returning", "segment=s1", "segment=unassigned"}
    assert result.value("fixed", "hit_rate", 1) == pytest.approx(1 / 3)
    assert result.value("fixed", "ndcg", 2, slice="returning") == pytest.approx(
        (1 + 1 / np.log2(3)) / 2
    )
    assert result.value("fixed", "coverage", 2) == pytest.approx(2 / 4)
    assert table.query("slice == 'new'")["users"].eq(1).all()
    assert set(result.per_user["status"]) == {"new", "returning"}
    text = result.to_markdown()
    assert "### all (3 users)" in text and "| fixed | 2 |" in text and "timings" in text


def test_seen_recommendations_are_reported() -> None:
    split = small_split()
    result = evaluate({"leaky": Fixed({"u1": ["a", "c"]})}, split, ks=[2])
    assert any("1 recommendations were items the user had seen" in n for n in result.notes)


def test_evaluate_baselines_on_generated_data(generated) -> None:
    raw, clean = generated
    result = evaluate_baselines(clean, EvaluationParams(ks=(10,)), raw / "ground_truth")
    table = result.table
    assert set(table["model"]) == {
        "most_popular", "recently_popular", "item_cooccurrence", "ease", "oracle"
    }  # fmt: skip
    assert table["value"].between(0, 1).all()
    # The generator's own utility must beat popularity by a wide margin.
    assert result.value("oracle", "ndcg", 10) > 1.3 * result.value("most_popular", "ndcg", 10)


def test_markdown_keeps_a_slice_without_users() -> None:
    table = pd.DataFrame(
        {
            "model": ["a", "a"],
            "slice": ["all", "new"],
            "k": [10, 10],
            "metric": ["ndcg", "ndcg"],
            "value": [0.5, np.nan],  # nobody new in the window
            "users": [3, 0],
        }
    )
    start = pd.Timestamp("1998-01-01", tz="UTC")
    result = EvaluationResult("test", start, start, table, pd.DataFrame())
    text = result.to_markdown(slices=["all", "new"])
    assert "### new (0 users)" in text and "| a | 10 | nan |" in text
