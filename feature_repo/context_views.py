"""Contextual features computed at request time from the request and the user's habits."""

from entities import OWNER
from feast import Field
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Bool, Float64, Int64, String
from item_views import item_profile_catalog
from sources import request_context
from user_views import user_daily_context, user_profile_demographics


@on_demand_feature_view(
    sources=[request_context, user_daily_context, user_profile_demographics],
    schema=[
        Field(name="ctx_local_hour", dtype=Int64),
        Field(name="ctx_daypart", dtype=String),
        Field(name="ctx_is_weekend", dtype=Bool),
        Field(name="ctx_device_share", dtype=Float64),
        Field(name="ctx_daypart_share", dtype=Float64),
        Field(name="ctx_tenure_days", dtype=Float64),
    ],
    mode="python",
    description="Local hour, daypart and weekend where the country is known (else UTC); the "
    "user's share of activity on this device and in this daypart; tenure at request time.",
    owner=OWNER,
    tags={"kind": "contextual"},
)
def user_request_context(inputs: dict) -> dict:
    # Imports inside: Feast serialises this function into the registry.
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from tailwise.features.timezones import COUNTRY_ZONES, DAY_PARTS

    out: dict = {
        k: []
        for k in (
            "ctx_local_hour",
            "ctx_daypart",
            "ctx_is_weekend",
            "ctx_device_share",
            "ctx_daypart_share",
            "ctx_tenure_days",
        )
    }
    for i, ts in enumerate(inputs["request_ts"]):
        zone = COUNTRY_ZONES.get((inputs["request_country"][i] or "").upper(), "UTC")
        local = datetime.fromtimestamp(ts, ZoneInfo(zone))
        part = next(p for p, (start, end) in DAY_PARTS.items() if start <= local.hour < end)
        device = (inputs["request_device"][i] or "").lower()
        signup = inputs["signup_epoch"][i]
        out["ctx_local_hour"].append(local.hour)
        out["ctx_daypart"].append(part)
        out["ctx_is_weekend"].append(local.weekday() >= 5)
        shares = inputs.get(f"share_{device}")  # an unknown device has no share column
        out["ctx_device_share"].append((shares[i] if shares else None) or 0.0)
        out["ctx_daypart_share"].append(inputs[f"share_{part}"][i] or 0.0)
        out["ctx_tenure_days"].append((ts - signup) / 86400.0 if signup is not None else None)
    return out


@on_demand_feature_view(
    sources=[request_context, item_profile_catalog],
    schema=[Field(name="item_age_days", dtype=Float64)],
    mode="python",
    description="How long the item has been in the catalogue at request time (novelty).",
    owner=OWNER,
    tags={"kind": "item"},
)
def item_request_freshness(inputs: dict) -> dict:
    return {
        "item_age_days": [
            (ts - created) / 86400.0 if created is not None else None
            for ts, created in zip(inputs["request_ts"], inputs["created_epoch"], strict=True)
        ]
    }
