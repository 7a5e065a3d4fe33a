"""Daily snapshot tables (user_daily, item_daily) in DuckDB SQL, in bounded memory.

Flow: events -> per (user, day) and (item, day) aggregates (`stage_daily`) -> snapshot
instants (UTC midnights D+1, D+2, D+8, D+31 after each active day D, capped at the day
after the last event) -> per hash bucket of keys, a range join of each snapshot to the
aggregates of the 30 days before it (`user_daily_sql`, `item_daily_sql`). A snapshot at
midnight S only sees days < S, i.e. events with timestamp < S (point-in-time correct).
Lifetime values (frequency, monetary, recency, recent_items) come from an ASOF join to
the last active day before S; recent_items is the realtime state at the end of that day.
"""

from __future__ import annotations

from tailwise.features.timezones import DAY_PARTS, zones_sql

SNAPSHOT_OFFSETS = (1, 2, 8, 31)  # days after an active day: 1/7/30-day windows decay to 0
_TYPES = {"views": "product_view", "carts": "add_to_cart", "purchases": "purchase"}
_DEVICES = ("mobile", "desktop", "tablet")


def events_sql(events: str) -> str:
    """Clean events (the relation `inputs.events_view` creates) joined to item attributes and
    local time (one row per event)."""
    return f"""
        SELECT e.user_id, e.item_id, e.event_type, e.session_id, e.device, e.weight,
               CAST(e.timestamp AS DATE) AS day, i.leaf, i.brand, i.price AS item_price,
               CASE WHEN e.event_type = 'purchase'
                    THEN coalesce(e.price, i.price) * coalesce(e.value, 1) END AS spend,
               timezone(coalesce(z.zone, 'UTC'), e.timestamp) AS local_ts
        FROM {events} e
        LEFT JOIN items i USING (item_id)
        LEFT JOIN {zones_sql()} z ON z.country = e.country
    """


# The day after the last event's day: no snapshot is later (the DuckDB engine reads it from
# `ud`; a sharded build passes the literal from every shard's max(day) of `ev`).
LAST_DAY = "(SELECT max(day) FROM ud) + 1"


def stage_daily(buckets: int) -> list[str]:
    """Statements creating ud, ucat, ubrand, idy, user_snaps, item_snaps, item_rank over
    view `ev` (all events in one session)."""
    return [*stage_user_daily(buckets), *stage_item_daily(buckets), *rank_items()]


def stage_user_daily(buckets: int, last_day: str = LAST_DAY) -> list[str]:
    """Statements creating ud, ucat, ubrand and user_snaps over view `ev`. Every row depends
    on one user's events only, so a session holding some users' events builds their rows."""
    type_counts = _type_counts()
    devices = ", ".join(f"count(*) FILTER (WHERE device = '{d}') AS n_{d}" for d in _DEVICES)
    parts = ", ".join(
        f"count(*) FILTER (WHERE hour(local_ts) >= {a} AND hour(local_ts) < {b}) AS n_{p}"
        for p, (a, b) in DAY_PARTS.items()
    )
    viewed = "event_type IN ('product_view', 'purchase')"
    bucket = _bucket(buckets)
    cum = "OVER (PARTITION BY user_id ORDER BY day ROWS UNBOUNDED PRECEDING)"
    return [
        f"""CREATE TABLE ud0 AS SELECT user_id, day, {type_counts},
            coalesce(sum(spend), 0) AS spend, count(*) AS events, sum(weight) AS weight,
            list(DISTINCT session_id) FILTER (WHERE session_id IS NOT NULL) AS sessions,
            list(DISTINCT leaf) FILTER (WHERE leaf IS NOT NULL) AS cats,
            sum(item_price) FILTER (WHERE {viewed}) AS price_sum,
            count(item_price) FILTER (WHERE {viewed}) AS price_n,
            count(device) AS n_device, {devices}, {parts},
            count(*) FILTER (WHERE isodow(local_ts) >= 6) AS n_weekend
            FROM ev GROUP BY user_id, day""",
        f"""CREATE TABLE ud AS SELECT d.*, {bucket.format(key="d.user_id")},
            sum(d.purchases) {cum} AS cum_purchases, sum(d.spend) {cum} AS cum_spend,
            max(CASE WHEN d.purchases > 0 THEN d.day END) {cum} AS last_purchase_day,
            s.recent_items
            FROM ud0 d LEFT JOIN day_state s USING (user_id, day) ORDER BY bucket""",
        "DROP TABLE ud0",
        f"""CREATE TABLE ucat AS SELECT user_id, day, leaf AS key, sum(weight) AS w,
            {bucket.format(key="user_id")} FROM ev WHERE leaf IS NOT NULL
            GROUP BY user_id, day, leaf ORDER BY bucket""",
        f"""CREATE TABLE ubrand AS SELECT user_id, day, brand AS key, sum(weight) AS w,
            {bucket.format(key="user_id")} FROM ev WHERE brand IS NOT NULL
            GROUP BY user_id, day, brand ORDER BY bucket""",
        f"""CREATE TABLE user_snaps AS SELECT DISTINCT user_id, bucket, day + o.k AS snap
            FROM ud, {_offsets()} WHERE day + o.k <= {last_day}""",
    ]


