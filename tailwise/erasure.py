"""Erasure everywhere offline: the person's rows out of every table under the data folders,
out of the DVC cache, and a record that keeps them out.

    tailwise forget / DELETE /users/{id}
        clean data (tailwise.ingest.erasure.forget_user)  -> erasures.parquet (the ledger
                                                             ingestion reads)
        online (tailwise.features.online.erase_online)   -> the Redis ledger
                                                             (`ledger_key`, the consumer reads)
        erase_files(roots): every other file holding the person under the data folders
            Parquet: rows with the id in a string column (or inside JSON text) dropped
            CSV / JSONL / Markdown / text: lines holding the id dropped
            JSON: list entries and object members holding the id dropped
            anything else that holds the id (a SavedModel's vocabulary, an .npz) cannot be
            rewritten row by row: it is listed to be rebuilt (`dvc repro`)
        erase_dvc_cache(cache): every cache object (an earlier version of an output) that
            holds the person is deleted; `dvc checkout` of such a version then says it is
            missing instead of bringing the person back

`find_traces` is the scan behind both and behind the tests: the files that hold an id.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

TEXT_SUFFIXES = (".csv", ".tsv", ".jsonl", ".md", ".txt", ".html", ".log")
PARQUET_MAGIC = b"PAR1"


def ledger_key(project: str) -> str:
    """Redis set of the keyed pseudonyms of erased people (tailwise.privacy.pseudonymise);
    the offline consumer drops their entries, so a replay cannot bring them back."""
    return f"tailwise:{project}:erased"


def record_online(client: Any, project: str, ids: Sequence[str], key: bytes) -> None:
    """Add the people's pseudonyms to the Redis ledger (before their data is erased, so a
    consumer running meanwhile already drops what is left)."""
    from tailwise.privacy import pseudonymise

    client.sadd(ledger_key(project), *pseudonymise(pd.Series(list(ids)), key))


def erased_filter(
    client: Any, project: str, ledgers: Sequence[Path], key: Callable[[], bytes]
) -> Callable[[pd.Series], pd.Series] | None:
    """Which user ids are erased, from the Redis ledger and erasures.parquet files; None
    when nobody is (the key is only loaded when somebody is)."""
    from tailwise.ingest.pipeline import erased_hashes
    from tailwise.privacy import pseudonymise

    members: Any = client.smembers(ledger_key(project))
    hashes = {m.decode() if isinstance(m, bytes) else str(m) for m in members}
    for folder in ledgers:
        hashes |= erased_hashes(Path(folder))
    if not hashes:
        return None
    secret = key()

    def erased(users: pd.Series) -> pd.Series:
        return pseudonymise(users, secret).isin(hashes)

    return erased


@dataclass
class FilesResult:
    rewritten: list[Path] = field(default_factory=list)
    rows_removed: int = 0
    to_rebuild: list[Path] = field(default_factory=list)


def _pattern(ids: Sequence[str]) -> re.Pattern[bytes]:
    """An id as a whole token: not part of a longer id (u1 is not in u10 or xu1)."""
    alternatives = b"|".join(re.escape(i.encode()) for i in sorted(ids, key=len, reverse=True))
    return re.compile(rb"(?<![\w\-.@+])(?:" + alternatives + rb")(?![\w\-@])")


def _files(roots: Iterable[Path]) -> Iterable[Path]:
    for root in roots:
        root = Path(root)
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from (p for p in sorted(root.rglob("*")) if p.is_file() and ".dvc" not in p.parts)


def _parquet_hits(table: pa.Table, ids: Sequence[str]) -> pa.ChunkedArray | None:
    """Rows holding an id: equal to it in a string column, or quoted inside JSON text."""
    hit = None
    values = pa.array(list(ids))
    for name in table.column_names:
        column = table[name]
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        found = pc.fill_null(pc.is_in(column, value_set=values), False)
        for i in ids:
            found = pc.or_(found, pc.fill_null(pc.match_substring(column, f'"{i}"'), False))
        hit = found if hit is None else pc.or_(hit, found)
    return hit


def _rewrite_parquet(path: Path, ids: Sequence[str]) -> int:
    table = pq.read_table(path)
    hit = _parquet_hits(table, ids)
    n = 0 if hit is None else int(pc.sum(hit).as_py() or 0)
    if n:
        tmp = path.with_name(f".{path.name}.erasing")
        pq.write_table(table.filter(pc.invert(hit)), tmp)
        tmp.replace(path)  # a new file: a hard or reflink to the cache keeps the old one
    return n


def _drop_json(node: Any, ids: set[str]) -> tuple[Any, int]:
    """`node` without list entries and members that are or hold one of `ids`."""
    if isinstance(node, dict):
        out, n = {}, 0
        for k, v in node.items():
            if k in ids or (isinstance(v, str) and v in ids):
                n += 1
                continue
            kept, m = _drop_json(v, ids)
            out[k], n = kept, n + m
        return out, n
    if isinstance(node, list):
        kept_items, n = [], 0
        for v in node:
            if (isinstance(v, str) and v in ids) or (isinstance(v, dict) and _holds(v, ids)):
                n += 1
                continue
            kept, m = _drop_json(v, ids)
            kept_items.append(kept)
            n += m
        return kept_items, n
    return node, 0


def _holds(record: dict[str, Any], ids: set[str]) -> bool:
    return any(isinstance(v, str) and v in ids for v in record.values())


def _rewrite_text(path: Path, pattern: re.Pattern[bytes]) -> int:
    lines = path.read_bytes().splitlines(keepends=True)
    kept = [line for line in lines if not pattern.search(line)]
    if len(kept) < len(lines):
        tmp = path.with_name(f".{path.name}.erasing")
        tmp.write_bytes(b"".join(kept))
        tmp.replace(path)
    return len(lines) - len(kept)


def _rewrite_json(path: Path, ids: Sequence[str]) -> int | None:
    try:
        document = json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError):
        return None
    kept, n = _drop_json(document, set(ids))
    if n:
        tmp = path.with_name(f".{path.name}.erasing")
        tmp.write_text(json.dumps(kept, indent=2, default=str) + "\n")
        tmp.replace(path)
    return n


def holds(path: Path, ids: Sequence[str], pattern: re.Pattern[bytes] | None = None) -> bool:
    """Does the file hold one of `ids` (a Parquet row, or the id's bytes anywhere else)?"""
    pattern = pattern or _pattern(ids)
    with path.open("rb") as f:
        head = f.read(4)
    if head == PARQUET_MAGIC:
        try:
            hit = _parquet_hits(pq.read_table(path), ids)
        except (pa.ArrowException, OSError):
            hit = None
        else:
            return hit is not None and bool(pc.any(hit).as_py())
    return bool(pattern.search(path.read_bytes()))


def erase_files(roots: Iterable[Path], ids: Sequence[str]) -> FilesResult:
    """Rewrite every file under `roots` that holds one of `ids` without it; list those that
    cannot be rewritten (binary models) to be rebuilt."""
    result, pattern = FilesResult(), _pattern(ids)
    for path in _files(roots):
        if path.name.endswith(".erasing") or not holds(path, ids, pattern):
            continue
        n: int | None
        if path.read_bytes()[:4] == PARQUET_MAGIC:
            n = _rewrite_parquet(path, ids)
        elif path.suffix == ".json":
            n = _rewrite_json(path, ids)
        elif path.suffix in TEXT_SUFFIXES:
            n = _rewrite_text(path, pattern)
        else:
            n = None
        if n is None or holds(path, ids, pattern):
            result.to_rebuild.append(path)
            continue
        result.rewritten.append(path)
        result.rows_removed += n
    return result


def erase_dvc_cache(cache: Path, ids: Sequence[str]) -> list[Path]:
    """Delete the DVC cache objects (earlier versions of outputs) that hold one of `ids`;
    directory manifests (`.dir`) list hashes and names only and stay."""
    if not Path(cache).is_dir():
        return []
    pattern, removed = _pattern(ids), []
    for path in sorted(Path(cache).rglob("*")):
        if not path.is_file() or path.suffix == ".dir" or path.name.endswith(".tmp"):
            continue
        if holds(path, ids, pattern):
            path.unlink()
            removed.append(path)
    return removed


def find_traces(roots: Iterable[Path], ids: Sequence[str]) -> list[Path]:
    """Every file under `roots` (DVC cache included when a root holds it) with one of `ids`."""
    pattern, found = _pattern(ids), []
    for root in roots:
        root = Path(root)
        files = [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else [root]
        found += [p for p in files if root.exists() and holds(p, ids, pattern)]
    return sorted(set(found))


# The folders `tailwise forget` rewrites besides the clean data and the served logs.
DEFAULT_STORES = (
    Path("data/raw"),
    Path("data/features"),
    Path("data/training"),
    Path("data/evaluation"),
    Path("data/models"),
    Path("monitoring/reports"),
)


@dataclass
class Forgotten:
    """What one erasure removed, store by store."""

    ids: list[str]
    clean_rows: int = 0
    served_rows: int = 0
    files: FilesResult = field(default_factory=FilesResult)
    spill_removed: int = 0
    cache_removed: list[Path] = field(default_factory=list)


def person_ids(user: str, data: Path, key: bytes) -> list[str]:
    """The ids the person goes by: merged ids from the clean data, and the pseudonym the
    API gives an id that is an e-mail address or phone number."""
    from tailwise.ingest.erasure import person_ids as merged_ids
    from tailwise.privacy import personal_kind, pseudonym

    ids = set(merged_ids(data, user))
    if personal_kind(user):
        ids.add(pseudonym(user, key))
    return sorted(ids)


def forget_outbox(con: sqlite3.Connection, ids: Sequence[str]) -> int:
    """Delete the people's records from a spill log (serving.spill's outbox table), with
    the freed pages overwritten and the write-ahead log folded in: no copy left on disk."""
    marks = ", ".join("?" * len(ids))
    con.execute("PRAGMA secure_delete=ON")
    with con:
        con.execute("BEGIN IMMEDIATE")
        gone = con.execute(
            f"DELETE FROM outbox WHERE json_extract(record, '$.user_id') IN ({marks})",
            tuple(ids),
        ).rowcount
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return int(gone)


def forget_spill(folder: Path, ids: Sequence[str]) -> int:
    """forget_outbox on every spill log under `folder` (one per project)."""
    removed = 0
    for path in sorted(Path(folder).rglob("outbox.sqlite3")):
        con = sqlite3.connect(path, timeout=10, isolation_level=None)
        try:
            removed += forget_outbox(con, ids)
        finally:
            con.close()
    return removed


def forget_offline(
    user: str,
    key: bytes,
    data: Path,
    served: Path,
    stores: Sequence[Path] = DEFAULT_STORES,
    dvc_cache: Path = Path(".dvc/cache"),
    spill: Path | None = None,
) -> Forgotten:
    """Erase the person from the clean data (recorded in its ledger, erasures.parquet),
    the served logs, every file under `stores`, the spill logs under `spill` and the DVC
    cache. Without clean data (no users.parquet) only the given id is erased."""
    from tailwise.ingest.erasure import forget_served, forget_user

    ids = person_ids(user, Path(data), key)
    done = Forgotten(ids)
    if (Path(data) / "users.parquet").exists():
        result = forget_user(Path(data), user, key)
        done.ids = ids = sorted(set(ids) | set(result.ids))
        done.clean_rows = result.users_removed + result.events_removed + result.other_rows_removed
    if Path(served).exists():
        done.served_rows = forget_served(Path(served), ids)
    done.files = erase_files([Path(data), Path(served), *stores], ids)
    if spill is not None:
        done.spill_removed = forget_spill(spill, ids)
    done.cache_removed = erase_dvc_cache(dvc_cache, ids)
    return done
