"""user_daily rows use only events strictly before their event_timestamp."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.features.conftest import build_small, event, item, read_events, user


def test_random_snapshots_match_a_direct_recomputation(generated):
    clean, out = generated
    events = read_events(clean).sort_values(["timestamp", "event_id"])
    daily = pd.read_parquet(out / "user_daily.parquet")
    # A purchase without a price paid is valued at the item's list price.
    list_price = pd.read_parquet(clean / "items.parquet").set_index("item_id")["price"]
    events["price"] = events["price"].fillna(events["item_id"].map(list_price))
    by_user = dict(tuple(events.groupby("user_id")))
    for row in daily.sample(150, random_state=1).itertuples():
        ev = by_user[row.user_id]
        before = ev.loc[ev["timestamp"] < row.event_timestamp]
        week = before.loc[before["timestamp"] >= row.event_timestamp - pd.Timedelta(days=7)]
        month = before.loc[before["timestamp"] >= row.event_timestamp - pd.Timedelta(days=30)]
        assert row.views_7d == (week["event_type"] == "product_view").sum()
        bought = month.loc[month["event_type"] == "purchase"]
        assert np.isclose(row.spend_30d, (bought["price"] * bought["value"].fillna(1)).sum())
        recent = list(dict.fromkeys(before["item_id"].iloc[::-1]))[:10]
        assert list(row.recent_items) == recent


def test_an_event_at_the_snapshot_instant_is_excluded(tmp_path):
    events = [
        event("u1", "i1", "2026-03-01T10:00:00"),
        event("u1", "i2", "2026-03-02T00:00:00"),  # exactly the D+1 snapshot of 03-01
    ]
    out = build_small(
        tmp_path,
        [user("u1"), user("u2")],
        [item("i1"), item("i2")],
        [*events, event("u2", "i1", "2026-03-05T10:00:00")],
    )
    daily = pd.read_parquet(out / "user_daily.parquet").set_index("event_timestamp")
    row = daily.loc[(daily["user_id"] == "u1")].loc[pd.Timestamp("2026-03-02", tz="UTC")]
    assert row["views_1d"] == 1
    assert list(row["recent_items"]) == ["i1"]
    later = daily.loc[(daily["user_id"] == "u1")].loc[pd.Timestamp("2026-03-03", tz="UTC")]
    assert later["views_1d"] == 1 and later["views_7d"] == 2
    assert list(later["recent_items"]) == ["i2", "i1"]


def test_windows_decay_when_a_user_goes_quiet(tmp_path):
    events = [
        event("u1", "i1", "2026-03-01T10:00:00"),
        event("u1", "i1", "2026-03-01T11:00:00", "purchase"),
        event("u2", "i1", "2026-04-20T10:00:00"),  # keeps the data running past D+31
    ]
    out = build_small(tmp_path, [user("u1"), user("u2")], [item("i1")], events)
    daily = pd.read_parquet(out / "user_daily.parquet").sort_values("event_timestamp")
    u1 = daily.loc[daily["user_id"] == "u1"]
    u1 = u1.set_index(u1["event_timestamp"].dt.strftime("%m-%d"))
    assert list(u1.index) == ["03-02", "03-03", "03-09", "04-01"]
    assert list(u1["views_1d"]) == [1, 0, 0, 0]
    assert list(u1["views_7d"]) == [1, 1, 0, 0]
    assert list(u1["views_30d"]) == [1, 1, 1, 0]
    assert list(u1["recency_days"]) == [1, 2, 8, 31]
    assert list(u1["frequency"]) == [1, 1, 1, 1]
    assert u1["spend_30d"].tolist() == [10.0, 10.0, 10.0, 0.0]
    # Lifetime state survives the 30-day window.
    assert list(u1.loc["04-01", "recent_items"]) == ["i1"]
    # No snapshot after the day following the last event in the data.
    assert daily["event_timestamp"].max() == pd.Timestamp("2026-04-21", tz="UTC")


def test_affinity_and_context(tmp_path):
    items = [item("i1", "Home/Kitchen", brand="A"), item("i2", "Toys/Dolls", brand="B")]
    events = [
        event("u1", "i1", "2026-03-02T08:00:00", device="mobile"),  # 09:00 Berlin
        event("u1", "i2", "2026-03-02T12:00:00", "add_to_cart", device="desktop"),
        event("u1", "i2", "2026-03-02T13:00:00", device=None, session_id="s2"),
    ]
    out = build_small(tmp_path, [user("u1"), user("u2")], items, events)
    row = pd.read_parquet(out / "user_daily.parquet").iloc[0]
    assert list(row["top_categories"]) == ["Toys/Dolls", "Home/Kitchen"]
    assert np.allclose(row["top_category_shares"], [0.8, 0.2])
    assert list(row["top_brands"]) == ["B", "A"]
    assert row["share_mobile"] == 0.5 and row["share_desktop"] == 0.5
    assert np.isclose(row["share_morning"], 1 / 3) and np.isclose(row["share_afternoon"], 2 / 3)
    assert row["sessions_1d"] == 2 and row["categories_30d"] == 2 and row["events_30d"] == 3
    assert row["avg_price_30d"] == 10.0


class _OneCallAtATime:
    """A store whose retrievals fail when two overlap, as one DuckDB connection does."""

    def __init__(self) -> None:
        import threading

        self.busy = threading.Lock()
        self.calls = 0

    def get_historical_features(self, entity_df, features, full_feature_names=False):  # type: ignore[no-untyped-def]
        store = self

        class Job:
            def to_df(self) -> pd.DataFrame:
                if not store.busy.acquire(blocking=False):
                    raise RuntimeError("connection is busy with another call")
                try:
                    import time

                    time.sleep(0.05)
                    store.calls += 1
                    return entity_df.assign(value=1.0)
                finally:
                    store.busy.release()

        return Job()


def test_retrievals_from_two_threads_take_turns():
    """Training fetches the ranker's examples while the two-tower's thread can be fetching
    its own: the retrievals of one process run one at a time."""
    from concurrent.futures import ThreadPoolExecutor

    from tailwise.features.point_in_time import UserFeature, historical_user_features

    store = _OneCallAtATime()
    rows = pd.DataFrame(
        {"user_id": ["a", "b"], "event_timestamp": pd.Timestamp("2026-10-01", tz="UTC")}
    ).assign(row_id=[0, 1])
    features = [UserFeature("view", "value", "numeric")]
    with ThreadPoolExecutor(max_workers=4) as pool:
        frames = list(pool.map(lambda _: historical_user_features(store, rows, features), range(8)))
    assert store.calls == 8 and all(len(f) == 2 for f in frames)