def stage_item_daily(buckets: int, last_day: str = LAST_DAY) -> list[str]:
    """Statements creating idy, item_snaps and item_v7 (7-day views per item and instant) over
    view `ev`; every row depends on one item's events only."""
    return [
        f"""CREATE TABLE idy AS SELECT item_id, day, {_type_counts()},
            list(DISTINCT hash(user_id)) AS users, {_bucket(buckets).format(key="item_id")}
            FROM ev GROUP BY item_id, day ORDER BY bucket""",
        f"""CREATE TABLE item_snaps AS SELECT DISTINCT item_id, bucket, day + o.k AS snap
            FROM idy, {_offsets()} WHERE day + o.k <= {last_day}""",
        # At every instant an item was viewed in the 7 days before, not only at its snapshots.
        """CREATE TABLE item_v7 AS SELECT item_id, day + CAST(r.k AS INTEGER) AS snap,
            sum(views) AS v7 FROM idy, range(1, 8) r(k) WHERE views > 0 GROUP BY ALL""",
    ]


def rank_items() -> list[str]:
    """Statement creating item_rank: the catalogue-wide rank by 7-day views at each instant,
    over `item_v7` of all items (a sharded build runs it once on every shard's item_v7)."""
    return [
        """CREATE TABLE item_rank AS
            SELECT item_id, snap, rank() OVER (PARTITION BY snap ORDER BY v7 DESC) AS rnk,
                   count(*) OVER (PARTITION BY snap) AS n_viewed FROM item_v7"""
    ]


def _type_counts() -> str:
    return ", ".join(
        f"count(*) FILTER (WHERE event_type = '{t}') AS {name}" for name, t in _TYPES.items()
    )


def _bucket(buckets: int) -> str:
    return f"CAST(hash({{key}}) % {buckets} AS INTEGER) AS bucket"


def _offsets() -> str:
    return f"(VALUES {', '.join(f'({k})' for k in SNAPSHOT_OFFSETS)}) o(k)"


def _window_sum(col: str, days: int, alias: str = "d") -> str:
    return f"CAST(coalesce(sum({alias}.{col}) FILTER (WHERE {alias}.day >= s.snap - {days}), 0) AS BIGINT)"


def _window_distinct(col: str, days: int) -> str:
    picked = f"list(d.{col}) FILTER (WHERE d.day >= s.snap - {days} AND d.{col} IS NOT NULL)"
    return f"CAST(coalesce(len(list_distinct(flatten({picked}))), 0) AS BIGINT)"


def _top(table: str, bucket: int, top_n: int) -> str:
    """Top-n keys by summed weight over the 30 days before each snapshot. Sums that differ
    only by float rounding (the order rows are added in varies with threads and shards) are
    ties, broken by key, so the lists do not depend on how the events were split."""
    return f"""
        SELECT user_id, snap, list(key ORDER BY rn) AS keys, list(w ORDER BY rn) AS ws FROM (
            SELECT s.user_id, s.snap, c.key, sum(c.w) AS w, row_number() OVER (
                PARTITION BY s.user_id, s.snap ORDER BY round(sum(c.w), 6) DESC, c.key) AS rn
            FROM user_snaps s JOIN {table} c ON c.user_id = s.user_id
                 AND c.day >= s.snap - 30 AND c.day < s.snap
            WHERE s.bucket = {bucket} AND c.bucket = {bucket}
            GROUP BY s.user_id, s.snap, c.key)
        WHERE rn <= {top_n} GROUP BY user_id, snap"""


