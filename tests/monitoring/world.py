"""A small hand-made world for monitoring tests: a model folder, clean events of its
training window, and a served log (requests + events) written as Parquet the way
`tailwise events consume` writes it. No Redis, no Feast: the reference's feature vectors
come from `FakeFeatures`, a deterministic function of the entity rows."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from monitoring.config import MonitoringParams, RetrainPolicy
from tailwise.ingest.events import CLEAN_COLUMNS

TRAINED_BEFORE = datetime(2026, 10, 25, tzinfo=UTC)
DAY1 = datetime(2026, 11, 1, tzinfo=UTC)  # the model's first served day
NUMERIC = ["age", "views_7d", "spend_30d", "ctx_local_hour", "ctx_is_weekend"]
CATEGORICAL = ["country", "segment_name"]
COUNTRIES = ["DE", "FR", "US", "GB"]
SEGMENTS = ["browsers", "frequent buyers", "new"]
ITEMS = [f"i{n:03d}" for n in range(60)]

REQUESTS_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("user_id", pa.string()),
        ("model_version", pa.string()),
        ("degraded", pa.bool_()),
        ("latency_ms", pa.float64()),
        ("items", pa.string()),
        ("features", pa.string()),
        ("extra", pa.string()),
    ]
)
EVENT_COLUMNS = CLEAN_COLUMNS  # the clean events' columns, which served events share
EVENTS_SCHEMA = pa.schema(
    [
        pa.field(c, pa.timestamp("us", tz="UTC"))
        if c == "timestamp"
        else pa.field(c, pa.float64() if c in ("value", "price", "weight") else pa.string())
        for c in EVENT_COLUMNS
    ]
    # the links an API event may carry (tailwise.ingest.streams)
    + [
        pa.field("request_id", pa.string()),
        pa.field("slot", pa.string()),
        pa.field("position", pa.int64()),
    ]
)
WEIGHTS = {"page_view": 0.1, "product_view": 1.0, "add_to_cart": 3.0, "purchase": 5.0}


def small_params(**changes: Any) -> MonitoringParams:
    """Small minimums so that a few hundred requests are judged."""
    policy = RetrainPolicy(min_feature_rows=100, min_scores=100, min_requests=20)
    return MonitoringParams(**{"retrain": policy, "reference_rows": 2000, **changes})


def write_model(
    models: Path,
    version: str = "v1",
    trained_before: datetime = TRAINED_BEFORE,
    created_at: datetime | None = None,
    latest: bool = True,
) -> Path:
    folder = models / version
    (folder / "ranker").mkdir(parents=True)
    manifest = {
        "format_version": 1,
        "version": version,
        "created_at": (created_at or trained_before + timedelta(hours=1)).isoformat(),
        "data_version": "d1",
        "trained_on": f"events before {trained_before.isoformat()}",
        "feature_services": {"retrieval": "retrieval_v1", "ranking": "ranking_v1"},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    ranker = {
        "feature_service": "ranking_v1",
        "feature_names": ["retrieval_score", *NUMERIC, *CATEGORICAL, "price"],
        "categories": {"country": COUNTRIES, "segment_name": SEGMENTS, "category_l1": ["Books"]},
    }
    (folder / "ranker" / "ranker.json").write_text(json.dumps(ranker))
    if latest:
        (models / "LATEST").write_text(version + "\n")
    return folder


def event(
    user: str, item: str, when: datetime, kind: str = "product_view", n: int = 0, **extra: Any
) -> dict[str, Any]:
    return {
        "event_id": extra.pop("event_id", f"e-{user}-{item}-{when:%Y%m%d%H%M%S}-{kind}-{n}"),
        "user_id": user,
        "item_id": item,
        "event_type": kind,
        "timestamp": when,
        "value": None,
        "price": extra.pop("price", 20.0 if kind == "purchase" else None),
        "weight": WEIGHTS.get(kind, 1.0),
        "session_id": "s1",
        "device": extra.pop("device", "mobile"),
        "channel": "search",
        "country": extra.pop("country", "DE"),
        **extra,
    }


def write_events(root: Path, rows: Iterable[dict[str, Any]], name: str = "part-0") -> None:
    """Events into root/event_date=YYYY-MM-DD/<name>.parquet (clean events schema)."""
    frame = pd.DataFrame(list(rows), columns=EVENT_COLUMNS)
    for link in ("request_id", "slot", "position"):
        frame[link] = None
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    for day, part in frame.groupby(frame["timestamp"].dt.strftime("%Y-%m-%d")):
        folder = root / f"event_date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(part, schema=EVENTS_SCHEMA, preserve_index=False)
        pq.write_table(table.replace_schema_metadata(), folder / f"{name}.parquet")


def request(
    rid: str,
    ts: datetime,
    user: str,
    items: list[str],
    scores: list[float] | None = None,
    features: dict[str, Any] | None = None,
    version: str = "v1",
    cold_start: bool = False,
) -> dict[str, Any]:
    """A served-log row as serving/graph.py logs it and tailwise/ingest/streams.py stores it."""
    extra = {
        "k": len(items),
        "device": "mobile",
        "country": "DE",
        "scores": scores if scores is not None else [1.0 - 0.05 * i for i in range(len(items))],
        "cold_start": cold_start,
    }
    return {
        "request_id": rid,
        "ts": ts,
        "user_id": user,
        "model_version": version,
        "degraded": None,
        "latency_ms": None,
        "items": json.dumps(items),
        "features": None if features is None else json.dumps(features),
        "extra": json.dumps(extra),
    }


def write_requests(served: Path, rows: Iterable[dict[str, Any]], name: str = "part-0") -> None:
    frame = pd.DataFrame(list(rows), columns=REQUESTS_SCHEMA.names)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    for day, part in frame.groupby(frame["ts"].dt.strftime("%Y-%m-%d")):
        folder = served / "requests" / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(part, schema=REQUESTS_SCHEMA, preserve_index=False)
        pq.write_table(table.replace_schema_metadata(), folder / f"{name}.parquet")


def feature_vector(rng: np.random.Generator, shifted: bool = False) -> dict[str, Any]:
    """A user's logged features; `shifted` moves views, spend and the country mix."""
    country_p = [0.1, 0.1, 0.7, 0.1] if shifted else [0.4, 0.3, 0.2, 0.1]
    return {
        "age": int(rng.integers(18, 70)),
        "views_7d": int(rng.poisson(12 if shifted else 4)),
        "spend_30d": float(rng.gamma(2.0, 90.0 if shifted else 30.0)),
        "ctx_local_hour": int(rng.integers(0, 24)),
        "ctx_is_weekend": bool(rng.random() < 0.3),
        "country": str(rng.choice(COUNTRIES, p=country_p)),
        "segment_name": str(rng.choice(SEGMENTS)),
    }


