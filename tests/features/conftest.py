"""Fixtures: hand-made clean directories, and one generated 2000-user set built once."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tailwise.features import build
from tailwise.features.build import build_features
from tailwise.features.config import FeaturesParams
from tailwise.ingest.pipeline import run_ingest
from tailwise.params import IngestParams
from tailwise.synthetic import GenerateConfig, generate

UTC = "UTC"


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


def user(user_id: str, country: str = "DE", signup: str | None = "2026-01-01", **extra) -> dict:
    return {
        "user_id": user_id,
        "age": 30,
        "age_imputed": False,
        "gender": "female",
        "gender_imputed": False,
        "country": country,
        "country_imputed": False,
        "region": "Berlin",
        "region_imputed": False,
        "income_band": "high",
        "income_band_imputed": False,
        "signup_at": ts(signup) if signup else pd.NaT,
        "consent_tracking": True,
        "source_records": 1,
        **extra,
    }


def item(item_id: str, category: str = "Home/Kitchen", price: float = 10.0, brand: str = "Acme"):
    return {
        "item_id": item_id,
        "title": f"title {item_id}",
        "description": "",
        "category": category,
        "category_l1": category.split("/")[0],
        "brand": brand,
        "price": price,
        "price_imputed": False,
        "created_at": ts("2025-01-01"),
    }


def event(user_id: str, item_id: str, when: str, kind: str = "product_view", **extra) -> dict:
    weights = {"product_view": 1.0, "add_to_cart": 3.0, "purchase": 5.0, "page_view": 0.1}
    return {
        "event_id": extra.pop("event_id", f"e-{user_id}-{item_id}-{when}-{kind}"),
        "user_id": user_id,
        "item_id": item_id,
        "event_type": kind,
        "timestamp": ts(when),
        "value": extra.pop("value", 1.0 if kind == "purchase" else None),
        "price": extra.pop("price", 10.0 if kind == "purchase" else None),
        "weight": weights.get(kind, 1.0),
        "session_id": extra.pop("session_id", "s1"),
        "device": extra.pop("device", "mobile"),
        "channel": "search",
        "country": extra.pop("country", "DE"),
        **extra,
    }


def write_clean(root: Path, users: list[dict], items: list[dict], events: list[dict]) -> Path:
    """A directory shaped like `tailwise ingest` output."""
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(users).to_parquet(root / "users.parquet", index=False)
    pd.DataFrame(items).to_parquet(root / "items.parquet", index=False)
    ev = pd.DataFrame(events)
    for column in ("value", "price"):
        if column in ev:
            ev[column] = ev[column].astype(float)
    for day, part in ev.groupby(ev["timestamp"].dt.strftime("%Y-%m-%d")):
        folder = root / "events" / f"event_date={day}"
        folder.mkdir(parents=True)
        part.to_parquet(folder / "data_0.parquet", index=False)
    return root


def build_small(tmp_path: Path, users: list[dict], items: list[dict], events: list[dict], **p):
    clean = write_clean(tmp_path / "clean", users, items, events)
    out = tmp_path / "features"
    params = FeaturesParams(n_segments=p.pop("n_segments", 2), **p)
    build_features(clean, out, params)
    return out


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(clean, features) of a generated 2000-user set, built in several user buckets."""
    root = tmp_path_factory.mktemp("generated")
    generate(GenerateConfig(users=2000, items=300, days=45, seed=7), root / "raw")
    run_ingest(root / "clean", IngestParams(), b"t" * 40, source=root / "raw")
    mp = pytest.MonkeyPatch()
    mp.setattr(build, "EVENTS_PER_BUCKET", 12_000)  # several buckets: exercises the chunking
    try:
        build_features(root / "clean", root / "features", FeaturesParams())
    finally:
        mp.undo()
    return root / "clean", root / "features"


def read_events(clean: Path) -> pd.DataFrame:
    return pd.read_parquet(clean / "events").drop(columns=["event_date"], errors="ignore")
