"""The Ray engine of the feature build equals the DuckDB engine, table by table and row by row."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tailwise.features import build
from tailwise.features.build import TABLE_KEYS, build_features
from tailwise.features.config import FeaturesParams
from tailwise.ray_jobs import shard_of
from tests.features.conftest import event, item, user, write_clean

# Tables with several rows per key are sorted by the key, then the validity instant.
SORT_KEYS = {name: [key, "event_timestamp"] for name, key in TABLE_KEYS.items()}


def test_shard_of_is_crc32_of_the_key_and_stable() -> None:
    keys = pa.array(["u1", "u2", None, "u1", "ü-7"])
    shards = shard_of(keys, 4)
    expected = [zlib.crc32(k.encode()) % 4 for k in ("u1", "u2")]
    assert shards.tolist() == [*expected, 0, expected[0], zlib.crc32("ü-7".encode()) % 4]
    assert shard_of(pa.chunked_array([keys]), 4).tolist() == shards.tolist()


@pytest.fixture(scope="module")
def ray_two_cpus() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    for attempt in range(3):
        # Ray gives its raylet 30 s to register, which a loaded shared machine can miss.
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            break
        except Exception:
            ray.shutdown()
            if attempt == 2:
                raise
    try:
        yield
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_ray_build_equals_duckdb_build(
    generated: tuple[Path, Path], ray_two_cpus: None, tmp_path: Path
) -> None:
    clean, duck = generated
    mp = pytest.MonkeyPatch()
    mp.setattr(build, "EVENTS_PER_BUCKET", 7_000)  # more shards than workers
    try:
        summary = build_features(clean, tmp_path, FeaturesParams(engine="ray", workers=2))
    finally:
        mp.undo()
    assert summary.events_in > 4 * 7_000
    _assert_tables_equal(duck, tmp_path)
    model_d = json.loads((duck / "segments_model.json").read_text())
    model_r = json.loads((tmp_path / "segments_model.json").read_text())
    assert model_r["names"] == model_d["names"]
    assert model_r["n_fit"] == model_d["n_fit"]
    np.testing.assert_allclose(model_r["centroids"], model_d["centroids"], rtol=1e-9, atol=1e-12)
    manifest_d = json.loads((duck / "features_manifest.json").read_text())
    manifest_r = json.loads((tmp_path / "features_manifest.json").read_text())
    assert manifest_r["tables"] == manifest_d["tables"]
    assert manifest_r["params"]["engine"] == "ray"
    assert json.loads((tmp_path / "data_version.json").read_text()) == json.loads(
        (duck / "data_version.json").read_text()
    )


@pytest.mark.slow
def test_ray_build_with_empty_shards_equals_duckdb_build(
    ray_two_cpus: None, tmp_path: Path
) -> None:
    # One user and two items over three days: most of the shards hold no events.
    events = [
        event("u1", "i1", "2026-03-01T10:00:00"),
        event("u1", "i2", "2026-03-01T10:05:00", "add_to_cart"),
        event("u1", "i2", "2026-03-02T18:00:00", "purchase"),
        event("u1", "i1", "2026-03-03T07:30:00", session_id="s2", device="desktop"),
    ]
    clean = write_clean(
        tmp_path / "clean", [user("u1")], [item("i1"), item("i2", "Toys/Cars")], events
    )
    params = {"n_segments": 2, "segment_cutoff": "2026-03-03T00:00:00Z"}
    build_features(clean, tmp_path / "duck", FeaturesParams(**params))
    build_features(clean, tmp_path / "ray", FeaturesParams(engine="ray", workers=2, **params))
    _assert_tables_equal(tmp_path / "duck", tmp_path / "ray")


def _assert_tables_equal(duck: Path, ray: Path) -> None:
    for name in TABLE_KEYS:
        left, right = (
            pq.read_table(duck / f"{name}.parquet"),
            pq.read_table(ray / f"{name}.parquet"),
        )
        # Names and Arrow types; not Parquet's required flag, which DuckDB sets on columns
        # it proves constant (differently for a one-file and a many-file scan), and which
        # readers (pyarrow, pandas, Feast) ignore.
        differ = [
            (a, b) for a, b in zip(left.schema, right.schema, strict=False) if a.type != b.type
        ]
        assert right.schema.names == left.schema.names and not differ, (name, differ)
        assert right.num_rows == left.num_rows > 0, name
        _assert_rows_equal(name, _sorted(left, name), _sorted(right, name))


def _sorted(table: pa.Table, name: str) -> pa.Table:
    # created_timestamp is the build's own clock, not a feature.
    table = table.drop_columns(["created_timestamp"])
    return table.sort_by([(k, "ascending") for k in SORT_KEYS[name]])


def _assert_rows_equal(name: str, left: pa.Table, right: pa.Table) -> None:
    for column in left.column_names:
        a, b = left[column].combine_chunks(), right[column].combine_chunks()
        where = f"{name}.{column}"
        if pa.types.is_list(a.type):
            assert pc.list_value_length(a).equals(pc.list_value_length(b)), where
            assert a.is_null().equals(b.is_null()), where
            a, b = pc.list_flatten(a), pc.list_flatten(b)
        if pa.types.is_floating(a.type):
            assert a.is_null().equals(b.is_null()), where
            x = a.to_numpy(zero_copy_only=False)
            y = b.to_numpy(zero_copy_only=False)
            np.testing.assert_allclose(y, x, rtol=1e-9, atol=1e-9, err_msg=where)
        else:
            assert a.equals(b), where