@dataclass
class FakeFeatures:
    """Stands in for FeastFeatures: one feature vector per entity row, seeded."""

    columns: list[str]
    calls: int = 0

    def __call__(self, entity_rows: pd.DataFrame) -> pd.DataFrame:
        self.calls += 1
        rng = np.random.default_rng(len(entity_rows))
        return pd.DataFrame([feature_vector(rng) for _ in range(len(entity_rows))])


@dataclass
class World:
    root: Path
    models: Path
    served: Path
    clean: Path
    out: Path


def build_world(root: Path, requests_per_day: int = 300) -> World:
    """Training-window events; day 1 served as trained, day 2 with drifted features and
    lower scores; users click served items a few hours after some serves."""
    world = World(root, root / "models", root / "served", root / "clean", root / "reports")
    write_model(world.models)
    rng = np.random.default_rng(7)
    users = [f"u{n:03d}" for n in range(80)]
    training = [
        event(
            str(rng.choice(users)),
            str(rng.choice(ITEMS)),
            TRAINED_BEFORE - timedelta(minutes=int(rng.integers(1, 14 * 24 * 60))),
            str(rng.choice(["page_view", "product_view", "add_to_cart", "purchase"])),
            n,
        )
        for n in range(600)
    ]
    write_events(world.clean / "events", training)
    pd.DataFrame({"item_id": ITEMS}).to_parquet(world.clean / "items.parquet")
    rows, events = [], []
    for day in range(2):
        start = DAY1 + timedelta(days=day)
        for n in range(requests_per_day):
            ts = start + timedelta(seconds=int(rng.integers(0, 20 * 3600)))
            user = str(rng.choice(users))
            items = [str(i) for i in rng.choice(ITEMS, size=10, replace=False)]
            top = 0.9 if day == 0 else 0.4
            scores = [round(top - 0.03 * i + float(rng.normal(0, 0.05)), 6) for i in range(10)]
            cold = n % 10 == 0
            rows.append(
                request(
                    f"r{day}-{n:04d}",
                    ts,
                    user,
                    items,
                    scores,
                    None if cold else feature_vector(rng, shifted=day == 1),
                    cold_start=cold,
                )
            )
            if rng.random() < 0.4:  # a click on a served item, sometimes a purchase
                item = items[int(rng.integers(0, 3))]
                later = ts + timedelta(hours=float(rng.uniform(0.1, 3)))
                events.append(event(user, item, later, "product_view", n))
                if rng.random() < 0.3:
                    events.append(event(user, item, later + timedelta(minutes=5), "purchase", n))
    write_requests(world.served, rows)
    write_events(world.served / "events", events)
    return world
