"""The shared world: taxonomy arrays, coefficients, time zones and the item catalogue.

`build_world(cfg, rng)` turns the constants of `catalog.py` into arrays and
draws the item catalogue (category, brand, quality, price, popularity,
created_at). The resulting `World` is read-only input to `people.py`,
`sessions.py` and `utility.py`, and is serialised to `ground_truth/world.json`
and `ground_truth/items.parquet` by `generate.py` and `tables.py`. A configured
distribution shift is attached afterwards by `shift.py` as `World.shift`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from tailwise.synthetic import catalog
from tailwise.synthetic.config import GenerateConfig

DAY = 86_400
TOPS = list(catalog.TAXONOMY)

# Hand-set shifts of top-level category logits, in TOPS order:
# Electronics, Home, Fashion, Sports, Beauty, Books, Toys, Grocery.
GENDER_TOP = [
    [-0.3, 0.1, 0.5, -0.1, 0.8, 0.2, 0.0, 0.0],
    [0.5, -0.1, -0.2, 0.4, -0.6, -0.1, 0.0, 0.0],
    [0.1, 0.0, 0.3, 0.0, 0.3, 0.3, 0.0, 0.0],
]
AGE_TOP = [
    [0.4, -0.4, 0.4, 0.3, 0.3, -0.2, -0.3, -0.2],  # under 30
    [0.0, 0.2, 0.0, 0.0, 0.0, -0.1, 0.6, 0.1],  # 30-49 (parents)
    [-0.2, 0.5, -0.2, -0.2, -0.1, 0.5, 0.1, 0.3],
]  # 50+
DEVICE_TOP = [
    [0.0, -0.2, 0.3, 0.0, 0.3, -0.1, 0.0, 0.1],  # mobile
    [0.4, 0.3, -0.2, 0.1, -0.2, 0.0, 0.0, -0.1],  # desktop
    [-0.1, 0.1, 0.0, -0.1, 0.0, 0.5, 0.4, 0.0],
]  # tablet
WEEKEND_TOP = [[0.0] * 8, [-0.1, 0.3, 0.1, 0.3, 0.0, 0.1, 0.3, -0.1]]
# Relative session start rate by local hour (night trough, lunch bump, evening peak).
DIURNAL = [
    0.3,
    0.15,
    0.08,
    0.05,
    0.05,
    0.08,
    0.2,
    0.45,
    0.7,
    0.8,
    0.85,
    0.9,
    1.0,
    0.95,
    0.85,
    0.85,
    0.9,
    1.0,
    1.2,
    1.45,
    1.6,
    1.5,
    1.1,
    0.6,
]

COEFFICIENTS: dict[str, float] = {
    "taste_scale": 1.0,  # weight of the user's leaf taste logit
    "beta_quality": 0.6,  # item quality
    "beta_brand": 0.9,  # item brand is one of the user's favourites
    "beta_novelty": 1.5,  # boost of a new item, decaying with age
    "novelty_days": 5.0,  # e-folding time of the novelty boost
    "beta_popularity": 1.0,  # log of the item's share of its leaf's popularity
    "cart_base": -3.2,  # logit of add_to_cart per product view
    "cart_utility": 0.35,  # how much affinity raises add_to_cart
    "purchase_base": -1.25,  # logit of purchase per cart
    "purchase_utility": 0.25,
    "evening_conversion": 0.15,  # local 18-22h
    "weekend_activity": 1.25,  # relative session rate on Sat/Sun
    "intent_stickiness": 0.8,  # share of a session's views in its intent leaf
    "rating_share": 0.35,  # share of purchases followed by a rating
    "rating_center": 1.9,
    "rating_slope": 0.8,
    "rating_noise": 0.6,
}
DEVICE_CONVERSION = [-0.15, 0.25, 0.0]


@dataclass(frozen=True)
class WorldShift:
    """Behaviour from `at` on (see `config.ShiftConfig`); built by `shift.py`.

    Items `first_new_item..` are the batch added at the shift. Candidate items of
    product views at or after `at` are drawn from `leaf_order`/`leaf_keys` here,
    which include the batch; earlier views keep `World`'s tables."""

    at: int  # epoch seconds of the first shifted instant
    top: np.ndarray  # (T,) additive shift of top-level category logits
    device_probs: np.ndarray | None  # (3,) device shares of shifted sessions
    first_new_item: int
    leaf_order: np.ndarray
    leaf_keys: np.ndarray
    leaf_log_dilution: np.ndarray  # (L,) log(old leaf popularity / leaf popularity after)


