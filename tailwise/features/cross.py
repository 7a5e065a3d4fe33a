"""The ranker's user x item features: one pure, vectorised definition for training and serving.

    ranking_v1 vector of (user, candidate item) rows --cross_features--> x_* columns

`cross_features` reads only columns of the `ranking_v1` feature service (the item_id key,
user views, item_profile_catalog, item_daily_popularity with its item_ prefix and the
on-demand views user_request_context / item_request_freshness). `training.ranker` calls it
on the offline point-in-time vector when it builds training examples, and the serving
ranker calls it on the online vector, so the two paths cannot drift apart.

Missing inputs never raise: an absent column, a None list or a missing scalar gives NaN
(XGBoost treats NaN as missing). An *empty* list is a known value (no activity in the
window), so membership and share features are 0 there, not NaN.

Output columns (float64, one row per input row, same index):

    x_cat_share          share of the item's category (leaf, e.g. 'Electronics/Phones') in
                         the user's 30-day activity: its top_category_shares entry when it
                         is in top_categories, else 0
    x_cat_l1_share       sum of the shares of the user's top categories whose top-level
                         part (before the first '/') equals the item's category_l1
    x_cat_rank           1-based position of the item's category in top_categories; NaN
                         when it is not there (or the inputs are missing)
    x_is_top_category    1 when the item's category is the user's first top category, else 0
    x_price_ratio        item price / avg_price_30d (the user's usual price level);
                         NaN when either is missing or avg_price_30d <= 0
    x_log_price_ratio    log(x_price_ratio); NaN where the ratio is NaN or price <= 0
    x_brand_match        1 when the item's brand is in top_brands, else 0
    x_in_recent_items    1 when the item is in recent_items (last items of earlier days)
    x_in_rt_last_items   1 when the item is in rt_last_items (the current session's items)
    x_same_rt_category   1 when the item's category equals rt_last_category (the category
                         the user is browsing now); NaN when either is missing
    x_log_popularity_rank log1p(item_popularity_rank_7d) (1 = most popular this week)
    x_conversion_7d      item_conversion_7d (purchases / views over 7 days)
    x_log_item_age_days  log1p(max(item_age_days, 0)): freshness, compressed
    x_is_new_item        1 when the item is at most 7 days old at request time
    x_context_share      ctx_device_share * ctx_daypart_share: how usual this request's
                         device and daypart are for the user (0 = never seen like this)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd

CROSS_FEATURES = (
    "x_cat_share",
    "x_cat_l1_share",
    "x_cat_rank",
    "x_is_top_category",
    "x_price_ratio",
    "x_log_price_ratio",
    "x_brand_match",
    "x_in_recent_items",
    "x_in_rt_last_items",
    "x_same_rt_category",
    "x_log_popularity_rank",
    "x_conversion_7d",
    "x_log_item_age_days",
    "x_is_new_item",
    "x_context_share",
)
NEW_ITEM_DAYS = 7.0
# The ranking_v1 columns cross_features reads (the online path passes only these).
CROSS_INPUTS = (
    "item_id",
    "category",
    "category_l1",
    "brand",
    "price",
    "item_popularity_rank_7d",
    "item_conversion_7d",
    "item_age_days",
    "top_categories",
    "top_category_shares",
    "top_brands",
    "recent_items",
    "rt_last_items",
    "rt_last_category",
    "avg_price_30d",
    "ctx_device_share",
    "ctx_daypart_share",
)


def cross_features(frame: pd.DataFrame) -> pd.DataFrame:
    """The x_* columns of the module docstring for every row of `frame` (same index)."""
    n = len(frame)
    category = _column(frame, "category")
    cat_share, cat_rank = _list_lookup(
        frame, "top_categories", category, weights=_column(frame, "top_category_shares")
    )
    top_l1 = _list_elements(_column(frame, "top_categories")).str.split("/").str[0]
    l1_share, _ = _list_lookup(
        frame,
        "top_categories",
        _column(frame, "category_l1"),
        weights=_column(frame, "top_category_shares"),
        elements=top_l1,
    )
    price = _numeric(frame, "price")
    usual = _numeric(frame, "avg_price_30d")
    ratio = np.where(usual > 0, price / np.where(usual > 0, usual, 1.0), np.nan)
    log_ratio = np.where(ratio > 0, np.log(np.where(ratio > 0, ratio, 1.0)), np.nan)
    rank = _numeric(frame, "item_popularity_rank_7d")
    age = _numeric(frame, "item_age_days")
    item_id = _column(frame, "item_id")
    out = {
        "x_cat_share": cat_share,
        "x_cat_l1_share": l1_share,
        "x_cat_rank": np.where(cat_rank > 0, cat_rank, np.nan),
        "x_is_top_category": np.where(np.isnan(cat_rank), np.nan, (cat_rank == 1) * 1.0),
        "x_price_ratio": ratio,
        "x_log_price_ratio": log_ratio,
        "x_brand_match": _list_lookup(frame, "top_brands", _column(frame, "brand"))[0],
        "x_in_recent_items": _list_lookup(frame, "recent_items", item_id)[0],
        "x_in_rt_last_items": _list_lookup(frame, "rt_last_items", item_id)[0],
        "x_same_rt_category": _equal(category, _column(frame, "rt_last_category")),
        "x_log_popularity_rank": np.log1p(np.where(rank >= 0, rank, np.nan)),
        "x_conversion_7d": _numeric(frame, "item_conversion_7d"),
        "x_log_item_age_days": np.log1p(np.maximum(age, 0.0)),
        "x_is_new_item": np.where(np.isnan(age), np.nan, (age <= NEW_ITEM_DAYS) * 1.0),
        "x_context_share": _numeric(frame, "ctx_device_share")
        * _numeric(frame, "ctx_daypart_share"),
    }
    return pd.DataFrame(
        {k: np.asarray(out[k], dtype=np.float64).reshape(n) for k in CROSS_FEATURES},
        index=frame.index,
    )


@dataclass(frozen=True)
class CrossItems:
    """The item side of the cross features, encoded once per catalogue.

    Text columns (item_id, category, category_l1, brand) become codes into their own vocabulary of
    the values' text, -1 where absent; numbers become float64, NaN where missing. A
    request then looks its candidates up by row instead of by text."""

    vocab: dict[str, dict[str, int]]  # text column -> value text -> code
    codes: dict[str, np.ndarray]  # text column -> int32 code per row (-1: absent)
    numbers: dict[str, np.ndarray]  # numeric column -> float64 per row (NaN: missing)

    @classmethod
    def encode(cls, items: Mapping[str, Any], n: int) -> CrossItems:
        """`items`: the item-level inputs as length-n columns (absent columns: missing)."""
        vocab: dict[str, dict[str, int]] = {}
        codes: dict[str, np.ndarray] = {}
        for name in _ITEM_TEXT:
            keys = _keys(items.get(name), n)
            table = vocab[name] = {}
            for key in keys:
                if key is not None and key not in table:
                    table[key] = len(table)
            get: Any = table.get
            codes[name] = np.fromiter(map(get, keys, repeat(-1, n)), np.int32, n)
        numbers = {name: _floats(items.get(name), n) for name in _ITEM_NUMBERS}
        return cls(vocab, codes, numbers)


_ITEM_TEXT = ("item_id", "category", "category_l1", "brand")
_ITEM_NUMBERS = ("price", "item_popularity_rank_7d", "item_conversion_7d")


def cross_features_for_user(
    user: Mapping[str, Any], items: Mapping[str, Any], n: int
) -> dict[str, np.ndarray]:
    """The same x_* columns for ONE user against `n` items, without pandas.

    `user` holds the user-level inputs of CROSS_INPUTS (scalars and lists), `items` the
    item-level ones as length-n arrays (`item_id`, `category`, `category_l1`, `brand`,
    `price`, `item_popularity_rank_7d`, `item_conversion_7d`, `item_age_days`). Every
    rule is the one `cross_features` applies to a frame where the user's values repeat on
    every row; a parity test feeds both the same rows, missing values and empty lists
    included. The request path encodes its catalogue once (`CrossItems`) and calls
    `cross_features_for_rows`, which this wraps.
    """
    catalogue = CrossItems.encode(items, n)
    return cross_features_for_rows(
        user, catalogue, np.arange(n), _floats(items.get("item_age_days"), n)
    )


def cross_features_for_rows(
    user: Mapping[str, Any], items: CrossItems, rows: np.ndarray, age: np.ndarray
) -> dict[str, np.ndarray]:
    """The x_* columns for ONE user against the catalogue `rows` of `items`; `age`: those
    rows' item_age_days. Per candidate only array lookups: the user's lists become small
    tables over the catalogue's codes (~20 numpy steps for any number of rows)."""
    n = len(rows)
    category = items.codes["category"][rows]
    tops, shares = _as_list(user.get("top_categories")), _as_list(user.get("top_category_shares"))
    weights_ok = tops is not None and shares is not None and len(shares) == len(tops)
    vocab = items.vocab
    cat_share, cat_first = _tables(tops if weights_ok else None, vocab["category"], shares)
    l1 = None if tops is None else [str(t).split("/")[0] for t in tops]
    l1_share, _ = _tables(l1 if weights_ok else None, vocab["category_l1"], shares)
    brands, _ = _tables(_as_list(user.get("top_brands")), vocab["brand"])
    item = items.codes["item_id"][rows]
    recent, _ = _tables(_as_list(user.get("recent_items")), vocab["item_id"])
    session, _ = _tables(_as_list(user.get("rt_last_items")), vocab["item_id"])
    price = items.numbers["price"][rows]
    usual = _scalar(user.get("avg_price_30d"))
    ratio = price / usual if usual > 0 else np.full(n, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_ratio = np.where(ratio > 0, np.log(np.where(ratio > 0, ratio, 1.0)), np.nan)
        rank = items.numbers["item_popularity_rank_7d"][rows]
        log_rank = np.log1p(np.where(rank >= 0, rank, np.nan))
    first = cat_first[category]
    rt_category = user.get("rt_last_category")
    if _absent(rt_category):
        same = np.full(n, np.nan)
    else:
        same_table = np.zeros(len(vocab["category"]) + 1)
        same_table[-1] = np.nan  # code -1: the item's category is absent
        code = vocab["category"].get(str(rt_category))
        if code is not None:
            same_table[code] = 1.0
        same = same_table[category]
    context = _scalar(user.get("ctx_device_share")) * _scalar(user.get("ctx_daypart_share"))
    out = {
        "x_cat_share": cat_share[category],
        "x_cat_l1_share": l1_share[items.codes["category_l1"][rows]],
        "x_cat_rank": np.where(first > 0, first, np.nan),
        "x_is_top_category": np.where(np.isnan(first), np.nan, (first == 1) * 1.0),
        "x_price_ratio": ratio,
        "x_log_price_ratio": log_ratio,
        "x_brand_match": brands[items.codes["brand"][rows]],
        "x_in_recent_items": recent[item],
        "x_in_rt_last_items": session[item],
        "x_same_rt_category": same,
        "x_log_popularity_rank": log_rank,
        "x_conversion_7d": items.numbers["item_conversion_7d"][rows],
        "x_log_item_age_days": np.log1p(np.maximum(age, 0.0)),
        "x_is_new_item": np.where(np.isnan(age), np.nan, (age <= NEW_ITEM_DAYS) * 1.0),
        "x_context_share": np.full(n, context),
    }
    return out


def _tables(
    elements: list[Any] | None, vocab: dict[str, int], weights: list[Any] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """`_list_lookup` for one list against a vocabulary: per code (weight sum of the list's
    elements equal to it, first 1-based match or 0), and NaN at the end for code -1
    (value absent). All NaN when the list is missing. An element outside the vocabulary
    matches no item."""
    size = len(vocab) + 1
    if elements is None:
        return np.full(size, np.nan), np.full(size, np.nan)
    sums, firsts = np.zeros(size), np.zeros(size)
    sums[-1] = firsts[-1] = np.nan
    for pos, element in enumerate(elements, start=1):
        code = vocab.get(str(element))
        if code is None:
            continue
        sums[code] += 1.0 if weights is None else _scalar(weights[pos - 1])
        if firsts[code] == 0:
            firsts[code] = pos
    return sums, firsts


def _keys(values: Any, n: int) -> Sequence[str | None]:
    """Values as lookup keys: their text, None where absent (None or NaN). Catalogue columns
    already hold str or None: then they are used as they are."""
    if values is None:
        return [None] * n
    if set(map(type, values)) <= _TEXT_OR_NONE:
        return values
    return [None if _absent(v) else str(v) for v in values]


_TEXT_OR_NONE = {str, type(None)}


def _as_list(value: Any) -> list[Any] | None:
    if value is None or (np.isscalar(value) and pd.isna(value)):
        return None
    return list(value)


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _scalar(value: Any) -> float:
    try:
        return float(value) if value is not None else np.nan
    except (TypeError, ValueError):
        return np.nan


def _floats(values: Any, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    array = np.asarray(values)
    if array.dtype != object:
        return array.astype(np.float64)
    return np.array([_scalar(v) for v in array], dtype=np.float64)


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """The column as an object Series on a 0..n-1 index; all None when absent."""
    if name not in frame.columns:
        return pd.Series([None] * len(frame), dtype=object)
    return pd.Series(frame[name].to_numpy(dtype=object), dtype=object)


def _numeric(frame: pd.DataFrame, name: str) -> np.ndarray:
    return pd.to_numeric(_column(frame, name), errors="coerce").to_numpy(np.float64)


def _missing(values: pd.Series) -> np.ndarray:
    return pd.isna(values).to_numpy()


def _equal(a: pd.Series, b: pd.Series) -> np.ndarray:
    missing = _missing(a) | _missing(b)
    return np.where(missing, np.nan, (a.astype(str) == b.astype(str)).to_numpy() * 1.0)


def _list_elements(lists: pd.Series) -> pd.Series:
    """Elements of every non-empty list, indexed by row position, in list order."""
    lengths = lists.str.len().to_numpy(dtype=np.float64, na_value=0.0)
    exploded = lists[lengths > 0].explode()
    return exploded.astype(object)


def _list_lookup(
    frame: pd.DataFrame,
    list_name: str,
    values: pd.Series,
    weights: pd.Series | None = None,
    elements: pd.Series | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: (sum of weights of list elements equal to the row's value, first match's
    1-based position or 0). Weights default to 1 (so the sum is a 0/1 membership for lists
    without duplicates). NaN for both where the list or the value is missing, or where the
    weights list is missing or of another length."""
    lists = _column(frame, list_name)
    lengths = lists.str.len().to_numpy(dtype=np.float64)
    bad = np.isnan(lengths) | _missing(values)
    if weights is not None:
        bad |= weights.str.len().to_numpy(dtype=np.float64) != lengths
    total = np.zeros(len(lists))
    first = np.zeros(len(lists))
    elements = _list_elements(lists) if elements is None else elements
    if len(elements):
        rows = elements.index.to_numpy()
        position = elements.groupby(level=0).cumcount().to_numpy() + 1
        hit = (elements.astype(str).to_numpy() == values.astype(str).to_numpy()[rows]) & ~bad[rows]
        if weights is not None:
            flat = _list_elements(weights.where(~pd.Series(bad), None))
            w = np.zeros(len(rows))
            ok = ~bad[rows]
            w[ok] = pd.to_numeric(flat, errors="coerce").to_numpy(np.float64)
        else:
            w = np.ones(len(rows))
        total = np.bincount(rows[hit], weights=w[hit], minlength=len(lists)).astype(np.float64)
        firsts = pd.Series(position[hit]).groupby(rows[hit]).min()
        first[firsts.index.to_numpy()] = firsts.to_numpy()
    total = np.where(bad, np.nan, total)
    first = np.where(bad, np.nan, first)
    return total, first
