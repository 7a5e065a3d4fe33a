"""Union, recall, buy-again and the cut: no source ever reads an event at or after it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailwise.candidates import (
    BuyAgain,
    candidate_recall,
    default_sources,
    save_artifacts,
    union_candidates,
)
from tests.candidates.conftest import CUT, events, items_of

HISTORY = events(
    ("u1", "a", 10, 1.0, "mobile"), ("u1", "b", 10, 1.0, "mobile"), ("u1", "b", 12, 1.0),
    ("u2", "a", 15, 2.0, "desktop"), ("u2", "c", 15, 1.0, "desktop"),
    ("u3", "c", 18, 3.0, "mobile"), ("u3", "d", 18, 1.0, "mobile"), ("u3", "a", 19, 1.0),
)  # fmt: skip
LATER = events(
    ("u1", "d", 20, 9.0, "tablet"), ("u4", "c", 21, 9.0, "mobile"), ("u2", "d", 22, 9.0),
    ("u1", "c", 25, 9.0), ("u3", "b", 20, 9.0),
)  # fmt: skip


def candidates(rows: list[tuple], source: str = "s") -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "score"])
    frame["rank"] = frame.groupby("user_id").cumcount() + 1
    return frame.assign(source=source)


ITEMS = pd.DataFrame({"item_id": list("abcd"), "category": ["x", "x", "y", "y"]})


def every_source() -> list:
    return default_sources(allow_repeats=True, items=ITEMS)


@pytest.mark.parametrize("index", range(len(every_source())))
def test_events_after_the_cut_change_nothing(index: int) -> None:
    make = lambda: every_source()[index]  # noqa: E731
    alone = make().fit(HISTORY, CUT)
    more = make().fit(pd.concat([HISTORY, LATER], ignore_index=True), CUT)
    for table, frame in alone.artifact().items():
        pd.testing.assert_frame_equal(frame, more.artifact()[table])
    repeats = alone.name != "buy_again"
    users = ["u1", "u2", "u3", "u4"]
    got = alone.candidates(HISTORY, 10, users, exclude_seen=repeats)
    with_later = more.candidates(pd.concat([HISTORY, LATER]), 10, users, exclude_seen=repeats)
    pd.testing.assert_frame_equal(got, with_later)


def test_union_keeps_every_sources_score_and_rank() -> None:
    first = candidates([("u", "a", 4.0), ("u", "b", 2.0), ("u", "c", 1.0)], "one")
    second = candidates([("u", "b", 0.9), ("u", "d", 0.3), ("v", "a", 5.0)], "two")
    union = union_candidates({"one": first, "two": second})
    assert union[["user_id", "item_id"]].values.tolist() == [
        ["u", "a"], ["u", "b"], ["u", "c"], ["u", "d"], ["v", "a"]
    ]  # fmt: skip
    b = union.iloc[1]
    assert (b["one_score"], b["one_rank"], b["two_score"], b["two_rank"]) == (2.0, 2, 0.9, 1)
    assert b["n_sources"] == 2
    assert np.isnan(union.iloc[0]["two_score"]) and np.isnan(union.iloc[3]["one_rank"])
    assert union["one_norm"].tolist()[:3] == pytest.approx([1.0, 1 / 3, 0.0])
    assert union.iloc[4]["two_norm"] == 1.0  # one candidate: its user's best
    top1 = union_candidates({"one": first, "two": second}, n=1)
    assert top1[["user_id", "item_id"]].values.tolist() == [["u", "a"], ["u", "b"], ["v", "a"]]


def test_union_rejects_a_frame_without_ranks() -> None:
    with pytest.raises(ValueError, match="'two' lacks column"):
        union_candidates({"two": pd.DataFrame({"user_id": [], "item_id": []})})


def test_recall_on_a_hand_computed_example() -> None:
    first = candidates([("u", "a", 3.0), ("u", "b", 2.0), ("v", "c", 1.0)], "one")
    second = candidates([("u", "x", 3.0), ("w", "z", 1.0)], "two")
    relevant = pd.DataFrame({"user_id": ["u", "u", "v", "w", "q"],
                             "item_id": ["b", "x", "d", "z", "a"]})  # fmt: skip
    users = pd.DataFrame({"user_id": ["u", "v", "w", "q"],
                          "status": ["returning", "returning", "new", "new"]})  # fmt: skip
    got = candidate_recall({"one": first, "two": second}, relevant, users, ns=(1, 2))
    row = got.set_index(["source", "n", "slice"])
    assert row.loc[("one", 1, "all"), "recall"] == 0.0
    assert row.loc[("one", 2, "all"), "recall"] == pytest.approx(1 / 5)
    assert row.loc[("union", 1, "all"), ["found", "relevant"]].tolist() == [2, 5]
    assert row.loc[("union", 2, "returning"), "recall"] == pytest.approx(2 / 3)
    assert row.loc[("union", 2, "new"), "recall"] == pytest.approx(1 / 2)
    assert row.loc[("union", 2, "all"), "candidates"] == pytest.approx((3 + 1 + 1 + 0) / 4)
    with pytest.raises(ValueError, match="ns"):
        candidate_recall({"one": first}, relevant, ns=(0,))


def test_buy_again_only_where_repeats_are_allowed() -> None:
    assert "buy_again" not in [s.name for s in default_sources(allow_repeats=False)]
    source = BuyAgain(half_life_days=7).fit(HISTORY, CUT)
    with pytest.raises(ValueError, match="exclude_seen"):
        source.candidates(HISTORY, 5)
    found = source.candidates(HISTORY, 5, exclude_seen=False)
    assert items_of(found, "u1") == ["b", "a"]  # two events with b
    assert items_of(found, "u3") == ["a", "c", "d"]  # one each: the latest first
    assert found.loc[found.user_id == "u1", "score"].iloc[0] == pytest.approx(
        2 + 0.5 ** (7.5 / 7)  # last b at noon on the 12th
    )
    with pytest.raises(ValueError, match="half_life_days"):
        BuyAgain(half_life_days=0)


def test_serving_time_scores_the_history_before_at() -> None:
    source = BuyAgain().fit(HISTORY, CUT)
    later = pd.concat([HISTORY, LATER], ignore_index=True)
    found = source.candidates(later, 5, ["u1"], at="2026-10-24", exclude_seen=False)
    assert items_of(found, "u1") == ["b", "d", "a"]


def test_artifacts_round_trip_through_parquet(tmp_path) -> None:
    sources = [s.fit(HISTORY, CUT) for s in default_sources(allow_repeats=False)]
    written = save_artifacts(sources, tmp_path)
    assert {p.parent.name for p in written} == {s.name for s in sources}
    ease = next(s for s in sources if s.name == "ease")
    back = pd.read_parquet(tmp_path / "ease" / "neighbours.parquet")
    pd.testing.assert_frame_equal(back, ease.table)
