"""realtime_state: semantics on hand-made events, and offline/online parity."""

from __future__ import annotations

import pandas as pd
import pytest

from tailwise.features.profiles import item_category
from tailwise.features.realtime import REALTIME_COLUMNS, realtime_state
from tests.features.conftest import event, read_events

CATS = pd.Series({"a": "Home/Kitchen", "b": "Toys/Dolls", "c": "Books/Comics"})


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def test_last_items_are_distinct_newest_first_and_capped():
    items = ["a", "b", "a", "c", "c"]
    ev = frame([event("u1", it, f"2026-03-01T10:0{i}:00") for i, it in enumerate(items)])
    out = realtime_state(ev, CATS, n_items=2)
    assert list(out.columns) == list(REALTIME_COLUMNS)
    assert [list(x) for x in out["rt_last_items"]] == [
        ["a"],
        ["b", "a"],
        ["a", "b"],
        ["c", "a"],
        ["c", "a"],
    ]
    assert list(out["rt_last_category"]) == [
        "Home/Kitchen",
        "Toys/Dolls",
        "Home/Kitchen",
        "Books/Comics",
        "Books/Comics",
    ]
    assert (out["event_timestamp"] == ev["timestamp"] + pd.Timedelta(1, "us")).all()


def test_sessions_and_the_hour_window():
    ev = frame(
        [
            event("u1", "a", "2026-03-01T10:00:00", session_id="s1"),
            event("u1", "b", "2026-03-01T10:30:00", "add_to_cart", session_id="s2"),
            event("u1", "a", "2026-03-01T11:00:00", "add_to_cart", session_id="s1"),  # 10:00 is out
            event("u1", "c", "2026-03-01T11:10:00", session_id=None),
            event("u2", "c", "2026-03-01T11:10:00", session_id="s1"),  # another user's s1
        ]
    )
    out = realtime_state(ev.sample(frac=1, random_state=3), CATS)  # input order is irrelevant
    u1 = out.loc[out["user_id"] == "u1"]
    assert list(u1["rt_session_events"]) == [1, 1, 2, 0]
    assert list(u1["rt_hour_events"]) == [1, 2, 2, 3]
    assert list(u1["rt_hour_carts"]) == [0, 1, 2, 2]
    u2 = out.loc[out["user_id"] == "u2"].iloc[0]
    assert (u2["rt_session_events"], u2["rt_hour_events"], list(u2["rt_last_items"])) == (
        1,
        1,
        ["c"],
    )


def test_empty_input_gives_an_empty_frame():
    out = realtime_state(frame([event("u1", "a", "2026-03-01")]).iloc[:0], CATS)
    assert list(out.columns) == list(REALTIME_COLUMNS) and out.empty


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="timestamp"):
        realtime_state(pd.DataFrame({"user_id": [], "item_id": [], "event_type": []}), CATS)


def test_offline_chunked_table_equals_single_user_calls(generated):
    clean, out = generated
    offline = pd.read_parquet(out / "user_realtime.parquet")
    events = read_events(clean)
    cats = item_category(pd.read_parquet(clean / "items.parquet"))
    users = events["user_id"].drop_duplicates().sample(25, random_state=2)
    for uid in users:
        online = realtime_state(events.loc[events["user_id"] == uid], cats)
        mine = offline.loc[offline["user_id"] == uid].sort_values("event_timestamp", kind="stable")
        assert len(mine) == len(online)
        for col in REALTIME_COLUMNS:
            left, right = mine[col].reset_index(drop=True), online[col].reset_index(drop=True)
            if col == "rt_last_items":
                assert [list(x) for x in left] == [list(x) for x in right]
            else:
                pd.testing.assert_series_equal(left, right, check_dtype=False, check_names=False)
    # The online path reads the last row: the user's state after the newest event.
    last = realtime_state(events.loc[events["user_id"] == uid].tail(50), cats).iloc[-1]
    assert list(last["rt_last_items"]) == list(mine.iloc[-1]["rt_last_items"])
