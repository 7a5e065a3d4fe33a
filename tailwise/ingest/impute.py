"""Imputation of missing demographics, every filled value flagged `<column>_imputed`.

Method (documented in data/README.md):
- country: the country the user's own events most often come from, else "unknown";
- age: median age of users with the same country and income band (groups of at least
  `MIN_GROUP`), else of the same country, else of everyone;
- income_band: most common band among users of the same country and age band, else of
  everyone;
- gender and region: the explicit level "unknown" (not guessed: a model can learn from
  "unknown", while a guessed gender would be a made-up fact about a person).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MIN_GROUP = 20
AGE_BANDS = [0, 18, 25, 35, 45, 55, 65, 200]
AGE_BAND_LABELS = ["<18", "18-24", "25-34", "35-44", "45-54", "55-64", "65+"]


def age_band(age: pd.Series) -> pd.Series:
    return pd.cut(age, AGE_BANDS, right=False, labels=AGE_BAND_LABELS).astype("string")


def impute_demographics(users: pd.DataFrame, event_country: pd.DataFrame) -> pd.DataFrame:
    """Return a copy with country, age, income_band, gender, region filled and flagged."""
    df = users.copy()
    for col in ("country", "age", "income_band", "gender", "region"):
        df[f"{col}_imputed"] = df[col].isna()

    from_events = df["user_id"].map(
        dict(zip(event_country["user_id"], event_country["country"], strict=True))
    )
    country = df["country"].astype(object)
    country = country.where(country.notna(), from_events.astype(object))
    df["country"] = country.where(country.notna(), "unknown")

    df["age"] = _fill_by_groups(df, "age", [["country", "income_band"], ["country"]], "median")
    df["age"] = df["age"].round().astype("Int64")
    df["_age_band"] = age_band(df["age"].astype(float))
    df["income_band"] = _fill_by_groups(df, "income_band", [["country", "_age_band"]], "mode")
    df["gender"] = df["gender"].fillna("unknown")
    df["region"] = df["region"].fillna("unknown")
    return df.drop(columns=["_age_band"])


def _fill_by_groups(df: pd.DataFrame, col: str, levels: list[list[str]], how: str) -> pd.Series:
    """Fill missing `col` from the median (or mode) of known values in the same group, trying
    each level of keys in turn; groups need `MIN_GROUP` known values. Group keys are read as
    text with missing as a level of its own, so a key column that is absent or entirely null
    (one object, one float column in pandas) still groups."""
    known = df[col].notna()
    values = df[col].astype(float) if how == "median" else df[col].astype(object)
    values = values.where(known)
    for keys in levels:
        missing = values.isna()
        if not missing.any():
            return values
        groups = [df[k].astype("string").fillna(_MISSING_KEY).to_numpy() for k in keys]
        by = values.where(known).groupby(groups, dropna=False)
        size = by.transform("count")
        stat = by.transform("median") if how == "median" else by.transform(_mode)
        values = values.where(~missing, stat.where(size >= MIN_GROUP))
    if values.isna().any() and known.any():
        overall = values[known]
        values = values.fillna(overall.median() if how == "median" else _mode(overall))
    return values


_MISSING_KEY = "\x00missing"


def _mode(s: pd.Series) -> object:
    counts = s.value_counts()
    return counts.index[0] if len(counts) else np.nan