def user_daily_sql(bucket: int, top_n: int) -> str:
    """user_daily rows (without segment) of one user bucket."""
    sums = []
    for name in (*_TYPES, "spend"):
        for w in (1, 7, 30):
            expr = _window_sum(name, w)
            if name == "spend":
                expr = f"coalesce(sum(d.spend) FILTER (WHERE d.day >= s.snap - {w}), 0.0)"
            sums.append(f"{expr} AS {name}_{w}d")
    sessions = [f"{_window_distinct('sessions', w)} AS sessions_{w}d" for w in (1, 7, 30)]
    counts = ["n_device", *(f"n_{d}" for d in _DEVICES), *(f"n_{p}" for p in DAY_PARTS)]
    shares = [
        f"coalesce(w.n_{k} / nullif(w.{'n_device' if k in _DEVICES else 'events_30d'}, 0), 0.0) "
        f"AS share_{k}"
        for k in (*_DEVICES, *DAY_PARTS, "weekend")
    ]
    return f"""
        WITH w AS (
            SELECT s.user_id, s.snap, {", ".join(sums)}, {", ".join(sessions)},
                {_window_distinct("cats", 30)} AS categories_30d,
                {_window_sum("events", 30)} AS events_30d,
                coalesce(sum(d.weight), 0.0) AS weight_30d,
                sum(d.price_sum) / nullif(sum(d.price_n), 0) AS avg_price_30d,
                {", ".join(f"{_window_sum(c, 30)} AS {c}" for c in [*counts, "n_weekend"])}
            FROM user_snaps s LEFT JOIN ud d ON d.user_id = s.user_id
                 AND d.day >= s.snap - 30 AND d.day < s.snap AND d.bucket = {bucket}
            WHERE s.bucket = {bucket}
            GROUP BY s.user_id, s.snap),
        life AS (
            SELECT s.user_id, s.snap, d.cum_purchases, d.cum_spend, d.last_purchase_day,
                   d.recent_items
            FROM (SELECT * FROM user_snaps WHERE bucket = {bucket}) s
            ASOF LEFT JOIN (SELECT * FROM ud WHERE bucket = {bucket}) d
                 ON d.user_id = s.user_id AND s.snap > d.day),
        cat AS ({_top("ucat", bucket, top_n)}),
        brand AS ({_top("ubrand", bucket, top_n)})
        SELECT w.user_id, CAST(w.snap AS TIMESTAMPTZ) AS event_timestamp,
            {", ".join(f"{c.split(' AS ')[-1]}" for c in [*sums, *sessions])},
            w.categories_30d, w.events_30d,
            CAST(CASE WHEN l.last_purchase_day IS NULL THEN 999
                      ELSE w.snap - l.last_purchase_day END AS BIGINT) AS recency_days,
            CAST(coalesce(l.cum_purchases, 0) AS BIGINT) AS frequency,
            CAST(coalesce(l.cum_spend, 0) AS DOUBLE) AS monetary,
            w.avg_price_30d,
            coalesce(cat.keys, []) AS top_categories,
            coalesce(list_transform(cat.ws, lambda x: CAST(x / w.weight_30d AS FLOAT)),
                     CAST([] AS FLOAT[])) AS top_category_shares,
            coalesce(brand.keys, []) AS top_brands,
            coalesce(l.recent_items, []) AS recent_items,
            {", ".join(shares)}
        FROM w
        JOIN life l USING (user_id, snap)
        LEFT JOIN cat USING (user_id, snap)
        LEFT JOIN brand USING (user_id, snap)
    """


def item_daily_sql(bucket: int) -> str:
    """item_daily rows of one item bucket."""
    sums = [f"{_window_sum(n, w)} AS {n}_{w}d" for n in _TYPES for w in (1, 7, 30)]
    return f"""
        WITH w AS (
            SELECT s.item_id, s.snap, {", ".join(sums)}, {_window_distinct("users", 7)}
                AS unique_users_7d
            FROM item_snaps s LEFT JOIN idy d ON d.item_id = s.item_id
                 AND d.day >= s.snap - 30 AND d.day < s.snap AND d.bucket = {bucket}
            WHERE s.bucket = {bucket}
            GROUP BY s.item_id, s.snap)
        SELECT w.item_id, CAST(w.snap AS TIMESTAMPTZ) AS event_timestamp,
            {", ".join(s.split(" AS ")[-1] for s in sums)}, unique_users_7d,
            coalesce(purchases_7d / nullif(views_7d, 0), 0.0) AS conversion_7d,
            coalesce(purchases_30d / nullif(views_30d, 0), 0.0) AS conversion_30d,
            CAST(coalesce(r.rnk, (SELECT max(n_viewed) FROM item_rank x WHERE x.snap = w.snap)
                 + 1, 1) AS BIGINT) AS popularity_rank_7d
        FROM w LEFT JOIN item_rank r USING (item_id, snap)
    """
