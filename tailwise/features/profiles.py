"""Slowly changing tables: user_profile (demographics) and item_catalog (attributes).

Both are small (one row per user / item) and built in pandas from the clean tables
(read through `inputs`, so every column exists with its type). A user's profile is valid
from signup or the first event, whichever is earlier, else from 1970-01-01 (always); an
item's attributes from its creation or first event, whichever is earlier, else always.
Absent attributes are typed nulls (age_band "unknown"); the Arrow types of both tables
are fixed here (`PROFILE_TYPES`, `CATALOG_TYPES`) and match the Feast views.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from tailwise.ingest.impute import age_band
from tailwise.ingest.users import INCOME_BANDS

# Valid since "always": data of any era after 1970 must see these rows point-in-time.
EPOCH_FALLBACK = pd.Timestamp("1970-01-01", tz="UTC")
PRICE_BANDS = ("low", "mid", "high")
# Columns of clean users.parquet that are not passed on: personal data hashes and consent.
_NOT_FEATURES = {"signup_at", "consent_tracking", "consent_personalization", "source_records"}
PROFILE_COLUMNS = (
    "user_id",
    "event_timestamp",
    "created_timestamp",
    "age",
    "age_band",
    "gender",
    "country",
    "region",
    "income_band",
    "income_rank",
    "signup_epoch",
    "age_imputed",
    "gender_imputed",
    "country_imputed",
    "income_band_imputed",
)
_TS = pa.timestamp("us", tz="UTC")
PROFILE_TYPES = {
    "user_id": pa.string(),
    "event_timestamp": _TS,
    "created_timestamp": _TS,
    "age": pa.int64(),
    "age_band": pa.string(),
    "gender": pa.string(),
    "country": pa.string(),
    "region": pa.string(),
    "income_band": pa.string(),
    "income_rank": pa.int64(),
    "signup_epoch": pa.int64(),
    **{f"{c}_imputed": pa.bool_() for c in ("age", "gender", "country", "income_band")},
}
CATALOG_TYPES = {
    "item_id": pa.string(),
    "event_timestamp": _TS,
    "created_timestamp": _TS,
    "category": pa.string(),
    "category_l1": pa.string(),
    "categories": pa.list_(pa.string()),
    "brand": pa.string(),
    "price": pa.float64(),
    "price_band": pa.string(),
    "title": pa.string(),
    "created_epoch": pa.int64(),
}


def user_profile(
    users: pd.DataFrame, first_event: pd.Series, created: pd.Timestamp
) -> pd.DataFrame:
    """One row per user (`users` typed by `inputs.read_users`); `first_event` maps
    user_id -> first event time (UTC)."""
    first = pd.to_datetime(users["user_id"].map(first_event), utc=True)
    valid_from = _earliest(pd.to_datetime(users["signup_at"], utc=True), first)
    out = pd.DataFrame(
        {
            "user_id": users["user_id"].astype(str),
            "event_timestamp": valid_from,
            "created_timestamp": created,
            "age": users["age"].astype("Int64"),
            "age_band": age_band(users["age"].astype(float)).fillna("unknown"),
            "gender": users["gender"],
            "country": users["country"],
            "region": users["region"],
            "income_band": users["income_band"],
            "income_rank": users["income_band"]
            .map({b: i for i, b in enumerate(INCOME_BANDS)})
            .astype("Int64"),
            "signup_epoch": valid_from.astype("int64") // 1_000_000,
        }
    )
    for col in ("age", "gender", "country", "income_band"):
        out[f"{col}_imputed"] = users[f"{col}_imputed"].astype(bool)
    extras = [
        c
        for c in users.columns
        if c not in out.columns and c not in _NOT_FEATURES and not c.endswith(("_hmac", "_imputed"))
    ]
    return pd.concat([out, users[extras].reset_index(drop=True)], axis=1)


def _earliest(*times: pd.Series) -> pd.Series:
    """Row-wise earliest known time, else EPOCH_FALLBACK (UTC, microseconds)."""
    known = pd.concat([t.dt.as_unit("us") for t in times], axis=1).min(axis=1)
    return pd.to_datetime(known, utc=True).fillna(EPOCH_FALLBACK).dt.as_unit("us")


def _paths(category: pd.Series) -> pd.Series:
    """'|'-separated category paths as lists (None without a category)."""
    return category.map(lambda v: None if v is None or v != v else str(v).split("|"))


def item_category(items: pd.DataFrame) -> pd.Series:
    """item_id -> primary category (the first '|'-separated path; None without one)."""
    first = _paths(items["category"]).map(lambda p: None if p is None else p[0])
    return pd.Series(first.to_numpy(dtype=object), index=items["item_id"], name="category")


def item_catalog(
    items: pd.DataFrame, created: pd.Timestamp, first_event: pd.Series | None = None
) -> pd.DataFrame:
    """One row per item (`items` typed by `inputs.read_items`); price_band by price tercile
    within category_l1; `first_event` maps item_id -> first event time (UTC)."""
    l1 = items["category_l1"].fillna("unknown")
    pct = items["price"].groupby(l1).rank(pct=True, method="average")
    band = pd.cut(pct, [0, 1 / 3, 2 / 3, 1], labels=list(PRICE_BANDS)).astype(object)
    first = pd.to_datetime(
        items["item_id"].map(first_event if first_event is not None else {}), utc=True
    )
    created_at = pd.to_datetime(items["created_at"], utc=True)
    valid_from = _earliest(created_at, first)
    # Age needs a known start: unknown creation and no event leave it null, not 1970.
    known = created_at.notna() | first.notna()
    return pd.DataFrame(
        {
            "item_id": items["item_id"].astype(str),
            "event_timestamp": valid_from,
            "created_timestamp": created,
            "category": item_category(items).to_numpy(),
            "category_l1": items["category_l1"],
            "categories": _paths(items["category"]),
            "brand": items["brand"],
            "price": items["price"].astype(float),
            "price_band": band.where(band.notna(), None),
            "title": items["title"],
            # Seconds since the epoch, so item age can be computed at request time.
            "created_epoch": (valid_from.astype("int64") // 1_000_000)
            .astype("Int64")
            .where(known, pd.NA),
        }
    )
