"""Builds every feature table from a clean data directory (`tailwise ingest` output).

Flow: clean events -> user-hash buckets -> `realtime_state` per bucket (user_realtime +
each user's end-of-day state) -> DuckDB daily aggregates -> per-bucket snapshot range
joins (user_daily without segment, item_daily) -> K-Means segments fit on the latest
snapshots -> segment assigned in SQL while streaming user_daily to its final file.
Static tables (user_profile, item_catalog) come from users/items in pandas. Every input
is read through `inputs` (absent or all-null optional columns become typed nulls). Work
files live in a temporary folder inside `out` and are removed at the end; the data
version and as-of time of `clean` are written to `data_version.json` (`tailwise.lineage`).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from tailwise import lineage
from tailwise.duckdb_session import connect_duckdb
from tailwise.errors import DataError
from tailwise.features import daily, inputs, profiles, segments
from tailwise.features.config import FeaturesParams
from tailwise.features.realtime import to_arrow, write_user_realtime
from tailwise.ingest.parse import sql_str

TABLE_KEYS = {
    "user_profile": "user_id",
    "user_daily": "user_id",
    "item_catalog": "item_id",
    "item_daily": "item_id",
    "user_realtime": "user_id",
}
STEPS = (
    "profiles",
    "user_realtime",
    "daily aggregates",
    "user_daily",
    "segments",
    "item_daily",
    "manifest",
)
EVENTS_PER_BUCKET = 1_000_000
Progress = Callable[[str, float], None]  # (step, fraction of the whole build done)


class FeaturesError(DataError):
    """The clean data cannot be built into features (the message says what is missing)."""


@dataclass
class BuildSummary:
    out: Path
    rows: dict[str, int]
    events_in: int
    users_in: int
    items_in: int
    seconds: float
    segment_names: list[str] = field(default_factory=list)
    step_seconds: dict[str, float] = field(default_factory=dict)


def build_features(
    clean: Path, out: Path, params: FeaturesParams, progress: Progress | None = None
) -> BuildSummary:
    """Write the feature tables, segment model and manifest for `clean` into `out`."""
    for name in ("users.parquet", "items.parquet", "events"):
        if not (clean / name).exists():
            raise FeaturesError(f"{clean / name} not found: is {clean} a `tailwise ingest` output?")
    started = time.perf_counter()
    created = pd.Timestamp.now(tz="UTC").floor("s")
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".features-work-", dir=out))
    con = _connect(work, params)
    clock = _Clock(progress)
    try:
        summary = _build(con, clean, out, work, params, created, clock)
    finally:
        con.close()
        shutil.rmtree(work, ignore_errors=True)
    summary.seconds = round(time.perf_counter() - started, 2)
    summary.step_seconds = clock.seconds
    _write_manifest(out, clean, params, created, summary)
    lineage.write_version(out, lineage.describe(clean))
    clock.step("manifest", 1.0)
    return summary


class _Clock:
    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress or (lambda _s, _f: None)
        self.seconds: dict[str, float] = {}
        self._last = (time.perf_counter(), "")

    def step(self, name: str, within: float = 0.0) -> None:
        now = time.perf_counter()
        t0, prev = self._last
        if name != prev:
            if prev:
                self.seconds[prev] = round(now - t0, 2)
            self._last = (now, name)
        self.progress(name, (STEPS.index(name) + within) / len(STEPS))


def _copy_buckets(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    n_buckets: int,
    clock: _Clock,
    sql_for: Callable[[int], str],
) -> Path:
    """One Parquet part per user/item-hash bucket (bounded memory); the step is the folder's
    name."""
    folder.mkdir()
    clock.step(folder.name)
    for b in range(n_buckets):
        target = sql_str(str(folder / f"part-{b:05d}.parquet"))
        con.execute(f"COPY ({sql_for(b)}) TO {target} (FORMAT parquet)")
        clock.step(folder.name, (b + 1) / n_buckets)
    return folder


def _connect(work: Path, p: FeaturesParams) -> duckdb.DuckDBPyConnection:
    con = connect_duckdb(work / "features.duckdb", p.duckdb_memory_limit, p.duckdb_threads)
    con.execute("SET preserve_insertion_order=false")
    return con


def _build(
    con: duckdb.DuckDBPyConnection,
    clean: Path,
    out: Path,
    work: Path,
    p: FeaturesParams,
    created: pd.Timestamp,
    clock: _Clock,
) -> BuildSummary:
    clock.step("profiles")
    if not any((clean / "events").rglob("*.parquet")):
        raise FeaturesError(f"{clean / 'events'} holds no events")
    scan = inputs.events_view(con, str(clean / "events" / "**" / "*.parquet"))
    n_events = con.execute(f"SELECT count(*) FROM {scan}").fetchone()[0]  # type: ignore[index]
    if not n_events:
        raise FeaturesError(f"{clean / 'events'} holds no events")
    users = inputs.read_users(clean)
    items = inputs.read_items(clean)
    first = con.execute(f"SELECT user_id, min(timestamp) AS t FROM {scan} GROUP BY 1").df()
    profile = profiles.user_profile(users, first.set_index("user_id")["t"], created)
    write_table(profile, out / "user_profile.parquet", profiles.PROFILE_TYPES)
    first_item = con.execute(f"SELECT item_id, min(timestamp) AS t FROM {scan} GROUP BY 1").df()
    catalog = profiles.item_catalog(items, created, first_item.set_index("item_id")["t"])
    write_table(catalog, out / "item_catalog.parquet", profiles.CATALOG_TYPES)
    con.register("items_df", items[["item_id", "category", "brand", "price"]])
    con.execute(
        "CREATE TABLE items AS SELECT CAST(item_id AS VARCHAR) AS item_id, "
        "split_part(CAST(category AS VARCHAR), '|', 1) AS leaf, CAST(brand AS VARCHAR) AS brand, "
        "CAST(price AS DOUBLE) AS price FROM items_df"
    )
    con.register("profile_df", profile[["user_id", "signup_epoch"]])
    con.execute("CREATE TABLE profile AS SELECT * FROM profile_df")

    clock.step("user_realtime")
    n_buckets = max(1, math.ceil(n_events / EVENTS_PER_BUCKET))
    con.execute(
        f"COPY (SELECT user_id, item_id, event_type, timestamp, event_id, session_id, "
        f"CAST(hash(user_id) % {n_buckets} AS INTEGER) AS bucket FROM {scan}) "
        f"TO {sql_str(str(work / 'rt'))} (FORMAT parquet, PARTITION_BY (bucket))"
    )
    done = [0]

    def rt_progress(n: int) -> None:
        done[0] += n
        clock.step("user_realtime", done[0] / n_events)

    rt_rows = write_user_realtime(
        sorted((work / "rt").iterdir()),
        profiles.item_category(items),
        out / "user_realtime.parquet",
        work / "day_state.parquet",
        created,
        p.recent_items,
        rt_progress,
    )

    clock.step("daily aggregates")
    con.execute(
        f"CREATE TABLE day_state AS SELECT * FROM read_parquet({sql_str(str(work / 'day_state.parquet'))})"
    )
    con.execute(f"CREATE VIEW ev AS {daily.events_sql(scan)}")
    for statement in daily.stage_daily(n_buckets):
        con.execute(statement)

    parts = _copy_buckets(
        con, work / "user_daily", n_buckets, clock, lambda b: daily.user_daily_sql(b, p.top_n)
    )

    clock.step("segments")
    model, _sizes = _segment(con, parts, out, p, created)

    item_parts = _copy_buckets(con, work / "item_daily", n_buckets, clock, daily.item_daily_sql)
    _copy_final(con, item_parts, out / "item_daily.parquet", created, "")

    rows = {name: pq.ParquetFile(out / f"{name}.parquet").metadata.num_rows for name in TABLE_KEYS}
    rows["user_realtime"] = rt_rows
    return BuildSummary(
        out=out,
        rows=rows,
        events_in=int(n_events),
        users_in=len(users),
        items_in=len(items),
        seconds=0.0,
        segment_names=list(model["names"]),
    )


def _segment(
    con: duckdb.DuckDBPyConnection,
    parts: Path,
    out: Path,
    p: FeaturesParams,
    created: pd.Timestamp,
) -> tuple[dict[str, Any], pd.Series]:
    """Fit on each user's latest snapshot at or before the cutoff; assign all snapshots."""
    src = f"read_parquet({sql_str(str(parts / '*.parquet'))})"
    con.execute(
        f"CREATE VIEW ud_tenure AS SELECT u.*, greatest((epoch(u.event_timestamp) - "
        f"p.signup_epoch) / 86400.0, 0.0) AS tenure_days FROM {src} u "
        f"LEFT JOIN profile p USING (user_id)"
    )
    cutoff = (
        f"TIMESTAMPTZ {sql_str(pd.Timestamp(p.segment_cutoff).isoformat())}"
        if p.segment_cutoff is not None
        # Short histories keep at least their first snapshot instant to fit on.
        else f"(SELECT greatest(min(event_timestamp), max(event_timestamp) - INTERVAL "
        f"{int(p.segment_holdout_days)} DAY) FROM ud_tenure)"
    )
    latest = con.execute(
        f"SELECT user_id, {', '.join(segments.SEGMENT_FEATURES)} FROM ud_tenure "
        f"WHERE event_timestamp <= {cutoff} "
        f"QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY event_timestamp DESC) = 1"
    ).df()
    model = segments.fit_segments(latest, p.n_segments, p.seed)
    seg, name = segments.segment_sql(model)
    _copy_final(
        con,
        None,
        out / "user_daily.parquet",
        created,
        f", {seg} AS segment, {name} AS segment_name",
        source="ud_tenure",
        drop="tenure_days",
    )
    sizes = (
        con.execute(
            f"SELECT segment, count(*) AS n FROM {sql_str(str(out / 'user_daily.parquet'))} "
            "GROUP BY 1"
        )
        .df()
        .set_index("segment")["n"]
    )
    segments.write_report(model, sizes, out)
    return model, sizes


