"""Event simulation for one chunk of people: sessions, views, carts, purchases, ratings.

Flow: per person a Poisson number of sessions (activity x active days) ->
session start (weekday/weekend day weights, diurnal curve in the person's local
time, only between signup and lapse) -> device, channel and an intent leaf
(softmax of `utility.category_logits`) -> a landing page_view and product views
mostly in the intent leaf, each choosing among popularity-drawn candidates by
Gumbel-max of `utility.item_affinity` (items not yet created are excluded) ->
add_to_cart / purchase by logistic `personal_utility` -> some ratings.
Returns plain numpy columns with local user positions; `tables.py` renders text.

A `World.shift` changes every session starting at or after its instant: device
mix, intent and wandering leaves by shifted logits, candidate items drawn from
the catalogue including the new batch. Every random draw keeps its shape and
parameters and a session's events never precede its start, so events before
the shift are the same as without one (sessions straddling the shift instant
stay unshifted).
"""

from __future__ import annotations

import numpy as np

from tailwise.synthetic import catalog
from tailwise.synthetic.config import GenerateConfig
from tailwise.synthetic.people import People
from tailwise.synthetic.utility import category_logits, item_affinity, personal_utility
from tailwise.synthetic.world import COEFFICIENTS as C
from tailwise.synthetic.world import DAY, DEVICE_CONVERSION, DIURNAL, World, WorldShift

N_CANDIDATES = 6
# Scales activity so the population mean is cfg.events_per_user_per_day although
# new and lapsed people are active on fewer days (calibrated on 20k people).
ACTIVITY_NORM = 1.19
EVENT_CODES = {name: k for k, name in enumerate(catalog.EVENT_TYPES)}


