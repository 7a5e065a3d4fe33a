"""Items: validate, merge repeated ids, normalise categories and brands, impute prices.

Categories arrive as '|'-separated paths written many ways ("Home > Kitchen",
" home/kitchen ", "Home & Garden"); each segment is matched case-, space- and
'&'/'and'-insensitively and written in the spelling most items use, joined by '/'.
Brands get the same treatment. A missing or impossible price is filled with the median
price of the item's first category and flagged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb
import pandas as pd

from tailwise.ingest import parse
from tailwise.ingest.outcome import TableOutcome
from tailwise.params import IngestParams
from tailwise.schema import CLEAN_ITEMS, ITEMS

_PATH_SPLIT = re.compile(r"\s*(?:/|>|»|\\)\s*")


@dataclass
class ItemsResult:
    clean: pd.DataFrame
    outcome: TableOutcome
    quarantine_sql: str
    corrections_sql: str


def corrections(p: IngestParams) -> list[parse.Check]:
    c = parse.Check
    return [
        c("price", "raw_price IS NOT NULL AND parsed_price IS NULL", "not a number"),
        c(
            "price",
            f"parsed_price < 0 OR parsed_price > {p.price_max}",
            f"outside the possible range 0..{p.price_max:g}",
        ),
        c(
            "created_at",
            "raw_created_at IS NOT NULL AND parsed_created_at IS NULL",
            "not ISO-8601 or epoch seconds",
        ),
        c(
            "created_at",
            f"NOT ({parse.in_time_window('parsed_created_at', p)})",
            parse.time_window_reason(p),
        ),
    ]


def typed_sql(
    types: dict[str, str], p: IngestParams, extras_cat: list[str], extras_num: list[str]
) -> str:
    t = types
    inner = [
        f"{parse.key('item_id', t['item_id'])} AS item_id",
        *(f"{parse.text(c, t[c])} AS {c}" for c in ("title", "description", "category", "brand")),
        f"{parse.raw_text('price', t['price'])} AS raw_price",
        f"{parse.number('price', t['price'])} AS parsed_price",
        f"{parse.raw_text('created_at', t['created_at'])} AS raw_created_at",
        f"{parse.timestamp('created_at', t['created_at'])} AS parsed_created_at",
        *(f"{parse.text(parse.sql_ident(c), t[c])} AS {parse.sql_ident(c)}" for c in extras_cat),
        *(f"{parse.number(parse.sql_ident(c), t[c])} AS {parse.sql_ident(c)}" for c in extras_num),
    ]
    return f"""
        SELECT *,
          CASE WHEN parsed_price BETWEEN 0 AND {p.price_max} THEN parsed_price END AS price,
          CASE WHEN {parse.in_time_window("parsed_created_at", p)} THEN parsed_created_at END AS created_at
        FROM (SELECT {", ".join(inner)} FROM raw_items)
    """


def ingest_items(
    con: duckdb.DuckDBPyConnection,
    types: dict[str, str],
    p: IngestParams,
    extras_cat: list[str],
    extras_num: list[str],
) -> ItemsResult:
    con.execute(
        f"CREATE OR REPLACE TABLE typed_items AS {typed_sql(types, p, extras_cat, extras_num)}"
    )
    fix_sql = parse.corrections_sql("items", "item_id", corrections(p), "typed_items")
    outcome = TableOutcome("items")
    outcome.input = int(con.execute("SELECT count(*) FROM typed_items").fetchone()[0])  # type: ignore[index]
    outcome.add_corrections(con, fix_sql)
    df = con.execute("SELECT * FROM typed_items WHERE item_id IS NOT NULL").df()
    outcome.quarantined = outcome.input - len(df)
    if outcome.quarantined:
        outcome.reasons["quarantined"]["item_id: required value is missing"] = outcome.quarantined
    repeated = len(df) - df["item_id"].nunique()
    if repeated:
        outcome.duplicates_merged = repeated
        outcome.reasons["duplicates_merged"]["same item_id delivered again"] = repeated
        df = df.groupby("item_id", sort=False).first().reset_index()

    df["category"] = normalise_categories(df["category"])
    df["category_l1"] = df["category"].str.split("|").str[0].str.split("/").str[0]
    df["brand"] = _canonical_spelling(df["brand"])
    outcome.columns_without_values = [
        c.name for c in ITEMS.columns if not c.required and df[c.name].isna().all()
    ]
    df["price_imputed"] = df["price"].isna()
    if df["price"].notna().any():
        first_cat = df["category"].str.split("|").str[0]
        by_cat = df.groupby(first_cat)["price"].transform("median")
        df["price"] = df["price"].fillna(by_cat).fillna(df["price"].median())
    outcome.kept = len(df)
    keep = [*CLEAN_ITEMS, *extras_cat, *extras_num]
    quarantine_sql = f"""
        SELECT 'items' AS table_name, 'item_id' AS column_name, NULL AS value,
               'required value is missing' AS reason, to_json(t) AS row_json
        FROM (SELECT * FROM raw_items WHERE {parse.key("item_id", types["item_id"])} IS NULL) t
    """
    return ItemsResult(df[keep], outcome, quarantine_sql, fix_sql)


def _segment_key(segment: str) -> str:
    return re.sub(r"\s+", " ", segment.replace("&", " and ")).strip().casefold()


def normalise_categories(raw: pd.Series) -> pd.Series:
    """'|'-joined category paths in one spelling per segment; NaN stays NaN."""
    unique = raw.dropna().unique()
    parsed = {
        value: [
            [seg for seg in _PATH_SPLIT.split(path.strip()) if seg]
            for path in value.split("|")
            if path.strip()
        ]
        for value in unique
    }
    counts: dict[str, dict[str, int]] = {}
    freq = raw.value_counts()
    for value, paths in parsed.items():
        for path in paths:
            for seg in path:
                tidy = re.sub(r"\s+", " ", seg).strip()
                bucket = counts.setdefault(_segment_key(tidy), {})
                bucket[tidy] = bucket.get(tidy, 0) + int(freq[value])
    # Most items' spelling wins; on a tie, a capitalised spelling over an all-lower one.
    best = {
        k: max(v.items(), key=lambda kv: (kv[1], kv[0] != kv[0].lower(), kv[0]))[0]
        for k, v in counts.items()
    }
    out = {
        value: "|".join(
            dict.fromkeys(
                "/".join(best[_segment_key(re.sub(r"\s+", " ", s).strip())] for s in path)
                for path in paths
            )
        )
        or None
        for value, paths in parsed.items()
    }
    return _as_text(raw.map(out))


def _canonical_spelling(raw: pd.Series) -> pd.Series:
    """Map each value to its most common spelling among case/space variants."""
    keys = raw.map(lambda v: _segment_key(v) if isinstance(v, str) else None)
    counts = pd.DataFrame({"k": keys, "v": raw}).dropna().value_counts()
    best: dict[str, str] = {}
    for (k, v), _n in counts.items():  # value_counts is sorted, most common first
        best.setdefault(k, v)
    return _as_text(keys.map(best))


def _as_text(values: pd.Series) -> pd.Series:
    """Object dtype with None for missing, even when every value is missing."""
    return values.astype(object).where(values.notna(), None)