def _copy_final(
    con: duckdb.DuckDBPyConnection,
    parts: Path | None,
    path: Path,
    created: pd.Timestamp,
    extra: str,
    source: str | None = None,
    drop: str | None = None,
) -> None:
    """Stream the per-bucket parts into one file, adding created_timestamp after the key."""
    src = source or f"read_parquet({sql_str(str(parts / '*.parquet'))})"  # type: ignore[operator]
    key = "user_id" if "user" in path.name else "item_id"
    excluded = ", ".join(c for c in (key, "event_timestamp", drop) if c)
    con.execute(
        f"COPY (SELECT {key}, event_timestamp, TIMESTAMPTZ {sql_str(created.isoformat())} "
        f"AS created_timestamp, * EXCLUDE ({excluded}){extra} FROM {src}) "
        f"TO {sql_str(str(path))} (FORMAT parquet)"
    )


def write_table(df: pd.DataFrame, path: Path, types: dict[str, Any] | None = None) -> None:
    """`df` as Parquet; columns named in `types` get exactly that Arrow type (an all-null
    column is then a typed null, not Arrow's `null` type)."""
    pq.write_table(to_arrow(df, types), path)


def _write_manifest(
    out: Path, clean: Path, p: FeaturesParams, created: pd.Timestamp, s: BuildSummary
) -> None:
    tables = {}
    for name, key in TABLE_KEYS.items():
        meta = pq.ParquetFile(out / f"{name}.parquet")
        tables[name] = {
            "path": f"{name}.parquet",
            "key": key,
            "rows": meta.metadata.num_rows,
            "columns": [{"name": f.name, "type": str(f.type)} for f in meta.schema_arrow],
        }
    manifest = {
        "built_at": created.isoformat(),
        "input": str(clean.resolve()),
        "params": p.model_dump(mode="json"),
        "events_in": s.events_in,
        "users_in": s.users_in,
        "items_in": s.items_in,
        "seconds": s.seconds,
        "segments": s.segment_names,
        "tables": tables,
        "extra_files": ["segments_model.json", "segments_report.md", "segments.png"],
    }
    (out / "features_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
