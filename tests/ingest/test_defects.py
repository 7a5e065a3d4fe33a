"""Ingestion finds the defects the generator injected, checked instance by instance."""

from __future__ import annotations

import pandas as pd
import pytest

from tailwise.ingest.outcome import BUCKETS
from tailwise.ingest.pipeline import run_ingest
from tailwise.params import IngestParams
from tailwise.synthetic import GenerateConfig, generate
from tests.ingest.conftest import KEY


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[type-arg]
    root = tmp_path_factory.mktemp("defects")
    generate(GenerateConfig(users=4000, items=800, days=30, seed=7), root / "raw")
    report = run_ingest(
        root / "clean", IngestParams(duckdb_memory_limit="1GB"), KEY, source=root / "raw"
    )
    manifest = pd.read_parquet(root / "raw" / "defects.parquet")
    return {"raw": root / "raw", "clean": root / "clean", "report": report, "manifest": manifest}


def kept_source_ids(world: dict) -> set[str]:  # type: ignore[type-arg]
    """Source user ids whose data the clean tables keep (consented people, merged ids too)."""
    kept = set(pd.read_parquet(world["clean"] / "users.parquet")["user_id"])
    return kept | set(pd.read_parquet(world["clean"] / "user_merges.parquet")["user_id"])


def of_kept_users(world: dict, kind: str) -> pd.DataFrame:  # type: ignore[type-arg]
    """Manifest rows of `kind` about events or users of people the clean data keeps."""
    rows = of(world["manifest"], kind)
    raw = pd.read_parquet(world["raw"] / "events.parquet", columns=["event_id", "user_id"])
    owner = dict(zip(raw["event_id"], raw["user_id"], strict=False))
    user = rows["id"].map(owner).where(rows["table"] == "events", rows["id"])
    keep = kept_source_ids(world)
    # Events for unknown users have no owner to keep: they are always judged.
    return rows.loc[
        user.isin(keep) | (rows["column"].eq("user_id") & rows["kind"].eq("unknown_references"))
    ]


def of(manifest: pd.DataFrame, kind: str) -> pd.DataFrame:
    rows = manifest.loc[manifest["kind"] == kind]
    assert len(rows) > 0, f"the generator injected no {kind}"
    return rows


def test_reconciliation_on_generated_data(world: dict) -> None:  # type: ignore[type-arg]
    for table, t in world["report"]["tables"].items():
        assert t["input"] == sum(t[b] for b in BUCKETS), table


def test_all_exact_duplicate_events_found(world: dict) -> None:  # type: ignore[type-arg]
    dup_ids = set(of(world["manifest"], "duplicate_events")["id"])
    events = pd.read_parquet(world["clean"] / "events")
    assert events["event_id"].is_unique
    kept_dups = events.loc[events["event_id"].isin(dup_ids)]
    assert len(kept_dups) > 0.8 * len(dup_ids)  # the rest belong to excluded or bad rows
    raw = pd.read_parquet(world["raw"] / "events.parquet")
    extra_rows = len(raw) - raw["event_id"].nunique()
    t = world["report"]["tables"]["events"]
    quarantined_or_excluded_dups = extra_rows - t["duplicates_merged"]
    assert 0 <= quarantined_or_excluded_dups < 0.2 * extra_rows


def test_near_duplicate_users_recall_and_precision(world: dict) -> None:  # type: ignore[type-arg]
    truth = of(world["manifest"], "near_duplicate_users")
    merges = pd.read_parquet(world["clean"] / "user_merges.parquet")
    # Merges are only kept for people in the clean tables (consent); judge those.
    kept = set(pd.read_parquet(world["clean"] / "users.parquet")["user_id"])
    truth = truth.loc[truth["id"].isin(kept) | truth["related_id"].isin(kept)]
    assert len(truth) > 30
    canon = dict(zip(merges["user_id"], merges["canonical_user_id"], strict=True))

    def root(u: str) -> str:
        return canon.get(u, u)

    found = sum(root(d) == root(o) for d, o in zip(truth["id"], truth["related_id"], strict=True))
    recall = found / len(truth)
    true_pairs = set(zip(truth["id"], truth["related_id"], strict=True))
    true_pairs |= {(b, a) for a, b in true_pairs}
    correct = sum((u, c) in true_pairs or _same_person(u, c, truth) for u, c in canon.items())
    precision = correct / len(canon)
    assert recall >= 0.95, recall
    assert precision >= 0.99, precision


def _same_person(a: str, b: str, truth: pd.DataFrame) -> bool:
    original = dict(zip(truth["id"], truth["related_id"], strict=True))
    return original.get(a, a) == original.get(b, b)


def test_every_impossible_value_found(world: dict) -> None:  # type: ignore[type-arg]
    bad = of_kept_users(world, "impossible_values")
    fixes = pd.read_parquet(world["clean"] / "corrections.parquet")
    found = set(zip(fixes["table_name"], fixes["id"], fixes["column_name"], strict=True))
    quarantine = pd.read_parquet(world["clean"] / "quarantine.parquet")
    quarantined_events = set(quarantine["row_json"].str.extract(r'"event_id":"([^"]+)"')[0])
    for table, id_, column in zip(bad["table"], bad["id"], bad["column"], strict=True):
        assert (table, id_, column) in found or id_ in quarantined_events, (table, id_, column)


def test_every_malformed_timestamp_and_unknown_reference_quarantined(world: dict) -> None:  # type: ignore[type-arg]
    q = pd.read_parquet(world["clean"] / "quarantine.parquet").query("table_name == 'events'")
    event_ids = q["row_json"].str.extract(r'"event_id":"([^"]+)"')[0]
    flagged = dict(zip(event_ids, q["column_name"], strict=True))
    for kind in ("malformed_timestamps", "unknown_references"):
        rows = of_kept_users(world, kind)
        assert len(rows) > 0.8 * len(of(world["manifest"], kind))
        for id_, column in zip(rows["id"], rows["column"], strict=True):
            assert flagged.get(id_) == column, (kind, id_, column)


def test_category_spellings_normalised(world: dict) -> None:  # type: ignore[type-arg]
    rows = of(world["manifest"], "category_spellings")
    items = pd.read_parquet(world["clean"] / "items.parquet").set_index("item_id")
    got = items.loc[rows["id"], "category"].tolist()
    assert got == rows["related_id"].tolist()
    raw = pd.read_parquet(world["raw"] / "items.parquet")
    assert items["category"].nunique() < raw["category"].nunique()


def test_missing_demographics_are_imputed_and_flagged(world: dict) -> None:  # type: ignore[type-arg]
    rows = of(world["manifest"], "missing_demographics")
    users = pd.read_parquet(world["clean"] / "users.parquet").set_index("user_id")
    merged = set(pd.read_parquet(world["clean"] / "user_merges.parquet")["canonical_user_id"])
    kept = rows.loc[rows["id"].isin(users.index) & ~rows["id"].isin(merged)]
    assert len(kept) > 0.8 * len(rows)
    for user_id, column in zip(kept["id"], kept["column"], strict=True):
        assert users.loc[user_id, f"{column}_imputed"], (user_id, column)
        assert pd.notna(users.loc[user_id, column])
