"""The union's ranker features (tailwise.candidates.features) and sources saved as tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as pdt

from tailwise.candidates import default_sources
from tailwise.candidates.artifacts import read_sources, write_sources
from tailwise.candidates.features import (
    FUSION_K,
    ItemStats,
    candidate_features,
    feature_names,
    source_frames,
)
from tests.candidates.conftest import CUT, events


def frame(source: str, rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=["user_id", "item_id", "score"]).assign(source=source)
    out["rank"] = out.groupby("user_id").cumcount() + 1
    return out


def test_union_features_mark_absent_sources_and_fuse_ranks() -> None:
    history = events(("u1", "a", 1), ("u1", "b", 18), ("u2", "a", 19), ("u2", "c", 25))
    stats = ItemStats().fit(history, CUT)
    frames = {
        "ease": frame("ease", [("u1", "c", 0.9), ("u1", "d", 0.5)]),
        "popularity": frame("popularity", [("u1", "d", 3.0), ("u1", "e", 2.0)]),
    }
    rows = candidate_features(frames, stats.table, history, CUT, n=5)
    assert set(feature_names(frames)) <= set(rows.columns)
    d = rows[rows["item_id"] == "d"].iloc[0]
    c = rows[rows["item_id"] == "c"].iloc[0]
    assert d["n_sources"] == 2 and c["n_sources"] == 1
    assert np.isnan(c["popularity_score"]) and np.isnan(c["popularity_norm"])
    assert c["popularity_rank"] == 6  # absent: after every rank a source can give
    assert d["fused_score"] == 1 / (FUSION_K + 2) + 1 / (FUSION_K + 1)
    assert d["fused_rank"] == 1  # proposed by both sources
    # Popularity and age as of the cut: u2's event on c on the 25th is after it.
    assert c["item_pop_all"] == 0 and np.isnan(c["item_seen_days"])
    assert rows.loc[rows["item_id"] == "d", "item_pop_all"].iloc[0] == 0
    assert (rows["user_events"] == 2).all()  # u1's two events before the cut
    assert (
        rows["user_days_since_last"].iloc[0]
        == (CUT - pd.Timestamp("2026-10-18T12:00", tz="UTC")).total_seconds() / 86400
    )
    kept = candidate_features(frames, stats.table, history, CUT, n=5, keep=2)
    assert sorted(kept["fused_rank"]) == [1, 2]


def test_item_stats_count_only_events_before_the_cut() -> None:
    history = events(("u1", "a", 19), ("u2", "a", 13), ("u3", "a", 20), ("u3", "b", 2))
    table = ItemStats().fit(history, CUT).table.set_index("item_id")
    assert table.loc["a", "pop_all"] == 2  # the event on the cut's day at noon is after it
    assert table.loc["a", "pop_1d"] == 1 and table.loc["a", "pop_7d"] == 2
    assert table.loc["b", "pop_28d"] == 1 and table.loc["b", "pop_7d"] == 0


def test_sources_read_back_from_tables_propose_the_same_candidates(tmp_path) -> None:  # type: ignore[no-untyped-def]
    history = events(
        ("u1", "a", 1, 1.0, "mobile"),
        ("u1", "b", 2, 1.0, "mobile"),
        ("u2", "a", 3, 1.0, "desktop"),
        ("u2", "c", 4),
        ("u3", "b", 15),
        ("u3", "c", 16),
        ("u4", "a", 18),
    )
    items = pd.DataFrame({"item_id": list("abc"), "category": ["x", "x", "y"]})
    sources = [s.fit(history, CUT) for s in default_sources(False, items=items)]
    stats = ItemStats().fit(history, CUT)
    write_sources([*sources, stats], tmp_path)
    loaded = read_sources(tmp_path)
    assert [s.name for s in loaded] == [*(s.name for s in sources), "item_stats"]
    before = source_frames(sources, history, 5, ["u1", "u4", "new"])
    after = source_frames(loaded[:-1], history, 5, ["u1", "u4", "new"])
    assert before.keys() == after.keys()
    for name in before:
        pdt.assert_frame_equal(before[name], after[name], check_dtype=False)
    pdt.assert_frame_equal(loaded[-1].table, stats.table, check_dtype=False)
