"""Erasure reaches the online side: Feast's hash, the serving keys, the streams."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pandas as pd
import pytest
import redis

from tailwise.features.online import OnlineFeatures, erase_online
from tailwise.ingest.erasure import forget_served

pytestmark = pytest.mark.integration  # the real Redis


def test_erase_online_removes_only_that_person() -> None:
    client = redis.Redis()
    project = f"tw_erase_{uuid.uuid4().hex[:8]}"
    keys = OnlineFeatures(client, project, "user_id", [])
    prefix = f"tailwise:{project}"
    try:
        for user in ("u1", "u2"):
            client.hset(keys.key(user), mapping={b"f": b"1"})
            client.sadd(f"{prefix}:seen:{user}", "i1")
            client.lpush(f"{prefix}:recent:{user}", "{}")
            client.xadd(f"{prefix}:events", {"e": json.dumps({"user_id": user, "item_id": "i1"})})
            client.xadd(f"{prefix}:served", {"r": json.dumps({"user_id": user, "items": []})})
        removed = erase_online(client, project, ["u1"])
        assert removed == 5  # feature hash, seen, recent, one event, one served entry
        assert not client.exists(keys.key("u1"), f"{prefix}:seen:u1", f"{prefix}:recent:u1")
        assert client.exists(keys.key("u2"), f"{prefix}:seen:u2", f"{prefix}:recent:u2") == 3
        for stream, field in ((f"{prefix}:events", b"e"), (f"{prefix}:served", b"r")):
            users = [json.loads(f[field])["user_id"] for _, f in client.xrange(stream)]
            assert users == ["u2"]
    finally:
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
        client.delete(keys.key("u1"), keys.key("u2"))


def test_forget_served_rewrites_only_partitions_with_the_person(tmp_path: Path) -> None:
    events = tmp_path / "events" / "event_date=2026-11-01"
    requests = tmp_path / "requests" / "date=2026-11-01"
    events.mkdir(parents=True)
    requests.mkdir(parents=True)
    pd.DataFrame({"user_id": ["u1", "u2", "u1"], "item_id": ["a", "b", "c"]}).to_parquet(
        events / "served-1.parquet"
    )
    pd.DataFrame({"user_id": ["u3"], "request_id": ["r1"]}).to_parquet(
        requests / "served-1.parquet"
    )
    assert forget_served(tmp_path, ["u1"]) == 2
    assert pd.read_parquet(events / "served-1.parquet")["user_id"].tolist() == ["u2"]
    assert pd.read_parquet(requests / "served-1.parquet")["user_id"].tolist() == ["u3"]
