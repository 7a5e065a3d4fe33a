"""The deterministic part of user behaviour, shared by the simulation and the oracle.

`sessions.py` draws every choice as "deterministic score + random noise"; the
scores come from the functions here, so `true_utility` ranks (user, item)
pairs exactly as the simulation's deterministic part does:

    utility = taste_scale * taste[user, leaf(item)]           (category taste)
            + DEVICE_TOP[device, top] + WEEKEND_TOP[weekend, top] (context, optional)
            + beta_popularity * log(item share of its leaf's popularity)
            + item_affinity(user, item, at)                     (quality, favourite
              brand, price vs. the leaf median scaled by price sensitivity,
              novelty boost; -inf before the item exists)

The simulation picks a session's intent leaf by softmax of the first two
terms, an item within the leaf by popularity share times exp(item_affinity),
and converts / rates by `personal_utility` (taste + item_affinity).

When world.json records a shift, `true_utility` at instants at or after it adds
the shift's top-level taste change and rescales the original items' popularity
shares for the new batch, as the simulation does.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tailwise.synthetic.world import COEFFICIENTS, DAY, DEVICE_TOP, WEEKEND_TOP

DEVICE_INDEX = {"mobile": 0, "desktop": 1, "tablet": 2}


def category_logits(
    taste: np.ndarray,
    leaf_top: np.ndarray,
    device: np.ndarray | None,
    weekend: np.ndarray | None,
    coef: dict = COEFFICIENTS,
) -> np.ndarray:
    """(n, L) logits of a session's intent leaf for tastes `taste` in a context."""
    logits = coef["taste_scale"] * taste.astype(np.float64)
    shift = np.zeros((len(taste), len(WEEKEND_TOP[0])))
    if device is not None:
        shift = shift + np.asarray(DEVICE_TOP)[device]
    if weekend is not None:
        shift = shift + np.asarray(WEEKEND_TOP)[np.asarray(weekend, np.int64)]
    return logits + shift[:, leaf_top]


def item_affinity(
    quality: np.ndarray,
    brand_match: np.ndarray,
    price_ratio: np.ndarray,
    sensitivity: np.ndarray,
    item_age: np.ndarray | None,
    coef: dict = COEFFICIENTS,
) -> np.ndarray:
    """User-specific appeal of an item within its category (broadcasts).

    price_ratio is price / leaf median price; item_age is seconds since the item's
    created_at at the moment of choice (None: ignore novelty and availability)."""
    score = (
        coef["beta_quality"] * quality
        + coef["beta_brand"] * brand_match
        - sensitivity * np.log(price_ratio)
    )
    if item_age is None:
        return score
    age_days = np.maximum(item_age, 0) / DAY
    novelty = coef["beta_novelty"] * np.exp(-age_days / coef["novelty_days"])
    return np.where(item_age >= 0, score + novelty, -np.inf)


def personal_utility(
    leaf_taste: np.ndarray, affinity: np.ndarray, coef: dict = COEFFICIENTS
) -> np.ndarray:
    """What drives add_to_cart, purchase and rating values."""
    return coef["taste_scale"] * leaf_taste + affinity


def true_utility(
    users: pa.Table,
    items: pa.Table,
    world: dict[str, Any],
    user_ids: Any,
    item_ids: Any,
    *,
    device: Any = None,
    weekend: Any = None,
    at: Any = None,
) -> np.ndarray:
    """Score (user_ids[k], item_ids[k]) pairs from ground_truth tables.

    users/items are ground_truth/users.parquet and items.parquet, world is
    world.json. device ("mobile"/"desktop"/"tablet"), weekend (bool) and at
    (epoch seconds) are optional context, scalars or per pair; without `at`
    novelty, availability and any shift (world["shift"]) are ignored.
    """
    leaves = world["taxonomy"]["leaves"]
    leaf_of = {name: k for k, name in enumerate(leaves)}
    leaf_top = np.asarray(world["taxonomy"]["leaf_top"])
    medians = np.asarray(world["taxonomy"]["leaf_median_price"])
    u = _positions(users.column("user_id"), user_ids)
    i = _positions(items.column("item_id"), item_ids)
    leaf = np.array([leaf_of[c] for c in items.column("category").to_pylist()])[i]
    taste = _list_matrix(users.column("taste"))[u]
    n = len(u)
    dev = (
        None
        if device is None
        else np.broadcast_to(np.asarray([DEVICE_INDEX[d] for d in np.atleast_1d(device)]), n)
    )
    wk = None if weekend is None else np.broadcast_to(np.asarray(weekend, bool), n)
    cat = category_logits(taste, leaf_top, dev, wk, world["coefficients"])[np.arange(n), leaf]
    fav = _list_matrix(users.column("favourite_brands"))[u]
    brand = np.asarray(items.column("brand").to_pylist(), dtype=object)[i]
    age = None if at is None else np.asarray(at, np.int64) - _epoch(items.column("created_at"))[i]
    aff = item_affinity(
        items.column("quality").to_numpy()[i],
        (fav == brand[:, None]).any(axis=1),
        items.column("price").to_numpy()[i] / medians[leaf],
        users.column("price_sensitivity").to_numpy()[u],
        age,
        world["coefficients"],
    )
    log_share = items.column("popularity_log_share").to_numpy()[i]
    if world.get("shift") and at is not None:
        cat, log_share = _apply_shift(world, items, leaf_top[leaf], leaf, i, at, cat, log_share)
    return cat + world["coefficients"]["beta_popularity"] * log_share + aff


def _apply_shift(
    world: dict[str, Any],
    items: pa.Table,
    top: np.ndarray,
    leaf: np.ndarray,
    i: np.ndarray,
    at: Any,
    cat: np.ndarray,
    log_share: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Category logits and popularity shares of pairs scored at or after the shift."""
    shift = world["shift"]
    start = int(datetime.fromisoformat(shift["at"]).timestamp())
    after = np.broadcast_to(np.asarray(at, np.int64) >= start, len(i))
    shift_top = np.asarray([shift["top_taste"].get(t, 0.0) for t in world["taxonomy"]["tops"]])
    batch = pc.is_in(items.column("item_id"), pa.array(shift["new_item_ids"], pa.string()))
    diluted = after & ~batch.to_numpy(zero_copy_only=False)[i]
    dilution = np.asarray(shift["leaf_log_dilution"])[leaf]
    return cat + after * shift_top[top], log_share + diluted * dilution


def load_ground_truth(out: Path) -> tuple[pa.Table, pa.Table, dict[str, Any]]:
    """Read (users, items, world) from a generated folder's ground_truth/."""
    gt = Path(out) / "ground_truth"
    world = json.loads((gt / "world.json").read_text())
    return pq.read_table(gt / "users.parquet"), pq.read_table(gt / "items.parquet"), world


def _positions(ids: pa.ChunkedArray, wanted: Any) -> np.ndarray:
    lookup = {v: k for k, v in enumerate(ids.to_pylist())}
    try:
        return np.array([lookup[w] for w in np.atleast_1d(wanted)], dtype=np.int64)
    except KeyError as exc:
        raise KeyError(f"unknown id {exc.args[0]!r} (not in ground truth)") from None


def _list_matrix(column: pa.ChunkedArray) -> np.ndarray:
    flat = column.combine_chunks()
    width = len(flat[0]) if len(flat) else 0
    return flat.flatten().to_numpy(zero_copy_only=False).reshape(len(flat), width)


def _epoch(column: pa.ChunkedArray) -> np.ndarray:
    return column.cast(pa.timestamp("s", tz="UTC")).cast(pa.int64()).to_numpy()
