"""Deliberate defects of the raw tables, and their instance-by-instance manifest.

Each function takes clean column arrays, returns the corrupted arrays and a
`Records` batch (kind, table, id, column, value, related_id) that lands in
defects.parquet. Mixed time zone renderings are only counted (per table and
format), since they are different spellings of the same instant.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tailwise.synthetic import formats

DEFECT_SCHEMA = pa.schema(
    [(name, pa.string()) for name in ("kind", "table", "id", "column", "value", "related_id")]
)
MALFORMED = ["2026-13-45T25:61:00Z", "yesterday", "", "31/02/2026", "N/A", "2026-02-30T10:00:00Z"]
TZ_FORMATS = ["iso_local_offset", "epoch_seconds", "naive_utc"]


@dataclass
class Records:
    """Manifest rows gathered while one chunk is corrupted."""

    batches: list[pa.Table] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)

    def add(
        self,
        kind: str,
        table: str,
        ids: pa.Array,
        column: pa.Array | str | None = None,
        value: pa.Array | None = None,
        related: pa.Array | None = None,
    ) -> None:
        n = len(ids)
        if n == 0:
            return
        self.counts[kind] += n

        def col(x: pa.Array | str | None) -> pa.Array:
            if x is None or isinstance(x, str):
                return pa.array([x] * n, pa.string())
            return pc.cast(x, pa.string())

        self.batches.append(
            pa.table(
                [col(kind), col(table), col(ids), col(column), col(value), col(related)],
                schema=DEFECT_SCHEMA,
            )
        )

    def table(self) -> pa.Table:
        return pa.concat_tables(self.batches) if self.batches else DEFECT_SCHEMA.empty_table()


def spell_categories(
    rng: np.random.Generator, ids: pa.Array, category: list[str], rate: float, rec: Records
) -> pa.Array:
    """Vary case, whitespace, separators and '&'/'and' of some category texts."""
    out = list(category)
    chosen = np.flatnonzero(rng.random(len(out)) < rate)
    style = rng.integers(0, 6, len(chosen))
    for k, st in zip(chosen, style, strict=True):
        out[k] = _respell(out[k], int(st))
    rec.add(
        "category_spellings",
        "items",
        ids.take(pa.array(chosen, pa.int64())),
        "category",
        pa.array([out[k] for k in chosen], pa.string()),
        pa.array([category[k] for k in chosen], pa.string()),
    )
    return pa.array(out, pa.string())


def _respell(text: str, style: int) -> str:
    if style == 0:
        return text.lower()
    if style == 1:
        return " " + text.upper() + "  "
    if style == 2:
        return text.replace("/", ">")
    if style == 3:
        return text.replace("/", " / ")
    if style == 4 and "&" in text:
        return text.replace("&", "and")
    return "  " + text.replace("/", " > ").replace("|", " | ")


def null_cells(
    rng: np.random.Generator, ids: pa.Array, columns: dict[str, pa.Array], rate: float, rec: Records
) -> dict[str, pa.Array]:
    """Missing demographics: each named cell nulled independently at `rate`."""
    out = {}
    for name, arr in columns.items():
        mask = (rng.random(len(arr)) < rate) & np.asarray(arr.is_valid())
        rec.add("missing_demographics", "users", ids.filter(pa.array(mask)), name)
        out[name] = pc.if_else(pa.array(mask), pa.scalar(None, arr.type), arr)
    return out


def impossible_numbers(
    rng: np.random.Generator,
    table: str,
    column: str,
    ids: pa.Array,
    values: np.ndarray,
    eligible: np.ndarray,
    rate: float,
    replace: np.ndarray,
    rec: Records,
) -> np.ndarray:
    """Overwrite some eligible values with impossible ones (e.g. age 250, price < 0)."""
    mask = eligible & (rng.random(len(values)) < rate)
    out = values.copy()
    out[mask] = replace[mask]
    rec.add("impossible_values", table, ids.filter(pa.array(mask)), column, pa.array(out[mask]))
    return out


def mix_timezones(
    rng: np.random.Generator,
    table: str,
    ts: np.ndarray,
    offsets: np.ndarray,
    eligible: np.ndarray,
    rate: float,
    rec: Records,
) -> pa.Array:
    """Render timestamps canonically, except a share as local-offset, epoch or naive text."""
    text = formats.iso_utc(ts)
    pick = eligible & (rng.random(len(ts)) < rate)
    fmt = rng.choice(3, len(ts), p=[0.5, 0.25, 0.25])
    renderers = [
        lambda t, o: formats.iso_local(t, o),
        lambda t, o: formats.epoch_text(t),
        lambda t, o: formats.naive_utc(t),
    ]
    for k, render in enumerate(renderers):
        mask = pick & (fmt == k)
        if mask.any():
            text = pc.replace_with_mask(text, pa.array(mask), render(ts[mask], offsets[mask]))
        rec.counts[f"mixed_timezones.{table}.{TZ_FORMATS[k]}"] += int(mask.sum())
    rec.counts["mixed_timezones"] += int(pick.sum())
    return text


def malform(
    rng: np.random.Generator, ids: pa.Array, text: pa.Array, mask: np.ndarray, rec: Records
) -> pa.Array:
    """Replace some event timestamps with text no parser should accept."""
    bad = pa.array(
        np.asarray(MALFORMED, dtype=object)[rng.integers(0, len(MALFORMED), int(mask.sum()))],
        pa.string(),
    )
    rec.add("malformed_timestamps", "events", ids.filter(pa.array(mask)), "timestamp", bad)
    return pc.replace_with_mask(text, pa.array(mask), bad) if mask.any() else text


def duplicate_rows(
    rng: np.random.Generator, table: pa.Table, rate: float, rec: Records
) -> pa.Table:
    """Exact copies of whole event rows, placed right after their original."""
    n = table.num_rows
    dup = np.flatnonzero(rng.random(n) < rate)
    rec.add("duplicate_events", "events", table.column("event_id").take(pa.array(dup)))
    order = np.sort(np.concatenate([np.arange(n), dup]), kind="stable")
    return table.take(pa.array(order)) if len(dup) else table
