"""Fixtures: hand-made event logs, and one small generated + ingested set built once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tailwise.features.build import build_features
from tailwise.features.config import FeaturesParams
from tailwise.features.store import apply, teardown
from tailwise.ingest.pipeline import run_ingest
from tailwise.params import IngestParams
from tailwise.settings import Settings
from tailwise.synthetic import GenerateConfig, generate
from tests.feast_project import isolated_feast_settings

WEIGHTS = {"page_view": 0.1, "product_view": 1.0, "add_to_cart": 3.0, "purchase": 5.0}


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def events(*rows: tuple) -> pd.DataFrame:
    """Events from (user, item, when[, kind[, value]]) tuples, shaped like clean events."""
    records = []
    for n, row in enumerate(rows):
        user, item, when, *rest = row
        kind = rest[0] if rest else "product_view"
        value = rest[1] if len(rest) > 1 else None
        weight = 2.0 * value / 5 if kind == "rating" else WEIGHTS[kind]
        records.append(
            {
                "event_id": f"e{n:04d}",
                "user_id": user,
                "item_id": item,
                "event_type": kind,
                "timestamp": ts(when),
                "value": value,
                "weight": weight,
            }
        )
    frame = pd.DataFrame(records)
    frame["value"] = frame["value"].astype(float)
    return frame


def items(*ids: str, created: dict[str, str] | None = None) -> pd.DataFrame:
    created = created or {}
    return pd.DataFrame(
        {
            "item_id": list(ids),
            "created_at": [ts(created.get(i, "2025-01-01")) for i in ids],
        }
    )


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(raw, clean) of a generated 600-user set: raw holds ground_truth/."""
    root = tmp_path_factory.mktemp("generated")
    generate(GenerateConfig(users=600, items=150, days=35, seed=11), root / "raw")
    run_ingest(root / "clean", IngestParams(), b"t" * 40, source=root / "raw")
    return root / "raw", root / "clean"


@dataclass
class FeatureWorld:
    raw: Path  # generator output (ground_truth/ inside)
    clean: Path  # tailwise ingest output
    features: Path  # tailwise features build output
    settings: Settings  # points Feast at this world's repo, features, project and registry
    store: Any  # feast.FeatureStore with the repo applied (not materialised)


@pytest.fixture(scope="session")
def feature_world(
    generated: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FeatureWorld]:
    """`generated` plus its feature tables and a Feast store under this session's project."""
    raw, clean = generated
    root = tmp_path_factory.mktemp("feature_world")
    build_features(clean, root / "features", FeaturesParams(duckdb_memory_limit="1GB"))
    settings = isolated_feast_settings(root / "features", root / "registry.db", "tw_train")
    store, _ = apply(settings)
    try:
        yield FeatureWorld(raw, clean, root / "features", settings, store)
    finally:
        teardown(settings, store)  # the registry holds only this project: only its keys go
