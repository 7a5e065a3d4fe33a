"""Evidently's verdicts: a shifted feature is found and an unshifted one is not; the
event checks count what a person must fix."""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitoring.drift import event_checks, feature_drift, prediction_drift
from tests.monitoring.world import small_params

TYPES = ("page_view", "product_view", "add_to_cart", "purchase")


def frame(n: int, seed: int, shift: float = 0.0, share_us: float = 0.2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "views": rng.normal(10 + shift, 2, n),
            "age": rng.normal(40, 10, n),
            "country": rng.choice(["DE", "US"], n, p=[1 - share_us, share_us]).astype(object),
            "empty": np.full(n, np.nan),
        }
    )


def test_a_shifted_numeric_and_categorical_feature_drift_and_the_rest_do_not() -> None:
    reference = frame(800, 1)
    current = frame(600, 2, shift=2.0, share_us=0.6)
    drift, snapshot = feature_drift(
        current, reference, ["views", "age", "empty"], ["country"], small_params()
    )
    assert drift.measured and snapshot is not None
    verdicts = {c.column: c for c in drift.columns}
    assert set(verdicts) == {"views", "age", "country"}
    assert drift.drifted == ["views", "country"]
    assert drift.share == 2 / 3
    assert "empty" in drift.note  # no values: not compared, and said so
    assert verdicts["age"].method and verdicts["age"].threshold > 0


def test_sampling_the_current_window_keeps_the_verdict() -> None:
    params = small_params(drift_sample_rows=300)
    drift, _ = feature_drift(frame(3000, 3, shift=2.0), frame(800, 1), ["views", "age"], [], params)
    assert drift.rows_current == 3000 and drift.drifted == ["views"]


def test_prediction_drift_needs_a_reference() -> None:
    scores = pd.DataFrame({"score": np.linspace(0, 1, 200)})
    missing, snap = prediction_drift(scores, None, "first served window", small_params())
    assert not missing.measured and snap is None and missing.note == "first served window"
    moved, _ = prediction_drift(
        scores, scores.assign(score=scores["score"] + 2), "ref", small_params()
    )
    assert moved.measured and moved.drifted and moved.rows_reference == 200


def test_event_checks_count_duplicates_unknown_types_items_and_prices() -> None:
    events = pd.DataFrame(
        {
            "event_id": ["e1", "e1", "e2", "e3", "e4"],
            "user_id": ["u1", "u1", None, "u2", "u3"],
            "item_id": ["i1", "i1", "i2", "zzz", "i1"],
            "event_type": ["purchase", "purchase", "click", "product_view", "purchase"],
            "timestamp": pd.Timestamp("2026-11-01", tz="UTC"),
            "price": [10.0, 10.0, None, None, None],
        }
    )
    quality = event_checks(events, TYPES, known_items={"i1", "i2"})
    assert quality.rows == 5 and quality.duplicate_event_ids == 1
    assert quality.unknown_event_types == {"click": 1}
    assert quality.unknown_items == 1 and quality.bad_prices == 1
    assert quality.null_share["user_id"] == 0.2
    assert quality.issues == [
        "1 duplicate event ids",
        "unknown event types: {'click': 1}",
        "user_id is null in 20.0% of events",
        "1 events name items not in the catalogue",
        "1 events with a negative or missing purchase price",
    ]
    assert event_checks(events.iloc[0:0], TYPES).issues == ["no incoming events in the window"]


def _events(n: int, seed: int, tablet: float, toys: float, new_items: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    device = np.where(rng.random(n) < tablet, "tablet", rng.choice(["mobile", "desktop"], n))
    item = np.where(rng.random(n) < toys, "toy", rng.choice(["phone", "lamp", "book"], n))
    item = np.where(rng.random(n) < new_items, "brand-new", item)
    return pd.DataFrame(
        {
            "event_type": rng.choice(["product_view", "add_to_cart"], n, p=[0.8, 0.2]),
            "device": device,
            "channel": rng.choice(["search", "email"], n),
            "country": rng.choice(["DE", "US"], n),
            "price": rng.lognormal(3, 0.5, n),
            "item_id": item,
        }
    )


def test_event_drift_sees_a_new_device_mix_new_tastes_and_new_items() -> None:
    from monitoring.drift import NOT_IN_CATALOGUE, _behaviour, event_drift

    categories = pd.Series(
        {
            "toy": "Toys/Dolls",
            "phone": "Electronics/Phones",
            "lamp": "Home/Lamps",
            "book": "Books/X",
        }
    )
    reference = _events(4000, 0, tablet=0.1, toys=0.15, new_items=0.0)
    same = _events(3000, 1, tablet=0.1, toys=0.15, new_items=0.0)
    shifted = _events(3000, 2, tablet=0.6, toys=0.5, new_items=0.1)
    quiet, _ = event_drift(same, reference, categories, small_params())
    assert quiet.measured and quiet.drifted == []
    drift, snapshot = event_drift(shifted, reference, categories, small_params())
    assert sorted(drift.drifted) == ["category", "device"] and snapshot is not None
    assert NOT_IN_CATALOGUE in set(_behaviour(shifted, categories)["category"])
    assert set(_behaviour(shifted, categories)["category"]) - {NOT_IN_CATALOGUE} == {
        "Toys",
        "Electronics",
        "Home",
        "Books",
    }


def test_a_version_that_reads_no_user_level_feature_is_not_measured_and_says_why() -> None:
    # A version that keeps a candidate source's order logs no feature vector.
    empty = pd.DataFrame(index=pd.RangeIndex(40))
    drift, snapshot = feature_drift(empty, empty, [], [], small_params())
    assert snapshot is None and not drift.measured
    assert "reads no user-level feature" in drift.note
