"""Slowly changing tables: user_profile (demographics) and item_catalog (attributes).

Both are small (one row per user / item) and built in pandas from the clean tables.
A user's profile is valid from signup, else from the first event, else 2000-01-01.
"""

from __future__ import annotations

import pandas as pd

from tailwise.ingest.impute import age_band
from tailwise.ingest.users import INCOME_BANDS

EPOCH_FALLBACK = pd.Timestamp("2000-01-01", tz="UTC")
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


def user_profile(
    users: pd.DataFrame, first_event: pd.Series, created: pd.Timestamp
) -> pd.DataFrame:
    """One row per user; `first_event` maps user_id -> first event time (UTC)."""
    first = pd.to_datetime(users["user_id"].map(first_event), utc=True)
    valid_from = (
        pd.to_datetime(users["signup_at"], utc=True)
        .fillna(first)
        .fillna(EPOCH_FALLBACK)
        .dt.as_unit("us")
    )
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


def item_category(items: pd.DataFrame) -> pd.Series:
    """item_id -> primary category (the first '|'-separated path)."""
    return pd.Series(
        items["category"].str.split("|").str[0].to_numpy(), index=items["item_id"], name="category"
    )


def item_catalog(items: pd.DataFrame, created: pd.Timestamp) -> pd.DataFrame:
    """One row per item; price_band by price tercile within category_l1."""
    l1 = items["category_l1"].fillna("unknown")
    pct = items["price"].groupby(l1).rank(pct=True, method="average")
    band = pd.cut(pct, [0, 1 / 3, 2 / 3, 1], labels=list(PRICE_BANDS)).astype(object)
    valid_from = (
        pd.to_datetime(items["created_at"], utc=True).fillna(EPOCH_FALLBACK).dt.as_unit("us")
    )
    return pd.DataFrame(
        {
            "item_id": items["item_id"].astype(str),
            "event_timestamp": valid_from,
            "created_timestamp": created,
            "category": item_category(items).to_numpy(),
            "category_l1": items["category_l1"],
            "categories": items["category"].str.split("|"),
            "brand": items["brand"],
            "price": items["price"].astype(float),
            "price_band": band.where(band.notna(), None),
            "title": items["title"],
            # Seconds since the epoch, so item age can be computed at request time.
            "created_epoch": valid_from.astype("int64") // 1_000_000,
        }
    )
