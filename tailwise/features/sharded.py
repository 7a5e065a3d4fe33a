"""The feature build as Ray tasks over user and item shards (`features.engine: ray`).

Every task opens its own DuckDB session on one shard and runs the statements and
functions of the single-process build (`daily`, `realtime.write_user_realtime`, `build`'s
profile, tenure, segment and final-row SQL); no feature is defined here. Phases:

    split     a task per group of event files: the typed events (`inputs.events_view`) go
              to by_user/shard=S and by_item/shard=S files, S = crc32(key) mod shards;
              each returns its max(day) of `ev` (the global one bounds every snapshot).
    shards    user shard: user_realtime part and day_state (`write_user_realtime`),
              `stage_user_daily`, `user_daily_sql` -> part; first event per user, first
              and last snapshot. Item shard: `stage_item_daily` (idy, item_snaps, item_v7);
              first event per item. All of these are per key, so exact per shard.
    reduce    driver: user_profile and item_catalog from the first-event partials;
              item_rank (`rank_items`, a rank over the whole catalogue) over every shard's
              item_v7; the segment cutoff from the shards' first and last snapshots.
    segments  user shard: latest snapshot at or before the cutoff -> driver fits K-Means
              (rows sorted first, so the model does not depend on shard order) -> user
              shard writes its final user_daily rows; item shard its item_daily rows.
    merge     driver: the parts become the single files the DuckDB engine writes.

Tasks over Parquet shards rather than Ray Data's groupby: the definitions are multi-table
DuckDB statements (events, day_state, items, profile) with two catalogue- or user-wide
steps between them; a shard task runs them unchanged, where `map_groups` would hand one
batch of one table per group. Work files live in the build's work folder, so with several
nodes `out` must be on storage every node mounts.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tailwise.features import build, daily, inputs, profiles, segments
from tailwise.features.config import FeaturesParams
from tailwise.features.realtime import write_user_realtime
from tailwise.ingest.parse import sql_str
from tailwise.ray_jobs import connected, shard_of

STEPS = ("split", "shards", "reduce", "segments", "merge", "manifest")


@dataclass(frozen=True)
class _Job:
    """What every task needs besides its shard (pickled to the workers)."""

    work: Path
    out: Path
    params: FeaturesParams
    created: pd.Timestamp
    shards: int
    last_day: str = ""


def build_sharded(
    clean: Path,
    out: Path,
    work: Path,
    p: FeaturesParams,
    created: pd.Timestamp,
    clock: Any,
) -> build.BuildSummary:
    """Build every table of `build.build_features` into `out` with Ray tasks."""

    clock.step("split")
    con = build.connect(work / "driver.duckdb", p, p.duckdb_threads)
    try:
        _, n_events = build.events_in(con, clean)
    finally:
        con.close()
    users, items = inputs.read_users(clean), inputs.read_items(clean)
    with connected(p.workers):
        return _run(clean, out, work, p, created, clock, n_events, users, items)


def _run(
    clean: Path,
    out: Path,
    work: Path,
    p: FeaturesParams,
    created: pd.Timestamp,
    clock: Any,
    n_events: int,
    users: pd.DataFrame,
    items: pd.DataFrame,
) -> build.BuildSummary:
    import ray

    shards = max(p.workers, math.ceil(n_events / build.EVENTS_PER_BUCKET))
    job = _Job(work=work, out=out, params=p, created=created, shards=shards)
    attrs = ray.put(items[["item_id", "category", "brand", "price"]])
    files = sorted(str(f) for f in (clean / "events").rglob("*.parquet"))
    groups = [list(g) for g in np.array_split(files, min(len(files), shards)) if len(g)]
    days = _wait(
        clock, "split", [_task(_split).remote(job, i, g, attrs) for i, g in enumerate(groups)]
    )
    last = max(d for d in days if d is not None)
    job = _Job(work, out, p, created, shards, f"DATE {sql_str(str(last))} + 1")

    clock.step("shards")
    user_refs = [_task(_user_shard).remote(job, s, attrs) for s in range(shards)]
    item_refs = [_task(_item_shard).remote(job, s, attrs) for s in range(shards)]
    results = _wait(clock, "shards", [*user_refs, *item_refs])
    user_parts = [r for r in results[:shards] if r is not None]
    item_parts = [r for r in results[shards:] if r is not None]

    clock.step("reduce")
    build.write_profiles(
        users,
        items,
        pd.concat([r["first"] for r in user_parts], ignore_index=True),
        pd.concat([r["first"] for r in item_parts], ignore_index=True),
        out,
        created,
    )
    con = build.connect(work / "driver.duckdb", p, p.duckdb_threads)
    try:
        _rank_items(con, [r["shard"] for r in item_parts], job)
        cutoff = build.segment_cutoff(
            p,
            min(r["first_snapshot"] for r in user_parts),
            max(r["last_snapshot"] for r in user_parts),
        )

        clock.step("segments")
        user_ids = [r["shard"] for r in user_parts]
        latest = _wait(
            clock, "segments", [_task(_user_latest).remote(job, s, cutoff) for s in user_ids]
        )
        model = segments.fit_segments(pd.concat(latest, ignore_index=True), p.n_segments, p.seed)
        final = [_task(_user_final).remote(job, s, model) for s in user_ids]
        final += [_task(_item_final).remote(job, r["shard"]) for r in item_parts]
        _wait(clock, "segments", final)

        clock.step("merge")
        _merge(con, job, user_ids, [r["shard"] for r in item_parts], model)
    finally:
        con.close()
    return build.summarise(out, n_events, users, items, model)


def _task(fn: Callable[..., Any]) -> Any:
    import ray

    return ray.remote(num_cpus=1)(fn)


def _wait(clock: Any, step: str, refs: list[Any]) -> list[Any]:
    """Results of `refs` in their order, reporting progress as they finish."""
    import ray

    pending, done = list(refs), 0
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        done += len(ready)
        clock.step(step, done / len(refs) * 0.99)
    return list(ray.get(refs))


def _folder(job: _Job, kind: str, shard: int) -> Path:
    return job.work / f"{kind}-{shard:05d}"


def _session(folder: Path, job: _Job) -> duckdb.DuckDBPyConnection:
    """The shard's own database (its tables outlive a task) and spill folder; one thread,
    as the task holds one CPU."""
    return build.connect(folder / "shard.duckdb", job.params, 1)


def _fresh(folder: Path) -> Path:
    """An empty folder (a retried task starts over)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _split(job: _Job, index: int, files: list[str], attrs: pd.DataFrame) -> Any:
    folder = _fresh(_folder(job, "split", index))
    con = _session(folder, job)
    try:
        scan = inputs.events_view(con, files)
        build.create_items(con, attrs)
        con.execute(f"CREATE VIEW ev AS {daily.events_sql(scan)}")
        last = con.execute("SELECT max(day) FROM ev").fetchall()[0][0]
        rows = con.sql(f"SELECT * FROM {scan}").to_arrow_table()
        for key, kind in (("user_id", "by_user"), ("item_id", "by_item")):
            shard = shard_of(rows[key], job.shards)
            con.register("split_rows", rows.append_column("_shard", pa.array(shard)))
            for s in np.unique(shard):
                target = job.work / kind / f"shard={s:05d}"
                target.mkdir(parents=True, exist_ok=True)
                path = sql_str(str(target / f"split-{index:05d}.parquet"))
                con.execute(
                    f"COPY (SELECT * EXCLUDE (_shard) FROM split_rows WHERE _shard = {s}) "
                    f"TO {path} (FORMAT parquet)"
                )
            con.unregister("split_rows")
    finally:
        con.close()
    shutil.rmtree(folder, ignore_errors=True)
    return last


