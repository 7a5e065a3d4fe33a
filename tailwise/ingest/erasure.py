"""Erasure ("forget me"): remove one person from the clean data and keep them out.

The id may be the canonical id or any source id merged onto it; every id of the person
is removed from users, events, quarantine, corrections and user_merges, and their keyed
hashes are appended to erasures.parquet, which ingestion reads so a re-ingest of the
same raw data does not bring the person back. Only event partitions that contain the
person are rewritten. `forget_served` does the same for the traffic the serving app logged
(data/served/events and requests); `tailwise.features.online.erase_online` for Redis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tailwise.ingest.errors import IngestError
from tailwise.ingest.parse import sql_in, sql_str
from tailwise.ingest.pipeline import ERASURES
from tailwise.privacy import pseudonymise


@dataclass
class ErasureResult:
    ids: list[str]
    users_removed: int
    events_removed: int
    other_rows_removed: int


def person_ids(data: Path, user_id: str) -> list[str]:
    merges_path = data / "user_merges.parquet"
    if not merges_path.exists():
        return [user_id]
    merges = pd.read_parquet(merges_path)
    canonical = merges.loc[merges["user_id"] == user_id, "canonical_user_id"]
    root = canonical.iat[0] if len(canonical) else user_id
    merged = merges.loc[merges["canonical_user_id"] == root, "user_id"].tolist()
    return sorted({root, user_id, *merged})


def forget_user(data: Path, user_id: str, key: bytes) -> ErasureResult:
    if not (data / "users.parquet").exists():
        raise IngestError(f"{data}: no users.parquet here; point --data at an ingest output")
    ids = person_ids(data, user_id)
    users_removed = _filter_file(data / "users.parquet", "user_id", ids)
    events_removed = 0
    con = duckdb.connect()
    for part in sorted((data / "events").rglob("*.parquet")):
        hits = con.execute(
            f"SELECT count(*) FROM read_parquet({sql_str(str(part))}) WHERE user_id IN {sql_in(ids)}"
        ).fetchone()
        if hits and hits[0]:
            events_removed += _filter_file(part, "user_id", ids)
    other = _filter_file(data / "user_merges.parquet", "user_id", ids)
    other += _filter_file(data / "user_merges.parquet", "canonical_user_id", ids)
    other += _filter_quarantine(data / "quarantine.parquet", ids)
    other += _filter_file(data / "corrections.parquet", "user_id", ids)
    _record(data, ids, key)
    return ErasureResult(ids, users_removed, events_removed, other)


def forget_served(served: Path, ids: list[str]) -> int:
    """Remove the person's served events and logged requests (rows removed)."""
    removed = 0
    for part in sorted(served.glob("*/*/*.parquet")):  # events/event_date=.../, requests/date=.../
        removed += _filter_file(part, "user_id", ids)
    return removed


def _filter_file(path: Path, column: str, ids: list[str]) -> int:
    if not path.exists():
        return 0
    table = pq.read_table(path)
    return _rewrite(path, table, pc.is_in(table[column], value_set=pa.array(ids)))


def _filter_quarantine(path: Path, ids: list[str]) -> int:
    if not path.exists():
        return 0
    quarantined = pq.read_table(path)
    user = (
        duckdb.connect()
        .sql("SELECT json_extract_string(row_json, '$.user_id') FROM quarantined")
        .to_arrow_table()
        .column(0)
    )
    return _rewrite(path, quarantined, pc.is_in(user, value_set=pa.array(ids)))


def _rewrite(path: Path, table: pa.Table, hit: pa.ChunkedArray) -> int:
    """Write the rows not hit back with the same schema (atomic replace)."""
    n = pc.sum(pc.fill_null(hit, False)).as_py() or 0
    if n:
        tmp = path.with_suffix(".tmp")
        pq.write_table(table.filter(pc.invert(pc.fill_null(hit, False))), tmp)
        tmp.replace(path)
    return int(n)


def _record(data: Path, ids: list[str], key: bytes) -> None:
    path = data / ERASURES
    new = pd.DataFrame(
        {
            "user_id_hmac": pseudonymise(pd.Series(ids), key),
            "erased_at": pd.Timestamp.now(tz="UTC"),
        }
    )
    if path.exists():
        new = pd.concat([pd.read_parquet(path), new], ignore_index=True)
        new = new.drop_duplicates("user_id_hmac")
    new.to_parquet(path, index=False)
