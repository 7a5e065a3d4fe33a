"""Real-time view: the user's current session and last hour, pushed on every event."""

from datetime import timedelta

from entities import OWNER, user
from feast import FeatureView, Field
from feast.types import Array, Int64, String
from sources import user_realtime_push

user_realtime_session = FeatureView(
    name="user_realtime_session",
    entities=[user],
    ttl=timedelta(days=1),  # older state says nothing about the current session
    schema=[
        Field(name="rt_last_items", dtype=Array(String)),
        Field(name="rt_last_category", dtype=String),
        Field(name="rt_session_events", dtype=Int64),
        Field(name="rt_hour_events", dtype=Int64),
        Field(name="rt_hour_carts", dtype=Int64),
    ],
    source=user_realtime_push,
    online=True,
    description="Last items viewed, last category and activity counts in the current session "
    "and the last hour; updated by the serving app within milliseconds of an event.",
    owner=OWNER,
    tags={"kind": "behavioural", "freshness": "real-time"},
)