def simulate_events(
    cfg: GenerateConfig, world: World, p: People, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """All events of the chunk, sorted by (user, timestamp)."""
    lower = np.maximum(p.signup_at, int(cfg.window_start.timestamp()))
    upper = np.where(p.lapse_at >= 0, p.lapse_at, int(cfg.window_end.timestamp()))
    s = _sessions(cfg, world, p, rng, lower, upper)
    v = _views(world, p, rng, s)
    events = _assemble(p, rng, s, v)
    keep = events["ts"] < upper[events["user"]]
    events = {k: a[keep] for k, a in events.items()}
    order = np.lexsort((events["etype"], events["ts"], events["user"]))
    return {k: a[order] for k, a in events.items()}


def _sessions(
    cfg: GenerateConfig,
    world: World,
    p: People,
    rng: np.random.Generator,
    lower: np.ndarray,
    upper: np.ndarray,
) -> dict[str, np.ndarray]:
    """Session owner, start time, local hour, weekend flag, device, channel, intent."""
    start = int(cfg.window_start.timestamp())
    active_days = np.maximum(upper - lower, 0) / DAY
    per_session = 2.0 + p.browse_depth + 0.18 * (1.0 + p.browse_depth)
    target = cfg.events_per_user_per_day * ACTIVITY_NORM * p.activity * active_days
    count = rng.poisson(target / per_session)
    user = np.repeat(np.arange(len(p)), count)
    day = _draw_days(cfg, rng, (lower[user] - start) / DAY, (upper[user] - start) / DAY)
    hour = _categorical(rng, np.asarray(DIURNAL) / np.sum(DIURNAL), len(user))
    local = start + day * DAY + hour * 3600 + rng.integers(0, 3600, len(user))
    t0 = local - world.offset_seconds(p.tz[user], local)
    ok = (t0 >= lower[user]) & (t0 < upper[user])
    user, t0, hour, local = user[ok], t0[ok], hour[ok], local[ok]
    weekend = ((local // DAY + 3) % 7) >= 5
    device = _categorical_rows(rng, _device_probs(world, p, user, t0))
    logits = _shifted(world, t0, category_logits(p.taste[user], world.leaf_top, device, weekend))
    return {
        "user": user,
        "t0": t0,
        "hour": hour,
        "weekend": weekend,
        "device": device,
        "channel": _categorical(rng, np.asarray(catalog.CHANNEL_SHARES), len(user)),
        "intent": _gumbel_argmax(rng, logits + _leaf_mask(world)),
    }


def _draw_days(
    cfg: GenerateConfig, rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """Day index in [lo, hi) drawn with weekend days weighted up (inverse CDF)."""
    first_weekday = (int(cfg.window_start.timestamp()) // DAY + 3) % 7
    weekday = (first_weekday + np.arange(cfg.days)) % 7
    w = np.where(weekday >= 5, C["weekend_activity"], 1.0)
    cw = np.concatenate([[0.0], np.cumsum(w)])
    lo, hi = np.clip(lo, 0, cfg.days), np.clip(hi, 0, cfg.days)

    def cdf(x: np.ndarray) -> np.ndarray:
        d = np.minimum(np.floor(x).astype(np.int64), cfg.days - 1)
        return cw[d] + w[d] * (x - d)

    v = cdf(lo) + rng.random(len(lo)) * (cdf(hi) - cdf(lo))
    return np.clip(np.searchsorted(cw, v, side="right") - 1, 0, cfg.days - 1)


def _views(
    world: World, p: People, rng: np.random.Generator, s: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Product views: session, timestamp, chosen item and personal utility."""
    n_views = 1 + rng.poisson(p.browse_depth[s["user"]])
    sess = np.repeat(np.arange(len(s["user"])), n_views)
    gaps = rng.exponential(45.0, len(sess)) + 5.0
    cum = np.cumsum(gaps)
    first = np.cumsum(n_views) - n_views
    before = np.repeat(cum[first] - gaps[first], n_views)
    ts = s["t0"][sess] + (cum - before).astype(np.int64)
    leaf = s["intent"][sess].copy()
    wander = np.flatnonzero(rng.random(len(sess)) > C["intent_stickiness"])
    if len(wander):
        ws = sess[wander]
        logits = category_logits(
            p.taste[s["user"][ws]], world.leaf_top, s["device"][ws], s["weekend"][ws]
        )
        shifted = _shifted(world, s["t0"][ws], logits)
        leaf[wander] = _gumbel_argmax(rng, shifted + _leaf_mask(world))
    user = s["user"][sess]
    item, util = _choose_items(world, p, rng, user, leaf, ts, s["t0"][sess])
    return {"sess": sess, "ts": ts, "item": item, "util": util, "user": user}


def _choose_items(
    world: World,
    p: People,
    rng: np.random.Generator,
    user: np.ndarray,
    leaf: np.ndarray,
    ts: np.ndarray,
    t0: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Gumbel-max over popularity-drawn candidates plus the leaf's old fallback item.

    Candidates of shifted sessions come from the shifted catalogue (same draws)."""
    n = len(leaf)
    draws = leaf[:, None] + rng.random((n, N_CANDIDATES))
    drawn = _draw_candidates(world.leaf_order, world.leaf_keys, draws)
    age = ts[:, None] - world.item["created_at"][drawn]
    if world.shift is not None:
        _shift_candidates(world, world.shift, draws, ts, t0, drawn, age)
    cand = np.concatenate([drawn, world.leaf_fallback[leaf][:, None]], axis=1)
    age = np.concatenate([age, ts[:, None] - world.item["created_at"][cand[:, -1:]]], axis=1)
    it = world.item
    fav = (p.favourite_brands[user][:, None, :] == it["brand"][cand][:, :, None]).any(axis=2)
    aff = item_affinity(
        it["quality"][cand],
        fav,
        it["price"][cand] / world.leaf_median_price[leaf][:, None],
        p.price_sensitivity[user][:, None],
        age,
    )
    pick = np.argmax(aff + rng.gumbel(size=aff.shape), axis=1)
    rows = np.arange(n)
    item = cand[rows, pick]
    return item, personal_utility(p.taste[user, leaf].astype(np.float64), aff[rows, pick])


def _funnel(
    p: People, rng: np.random.Generator, s: dict[str, np.ndarray], v: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Per product view: carted, bought, rated flags, quantity, follow-up times, stars."""
    sess, util, n = v["sess"], v["util"], len(v["sess"])
    hour = s["hour"][sess]
    context = np.asarray(DEVICE_CONVERSION)[s["device"][sess]] + C["evening_conversion"] * (
        (hour >= 18) & (hour < 23)
    )
    buy = p.buy_propensity[v["user"]]
    cart = rng.random(n) < _sigmoid(C["cart_base"] + buy + C["cart_utility"] * util + context)
    bought = cart & (
        rng.random(n)
        < _sigmoid(C["purchase_base"] + 0.5 * buy + C["purchase_utility"] * util + context)
    )
    cart_ts = v["ts"] + rng.integers(10, 120, n)
    buy_ts = cart_ts + rng.integers(30, 900, n)
    return {
        "cart": cart,
        "bought": bought,
        "rated": bought & (rng.random(n) < C["rating_share"]),
        "qty": 1.0 + rng.poisson(0.3, n),
        "cart_ts": cart_ts,
        "buy_ts": buy_ts,
        "rate_ts": buy_ts + rng.integers(3600, 72 * 3600, n),
        "stars": np.clip(
            np.round(
                C["rating_center"] + C["rating_slope"] * util + rng.normal(0, C["rating_noise"], n)
            ),
            1,
            5,
        ),
    }


def _assemble(
    p: People, rng: np.random.Generator, s: dict[str, np.ndarray], v: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Landing page_views, product views, carts, purchases and ratings as columns.

    The landing page_view shows the session's first product (a product page)."""
    f = _funnel(p, rng, s, v)
    sess = v["sess"]
    landing = np.concatenate([[0], np.flatnonzero(np.diff(sess)) + 1]) if len(sess) else sess
    cart, bought, rated = f["cart"], f["bought"], f["rated"]
    parts = [
        (landing, "page_view", s["t0"][sess[landing]], np.nan),
        (np.arange(len(sess)), "product_view", v["ts"], np.nan),
        (np.flatnonzero(cart), "add_to_cart", f["cart_ts"][cart], f["qty"][cart]),
        (np.flatnonzero(bought), "purchase", f["buy_ts"][bought], f["qty"][bought]),
        (np.flatnonzero(rated), "rating", f["rate_ts"][rated], f["stars"][rated]),
    ]
    idx = np.concatenate([part[0] for part in parts]).astype(np.int64)
    out = {
        "user": v["user"][idx],
        "item": v["item"][idx],
        "sess": sess[idx],
        "etype": np.concatenate(
            [np.full(len(part[0]), EVENT_CODES[part[1]], np.int8) for part in parts]
        ),
        "ts": np.concatenate([np.asarray(part[2], np.int64) for part in parts]),
        "value": np.concatenate(
            [np.broadcast_to(np.asarray(part[3], np.float64), len(part[0])) for part in parts]
        ),
    }
    out["device"] = s["device"][out["sess"]]
    out["channel"] = s["channel"][out["sess"]]
    return out


def _shift_candidates(
    world: World,
    ws: WorldShift,
    draws: np.ndarray,
    ts: np.ndarray,
    t0: np.ndarray,
    drawn: np.ndarray,
    age: np.ndarray,
) -> None:
    """Redraw (in place) the candidates and their ages for sessions starting after the shift."""
    after = t0 >= ws.at
    if not after.any():
        return
    shifted = _draw_candidates(ws.leaf_order, ws.leaf_keys, draws[after])
    drawn[after] = shifted
    born = world.item["created_at"][shifted]
    # A batch item must exist when its session starts: the landing page_view at t0
    # shows the first product viewed.
    unborn = (shifted >= ws.first_new_item) & (t0[after][:, None] < born)
    age[after] = np.where(unborn, -1, ts[after][:, None] - born)


def _draw_candidates(order: np.ndarray, keys: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Items at `draws` (leaf + uniform) of a popularity sampling table."""
    return order[np.minimum(np.searchsorted(keys, draws, side="right"), len(keys) - 1)]


def _device_probs(world: World, p: People, user: np.ndarray, t0: np.ndarray) -> np.ndarray:
    """Each session owner's device mix, or the shift's mix from the shift on."""
    probs = p.device_probs[user]
    if world.shift is None or world.shift.device_probs is None:
        return probs
    return np.where((t0 >= world.shift.at)[:, None], world.shift.device_probs[None, :], probs)


def _shifted(world: World, ts: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """Category logits plus the shift's top-level change for rows at or after it."""
    if world.shift is None:
        return logits
    after = (ts >= world.shift.at).astype(np.float64)
    return logits + after[:, None] * world.shift.top[world.leaf_top][None, :]


def _leaf_mask(world: World) -> np.ndarray:
    return np.where(world.leaf_fallback >= 0, 0.0, -np.inf)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _gumbel_argmax(rng: np.random.Generator, logits: np.ndarray) -> np.ndarray:
    return np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)


def _categorical(rng: np.random.Generator, probs: np.ndarray, n: int) -> np.ndarray:
    return np.minimum(np.searchsorted(np.cumsum(probs), rng.random(n)), len(probs) - 1)


def _categorical_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    u = rng.random(len(probs))[:, None]
    return np.minimum((np.cumsum(probs, axis=1) < u).sum(axis=1), probs.shape[1] - 1)