def _shard_files(job: _Job, kind: str, shard: int) -> list[str]:
    return sorted(str(f) for f in (job.work / kind / f"shard={shard:05d}").glob("*.parquet"))


def _user_shard(job: _Job, shard: int, attrs: pd.DataFrame) -> dict[str, Any] | None:
    files = _shard_files(job, "by_user", shard)
    if not files:
        return None
    folder = _fresh(_folder(job, "user", shard))
    p = job.params
    write_user_realtime(
        [files],
        profiles.item_category(attrs),
        folder / "user_realtime.parquet",
        folder / "day_state.parquet",
        job.created,
        p.recent_items,
    )
    con = _session(folder, job)
    try:
        scan = inputs.events_view(con, files)
        first = build.first_seen(con, scan, "user_id")
        build.create_items(con, attrs)
        day_state = sql_str(str(folder / "day_state.parquet"))
        con.execute(f"CREATE TABLE day_state AS SELECT * FROM read_parquet({day_state})")
        con.execute(f"CREATE VIEW ev AS {daily.events_sql(scan)}")
        for statement in daily.stage_user_daily(1, job.last_day):
            con.execute(statement)
        part = sql_str(str(folder / "user_daily.parquet"))
        con.execute(f"COPY ({daily.user_daily_sql(0, p.top_n)}) TO {part} (FORMAT parquet)")
        lo, hi = con.execute(
            f"SELECT min(event_timestamp), max(event_timestamp) FROM read_parquet({part})"
        ).fetchall()[0]
    finally:
        con.close()
    return {"shard": shard, "first": first, "first_snapshot": lo, "last_snapshot": hi}


