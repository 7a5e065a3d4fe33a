"""Edge sizes and switched-off defects."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from tailwise.synthetic import DefectRates, GenerateConfig, generate

NO_DEFECTS = DefectRates(**{name: 0.0 for name in DefectRates.model_fields})


def test_smallest_world(tmp_path: Path) -> None:
    summary = generate(GenerateConfig(users=1, items=1, days=1), tmp_path)
    assert summary.rows["users"] == 1 and summary.rows["items"] == 1
    for name in ("users", "items", "events", "defects"):
        assert (tmp_path / f"{name}.parquet").exists(), name


def test_fewer_items_than_categories_and_many_chunks(tmp_path: Path) -> None:
    seen: list[int] = []
    summary = generate(
        GenerateConfig(users=50, items=5, days=5, chunk_users=7), tmp_path, progress=seen.append
    )
    assert seen == [7, 14, 21, 28, 35, 42, 49, 50]
    items = set(pq.read_table(tmp_path / "items.parquet").column("item_id").to_pylist())
    events = pq.read_table(tmp_path / "events.parquet").to_pandas()
    assert summary.rows["events"] == len(events) > 0
    assert set(events["item_id"]) <= items


def test_no_defects_means_clean_tables(tmp_path: Path) -> None:
    summary = generate(GenerateConfig(users=80, items=40, days=10, defects=NO_DEFECTS), tmp_path)
    assert pq.read_table(tmp_path / "defects.parquet").num_rows == 0
    counts = json.loads((tmp_path / "defects.json").read_text())["counts"]
    assert sum(counts.values()) == 0
    events = pq.read_table(tmp_path / "events.parquet").to_pandas()
    assert events["timestamp"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    assert events["event_id"].is_unique
    users = pq.read_table(tmp_path / "users.parquet").to_pandas()
    assert len(users) == 80 and users[["age", "gender", "country"]].notna().all().all()
    assert summary.seconds > 0
