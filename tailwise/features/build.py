"""Builds every feature table from a clean data directory (`tailwise ingest` output).

Flow: clean events -> user-hash buckets -> `realtime_state` per bucket (user_realtime +
each user's end-of-day state) -> DuckDB daily aggregates -> per-bucket snapshot range
joins (user_daily without segment, item_daily) -> K-Means segments fit on the latest
snapshots -> segment assigned in SQL while streaming user_daily to its final file.
Static tables (user_profile, item_catalog) come from users/items in pandas. Every input
is read through `inputs` (absent or all-null optional columns become typed nulls). Work
files live in a temporary folder inside `out` and are removed at the end; the data
version and as-of time of `clean` are written to `data_version.json` (`tailwise.lineage`).

`params.engine` picks who runs the steps: `duckdb` (this module, one process) or `ray`
(`tailwise.features.sharded`: the same statements and functions over user and item shards
on Ray workers). Both write the same tables; the pieces they share live here.
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
DUCKDB_STEPS = (
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
    try:
        if params.engine == "ray":
            from tailwise.features import sharded

            clock = _Clock(progress, sharded.STEPS)
            summary = sharded.build_sharded(clean, out, work, params, created, clock)
        else:
            clock = _Clock(progress, DUCKDB_STEPS)
            con = connect(work / "features.duckdb", params, params.duckdb_threads)
            try:
                summary = _build(con, clean, out, work, params, created, clock)
            finally:
                con.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary.seconds = round(time.perf_counter() - started, 2)
    summary.step_seconds = clock.seconds
    _write_manifest(out, clean, params, created, summary)
    lineage.write_version(out, lineage.describe(clean))
    clock.step("manifest", 1.0)
    return summary


class _Clock:
    def __init__(self, progress: Progress | None, steps: tuple[str, ...]) -> None:
        self.progress = progress or (lambda _s, _f: None)
        self.steps = steps
        self.seconds: dict[str, float] = {}
        self._last = (time.perf_counter(), "")

    def step(self, name: str, within: float = 0.0) -> None:
        now = time.perf_counter()
        t0, prev = self._last
        if name != prev:
            if prev:
                self.seconds[prev] = round(now - t0, 2)
            self._last = (now, name)
        self.progress(name, (self.steps.index(name) + within) / len(self.steps))


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


def connect(database: Path, p: FeaturesParams, threads: int) -> duckdb.DuckDBPyConnection:
    con = connect_duckdb(database, p.duckdb_memory_limit, threads)
    con.execute("SET preserve_insertion_order=false")
    return con


def events_in(con: duckdb.DuckDBPyConnection, clean: Path) -> tuple[str, int]:
    """The typed events view over `clean` and its row count (a clear error when empty)."""
    if not any((clean / "events").rglob("*.parquet")):
        raise FeaturesError(f"{clean / 'events'} holds no events")
    scan = inputs.events_view(con, str(clean / "events" / "**" / "*.parquet"))
    n_events = con.execute(f"SELECT count(*) FROM {scan}").fetchone()[0]  # type: ignore[index]
    if not n_events:
        raise FeaturesError(f"{clean / 'events'} holds no events")
    return scan, int(n_events)


def first_seen(con: duckdb.DuckDBPyConnection, scan: str, key: str) -> pd.DataFrame:
    """(key, t): each user's or item's first event time; per key, so exact per shard."""
    return con.execute(f"SELECT {key}, min(timestamp) AS t FROM {scan} GROUP BY 1").df()


def write_profiles(
    users: pd.DataFrame,
    items: pd.DataFrame,
    first_user: pd.DataFrame,
    first_item: pd.DataFrame,
    out: Path,
    created: pd.Timestamp,
) -> pd.DataFrame:
    """user_profile.parquet and item_catalog.parquet; returns the profile."""
    profile = profiles.user_profile(users, first_user.set_index("user_id")["t"], created)
    write_table(profile, out / "user_profile.parquet", profiles.PROFILE_TYPES)
    catalog = profiles.item_catalog(items, created, first_item.set_index("item_id")["t"])
    write_table(catalog, out / "item_catalog.parquet", profiles.CATALOG_TYPES)
    return profile


def create_items(con: duckdb.DuckDBPyConnection, items: pd.DataFrame) -> None:
    """Table `items` (item_id, leaf, brand, price) that `daily.events_sql` joins."""
    con.register("items_df", items[["item_id", "category", "brand", "price"]])
    con.execute(
        "CREATE TABLE items AS SELECT CAST(item_id AS VARCHAR) AS item_id, "
        "split_part(CAST(category AS VARCHAR), '|', 1) AS leaf, CAST(brand AS VARCHAR) AS brand, "
        "CAST(price AS DOUBLE) AS price FROM items_df"
    )
    con.unregister("items_df")


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
    scan, n_events = events_in(con, clean)
    users = inputs.read_users(clean)
    items = inputs.read_items(clean)
    profile = write_profiles(
        users,
        items,
        first_seen(con, scan, "user_id"),
        first_seen(con, scan, "item_id"),
        out,
        created,
    )
    create_items(con, items)
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

    write_user_realtime(
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
    model = _segment(con, parts, out, p, created)

    item_parts = _copy_buckets(con, work / "item_daily", n_buckets, clock, daily.item_daily_sql)
    _copy_final(con, item_parts, out / "item_daily.parquet", created)

    return summarise(out, n_events, users, items, model)


def summarise(
    out: Path, n_events: int, users: pd.DataFrame, items: pd.DataFrame, model: dict[str, Any]
) -> BuildSummary:
    rows = {name: pq.ParquetFile(out / f"{name}.parquet").metadata.num_rows for name in TABLE_KEYS}
    return BuildSummary(
        out=out,
        rows=rows,
        events_in=n_events,
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
) -> dict[str, Any]:
    """Fit on each user's latest snapshot at or before the cutoff; assign all snapshots."""
    tenure_view(con, f"read_parquet({sql_str(str(parts / '*.parquet'))})")
    lo, hi = con.execute(
        "SELECT min(event_timestamp), max(event_timestamp) FROM ud_tenure"
    ).fetchone()  # type: ignore[misc]
    latest = con.execute(latest_sql(segment_cutoff(p, lo, hi))).df()
    model = segments.fit_segments(latest, p.n_segments, p.seed)
    con.execute(
        f"COPY ({final_sql('user_daily', created, model)}) TO {sql_str(str(out / 'user_daily.parquet'))} (FORMAT parquet)"
    )
    write_segment_report(con, model, out)
    return model


