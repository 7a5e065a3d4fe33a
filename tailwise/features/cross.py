"""The ranker's user x item features: one pure, vectorised definition for training and serving.

    item-level inputs (one row per (user, item) pair) --CrossItems.encode--> texts as
      codes of the items' vocabulary, numbers as floats
    + user-level inputs (one row per user) + each pair's user --cross_columns--> x_*
      columns by name (one row per pair); the user's texts are looked up in the items'
      vocabulary there

    training: the offline point-in-time vector, one row per pair --cross_features--> frame
    serving: the catalogue encoded once per item table (CrossItems.encode), per request
      its candidates' rows (CrossItems.take) and one user --user_cross_features--> columns

`cross_columns` is the one definition; the two entry points only say where the user's
values come from (every row its own, or one user for every row) and when the item side is
encoded (with the rows, or once for the catalogue: the codes only ever meet a user's
texts, so either gives the same values; tests/features/test_cross.py). It reads only columns
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


def cross_features(frame: pd.DataFrame, owner: np.ndarray | None = None) -> pd.DataFrame:
    """The x_* columns for every row of `frame` (same index), each row its own user; or,
    with `owner` (one key per row), the rows of one key share the user inputs of the
    first of them (read once, not once per row: a user's list of candidates)."""
    columns = {
        name: frame[name].to_numpy(dtype=object) if name in frame.columns else None
        for name in CROSS_INPUTS
    }
    codes = np.arange(len(frame))
    users: dict[str, Any] = {k: columns[k] for k in CROSS_USER_INPUTS}
    if owner is not None:
        if len(owner) != len(frame):
            raise ValueError(f"cross_features: {len(owner)} owner keys for {len(frame)} rows")
        codes = pd.factorize(owner)[0].astype(np.intp)
        first = np.unique(codes, return_index=True)[1]
        users = {k: None if v is None else v[first] for k, v in users.items()}
    out = cross_columns(
        users,
        CrossItems.encode({k: columns[k] for k in CROSS_ITEM_INPUTS}, len(frame)),
        codes,
    )
    return pd.DataFrame(out, index=frame.index)


def user_cross_features(user: Mapping[str, Any], items: CrossItems) -> dict[str, np.ndarray]:
    """The x_* columns for ONE user against every item of `items`: `user` holds
    CROSS_USER_INPUTS (scalars and lists)."""
    users = {k: _single(user.get(k)) for k in CROSS_USER_INPUTS}
    return cross_columns(users, items, np.zeros(len(items), dtype=np.intp))


_ITEM_TEXT = ("category", "category_l1", "brand", "item_id")
_ITEM_NUMBERS = tuple(k for k in CROSS_ITEM_INPUTS if k not in _ITEM_TEXT)


@dataclass(frozen=True)
class CrossItems:
    """The item side of the cross features, encoded: the texts as codes of the items' own
    vocabulary (-1 where missing), the numbers as float64 (NaN where missing).

    Every cross feature compares a user's text with an item's, never two items' or two
    users' texts, so a user's text only needs the items' code for it; one the items do not
    have gets `unknown`, a code no item has. Serving encodes its catalogue once per item
    table and takes the candidates' rows per request (`take`); training encodes its rows."""

    vocabulary: dict[str, int]  # every item text -> its code
    text: dict[str, np.ndarray]  # category, category_l1, brand, item_id: intp codes
    numbers: dict[str, np.ndarray]  # price, popularity rank, conversion, age: float64

    @classmethod
    def encode(cls, items: Mapping[str, Any], n: int) -> CrossItems:
        """`items`: CROSS_ITEM_INPUTS as length-n columns (an absent one is missing)."""
        keys = [_keys(items.get(k), n) for k in _ITEM_TEXT]
        codes, uniques = pd.factorize(_objects(chain.from_iterable(keys), n * len(keys)))
        text = {k: codes[i * n : (i + 1) * n].astype(np.intp) for i, k in enumerate(_ITEM_TEXT)}
        numbers = {k: _numbers(items.get(k), n) for k in _ITEM_NUMBERS}
        return cls({str(t): c for c, t in enumerate(uniques)}, text, numbers)

    def __len__(self) -> int:
        return len(self.text["item_id"])

    @property
    def unknown(self) -> int:
        return len(self.vocabulary)

    def take(self, rows: np.ndarray, numbers: Mapping[str, Any] | None = None) -> CrossItems:
        """The items at `rows`; `numbers` replaces number columns of those rows (the item
        age, which moves with the request time)."""
        taken = {k: v[rows] for k, v in self.numbers.items()}
        for k, values in (numbers or {}).items():
            if k not in taken:
                raise ValueError(f"{k!r} is not one of the cross features' item numbers")
            taken[k] = _numbers(values, len(rows))
        return CrossItems(self.vocabulary, {k: v[rows] for k, v in self.text.items()}, taken)

    def codes(self, texts: Iterable[str | None], count: int = -1) -> np.ndarray:
        """Codes of a user's texts, -1 for None: `unknown` where no item has the text."""
        get, unknown = self.vocabulary.get, self.unknown
        return np.fromiter((-1 if t is None else get(t, unknown) for t in texts), np.intp, count)


def cross_columns(
    users: Mapping[str, Any], items: CrossItems, owner: np.ndarray
) -> dict[str, np.ndarray]:
    """The x_* columns (float64, in CROSS_FEATURES order) of len(owner) (user, item) rows.

    `items`: those rows' item side; `users`: CROSS_USER_INPUTS as columns of one row per
    user; row i is user owner[i]. An absent column (or None) is missing."""
    n = len(owner)
    if len(items) != n:
        raise ValueError(f"{len(items)} item rows for {n} (user, item) rows")
    if n == 0:  # e.g. every candidate excluded
        return {name: np.zeros(0) for name in CROSS_FEATURES}
    n_users = int(owner.max()) + 1
    lists = {k: _Lists.of(users.get(k), n_users) for k in _LISTS}
    tops = lists["top_categories"]
    l1 = _Lists(
        tops.length, tops.owner, tops.position, [str(e).split("/")[0] for e in tops.elements]
    )
    # A list's elements are texts, also None (as 'None'), as training always read them.
    code = {
        k: items.codes(map(str, lists[k].elements), len(lists[k].elements)) for k in _TEXT_LISTS
    }
    code["top_l1"] = items.codes(l1.elements, len(l1.elements))
    text = items.text
    shares = _weights(tops, lists["top_category_shares"])
    cat_share, cat_rank = _lookup(tops, code["top_categories"], text["category"], owner, shares)
    l1_share, _ = _lookup(l1, code["top_l1"], text["category_l1"], owner, shares)
    brand, _ = _lookup(lists["top_brands"], code["top_brands"], text["brand"], owner)
    recent, _ = _lookup(lists["recent_items"], code["recent_items"], text["item_id"], owner)
    session, _ = _lookup(lists["rt_last_items"], code["rt_last_items"], text["item_id"], owner)
    rt_category = items.codes(_keys(users.get("rt_last_category"), n_users), n_users)[owner]
    price = items.numbers["price"]
    usual = _numbers(users.get("avg_price_30d"), n_users)[owner]
    ratio = np.where(usual > 0, price / np.where(usual > 0, usual, 1.0), np.nan)
    rank = items.numbers["item_popularity_rank_7d"]
    age = items.numbers["item_age_days"]
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
        "x_conversion_7d": items.numbers["item_conversion_7d"],
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


def _lookup(
    lists: _Lists,
    elements: np.ndarray,
    values: np.ndarray,
    owner: np.ndarray,
    weights: _Weights | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: (sum of the weights of the row's user's list elements equal to the row's
    value, the first such element's 1-based position or 0). `elements` and `values` are
    text codes (`CrossItems`, -1 for None). Weights default to 1 (a 0/1 membership for lists
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
    """Values as float64; NaN where missing or not a number. Value by value (float() of
    each), so a catalogue converted once equals its rows converted one request at a time."""
    if values is None:
        return np.full(n, np.nan)
    array = values if isinstance(values, np.ndarray) else _objects(values)
    if array.dtype.kind in "fiub":
        return array.astype(np.float64)
    try:
        return np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError):
        return np.fromiter(map(_number, array), np.float64, len(array))


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan
