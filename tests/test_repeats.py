"""The repeat decision and the per-(user, item) history features (tailwise/repeats.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailwise.repeats import (
    RecommendParams,
    decide_repeats,
    history_from_counts,
    repeat_share,
    user_item_history,
)


def _events(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    return frame


REBUYS = _events(
    [
        ("u1", "milk", "purchase", "2020-01-01"),
        ("u1", "milk", "purchase", "2020-01-08"),
        ("u1", "bread", "purchase", "2020-01-08"),
        ("u2", "milk", "purchase", "2020-01-02"),
        ("u2", "milk", "product_view", "2020-01-03"),
    ]
)


def test_share_counts_purchases_of_an_item_the_user_bought_before() -> None:
    assert repeat_share(REBUYS) == (pytest.approx(1 / 4), "purchases")


def test_share_falls_back_to_all_events_without_purchases() -> None:
    views = REBUYS.assign(event_type="rating")
    assert repeat_share(views) == (pytest.approx(2 / 5), "events")


@pytest.mark.parametrize(("setting", "expected"), [("auto", True), (False, False), (True, True)])
def test_decision_follows_the_setting(setting: object, expected: bool) -> None:
    decision = decide_repeats(RecommendParams(allow_repeats=setting), REBUYS)
    assert decision.allow_repeats is expected
    assert "recommend.allow_repeats" in decision.describe()


def test_auto_refuses_repeats_below_the_threshold() -> None:
    params = RecommendParams(allow_repeats="auto", auto_threshold=0.5)
    assert not decide_repeats(params, REBUYS).allow_repeats


def test_history_counts_only_events_before_the_cut() -> None:
    at = pd.Timestamp("2020-01-08")
    pairs = pd.DataFrame({"user_id": ["u1", "u1", "u2"], "item_id": ["milk", "bread", "tea"]})
    history = user_item_history(REBUYS, at, pairs)
    assert history["x_user_item_events"].tolist() == [1.0, 0.0, 0.0]
    assert history["x_days_since_user_item"].iloc[0] == pytest.approx(7.0)
    assert history["x_days_since_user_item"].iloc[1:].isna().all()


def test_serving_side_matches_the_offline_definition() -> None:
    at = pd.Timestamp("2020-01-10")
    offline = user_item_history(REBUYS[REBUYS["user_id"] == "u1"], at)
    last = offline.set_index("item_id")
    items = ["milk", "bread", "tea"]
    count = np.array([last["x_user_item_events"].get(i, 0.0) for i in items])
    stamps = REBUYS[REBUYS["user_id"] == "u1"].groupby("item_id")["timestamp"].max()
    seconds = np.array(
        [stamps[i].timestamp() if i in stamps.index else np.nan for i in items], dtype="float64"
    )
    online = history_from_counts(count, seconds, at.timestamp())
    assert online[:2, 0].tolist() == [2.0, 1.0]
    np.testing.assert_allclose(online[:2, 1], last.loc[["milk", "bread"], "x_days_since_user_item"])
    assert online[2, 0] == 0.0 and np.isnan(online[2, 1])