@dataclass(frozen=True)
class World:
    """Arrays shared by every chunk; items are indexed 0..M-1."""

    leaf_names: list[str]  # canonical paths "Top/Leaf"
    leaf_top: np.ndarray  # (L,) top index of each leaf
    leaf_median_price: np.ndarray  # (L,)
    brand_names: list[str]
    brand_top: np.ndarray  # (B,)
    brand_prestige: np.ndarray  # (B,)
    country_top: np.ndarray  # (C, T) country shift of top logits
    tz_names: list[str]
    tz_offsets: np.ndarray  # (n_tz, n_days) seconds east of UTC per UTC day
    tz_day0: int  # epoch seconds of the first offset day
    item: dict[str, np.ndarray] = field(default_factory=dict)
    leaf_keys: np.ndarray = field(default_factory=lambda: np.zeros(0))
    leaf_order: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    leaf_fallback: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    shift: WorldShift | None = None

    @property
    def n_leaves(self) -> int:
        return len(self.leaf_names)

    def offset_seconds(self, tz: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """UTC offset in seconds of time zones `tz` at instants `ts` (epoch s)."""
        day = np.clip((ts - self.tz_day0) // DAY, 0, self.tz_offsets.shape[1] - 1)
        return self.tz_offsets[tz, day]


def build_world(cfg: GenerateConfig, rng: np.random.Generator) -> World:
    """Build taxonomy arrays, time zone tables and the item catalogue."""
    leaves = [(t, f"{t}/{leaf}", price) for t in TOPS for leaf, price in catalog.TAXONOMY[t]]
    brands = [(t, b) for t in TOPS for b in catalog.BRANDS[t]]
    tz_names = sorted({tz for regions in catalog.REGIONS.values() for _, tz in regions})
    day0 = cfg.window_start - timedelta(days=4 * 365)
    world = World(
        leaf_names=[name for _, name, _ in leaves],
        leaf_top=np.array([TOPS.index(t) for t, _, _ in leaves]),
        leaf_median_price=np.array([p for _, _, p in leaves]),
        brand_names=[b for _, b in brands],
        brand_top=np.array([TOPS.index(t) for t, _ in brands]),
        brand_prestige=rng.normal(0.0, 0.5, len(brands)),
        country_top=rng.normal(0.0, 0.25, (len(catalog.COUNTRIES), len(TOPS))),
        tz_names=tz_names,
        tz_offsets=_offset_table(tz_names, day0, 4 * 365 + cfg.days + 30),
        tz_day0=int(day0.timestamp()),
    )
    items = _draw_items(cfg, rng, world)
    world.item.update(items)
    order, keys, fallback = _leaf_sampling_tables(world, cfg)
    object.__setattr__(world, "leaf_order", order)
    object.__setattr__(world, "leaf_keys", keys)
    object.__setattr__(world, "leaf_fallback", fallback)
    return world


def _offset_table(tz_names: list[str], day0: datetime, n_days: int) -> np.ndarray:
    """UTC offsets at noon UTC of each day; exact instants are kept because every
    rendering that prints an offset uses the same offset to shift the clock."""
    out = np.zeros((len(tz_names), n_days), dtype=np.int64)
    for i, name in enumerate(tz_names):
        zone = ZoneInfo(name)
        for d in range(n_days):
            noon = (day0 + timedelta(days=d, hours=12)).astimezone(zone)
            offset = noon.utcoffset()
            out[i, d] = int(offset.total_seconds()) if offset is not None else 0
    return out


def _draw_items(cfg: GenerateConfig, rng: np.random.Generator, world: World) -> dict:
    """Draw category, brand, quality, price, popularity and created_at per item."""
    m, n_leaves = cfg.items, world.n_leaves
    leaf_weight = rng.gamma(2.0, 1.0, n_leaves)
    leaf = rng.choice(n_leaves, size=m, p=leaf_weight / leaf_weight.sum())
    leaf[: min(m, n_leaves)] = np.arange(min(m, n_leaves))  # every leaf stocked if possible
    attrs = draw_item_attributes(rng, world, leaf)
    popularity = attrs["popularity"]
    leaf_total = np.bincount(leaf, weights=popularity, minlength=n_leaves)
    start = int(cfg.window_start.timestamp())
    is_new = rng.random(m) < 0.15
    first_of_leaf = np.zeros(m, bool)
    first_of_leaf[np.unique(leaf, return_index=True)[1]] = True
    is_new &= ~first_of_leaf  # each leaf keeps an item that predates the window
    old_at = start - rng.integers(DAY, 730 * DAY, m)
    new_at = start + rng.integers(0, max(cfg.days - 1, 1) * DAY, m)
    return {
        **attrs,
        "log_share": np.log(popularity / leaf_total[leaf]),
        "created_at": np.where(is_new, new_at, old_at).astype(np.int64),
        "is_new": is_new,
    }


def draw_item_attributes(
    rng: np.random.Generator, world: World, leaf: np.ndarray
) -> dict[str, np.ndarray]:
    """Second leaf, brand, quality, price and popularity of items in leaves `leaf`."""
    m, n_leaves = len(leaf), world.n_leaves
    second = np.where(rng.random(m) < 0.10, rng.integers(0, n_leaves, m), -1)
    second[second == leaf] = -1
    brand = _draw_brands(rng, world, world.leaf_top[leaf])
    quality = world.brand_prestige[brand] + rng.normal(0.0, 0.8, m)
    price = world.leaf_median_price[leaf] * np.exp(0.45 * rng.normal(0, 1, m) + 0.25 * quality)
    popularity = rng.lognormal(0.0, 1.3, m) * np.exp(0.4 * quality)
    return {
        "leaf": leaf,
        "second_leaf": second,
        "brand": brand,
        "quality": quality,
        "price": np.round(price, 2),
        "popularity": popularity,
    }


def _draw_brands(rng: np.random.Generator, world: World, top: np.ndarray) -> np.ndarray:
    """Pick a brand of the item's top level, with Zipf-like brand shares."""
    per_top = np.bincount(world.brand_top)
    first = np.concatenate([[0], np.cumsum(per_top)[:-1]])
    rank = np.minimum(rng.zipf(1.6, len(top)) - 1, per_top[top] - 1)
    return first[top] + rank


def _leaf_sampling_tables(world: World, cfg: GenerateConfig) -> tuple:
    """Monotone keys `leaf + cumulative popularity share` so that one searchsorted
    draws items by popularity within any leaf, plus a per-leaf fallback item that
    exists before the window (the most popular old one), -1 for empty leaves."""
    order, keys, starts, ends = leaf_sampling_keys(
        world, world.item["leaf"], world.item["popularity"]
    )
    pop = world.item["popularity"]
    old = world.item["created_at"] < int(cfg.window_start.timestamp())
    fallback = np.full(world.n_leaves, -1, dtype=np.int64)
    score = np.where(old, pop, -1.0)
    for leaf_idx in np.flatnonzero(ends > starts):
        seg = order[starts[leaf_idx] : ends[leaf_idx]]
        fallback[leaf_idx] = seg[np.argmax(score[seg])]
    return order, keys, fallback


def leaf_sampling_keys(world: World, leaf: np.ndarray, pop: np.ndarray) -> tuple:
    """Item order by leaf, searchsorted keys, and each leaf's start/end in that order."""
    order = np.argsort(leaf, kind="stable")
    cum = np.cumsum(pop[order])
    leaf_sorted = leaf[order]
    starts = np.searchsorted(leaf_sorted, np.arange(world.n_leaves))
    ends = np.searchsorted(leaf_sorted, np.arange(world.n_leaves), side="right")
    before = np.concatenate([[0.0], cum])[starts]
    total = np.concatenate([[0.0], cum])[ends] - before
    keys = leaf_sorted + (cum - before[leaf_sorted]) / total[leaf_sorted]
    keys[np.r_[ends[ends > 0] - 1]] = leaf_sorted[ends[ends > 0] - 1] + 1.0
    return order, keys, starts, ends
