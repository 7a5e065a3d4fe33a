"""Temporal split: cut instants, no leakage, relevant items and new / returning users."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.training.conftest import events, items, ts
from training.config import SplitParams
from training.split import read_events, temporal_split


def log() -> pd.DataFrame:
    return events(
        ("u1", "a", "2026-10-01T10:00"),
        ("u1", "b", "2026-10-05T10:00", "page_view"),
        ("u1", "b", "2026-10-18T10:00", "purchase"),  # validation, b seen before: not relevant
        ("u1", "c", "2026-10-18T11:00", "add_to_cart"),  # validation, relevant
        ("u1", "d", "2026-10-24T00:00"),  # exactly at test_start: test
        ("u2", "a", "2026-10-20T09:00", "page_view"),  # page views are not positive
        ("u2", "c", "2026-10-21T09:00", "rating", 2.0),  # rating < 3: not positive
        ("u2", "e", "2026-10-22T09:00", "rating", 4.0),  # relevant, u2 new in validation
        ("u3", "a", "2026-10-26T12:00", "purchase"),  # test, new user
        ("u1", "c", "2026-10-30T10:00", "purchase"),  # seen in validation: not relevant in test
        ("u1", "e", "2026-10-31T00:00"),  # last event: end
    )


def test_cut_instants_end_at_the_last_event() -> None:
    split = temporal_split(log(), SplitParams(validation_days=7, test_days=7))
    assert split.end == ts("2026-10-31T00:00")
    assert split.test_start == ts("2026-10-24T00:00")
    assert split.validation_start == ts("2026-10-17T00:00")
    assert len(split.train) + len(split.validation) + len(split.test) == len(log())


def test_nothing_at_or_after_a_window_start_leaks_into_an_earlier_window() -> None:
    split = temporal_split(log(), SplitParams())
    assert split.train["timestamp"].max() < split.validation_start
    assert split.validation["timestamp"].min() >= split.validation_start
    assert split.validation["timestamp"].max() < split.test_start
    assert split.test["timestamp"].min() == split.test_start  # the boundary event is in test
    assert split.history("test")["timestamp"].max() < split.test_start
    assert split.history("validation")["timestamp"].max() < split.validation_start


def test_relevant_items_are_positive_and_unseen_before_the_window() -> None:
    split = temporal_split(log(), SplitParams())
    val = split.truth("validation")
    assert set(map(tuple, val.relevant.to_numpy())) == {("u1", "c"), ("u2", "e")}
    test = split.truth("test")
    assert set(map(tuple, test.relevant.to_numpy())) == {("u1", "d"), ("u1", "e"), ("u3", "a")}


def test_users_are_flagged_new_or_returning() -> None:
    split = temporal_split(log(), SplitParams())
    status = dict(split.truth("validation").users[["user_id", "status"]].to_numpy())
    assert status == {"u1": "returning", "u2": "new"}
    test = split.truth("test").users.set_index("user_id")
    assert test["status"].to_dict() == {"u1": "returning", "u3": "new"}
    assert test.loc["u1", "n_relevant"] == 2


def test_positive_types_are_configurable() -> None:
    params = SplitParams(positive_event_types=("purchase",))
    split = temporal_split(log(), params)
    assert set(map(tuple, split.truth("test").relevant.to_numpy())) == {("u3", "a")}


def test_candidate_items_exist_at_the_window_start() -> None:
    catalogue = items("a", "b", "new", created={"new": "2026-10-25"})
    split = temporal_split(log(), SplitParams(), catalogue)
    assert set(split.candidate_items("test")["item_id"]) == {"a", "b"}
    assert set(split.candidate_items("validation")["item_id"]) == {"a", "b"}


def test_bad_input_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="timestamp"):
        temporal_split(log().drop(columns=["timestamp"]), SplitParams())
    with pytest.raises(ValueError, match="empty"):
        temporal_split(log().iloc[:0], SplitParams())
    with pytest.raises(ValueError, match="unknown window 'train'"):
        temporal_split(log(), SplitParams()).truth("train")


def test_reads_the_clean_events_of_ingest(generated) -> None:
    _, clean = generated
    frame = read_events(clean)
    assert "event_date" not in frame.columns
    assert frame["timestamp"].is_monotonic_increasing
    assert str(frame["timestamp"].dt.tz) == "UTC"


def test_feature_world_serves_point_in_time_features(feature_world) -> None:  # type: ignore[no-untyped-def]
    events = pd.read_parquet(feature_world.clean / "events", columns=["user_id", "timestamp"])
    sample = events.sample(50, random_state=0).rename(columns={"timestamp": "event_timestamp"})
    frame = feature_world.store.get_historical_features(
        entity_df=sample.reset_index(drop=True), features=["user_daily_engagement:views_7d"]
    ).to_df()
    assert len(frame) == 50
