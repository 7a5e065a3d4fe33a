"""The ranker's user x item features: one pure, vectorised definition for training and serving.

    user-level inputs (one row per user) + item-level inputs (one row per (user, item)
      pair) + each pair's user --cross_columns--> x_* columns by name (one row per pair)

    training: the offline point-in-time vector, one row per pair --cross_features--> frame
    serving: one user and their candidates' item rows --user_cross_features--> columns

`cross_columns` is the one definition; the two entry points only say where the user's
values come from (every row its own, or one user for every row). It reads only columns
of the `ranking_v1` feature service (the item_id key, user views, item_profile_catalog,
item_daily_popularity with its item_ prefix and the on-demand views user_request_context /
item_request_freshness), so training and the request path cannot drift apart.

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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import chain
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
# The ranking_v1 columns the definition reads: one value per (user, item) pair...
CROSS_ITEM_INPUTS = (
    "item_id",
    "category",
    "category_l1",
    "brand",
    "price",
    "item_popularity_rank_7d",
    "item_conversion_7d",
    "item_age_days",
)
# ...and one per user.
CROSS_USER_INPUTS = (
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
CROSS_INPUTS = (*CROSS_ITEM_INPUTS, *CROSS_USER_INPUTS)  # the online path passes only these


def cross_features(frame: pd.DataFrame) -> pd.DataFrame:
    """The x_* columns for every row of `frame` (same index), each row its own user."""
    columns = {
        name: frame[name].to_numpy(dtype=object) if name in frame.columns else None
        for name in CROSS_INPUTS
    }
    out = cross_columns(
        {k: columns[k] for k in CROSS_USER_INPUTS},
        {k: columns[k] for k in CROSS_ITEM_INPUTS},
        np.arange(len(frame)),
    )
    return pd.DataFrame(out, index=frame.index)


def user_cross_features(
    user: Mapping[str, Any], items: Mapping[str, Any], n: int
) -> dict[str, np.ndarray]:
    """The x_* columns for ONE user against `n` items: `user` holds CROSS_USER_INPUTS (scalars
    and lists), `items` CROSS_ITEM_INPUTS as length-n columns (an absent one is missing)."""
    users = {k: _single(user.get(k)) for k in CROSS_USER_INPUTS}
    return cross_columns(users, items, np.zeros(n, dtype=np.intp))


def cross_columns(
    users: Mapping[str, Any], items: Mapping[str, Any], owner: np.ndarray
) -> dict[str, np.ndarray]:
    """The x_* columns (float64, in CROSS_FEATURES order) of len(owner) (user, item) rows.

    `items`: CROSS_ITEM_INPUTS as columns of those rows; `users`: CROSS_USER_INPUTS as columns of one
    row per user; row i is user owner[i]. An absent column (or None) is missing."""
    n = len(owner)
    n_users = int(owner.max()) + 1 if n else 0
    lists = {k: _Lists.of(users.get(k), n_users) for k in _LISTS}
    tops = lists["top_categories"]
    l1 = _Lists(
        tops.length, tops.owner, tops.position, [str(e).split("/")[0] for e in tops.elements]
    )
    text = _codes(
        {k: _keys(items.get(k), n) for k in ("category", "category_l1", "brand", "item_id")}
        | {"rt_last_category": _keys(users.get("rt_last_category"), n_users)}
        | {k: [str(e) for e in lists[k].elements] for k in _TEXT_LISTS}
        | {"top_l1": l1.elements}
    )
    shares = _weights(tops, lists["top_category_shares"])
    cat_share, cat_rank = _lookup(tops, text["top_categories"], text["category"], owner, shares)
    l1_share, _ = _lookup(l1, text["top_l1"], text["category_l1"], owner, shares)
    brand, _ = _lookup(lists["top_brands"], text["top_brands"], text["brand"], owner)
    recent, _ = _lookup(lists["recent_items"], text["recent_items"], text["item_id"], owner)
    session, _ = _lookup(lists["rt_last_items"], text["rt_last_items"], text["item_id"], owner)
    rt_category = text["rt_last_category"][owner]
    price = _numbers(items.get("price"), n)
    usual = _numbers(users.get("avg_price_30d"), n_users)[owner]
    ratio = np.where(usual > 0, price / np.where(usual > 0, usual, 1.0), np.nan)
    rank = _numbers(items.get("item_popularity_rank_7d"), n)
    age = _numbers(items.get("item_age_days"), n)
    device, daypart = (
        _numbers(users.get(k), n_users) for k in ("ctx_device_share", "ctx_daypart_share")
    )
    out = {
        "x_cat_share": cat_share,
        "x_cat_l1_share": l1_share,
        "x_cat_rank": np.where(cat_rank > 0, cat_rank, np.nan),
        "x_is_top_category": np.where(np.isnan(cat_rank), np.nan, (cat_rank == 1) * 1.0),
        "x_price_ratio": ratio,
        "x_log_price_ratio": np.where(ratio > 0, np.log(np.where(ratio > 0, ratio, 1.0)), np.nan),
        "x_brand_match": brand,
        "x_in_recent_items": recent,
        "x_in_rt_last_items": session,
        "x_same_rt_category": np.where(
            (text["category"] < 0) | (rt_category < 0),
            np.nan,
            (text["category"] == rt_category) * 1.0,
        ),
        "x_log_popularity_rank": np.log1p(np.where(rank >= 0, rank, np.nan)),
        "x_conversion_7d": _numbers(items.get("item_conversion_7d"), n),
        "x_log_item_age_days": np.log1p(np.maximum(age, 0.0)),
        "x_is_new_item": np.where(np.isnan(age), np.nan, (age <= NEW_ITEM_DAYS) * 1.0),
        "x_context_share": (device * daypart)[owner],
    }
    return {name: np.asarray(out[name], dtype=np.float64).reshape(n) for name in CROSS_FEATURES}


_TEXT_LISTS = ("top_categories", "top_brands", "recent_items", "rt_last_items")
_LISTS = (*_TEXT_LISTS, "top_category_shares")


@dataclass(frozen=True)
class _Lists:
    """One list per user, exploded: each element with its user and 1-based position."""

    length: np.ndarray  # float64 per user, NaN where the list is missing
    owner: np.ndarray  # intp per element
    position: np.ndarray  # intp per element
    elements: list[Any]

    @classmethod
    def of(cls, values: Any, n_users: int) -> _Lists:
        """A list, tuple or array per user; anything else (None, NaN) is a missing list."""
        if values is None:
            values = [None] * n_users
        present = [v for v in values if isinstance(v, _LIST_TYPES)]
        counts = np.array([len(v) if isinstance(v, _LIST_TYPES) else 0 for v in values], np.intp)
        length = np.where([isinstance(v, _LIST_TYPES) for v in values], counts, np.nan)
        owner = np.repeat(np.arange(n_users), counts)
        position = np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts) + 1
        return cls(length.reshape(n_users), owner, position, list(chain.from_iterable(present)))


_LIST_TYPES = (list, tuple, np.ndarray)


@dataclass(frozen=True)
class _Weights:
    """Numbers on the elements of some lists (a user's share per top category)."""

    values: np.ndarray  # float64 per element of the weighted lists
    usable: np.ndarray  # bool per user: a weights list as long as the user's list


def _weights(lists: _Lists, weights: _Lists) -> _Weights:
    usable = lists.length == weights.length  # NaN (missing) on either side: not usable
    values = np.zeros(len(lists.owner))
    numbers = _numbers(_objects(weights.elements, len(weights.elements)), len(weights.owner))
    values[usable[lists.owner]] = numbers[usable[weights.owner]]
    return _Weights(values, usable)


def _codes(texts: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Every text column and list as codes of one vocabulary (-1 where None)."""
    sizes = [len(v) for v in texts.values()]
    joined = _objects(chain.from_iterable(texts.values()), sum(sizes))
    codes, _ = pd.factorize(joined)
    ends = np.cumsum(sizes)
    return {k: codes[end - size : end] for k, size, end in zip(texts, sizes, ends, strict=True)}


def _lookup(
    lists: _Lists,
    elements: np.ndarray,
    values: np.ndarray,
    owner: np.ndarray,
    weights: _Weights | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: (sum of the weights of the row's user's list elements equal to the row's
    value, the first such element's 1-based position or 0). `elements` and `values` are
    text codes (`_codes`, -1 for None). Weights default to 1 (a 0/1 membership for lists
    without duplicates). NaN for both where the list or the value is missing, or the
    weights are missing or of another length."""
    unusable = np.isnan(lists.length)
    if weights is not None:
        unusable |= ~weights.usable
    bad = unusable[owner] | (values < 0)
    total, first = np.zeros(len(values)), np.zeros(len(values))
    if len(elements) and len(values):
        width = max(int(elements.max()), int(values.max())) + 2  # code width - 1: no text
        element_keys = lists.owner * width + elements
        order = np.argsort(element_keys, kind="stable")  # keeps each list's order
        keys = element_keys[order]
        starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
        if weights is None:
            sums = np.diff(np.append(starts, len(keys))).astype(np.float64)
        else:
            sums = np.add.reduceat(weights.values[order], starts)
        row_keys = owner * width + values
        at = np.minimum(np.searchsorted(keys[starts], row_keys), len(starts) - 1)
        found = keys[starts[at]] == row_keys
        total = np.where(found, sums[at], 0.0)
        first = np.where(found, lists.position[order[starts[at]]], 0.0)  # a key's first
    return np.where(bad, np.nan, total), np.where(bad, np.nan, first)


def _objects(values: Iterable[Any], count: int = -1) -> np.ndarray:
    """A 1-d object array of `values` (never split into a 2-d one)."""
    return np.fromiter(values, dtype=object, count=count)


def _single(value: Any) -> np.ndarray:
    """A one-row object column holding `value` (a list stays one value)."""
    column = np.empty(1, dtype=object)
    column[0] = value
    return column


def _keys(values: Any, n: int) -> np.ndarray:
    """Values as text to compare (object array), None where absent (None or NaN). Catalogue
    columns already hold str or None: then they are used as they are."""
    if values is None:
        return np.full(n, None, dtype=object)
    array = np.asarray(values, dtype=object)
    if set(map(type, array)) <= _TEXT_OR_NONE:
        return array
    return _objects((None if _absent(v) else str(v) for v in array), len(array))


_TEXT_OR_NONE = {str, type(None)}


def _absent(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def _numbers(values: Any, n: int) -> np.ndarray:
    """Values as float64; NaN where missing or not a number."""
    if values is None:
        return np.full(n, np.nan)
    array = np.asarray(values)
    if array.dtype.kind in "fiub":
        return array.astype(np.float64)
    try:
        return np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError):
        series = pd.Series(array, dtype=object)
        return pd.to_numeric(series, errors="coerce").to_numpy(np.float64, na_value=np.nan)
