"""A replica's background work (serving.lifecycle) and its API keys (serving.auth), on
stand-ins for the replica: no models, no Redis."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import HTTPException

from serving.auth import ApiKeys
from serving.errors import problems
from serving.lifecycle import Lifecycle


class Spill:
    def __init__(self, pending: int) -> None:
        self.left = pending

    def has_pending(self) -> bool:
        return self.left > 0


class Writer:
    def __init__(self, pending: int) -> None:
        self.spill = Spill(pending)

    def replay(self) -> int:
        done, self.spill.left = self.spill.left, 0
        return done


class Replica:
    """Serves version "v1"; Redis says "v2" is wanted."""

    def __init__(self, pending: int = 0) -> None:
        self.writer = Writer(pending)
        self.refreshed = 0
        self.graph = self._graph("v1")
        self.used: list[str] = []

    def _graph(self, version: str) -> Any:
        reader = SimpleNamespace(refresh_items=self._refresh)
        return SimpleNamespace(bundle=SimpleNamespace(version=version), reader=reader)

    def _refresh(self) -> bool:
        self.refreshed += 1
        return True

    def wanted_version(self) -> str:
        return "v2"

    def load(self, version: str) -> Any:
        return self._graph(version)

    def use(self, graph: Any) -> None:
        self.used.append(graph.bundle.version)
        self.graph = graph


def test_a_tick_replays_follows_the_wanted_version_and_refreshes_items() -> None:
    replica = Replica(pending=3)
    life = Lifecycle(replica, follow_every=2, items_every=10)  # type: ignore[arg-type]
    life.tick(100.0)
    assert replica.writer.spill.left == 0
    assert replica.used == ["v2"] and replica.refreshed == 1
    life.tick(101.0)  # too soon for either check again
    assert replica.used == ["v2"] and replica.refreshed == 1
    life.tick(111.0)
    assert replica.refreshed == 2 and replica.used == ["v2"]  # v2 is served already


def test_start_runs_the_work_until_stop() -> None:
    replica = Replica(pending=1)
    life = Lifecycle(replica, interval=0.01)  # type: ignore[arg-type]
    life.start()
    with pytest.raises(RuntimeError):
        life.start()
    deadline = time.monotonic() + 5
    while replica.writer.spill.left and time.monotonic() < deadline:
        time.sleep(0.01)
    life.stop()
    assert replica.writer.spill.left == 0 and replica.used == ["v2"]
    ticks = replica.refreshed
    time.sleep(0.05)
    assert replica.refreshed == ticks  # stopped


def test_keys_are_required_where_configured() -> None:
    keys = ApiKeys(["right"], required_for_recommend=False)
    asyncio.run(keys.require("right"))
    asyncio.run(keys.for_recommend(None))  # not required for /recommend here
    for wrong in (None, "wrong", "cl\u00e9"):
        with pytest.raises(HTTPException) as raised:
            asyncio.run(keys.require(wrong))
        assert raised.value.status_code == 401
    with pytest.raises(HTTPException):
        asyncio.run(ApiKeys(["right"], required_for_recommend=True).for_recommend("wrong"))
    with pytest.raises(ValueError):
        ApiKeys([])


def test_validation_errors_name_the_field_without_the_union_tag() -> None:
    errors = [
        {"loc": ("body", "EventBatch", "events", 0, "item_id"), "msg": "Field required"},
        {"loc": ("body", "Event", "timestamp"), "msg": "Input should be a valid datetime"},
    ]
    response = problems(errors)
    assert response.status_code == 422
    assert b'"field":"events.0.item_id"' in response.body
    assert b'"field":"timestamp"' in response.body
    malformed = problems([{"loc": ("body", 9), "msg": "JSON decode error", "type": "json_invalid"}])
    assert malformed.status_code == 400 and b"malformed JSON" in malformed.body
