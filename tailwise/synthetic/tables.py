"""Arrow tables of one chunk: raw users/events/items (with defects) and ground truth.

Takes the numeric output of `world.py`, `people.py`, `sessions.py` and
`duplicates.py`, renders ids, text and timestamps (`formats.py`), applies the
defects (`defects.py`) and returns tables in the fixed schemas below, which
`generate.py` appends to the parquet files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tailwise.synthetic import catalog, defects, formats
from tailwise.synthetic.config import GenerateConfig
from tailwise.synthetic.duplicates import NearDuplicates
from tailwise.synthetic.people import COUNTRY_CODES, REGION_LIST, People, archetype
from tailwise.synthetic.world import TOPS, World

S, F, INT, B = pa.string(), pa.float64(), pa.int64(), pa.bool_()
TS = pa.timestamp("s", tz="UTC")
USERS_SCHEMA = pa.schema(
    [
        ("user_id", S),
        ("email", S),
        ("full_name", S),
        ("phone", S),
        ("age", INT),
        ("gender", S),
        ("country", S),
        ("region", S),
        ("income_band", S),
        ("signup_at", S),
        ("consent_personalization", B),
        ("consent_tracking", B),
        ("marketing_source", S),
    ]
)
ITEMS_SCHEMA = pa.schema(
    [
        ("item_id", S),
        ("title", S),
        ("description", S),
        ("category", S),
        ("brand", S),
        ("price", F),
        ("created_at", S),
    ]
)
EVENTS_SCHEMA = pa.schema(
    [
        ("event_id", S),
        ("user_id", S),
        ("item_id", S),
        ("event_type", S),
        ("timestamp", S),
        ("value", F),
        ("price", F),
        ("session_id", S),
        ("device", S),
        ("channel", S),
        ("country", S),
    ]
)


@dataclass(frozen=True)
class Ids:
    """Id widths and the numbering offsets of the current chunk."""

    user_width: int
    item_width: int
    event_offset: int = 0
    session_offset: int = 0


def id_scheme(cfg: GenerateConfig) -> Ids:
    """Users 0..N-1 are real, N.. near duplicates, 2N..3N-1 unknown references; items
    0..M-1 are real (M counts a shift's new items too), M..2M-1 unknown references."""
    return Ids(formats.id_width(3 * cfg.users - 1, 7), formats.id_width(2 * cfg.total_items - 1, 6))


def users_table(
    cfg: GenerateConfig,
    world: World,
    p: People,
    contact: dict[str, pa.Array],
    dup: NearDuplicates,
    rng: np.random.Generator,
    ids: Ids,
    rec: defects.Records,
) -> pa.Table:
    """Real people followed by their near-duplicate accounts, with defects."""
    rows = np.concatenate([np.arange(len(p)), dup.pos])
    user_id = formats.format_ids("u", np.concatenate([p.idx, dup.numbers]), ids.user_width)
    rec.add(
        "near_duplicate_users",
        "users",
        user_id[len(p) :],
        None,
        pa.array(np.where(dup.different_email, "different_email", "reformatted_email")),
        user_id.take(pa.array(dup.pos, pa.int64())),
    )
    demo = defects.null_cells(
        rng,
        user_id,
        {
            "age": pa.array(p.age[rows]),
            "gender": formats.take(catalog.GENDERS, p.gender[rows]),
            "country": formats.take(COUNTRY_CODES, p.country[rows]),
            "income_band": formats.take(catalog.INCOME_BANDS, p.income[rows]),
        },
        cfg.defects.missing_demographics,
        rec,
    )
    age = demo["age"].to_numpy(zero_copy_only=False)
    valid = np.asarray(demo["age"].is_valid())
    bad_age = np.where(rng.random(len(rows)) < 0.5, 250.0, -3.0)
    age = defects.impossible_numbers(
        rng,
        "users",
        "age",
        user_id,
        np.nan_to_num(age),
        valid,
        cfg.defects.impossible_values,
        bad_age,
        rec,
    )
    signup = np.concatenate([p.signup_at, dup.signup_at])
    cols = {
        "user_id": user_id,
        **{k: pa.concat_arrays([contact[k], dup.contact[k]]) for k in contact},
        "age": pa.array(age.astype(np.int64), mask=~valid),
        "gender": demo["gender"],
        "country": demo["country"],
        "region": formats.take([r for _, r, _ in REGION_LIST], p.region[rows]),
        "income_band": demo["income_band"],
        "signup_at": defects.mix_timezones(
            rng,
            "users",
            signup,
            world.offset_seconds(p.tz[rows], signup),
            np.ones(len(rows), bool),
            cfg.defects.mixed_timezones,
            rec,
        ),
        "consent_personalization": pa.array(p.consent_personalization[rows]),
        "consent_tracking": pa.array(p.consent_tracking[rows]),
        "marketing_source": formats.take(
            catalog.MARKETING_SOURCES, rng.integers(0, len(catalog.MARKETING_SOURCES), len(rows))
        ),
    }
    return pa.table(cols, schema=USERS_SCHEMA)


def events_table(
    cfg: GenerateConfig,
    world: World,
    p: People,
    ev: dict[str, np.ndarray],
    user_number: np.ndarray,
    rng: np.random.Generator,
    ids: Ids,
    rec: defects.Records,
) -> pa.Table:
    """Render events, inject row-level defects, then append exact duplicates."""
    n, d = len(ev["ts"]), cfg.defects
    event_id = formats.format_ids("e", ids.event_offset + np.arange(n), 10)
    r = rng.random(n)
    unknown = r < d.unknown_references
    malformed = (r >= d.unknown_references) & (r < d.unknown_references + d.malformed_timestamps)
    priced = (ev["etype"] == 2) | (ev["etype"] == 3)
    price = np.where(priced, world.item["price"][ev["item"]], np.nan)
    price = defects.impossible_numbers(
        rng,
        "events",
        "price",
        event_id,
        price,
        priced & ~unknown & ~malformed,
        d.impossible_values,
        -price,
        rec,
    )
    users, items = _unknown_refs(cfg, rng, ids, event_id, user_number, ev["item"], unknown, rec)
    ts = ev["ts"]
    offsets = world.offset_seconds(p.tz[ev["user"]], ts)
    text = defects.mix_timezones(rng, "events", ts, offsets, ~malformed, d.mixed_timezones, rec)
    table = pa.table(
        {
            "event_id": event_id,
            "user_id": users,
            "item_id": items,
            "event_type": formats.take(catalog.EVENT_TYPES, ev["etype"]),
            "timestamp": defects.malform(rng, event_id, text, malformed, rec),
            "value": pa.array(ev["value"], from_pandas=True),
            "price": pa.array(price, from_pandas=True),
            "session_id": formats.format_ids("s", ids.session_offset + ev["sess"], 9),
            "device": formats.take(catalog.DEVICES, ev["device"]),
            "channel": formats.take(catalog.CHANNELS, ev["channel"]),
            "country": formats.take(COUNTRY_CODES, p.country[ev["user"]]),
        },
        schema=EVENTS_SCHEMA,
    )
    return defects.duplicate_rows(rng, table, d.duplicate_events, rec)


def _unknown_refs(
    cfg: GenerateConfig,
    rng: np.random.Generator,
    ids: Ids,
    event_id: pa.Array,
    user_number: np.ndarray,
    item: np.ndarray,
    unknown: np.ndarray,
    rec: defects.Records,
) -> tuple[pa.Array, pa.Array]:
    """Point some events at user ids (2N..3N-1) or item ids (M..2M-1) that do not exist."""
    as_user = unknown & (rng.random(len(item)) < 0.5)
    as_item = unknown & ~as_user
    users = np.where(as_user, 2 * cfg.users + rng.integers(0, cfg.users, len(item)), user_number)
    m = cfg.total_items
    items = np.where(as_item, m + rng.integers(0, m, len(item)), item)
    rec.add("unknown_references", "events", event_id.filter(pa.array(as_user)), "user_id")
    rec.add("unknown_references", "events", event_id.filter(pa.array(as_item)), "item_id")
    return (
        formats.format_ids("u", users, ids.user_width),
        formats.format_ids("i", items, ids.item_width),
    )


def truth_users_table(
    cfg: GenerateConfig, world: World, p: People, dup: NearDuplicates, ids: Ids
) -> pa.Table:
    """Every behavioural parameter of the real people, with true demographics."""
    n, n_leaves = len(p), world.n_leaves
    dup_of = np.full(n, -1, np.int64)
    dup_of[dup.pos] = dup.numbers
    dup_ids = formats.format_ids("u", np.maximum(dup_of, 0), ids.user_width)
    return pa.table(
        {
            "user_id": formats.format_ids("u", p.idx, ids.user_width),
            "age": pa.array(p.age),
            "gender": formats.take(catalog.GENDERS, p.gender),
            "country": formats.take(COUNTRY_CODES, p.country),
            "region": formats.take([r for _, r, _ in REGION_LIST], p.region),
            "time_zone": formats.take(world.tz_names, p.tz),
            "income_band": formats.take(catalog.INCOME_BANDS, p.income),
            "signup_at": pa.array(p.signup_at).cast(TS),
            "lapse_at": pa.array(p.lapse_at, mask=p.lapse_at < 0).cast(TS),
            "taste": _fixed_list(p.taste.astype(np.float32), n_leaves),
            "favourite_brands": pa.FixedSizeListArray.from_arrays(
                formats.take(world.brand_names, p.favourite_brands.reshape(-1)),
                p.favourite_brands.shape[1],
            ).cast(pa.list_(S)),
            "price_sensitivity": pa.array(p.price_sensitivity),
            "activity": pa.array(p.activity),
            "buy_propensity": pa.array(p.buy_propensity),
            "browse_depth": pa.array(p.browse_depth),
            "device_probs": _fixed_list(p.device_probs, 3),
            "archetype": pa.array(archetype(p, cfg)),
            "duplicate_user_id": pc.if_else(pa.array(dup_of >= 0), dup_ids, pa.scalar(None, S)),
        }
    )


def _fixed_list(matrix: np.ndarray, width: int) -> pa.Array:
    flat = pa.array(np.ascontiguousarray(matrix).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, width).cast(pa.list_(flat.type))


def items_tables(
    cfg: GenerateConfig,
    world: World,
    rng: np.random.Generator,
    ids: Ids,
    rec: defects.Records,
    shift_rng: np.random.Generator | None = None,
) -> tuple[pa.Table, pa.Table]:
    """Raw items (category spellings, negative prices) and their ground truth.

    The original catalogue is rendered with `rng`; a shift's new items follow it,
    rendered with `shift_rng`, so the original rows do not depend on the shift."""
    n_items = len(world.item["leaf"])
    raw, truth = _item_rows(cfg, world, rng, ids, rec, np.arange(cfg.items))
    if n_items > cfg.items:
        if shift_rng is None:
            raise ValueError("items_tables: a shift adds items, so shift_rng is required")
        more = _item_rows(cfg, world, shift_rng, ids, rec, np.arange(cfg.items, n_items))
        raw, truth = pa.concat_tables([raw, more[0]]), pa.concat_tables([truth, more[1]])
    return raw, truth


def _item_rows(
    cfg: GenerateConfig,
    world: World,
    rng: np.random.Generator,
    ids: Ids,
    rec: defects.Records,
    rows: np.ndarray,
) -> tuple[pa.Table, pa.Table]:
    """Raw and ground-truth rows of items at positions `rows`."""
    it = {k: v[rows] for k, v in world.item.items()}
    m = len(rows)
    item_id = formats.format_ids("i", rows, ids.item_width)
    leaf_names = np.asarray(world.leaf_names, dtype=object)
    canonical = [
        a if b < 0 else f"{a}|{leaf_names[b]}"
        for a, b in zip(leaf_names[it["leaf"]], it["second_leaf"], strict=True)
    ]
    brand = formats.take(world.brand_names, it["brand"])
    leaf = formats.take([n.split("/")[1] for n in world.leaf_names], it["leaf"])
    adjective = formats.take(catalog.ADJECTIVES, rng.integers(0, len(catalog.ADJECTIVES), m))
    model = pc.cast(pa.array(rng.integers(100, 1000, m)), S)
    phrase = formats.take(
        catalog.DESCRIPTION_PHRASES, rng.integers(0, len(catalog.DESCRIPTION_PHRASES), m)
    )
    price = defects.impossible_numbers(
        rng,
        "items",
        "price",
        item_id,
        it["price"],
        np.ones(m, bool),
        cfg.defects.impossible_values,
        -it["price"],
        rec,
    )
    raw = pa.table(
        {
            "item_id": item_id,
            "title": formats.join(brand, " ", adjective, " ", leaf, " ", model),
            "description": formats.join(
                adjective, " ", pc.utf8_lower(leaf), " by ", brand, ". ", phrase
            ),
            "category": defects.spell_categories(
                rng, item_id, canonical, cfg.defects.category_spellings, rec
            ),
            "brand": brand,
            "price": pa.array(price),
            "created_at": formats.iso_utc(it["created_at"]),
        },
        schema=ITEMS_SCHEMA,
    )
    truth = pa.table(
        {
            "item_id": item_id,
            "category": formats.take(world.leaf_names, it["leaf"]),
            "categories": pa.array([c.split("|") for c in canonical], pa.list_(S)),
            "top_category": formats.take(TOPS, world.leaf_top[it["leaf"]]),
            "brand": brand,
            "quality": pa.array(it["quality"]),
            "price": pa.array(it["price"]),
            "base_popularity": pa.array(it["popularity"]),
            "popularity_log_share": pa.array(it["log_share"]),
            "created_at": pa.array(it["created_at"]).cast(TS),
            "is_new": pa.array(it["is_new"]),
        }
    )
    return raw, truth