def _item_shard(job: _Job, shard: int, attrs: pd.DataFrame) -> dict[str, Any] | None:
    files = _shard_files(job, "by_item", shard)
    if not files:
        return None
    folder = _fresh(_folder(job, "item", shard))
    con = _session(folder, job)
    try:
        scan = inputs.events_view(con, files)
        first = build.first_seen(con, scan, "item_id")
        build.create_items(con, attrs)
        con.execute(f"CREATE VIEW ev AS {daily.events_sql(scan)}")
        for statement in daily.stage_item_daily(1, job.last_day):
            con.execute(statement)
        con.execute(f"COPY item_v7 TO {sql_str(str(folder / 'item_v7.parquet'))} (FORMAT parquet)")
    finally:
        con.close()
    return {"shard": shard, "first": first}


def _rank_items(con: duckdb.DuckDBPyConnection, item_shards: list[int], job: _Job) -> None:
    """item_rank over the item_v7 of every item shard, for the item_daily tasks."""
    parts = [str(_folder(job, "item", s) / "item_v7.parquet") for s in item_shards]
    con.execute(f"CREATE TABLE item_v7 AS SELECT * FROM read_parquet({_list(parts)})")
    for statement in daily.rank_items():
        con.execute(statement)
    con.execute(
        f"COPY item_rank TO {sql_str(str(job.work / 'item_rank.parquet'))} (FORMAT parquet)"
    )


def _user_latest(job: _Job, shard: int, cutoff: pd.Timestamp) -> pd.DataFrame:
    folder = _folder(job, "user", shard)
    con = _session(folder, job)
    try:
        profile = sql_str(str(job.out / "user_profile.parquet"))
        con.execute(
            f"CREATE OR REPLACE TABLE profile AS SELECT user_id, signup_epoch "
            f"FROM read_parquet({profile})"
        )
        con.execute("DROP VIEW IF EXISTS ud_tenure")
        build.tenure_view(con, f"read_parquet({sql_str(str(folder / 'user_daily.parquet'))})")
        return con.execute(build.latest_sql(cutoff)).df()
    finally:
        con.close()


def _user_final(job: _Job, shard: int, model: dict[str, Any]) -> None:
    folder = _folder(job, "user", shard)
    con = _session(folder, job)
    try:
        target = sql_str(str(folder / "user_daily_final.parquet"))
        sql = build.final_sql("user_daily", job.created, model)
        con.execute(f"COPY ({sql}) TO {target} (FORMAT parquet)")
    finally:
        con.close()


def _item_final(job: _Job, shard: int) -> None:
    folder = _folder(job, "item", shard)
    con = _session(folder, job)
    try:
        rank = sql_str(str(job.work / "item_rank.parquet"))
        con.execute(f"CREATE OR REPLACE TABLE item_rank AS SELECT * FROM read_parquet({rank})")
        target = sql_str(str(folder / "item_daily.parquet"))
        con.execute(f"COPY ({daily.item_daily_sql(0)}) TO {target} (FORMAT parquet)")
    finally:
        con.close()


def _merge(
    con: duckdb.DuckDBPyConnection,
    job: _Job,
    user_shards: list[int],
    item_shards: list[int],
    model: dict[str, Any],
) -> None:
    """The shards' parts as the single files of the DuckDB engine."""
    users = [str(_folder(job, "user", s) / "user_daily_final.parquet") for s in user_shards]
    target = sql_str(str(job.out / "user_daily.parquet"))
    # created_timestamp again as the constant it is (a multi-file scan reads it as nullable).
    src = f"(SELECT * EXCLUDE (created_timestamp) FROM read_parquet({_list(users)}))"
    sql = build.final_sql("user_daily", job.created, None, src)
    con.execute(f"COPY ({sql}) TO {target} (FORMAT parquet)")
    build.write_segment_report(con, model, job.out)
    items = [str(_folder(job, "item", s) / "item_daily.parquet") for s in item_shards]
    target = sql_str(str(job.out / "item_daily.parquet"))
    sql = build.final_sql("item_daily", job.created, None, f"read_parquet({_list(items)})")
    con.execute(f"COPY ({sql}) TO {target} (FORMAT parquet)")
    _concat(
        [_folder(job, "user", s) / "user_realtime.parquet" for s in user_shards],
        job.out / "user_realtime.parquet",
    )


def _concat(parts: Sequence[Path], target: Path) -> None:
    """Parquet files of one schema as one file, a part at a time."""
    writer: pq.ParquetWriter | None = None
    try:
        for part in parts:
            table = pq.read_table(part)
            writer = writer or pq.ParquetWriter(target, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def _list(paths: Sequence[str]) -> str:
    return f"[{', '.join(sql_str(p) for p in paths)}]"
