"""User feature views: demographics, engagement windows, RFM and segment, affinity, context."""

from datetime import timedelta

from entities import OWNER, user
from feast import FeatureView, Field
from feast.types import Array, Bool, Float32, Float64, Int64, String
from sources import USER_EXTRA_COLUMNS, user_daily_source, user_profile_source

# No expiry: snapshots already decay to zero 30 days after activity, a quiet user keeps
# their last state, and a TTL would null out every feature of a dataset from another era.
DAILY_TTL = timedelta(0)


def _ints(*names: str) -> list[Field]:
    return [Field(name=n, dtype=Int64) for n in names]


def _windows(*stems: str) -> list[str]:
    return [f"{s}_{w}d" for s in stems for w in (1, 7, 30)]


user_profile_demographics = FeatureView(
    name="user_profile_demographics",
    entities=[user],
    ttl=timedelta(0),
    schema=[
        Field(name="age", dtype=Int64),
        Field(name="age_band", dtype=String),
        Field(name="gender", dtype=String),
        Field(name="country", dtype=String),
        Field(name="region", dtype=String),
        Field(name="income_band", dtype=String),
        Field(name="income_rank", dtype=Int64),
        Field(name="signup_epoch", dtype=Int64),
        Field(name="age_imputed", dtype=Bool),
        Field(name="gender_imputed", dtype=Bool),
        Field(name="country_imputed", dtype=Bool),
        Field(name="income_band_imputed", dtype=Bool),
        # Attributes a dataset's mapping declares (extra_categorical / extra_numeric).
        *[
            Field(name=name, dtype=String if kind == "string" else Float64)
            for name, kind in USER_EXTRA_COLUMNS
        ],
    ],
    source=user_profile_source,
    online=True,
    description="Age and band, gender, location, income band, signup (tenure is computed at "
    "request time), declared extra attributes; imputed values are flagged.",
    owner=OWNER,
    tags={"kind": "demographic"},
)

user_daily_engagement = FeatureView(
    name="user_daily_engagement",
    entities=[user],
    ttl=DAILY_TTL,
    schema=[
        *_ints(*_windows("views", "carts", "purchases", "sessions")),
        *[Field(name=n, dtype=Float64) for n in _windows("spend")],
        *_ints("categories_30d", "events_30d"),
    ],
    source=user_daily_source,
    online=True,
    description="Views, carts, purchases, spend and sessions over the last 1, 7 and 30 days.",
    owner=OWNER,
    tags={"kind": "behavioural"},
)

user_daily_rfm = FeatureView(
    name="user_daily_rfm",
    entities=[user],
    ttl=DAILY_TTL,
    schema=[
        Field(name="recency_days", dtype=Int64),
        Field(name="frequency", dtype=Int64),
        Field(name="monetary", dtype=Float64),
        Field(name="avg_price_30d", dtype=Float64),
        Field(name="segment", dtype=Int64),
        Field(name="segment_name", dtype=String),
    ],
    source=user_daily_source,
    online=True,
    description="Recency, frequency, monetary value, usual price level and K-Means segment.",
    owner=OWNER,
    tags={"kind": "behavioural"},
)

user_daily_affinity = FeatureView(
    name="user_daily_affinity",
    entities=[user],
    ttl=DAILY_TTL,
    schema=[
        Field(name="top_categories", dtype=Array(String)),
        Field(name="top_category_shares", dtype=Array(Float32)),
        Field(name="top_brands", dtype=Array(String)),
        Field(name="recent_items", dtype=Array(String)),
    ],
    source=user_daily_source,
    online=True,
    description="Top categories (with shares) and brands over 30 days; last items interacted.",
    owner=OWNER,
    tags={"kind": "behavioural"},
)

user_daily_context = FeatureView(
    name="user_daily_context",
    entities=[user],
    ttl=DAILY_TTL,
    schema=[
        Field(name=n, dtype=Float64)
        for n in (
            "share_mobile",
            "share_desktop",
            "share_tablet",
            "share_morning",
            "share_afternoon",
            "share_evening",
            "share_night",
            "share_weekend",
        )
    ],
    source=user_daily_source,
    online=True,
    description="Share of the user's 30-day activity per device, local daypart and weekend.",
    owner=OWNER,
    tags={"kind": "contextual"},
)
