"""Entry point: generate a full synthetic data set into a folder, chunk by chunk.

Flow: build the world, attach the optional shift (its new items come from their
own RNGs, spawn keys (0, 2) and (0, 3), so nothing else changes) and write items
-> for each chunk of `chunk_users` people (own RNG from SeedSequence(seed,
spawn_key=(1, chunk))): draw people, simulate events, create near-duplicate
accounts, render raw and ground-truth tables and append them to parquet writers
(one row group per chunk) -> write the defect manifest and world.json. Memory is bounded by one chunk.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from tailwise.synthetic import catalog, defects, tables
from tailwise.synthetic.config import GenerateConfig
from tailwise.synthetic.duplicates import make_near_duplicates, move_events
from tailwise.synthetic.people import contact_columns, draw_people
from tailwise.synthetic.sessions import simulate_events
from tailwise.synthetic.shift import attach_shift, shift_json
from tailwise.synthetic.world import (
    AGE_TOP,
    COEFFICIENTS,
    DEVICE_CONVERSION,
    DEVICE_TOP,
    DIURNAL,
    GENDER_TOP,
    TOPS,
    WEEKEND_TOP,
    World,
    build_world,
)


class GenerateSummary(BaseModel):
    """What was written: rows per output table, defect counts, wall time."""

    out: str
    rows: dict[str, int]
    defects: dict[str, int]
    seconds: float


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def generate(
    cfg: GenerateConfig, out: Path, progress: Callable[[int], None] | None = None
) -> GenerateSummary:
    """Write users, items, events, ground_truth/ and the defect manifest into `out`."""
    started = time.perf_counter()
    out = Path(out)
    (out / "ground_truth").mkdir(parents=True, exist_ok=True)
    world = attach_shift(cfg, build_world(cfg, _rng(cfg.seed, 0)), _rng(cfg.seed, 0, 2))
    ids = tables.id_scheme(cfg)
    rec = defects.Records()
    items, items_truth = tables.items_tables(
        cfg, world, _rng(cfg.seed, 0, 1), ids, rec, shift_rng=_rng(cfg.seed, 0, 3)
    )
    pq.write_table(items, out / "items.parquet")
    pq.write_table(items_truth, out / "ground_truth" / "items.parquet")
    rows = Counter({"items": items.num_rows})
    paths = {
        "users": out / "users.parquet",
        "events": out / "events.parquet",
        "truth_users": out / "ground_truth" / "users.parquet",
        "defects": out / "defects.parquet",
    }
    writers: dict[str, pq.ParquetWriter] = {}
    try:
        _run_chunks(cfg, world, ids, rec, writers, paths, rows, progress)
        rows["defects"] += _flush_defects(rec, writers, paths)
    finally:
        for w in writers.values():
            w.close()
    counts = {k: int(v) for k, v in sorted(rec.counts.items())}
    (out / "defects.json").write_text(
        json.dumps({"rates": cfg.defects.model_dump(), "counts": counts}, indent=2) + "\n"
    )
    (out / "ground_truth" / "world.json").write_text(
        json.dumps(world_json(cfg, world, ids.item_width), indent=2)
    )
    return GenerateSummary(
        out=str(out),
        rows=dict(rows),
        defects=counts,
        seconds=round(time.perf_counter() - started, 3),
    )


def _run_chunks(
    cfg: GenerateConfig,
    world: World,
    ids: tables.Ids,
    rec: defects.Records,
    writers: dict,
    paths: dict,
    rows: Counter,
    progress: Callable[[int], None] | None,
) -> None:
    next_dup, event_offset, session_offset = cfg.users, 0, 0
    for chunk in range(cfg.n_chunks):
        lo, hi = chunk * cfg.chunk_users, min(cfg.users, (chunk + 1) * cfg.chunk_users)
        rng = _rng(cfg.seed, 1, chunk)
        p = draw_people(cfg, world, rng, lo, hi)
        ev = simulate_events(cfg, world, p, rng)
        contact = contact_columns(p)
        lower = np.maximum(p.signup_at, int(cfg.window_start.timestamp()))
        upper = np.where(p.lapse_at >= 0, p.lapse_at, int(cfg.window_end.timestamp()))
        dup, split = make_near_duplicates(
            rng, p, contact, cfg.defects.near_duplicate_users, next_dup, lower, upper
        )
        number = move_events(p, dup, split, ev["user"], ev["ts"])
        chunk_ids = tables.Ids(ids.user_width, ids.item_width, event_offset, session_offset)
        parts = {
            "users": tables.users_table(cfg, world, p, contact, dup, rng, chunk_ids, rec),
            "events": tables.events_table(cfg, world, p, ev, number, rng, chunk_ids, rec),
            "truth_users": tables.truth_users_table(cfg, world, p, dup, chunk_ids),
        }
        for name, table in parts.items():
            _append(writers, paths, name, table)
            rows[name] += table.num_rows
        next_dup += len(dup.pos)
        event_offset += len(ev["ts"])
        session_offset += int(ev["sess"].max()) + 1 if len(ev["sess"]) else 0
        rows["defects"] += _flush_defects(rec, writers, paths)
        if progress is not None:
            progress(hi)


def _append(writers: dict, paths: dict, name: str, table: pa.Table) -> None:
    if name not in writers:
        writers[name] = pq.ParquetWriter(paths[name], table.schema, compression="zstd")
    writers[name].write_table(table)


def _flush_defects(rec: defects.Records, writers: dict, paths: dict) -> int:
    """Append the manifest rows gathered so far; returns how many."""
    table = rec.table()
    rec.batches.clear()
    _append(writers, paths, "defects", table)
    return table.num_rows


def world_json(cfg: GenerateConfig, world: World, item_width: int = 6) -> dict:
    """Taxonomy, brands, places, coefficients, window and shift: what the oracle needs.

    Without a shift neither `config.shift` nor `shift` appear, so the file is the
    same as before shifts existed."""
    shifted = cfg.shift is not None
    extra = {"shift": shift_json(cfg, world, item_width)} if shifted else {}
    return {
        "config": json.loads(cfg.model_dump_json(exclude=None if shifted else {"shift"})),
        "window": {"start": cfg.window_start.isoformat(), "end": cfg.window_end.isoformat()},
        **extra,
        "taxonomy": {
            "tops": TOPS,
            "leaves": world.leaf_names,
            "leaf_top": world.leaf_top.tolist(),
            "leaf_median_price": world.leaf_median_price.tolist(),
        },
        "brands": [
            {"name": n, "top": TOPS[t], "prestige": round(float(q), 6)}
            for n, t, q in zip(
                world.brand_names, world.brand_top, world.brand_prestige, strict=True
            )
        ],
        "countries": {
            c: {
                "regions": catalog.REGIONS[c],
                "share": catalog.COUNTRIES[c][0],
                "country_top_shift": world.country_top[k].round(6).tolist(),
            }
            for k, c in enumerate(catalog.COUNTRIES)
        },
        "coefficients": COEFFICIENTS,
        "shifts": {
            "gender_top": GENDER_TOP,
            "age_top": AGE_TOP,
            "age_buckets": [30, 50],
            "device_top": DEVICE_TOP,
            "weekend_top": WEEKEND_TOP,
            "device_conversion": DEVICE_CONVERSION,
        },
        "diurnal_local_hour": DIURNAL,
        "devices": catalog.DEVICES,
        "channels": catalog.CHANNELS,
        "event_types": catalog.EVENT_TYPES,
    }
