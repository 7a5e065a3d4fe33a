"""Helpers of the events-path tests: the Redis URLs, a tiny catalogue, API events placed
in the hour before NOW, and the event rules. The fixtures built on them (Redis clients,
per-test keys, the real-time view, event writers) are in conftest.py."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from serving import api
from serving.event_rules import ConsentBook, EventRules
from tailwise.params import IngestParams

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
DOWN_URL = "redis://127.0.0.1:1"  # nothing listens on port 1: connections are refused
CATEGORIES = {"i1": "Home/Kitchen", "i2": "Toys/Dolls", "i3": "Books/Comics"}
NOW = datetime.now(UTC).replace(microsecond=0)  # events are placed in the hour before it


def make_event(user: str = "u1", item: str = "i1", minutes: float = 0, **extra: Any) -> api.Event:
    """An API event `minutes` after the instant one hour before NOW (inside the window)."""
    when = NOW - timedelta(hours=1) + timedelta(minutes=minutes)
    return api.Event(
        user_id=user,
        item_id=item,
        event_type=extra.pop("event_type", "product_view"),
        timestamp=extra.pop("timestamp", when.isoformat()),
        **extra,
    )


def rules(tracking: dict[str, bool] | None = None, merges: dict[str, str] | None = None):
    params = IngestParams()
    return EventRules(params, ConsentBook(tracking or {}, merges or {}, params.consent_default))
