"""The reference: model metadata, a point-in-time sample built once and cached, the
prediction reference from the first served window, and (slow) the real Feast columns."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.reference import (
    ReferenceBuildError,
    coerce_columns,
    load_or_build_reference,
    read_model,
    score_reference,
)
from monitoring.windows import Window
from tests.monitoring.world import (
    CATEGORICAL,
    DAY1,
    NUMERIC,
    TRAINED_BEFORE,
    FakeFeatures,
    build_world,
    request,
    small_params,
    write_model,
    write_requests,
)

DAY = timedelta(days=1)


def test_read_model_takes_the_training_window_and_categories_from_the_version(
    tmp_path: Path,
) -> None:
    write_model(tmp_path, "v1")
    model = read_model(tmp_path)  # LATEST
    assert (model.version, model.data_version, model.key) == ("v1", "d1", "v1-d1")
    assert model.trained_before == TRAINED_BEFORE
    assert model.ranking_service == "ranking_v1"
    assert set(model.categorical) == {"country", "segment_name", "category_l1"}


def test_a_manifest_without_a_readable_training_window_is_an_error_naming_it(
    tmp_path: Path,
) -> None:
    folder = write_model(tmp_path, "v1")
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "trained_on": "last week"}))
    with pytest.raises(ReferenceBuildError, match=r"manifest\.json: trained_on should read"):
        read_model(tmp_path, "v1")


def test_coerce_columns_types_values_as_the_ranker_does() -> None:
    frame = pd.DataFrame(
        {"a": [1, None, True], "b": ["x", None, 3], "c": [np.nan, 2.5, 1.0]}, dtype=object
    )
    out = coerce_columns(frame, ["a", "c", "missing"], ["b"])
    assert out["a"].tolist()[::2] == [1.0, 1.0] and np.isnan(out["a"][1])
    assert out["c"].dtype == np.float64 and np.isnan(out["missing"]).all()
    assert out["b"].tolist() == ["x", None, "3"]


def test_the_reference_is_built_once_from_the_training_window_then_read(tmp_path: Path) -> None:
    world = build_world(tmp_path, requests_per_day=5)
    model = read_model(world.models)
    source = FakeFeatures([*NUMERIC, *CATEGORICAL])
    params = small_params(reference_rows=200)
    cache = tmp_path / "cache"
    steps: list[str] = []
    built = load_or_build_reference(
        model, cache, params, world.clean / "events", lambda _: source, steps.append
    )
    assert built.built and source.calls == 1 and len(built.features) == 200
    assert built.categorical == CATEGORICAL and built.numeric == NUMERIC
    assert built.features["ctx_is_weekend"].dtype == np.float64
    assert len(built.events) == 200  # the events the vectors were taken at
    assert built.events["timestamp"].min() >= TRAINED_BEFORE - timedelta(days=14)
    assert built.events["timestamp"].max() < TRAINED_BEFORE
    assert any("feature store" in s for s in steps)
    again = load_or_build_reference(model, cache, params, world.clean / "events", lambda _: source)
    assert not again.built and source.calls == 1
    pd.testing.assert_frame_equal(again.features, built.features)
    assert (cache / "v1-d1" / "reference.json").exists()


def test_no_events_in_the_training_window_is_a_clear_error(tmp_path: Path) -> None:
    write_model(tmp_path / "models", trained_before=datetime(2020, 1, 1, tzinfo=UTC))
    model = read_model(tmp_path / "models")
    with pytest.raises(ReferenceBuildError, match=r"no clean events in .* for 2019-12-18"):
        load_or_build_reference(
            model, tmp_path, small_params(), tmp_path / "none", lambda _: FakeFeatures([])
        )


def test_the_prediction_reference_is_the_first_served_window(tmp_path: Path) -> None:
    write_model(tmp_path / "models")
    model = read_model(tmp_path / "models")
    first = DAY1 + timedelta(hours=6)
    rows = [
        request(f"r{n}", first + timedelta(hours=n), "u1", ["a", "b"], [0.5, 0.25])
        for n in range(30)
    ]
    write_requests(tmp_path / "served", rows)
    args = (model, tmp_path / "cache", tmp_path / "served")
    params = small_params()
    scores, note = score_reference(*args, Window(first, first + DAY), DAY, params, first)
    assert scores is None and "first served window" in note
    day2 = Window(DAY1 + DAY, DAY1 + 2 * DAY)  # the first window is not over yet: so far
    scores, note = score_reference(*args, day2, DAY, params, first)
    assert (
        scores is not None
        and len(scores) == 2 * 18
        and note.endswith("(training has no served scores)")
    )
    assert "(so far)" in note and not (tmp_path / "cache" / "v1-d1" / "scores.parquet").exists()
    day3 = day2.shift(DAY)
    scores, note = score_reference(*args, day3, DAY, params, first)
    assert sorted(set(scores["score"])) == [0.25, 0.5] and len(scores) == 2 * 24
    assert (tmp_path / "cache" / "v1-d1" / "scores.parquet").exists()
    cached, cached_note = score_reference(*args, day3.shift(DAY), DAY, params, None)
    assert cached_note == note and len(cached) == 48


@pytest.mark.slow
def test_feast_gives_the_user_level_ranker_features_serving_logs(tmp_path: Path) -> None:
    """A real Feast project over tiny feature tables: the reference has exactly the
    ranker's user-level features (what serving logs), point in time."""
    from monitoring.reference import FeastFeatures, build_feature_reference
    from tailwise.features.store import apply, teardown
    from tests.feast_project import isolated_feast_settings
    from tests.features.conftest import build_small, event, item, user

    users = [user(f"u{i}") for i in range(4)]
    items = [item(f"i{i}") for i in range(3)]
    events = [
        event(f"u{i % 4}", f"i{i % 3}", f"2026-10-{1 + i % 20:02d} 1{i % 10}:00:00")
        for i in range(40)
    ]
    features = build_small(tmp_path, users, items, events)
    settings = isolated_feast_settings(features, tmp_path / "registry.db", "tw_mon")
    store, _ = apply(settings)
    try:
        ranker = [
            "retrieval_score",
            "x_cat_share",
            "age",
            "country",
            "views_7d",
            "price",
            "item_views_1d",
            "item_age_days",
            "rt_hour_events",
            "ctx_local_hour",
            "segment_name",
        ]
        source = FeastFeatures(store, "ranking_v1", ranker)
        assert source.columns == [
            "age",
            "country",
            "views_7d",
            "segment_name",
            "rt_hour_events",
            "ctx_local_hour",
        ]
        sample = pd.DataFrame(events).iloc[[5, 25]].reset_index(drop=True)
        frame = build_feature_reference(sample, source)
    finally:
        teardown(settings, store)
    assert list(frame.columns) == source.columns and len(frame) == 2
    assert frame["age"].tolist() == [30, 30]
    local = pd.to_datetime(sample["timestamp"]) - pd.Timedelta(seconds=1)
    hours = local.dt.tz_convert("Europe/Berlin").dt.hour.tolist()
    assert frame["ctx_local_hour"].tolist() == hours  # the request context, as of the event
