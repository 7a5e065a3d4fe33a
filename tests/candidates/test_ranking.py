"""top_n and union_candidates work on integer codes of the ids; their results must be
those of sorting and merging the frames themselves (the definitions in the docstrings)."""

from __future__ import annotations

from functools import reduce

import numpy as np
import pandas as pd

from tailwise.candidates.base import top_n
from tailwise.candidates.union import union_candidates


def scored_frame(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    """Ids that sort differently as text and as numbers, tied and missing scores."""
    users = rng.choice(["u10", "u9", "U1", "u1", "ü"], rows)
    items = rng.choice([f"i{k}" for k in (1, 2, 10, 11, 100, 20)], rows)
    score = rng.choice([0.5, 1.0, 2.0, np.nan, 1e-9], rows)
    return pd.DataFrame({"user_id": users, "item_id": items, "score": score})


def reference_top_n(scored: pd.DataFrame, n: int, seen: pd.DataFrame | None) -> pd.DataFrame:
    if seen is not None:
        marks = seen[["user_id", "item_id"]].drop_duplicates().assign(_seen=True)
        scored = scored.merge(marks, on=["user_id", "item_id"], how="left")
        scored = scored[scored["_seen"].isna()].drop(columns="_seen")
    ordered = scored.sort_values(
        ["user_id", "score", "item_id"], ascending=[True, False, True], kind="stable"
    )
    ordered = ordered.assign(rank=ordered.groupby("user_id", sort=False).cumcount() + 1)
    ordered = ordered[ordered["rank"] <= n]
    return pd.DataFrame(
        {
            "user_id": ordered["user_id"].to_numpy(object),
            "item_id": ordered["item_id"].to_numpy(object),
            "source": "s",
            "score": ordered["score"].to_numpy(np.float64),
            "rank": ordered["rank"].to_numpy(np.int64),
        }
    )


def test_top_n_is_the_sorted_frame_with_seen_pairs_left_out() -> None:
    rng = np.random.default_rng(7)
    for trial in range(30):
        scored = scored_frame(rng, int(rng.integers(1, 200)))
        seen = scored.sample(frac=0.2, random_state=trial)[["user_id", "item_id"]]
        seen = pd.concat([seen, pd.DataFrame({"user_id": ["nobody"], "item_id": ["i1"]})])
        n = int(rng.integers(1, 8))
        for given in (None, seen):
            got = top_n(scored, n, "s", given)
            pd.testing.assert_frame_equal(got, reference_top_n(scored, n, given))


def test_top_n_of_many_rows_per_user_keeps_ties_missing_and_negative_scores() -> None:
    rng = np.random.default_rng(11)
    for trial in range(20):
        rows = 3000
        scored = pd.DataFrame(
            {
                "user_id": rng.choice(["a", "b", "c"], rows),
                "item_id": [f"i{k}" for k in rng.integers(0, 900, rows)],
                "score": rng.choice([-2.0, -1e-12, 0.0, 1e-12, 3.0, np.nan], rows)
                * (1 if trial % 2 else rng.random(rows)),
            }
        )
        if trial % 5 == 0:  # a user with every score alike, one with too few rows
            scored.loc[scored["user_id"] == "a", "score"] = 1.0
            scored = pd.concat(
                [scored, pd.DataFrame({"user_id": ["d"], "item_id": ["x"], "score": [0.5]})]
            )
        seen = scored.sample(200, random_state=trial)[["user_id", "item_id"]]
        for n in (1, 5, 40):
            got = top_n(scored, n, "s", seen)
            pd.testing.assert_frame_equal(got, reference_top_n(scored, n, seen))


def test_top_n_reads_ids_that_are_not_text_as_text() -> None:
    scored = pd.DataFrame({"user_id": [2, 10, 2], "item_id": [5, 7, "5"], "score": [1.0, 2, 3]})
    got = top_n(scored, 5, "s", pd.DataFrame({"user_id": ["10"], "item_id": ["7"]}))
    assert got[["user_id", "item_id"]].values.tolist() == [["2", "5"], ["2", "5"]]
    assert got["score"].tolist() == [3.0, 1.0]


def test_union_is_the_outer_merge_of_every_source() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        frames = {}
        for source in ("a", "b", "c"):
            scored = scored_frame(rng, int(rng.integers(0, 40))).fillna({"score": 0.1})
            frames[source] = top_n(scored, 4, source)
        got = union_candidates(frames, 3)
        parts = []
        for source, frame in frames.items():
            part = frame[frame["rank"] <= 3].drop_duplicates(["user_id", "item_id"])
            parts.append(
                part[["user_id", "item_id"]].assign(
                    **{
                        f"{source}_score": part["score"].to_numpy(),
                        f"{source}_rank": part["rank"].to_numpy(np.float64),
                    }
                )
            )
        want = reduce(lambda x, y: x.merge(y, on=["user_id", "item_id"], how="outer"), parts)
        want = want.sort_values(["user_id", "item_id"]).reset_index(drop=True)
        assert (
            got[["user_id", "item_id"]].values.tolist()
            == want[["user_id", "item_id"]].values.tolist()
        )
        for column in [c for c in want.columns if c.endswith(("_score", "_rank"))]:
            np.testing.assert_array_equal(got[column].to_numpy(), want[column].to_numpy())
        ranks = got[[f"{s}_rank" for s in frames]]
        assert got["n_sources"].tolist() == ranks.notna().sum(axis=1).tolist()
