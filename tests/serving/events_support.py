"""Fixtures of the events-path tests: the real Redis under a fresh project per test, and the
real real-time feature view. Test modules import the fixtures they use.

Every test gets its own project name, so its keys (`tailwise:<project>:*`) and Feast
hashes (whose names end with the project) are its own; both are deleted afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from serving import api
from serving.events import ConsentBook, EventRules, EventWriter
from serving.keys import Keys
from serving.spill import SpillLog
from tailwise.features.online import OnlineFeatures
from tailwise.params import IngestParams
from tailwise.settings import Settings
from tests.feast_project import ROOT

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
DOWN_URL = "redis://127.0.0.1:1"  # nothing listens on port 1: connections are refused
CATEGORIES = {"i1": "Home/Kitchen", "i2": "Toys/Dolls", "i3": "Books/Comics"}
NOW = datetime.now(UTC).replace(microsecond=0)  # events are placed in the hour before it


@pytest.fixture(scope="session", name="realtime_view")
def realtime_view_fixture() -> Any:
    """The user_realtime_session FeatureView as feature_repo/ defines it."""
    from tailwise.features.store import definitions

    before = os.environ.get("TAILWISE_FEATURES_DIR")
    try:
        objects = definitions(Settings(TAILWISE_FEATURE_REPO=ROOT / "feature_repo"))
    finally:  # definitions() exports the features folder for Feast; do not leak it
        if before is None:
            os.environ.pop("TAILWISE_FEATURES_DIR", None)
        else:
            os.environ["TAILWISE_FEATURES_DIR"] = before
    return next(o for o in objects if getattr(o, "name", None) == "user_realtime_session")


@pytest.fixture(name="client")
def client_fixture() -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(REDIS_URL)
    yield conn
    conn.close()


@pytest.fixture(name="keys")
def keys_fixture(client: redis.Redis) -> Iterator[Keys]:
    project = f"test_{uuid.uuid4().hex[:8]}"
    yield Keys(project)
    doomed = [
        *client.scan_iter(match=f"tailwise:{project}:*", count=1000),
        *client.scan_iter(match=f"*{project}", count=1000),  # Feast hashes end with it
    ]
    if doomed:
        client.delete(*doomed)


@pytest.fixture(name="online")
def online_fixture(client: redis.Redis, keys: Keys, realtime_view: Any) -> OnlineFeatures:
    return OnlineFeatures(client, keys.project, "user_id", [realtime_view])


@pytest.fixture(name="make_writer")
def make_writer_fixture(
    client: redis.Redis, keys: Keys, realtime_view: Any, tmp_path: Path
) -> Callable[..., EventWriter]:
    """EventWriter over a given client (default: the real one), spilling into tmp_path."""

    def make(conn: redis.Redis | None = None, spill_dir: Path | None = None, **kw: Any):
        conn = conn or client
        online = OnlineFeatures(conn, keys.project, "user_id", [realtime_view])
        spill = SpillLog(spill_dir or tmp_path / "spill")
        return EventWriter(conn, keys, online, CATEGORIES, spill, **kw)

    return make


@pytest.fixture(name="down_client")
def down_client_fixture() -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(DOWN_URL, socket_connect_timeout=0.2, socket_timeout=0.2)
    yield conn
    conn.close()


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
