"""Absent or all-null optional columns: every feature table keeps every declared feature with
the type its Feast view declares (typed nulls, or the builder's documented default)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from feast import FeatureView
from feast.type_map import feast_value_type_to_pa

from tailwise.features.store import definitions
from tests.feast_project import isolated_feast_settings
from tests.features.conftest import build_small, event, item, user

USER_OPTIONAL = ("age", "gender", "country", "region", "income_band", "signup_at")
ITEM_OPTIONAL = ("title", "description", "category", "category_l1", "brand", "price")
EVENT_OPTIONAL = ("event_id", "value", "price", "session_id", "device", "channel", "country")


def _data(absent: bool) -> tuple[list[dict], list[dict], list[dict]]:
    """8 users, 6 items, 5 days; optional columns dropped (absent) or all None."""
    users = [user(f"u{i}") for i in range(8)]
    items = [item(f"i{j}") for j in range(6)]
    days = [f"2026-03-0{d}T{10 + d}:00:00" for d in range(1, 6)]
    events = [
        event(
            f"u{i}", f"i{(i + d) % 6}", days[d], "purchase" if (i + d) % 3 == 0 else "product_view"
        )
        for i in range(8)
        for d in range(5)
        if (i + d) % 2 == 0
    ]
    for rows, names in ((users, USER_OPTIONAL), (items, ITEM_OPTIONAL), (events, EVENT_OPTIONAL)):
        for row in rows:
            for name in names:
                if absent:
                    row.pop(name, None)
                else:
                    row[name] = None
    return users, items, events


def _declared(features: Path, tmp_path: Path) -> dict[str, dict[str, pa.DataType]]:
    """Parquet table -> column -> the Arrow type its Feast feature view declares."""
    settings = isolated_feast_settings(features, tmp_path / "registry.db")
    out: dict[str, dict[str, pa.DataType]] = {}
    for view in definitions(settings):
        if not isinstance(view, FeatureView) or view.batch_source is None:
            continue
        source = view.batch_source
        table = Path(source.path).stem  # type: ignore[attr-defined]
        columns = {feast_name: raw for raw, feast_name in source.field_mapping.items()}
        for field in view.features:
            arrow = feast_value_type_to_pa(field.dtype.to_value_type())
            out.setdefault(table, {})[columns.get(field.name, field.name)] = arrow
    return out


@pytest.mark.integration  # a Feast repo of its own
@pytest.mark.parametrize("absent", [True, False], ids=["absent", "all-null"])
def test_every_declared_feature_has_its_feast_type(tmp_path: Path, absent: bool) -> None:
    users, items, events = _data(absent)
    out = build_small(tmp_path, users, items, events, n_segments=5)
    declared = _declared(out, tmp_path)
    assert set(declared) == {
        "user_profile",
        "user_daily",
        "item_catalog",
        "item_daily",
        "user_realtime",
    }
    for table, columns in declared.items():
        schema = pq.read_schema(out / f"{table}.parquet")
        for name, wanted in columns.items():
            got = schema.field(name).type
            if pa.types.is_list(wanted):
                assert pa.types.is_list(got), (table, name, got)
                assert got.value_type == wanted.value_type, (table, name, got)
            else:
                assert got == wanted, (table, name, got, wanted)


def test_absent_attributes_are_typed_nulls_and_counts_are_zero(tmp_path: Path) -> None:
    users, items, events = _data(absent=True)
    out = build_small(tmp_path, users, items, events)
    catalog = pd.read_parquet(out / "item_catalog.parquet")
    for name in ("brand", "category", "title", "price_band", "categories"):
        assert catalog[name].isna().all(), name
    assert catalog["price"].isna().all()
    profile = pd.read_parquet(out / "user_profile.parquet")
    assert profile["gender"].isna().all() and (profile["age_band"] == "unknown").all()
    daily = pd.read_parquet(out / "user_daily.parquet")
    assert (daily["sessions_30d"] == 0).all() and (daily["share_mobile"] == 0.0).all()
    assert all(len(b) == 0 for b in daily["top_brands"])
    assert (daily["views_30d"] + daily["purchases_30d"] > 0).any()
    realtime = pd.read_parquet(out / "user_realtime.parquet")
    assert realtime["rt_last_category"].isna().all()


def test_tiny_data_builds_with_segments_for_few_users(tmp_path: Path) -> None:
    # 8 users, 6 items, 5 days, all-null demographics; more segments asked than fit.
    users, items, events = _data(absent=False)
    out = build_small(tmp_path, users, items, events, n_segments=10)
    model = json.loads((out / "segments_model.json").read_text())
    assert 1 <= len(model["centroids"]) <= 8
    daily = pd.read_parquet(out / "user_daily.parquet")
    assert daily["segment"].notna().all()
    assert set(daily["segment_name"]) <= set(model["names"])
    assert set(daily["user_id"]) == {e["user_id"] for e in events}


def test_one_user_one_event_builds(tmp_path: Path) -> None:
    out = build_small(
        tmp_path,
        [{"user_id": "only"}],
        [{"item_id": "x"}],
        [
            {
                "user_id": "only",
                "item_id": "x",
                "event_type": "purchase",
                "timestamp": pd.Timestamp("2026-01-01T12:00:00", tz="UTC"),
                "value": None,
                "price": None,
            }
        ],
    )
    daily = pd.read_parquet(out / "user_daily.parquet")
    assert list(daily["purchases_1d"]) == [1]
    assert len(json.loads((out / "segments_model.json").read_text())["centroids"]) == 1
