"""Which data a derived artifact was built from: the data version of a clean directory.

A clean directory (`tailwise ingest --out`) is identified by a sha256 over its users,
items, event files and quality report, in a fixed order (rejected rows are not part of
it: they feed nothing downstream). `tailwise features build` records that version and
the data's as-of time (its newest event) in `data_version.json` beside the feature
tables; the Feast registry carries it as a tag on every source; a model version records
it in its manifest. Commands compare them before using features and refuse a mismatch
with the command that rebuilds them.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from tailwise.errors import DataError

VERSION_FILE = "data_version.json"
_CHUNK = 1 << 20
_VERSION = re.compile(r"[0-9a-f]{64}")


class DataMismatchError(DataError):
    """Derived artifacts (features, a registry) come from another data version than the
    data a command was given; the message names the command that rebuilds them."""


def data_files(clean_dir: Path) -> list[Path]:
    """The files that make up the data version, in hashing order."""
    for name in ("users.parquet", "items.parquet", "events"):
        if not (clean_dir / name).exists():
            raise DataError(
                f"{clean_dir / name} not found: is {clean_dir} a `tailwise ingest` output?"
            )
    events = sorted(
        (clean_dir / "events").rglob("*.parquet"),
        key=lambda p: p.relative_to(clean_dir).as_posix(),
    )
    files = [clean_dir / "users.parquet", clean_dir / "items.parquet", *events]
    report = clean_dir / "quality_report.json"
    return [*files, report] if report.exists() else files


def data_version(clean_dir: Path) -> str:
    """sha256 (hex) over the relative path and bytes of every file of `data_files`."""
    digest = hashlib.sha256()
    for path in data_files(clean_dir):
        digest.update(path.relative_to(clean_dir).as_posix().encode() + b"\0")
        digest.update(str(path.stat().st_size).encode() + b"\0")
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def is_version(value: object) -> bool:
    """Is `value` a data version of this module (artifacts written before it recorded other
    fingerprints, which cannot be compared)?"""
    return isinstance(value, str) and _VERSION.fullmatch(value) is not None


def as_of(clean_dir: Path) -> pd.Timestamp:
    """The data's "now": its newest event (UTC). Offline windows are relative to it."""
    import duckdb

    from tailwise.ingest.parse import sql_str

    files = [p for p in data_files(clean_dir) if p.parent != clean_dir]
    if not files:
        raise DataError(f"{clean_dir / 'events'} holds no event files")
    scan = f"read_parquet({sql_str(str(clean_dir / 'events' / '**' / '*.parquet'))})"
    with duckdb.connect() as con:
        con.execute("SET TimeZone='UTC'")
        newest = con.execute(f"SELECT max(timestamp) FROM {scan}").fetchone()[0]  # type: ignore[index]
    if newest is None:
        raise DataError(f"{clean_dir / 'events'} holds no events with a timestamp")
    stamp = pd.Timestamp(newest)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def describe(clean_dir: Path) -> dict[str, Any]:
    """What `data_version.json` records: version, as-of time and the folder."""
    return {
        "data_version": data_version(clean_dir),
        "as_of": as_of(clean_dir).isoformat(),
        "data": str(clean_dir.resolve()),
    }


def write_version(out: Path, record: dict[str, Any]) -> None:
    (out / VERSION_FILE).write_text(json.dumps(record, indent=2) + "\n")


def recorded(features_dir: Path) -> dict[str, Any] | None:
    """The `data_version.json` of a features folder, or None when there is none."""
    path = features_dir / VERSION_FILE
    return dict(json.loads(path.read_text())) if path.exists() else None


def rebuild_command(features_dir: Path, clean_dir: Path) -> str:
    return f"tailwise features build --data {clean_dir} --out {features_dir}"


def check_features(features_dir: Path, clean_dir: Path, command: str) -> None:
    """Refuse features built from another data version than `clean_dir` (nothing to check
    when `features_dir` holds no build). `command` is the command asking, e.g. "train"."""
    if not (features_dir / "features_manifest.json").exists():
        return
    record = recorded(features_dir)
    fix = f"run `{rebuild_command(features_dir, clean_dir)}`"
    if record is None:
        raise DataMismatchError(
            f"tailwise {command}: the features in {features_dir} record no data version "
            f"({features_dir / VERSION_FILE} is missing), so they cannot be matched to "
            f"{clean_dir}: {fix}"
        )
    wanted = data_version(clean_dir)
    if record.get("data_version") != wanted:
        raise DataMismatchError(
            f"tailwise {command}: the features in {features_dir} were built from another data "
            f"version ({str(record.get('data_version'))[:12]}, {record.get('data', '?')}) than "
            f"{clean_dir} ({wanted[:12]}): {fix}"
        )
