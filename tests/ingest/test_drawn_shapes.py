"""Drawn dataset shapes through ingest alone: any combination of absent and all-null
optional columns, eras, mixes and formats either ingests into typed clean tables whose
counts reconcile, or stops with a message naming a parameter or column and its reports in
OUT/rejected/."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings

from tailwise.ingest.errors import IngestStopped
from tailwise.ingest.outcome import BUCKETS
from tailwise.ingest.pipeline import run_ingest
from tailwise.params import IngestParams
from tests.contract_shapes import Shape, shapes, write_shape
from tests.ingest.conftest import KEY
from tests.ingest.test_optional import assert_typed

PARAMS = IngestParams(duckdb_memory_limit="1GB", consent_default=True)
NAMES = re.compile(r"ingest\.[a-z_]+|column '[a-z_]+'")


@seed(17)
@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(shape=shapes())
def test_drawn_shapes_ingest_or_stop_with_a_named_cause(shape: Shape) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_shape(shape, folder / "raw")
        try:
            report = run_ingest(folder / "out", PARAMS, KEY, source=folder / "raw")
        except IngestStopped as stop:
            assert NAMES.search(str(stop)), str(stop)
            report = json.loads((folder / "out" / "rejected" / "quality_report.json").read_text())
            assert report["stopped"]
            assert not (folder / "out" / "users.parquet").exists()
        else:
            assert all(t["kept"] > 0 for t in report["tables"].values())
            assert_typed(folder / "out")
        for name, t in report["tables"].items():
            assert t["input"] == sum(t[b] for b in BUCKETS), name