def tenure_view(con: duckdb.DuckDBPyConnection, src: str) -> None:
    """View ud_tenure: user_daily rows (without segment) with tenure_days, over table
    `profile` (user_id, signup_epoch)."""
    con.execute(
        f"CREATE VIEW ud_tenure AS SELECT u.*, greatest((epoch(u.event_timestamp) - "
        f"p.signup_epoch) / 86400.0, 0.0) AS tenure_days FROM {src} u "
        f"LEFT JOIN profile p USING (user_id)"
    )


def segment_cutoff(p: FeaturesParams, first: Any, last: Any) -> pd.Timestamp:
    """The instant segments are fit at: `segment_cutoff`, else the last snapshot minus the
    holdout days; short histories keep at least their first snapshot instant to fit on."""
    if p.segment_cutoff is not None:
        return pd.Timestamp(p.segment_cutoff)
    if first is None or last is None:
        raise FeaturesError("user_daily holds no snapshots to fit segments on")
    first, last = pd.Timestamp(first), pd.Timestamp(last)
    return max(first, last - pd.Timedelta(days=int(p.segment_holdout_days)))


def latest_sql(cutoff: pd.Timestamp) -> str:
    """Each user's latest ud_tenure snapshot at or before `cutoff` (per user: shardable)."""
    return (
        f"SELECT user_id, {', '.join(segments.SEGMENT_FEATURES)} FROM ud_tenure "
        f"WHERE event_timestamp <= TIMESTAMPTZ {sql_str(cutoff.isoformat())} "
        f"QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY event_timestamp DESC) = 1"
    )


def final_sql(
    table: str, created: pd.Timestamp, model: dict[str, Any] | None, src: str = "ud_tenure"
) -> str:
    """The final rows of user_daily (over ud_tenure, with the segment `model` assigns) or of
    item_daily (over `src`): key, event_timestamp, created_timestamp, then the features."""
    key = "user_id" if table == "user_daily" else "item_id"
    extra, drop = "", ""
    if model is not None:
        seg, name = segments.segment_sql(model)
        extra, drop = f", {seg} AS segment, {name} AS segment_name", ", tenure_days"
    return (
        f"SELECT {key}, event_timestamp, TIMESTAMPTZ {sql_str(created.isoformat())} "
        f"AS created_timestamp, * EXCLUDE ({key}, event_timestamp{drop}){extra} FROM {src}"
    )


def write_segment_report(con: duckdb.DuckDBPyConnection, model: dict[str, Any], out: Path) -> None:
    """segments_model.json and the report, with snapshot rows per segment of user_daily."""
    sizes = (
        con.execute(
            f"SELECT segment, count(*) AS n FROM {sql_str(str(out / 'user_daily.parquet'))} "
            "GROUP BY 1"
        )
        .df()
        .set_index("segment")["n"]
    )
    segments.write_report(model, sizes, out)


def _copy_final(
    con: duckdb.DuckDBPyConnection, parts: Path, path: Path, created: pd.Timestamp
) -> None:
    """Stream the per-bucket item_daily parts into one file, adding created_timestamp."""
    src = f"read_parquet({sql_str(str(parts / '*.parquet'))})"
    con.execute(
        f"COPY ({final_sql('item_daily', created, None, src)}) TO {sql_str(str(path))} "
        "(FORMAT parquet)"
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
