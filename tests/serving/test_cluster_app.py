"""The serving app on a Redis Cluster (REDIS_CLUSTER=1), in one process (FastAPI's test
client, no Ray): the same answers as the same app on a single Redis holding the same
features and histories, and an event written through the cluster reflected in the next
answer.

    served_world's version and feature tables
      --apply + materialize--> a private single redis-server  --> app --> answers
      --apply + materialize--> the 6-node cluster (2 event partitions) --> app --> answers
    equal answers for the same users at the same request time; then a purchase through
    /events on the cluster and the item gone from that user's next answer
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from serving.auth import ApiKeys
from serving.config import ServingConfig
from serving.lifecycle import Lifecycle
from serving.replica import Replica
from serving.routes import build_api
from tailwise.features.store import apply, materialize, teardown
from tailwise.settings import Settings
from tests.conftest import PrivateRedis
from tests.feast_project import isolated_feast_settings
from tests.redis_cluster import LocalCluster
from tests.serving.conftest import ServedWorld

pytestmark = pytest.mark.slow

AT = "2026-12-01T12:00:00+00:00"
KEY = "cluster-app-key"


@contextmanager
def served(world: ServedWorld, settings: Settings, spill: Path) -> Iterator[TestClient]:
    """The app over `settings`' Redis, its features applied and materialised there."""
    store, _ = apply(settings)
    materialize(settings)
    config = ServingConfig(
        models_dir=world.models, clean_dir=world.clean, cache_ttl_seconds=0, spill_dir=spill
    ).resolved()
    try:
        replica = Replica(config, settings)
        app = build_api(replica, Lifecycle(replica, interval=3600), ApiKeys([KEY]))
        with TestClient(app) as client:
            yield client
    finally:
        teardown(settings, store)


def answer(client: TestClient, user: str) -> list[tuple[str, float]]:
    body = {"user_id": user, "k": 8, "context": {"timestamp": AT, "device": "mobile"}}
    response = client.post("/recommend", json=body, headers={"X-API-Key": KEY})
    assert response.status_code == 200, response.text
    found = response.json()
    assert not found["degraded"], found
    return [(i["item_id"], round(i["score"], 6)) for i in found["items"]]


def test_the_app_on_a_cluster_answers_as_on_one_redis_and_takes_events(
    served_world: ServedWorld,
    redis_cluster: LocalCluster,
    redis_server: Callable[[], PrivateRedis],
    tmp_path: Path,
) -> None:
    world = served_world
    users = pd.read_parquet(world.features / "user_profile.parquet")["user_id"].astype(str)
    chosen = [*users.iloc[:6], "someone-new"]
    single = isolated_feast_settings(world.features, tmp_path / "single.db", "tw_one")
    single = single.model_copy(update={"redis_url": redis_server().url})
    with served(world, single, tmp_path / "spill-one") as client:
        expected = {user: answer(client, user) for user in chosen}
    cluster = isolated_feast_settings(world.features, tmp_path / "cluster.db", "tw_cl")
    cluster = cluster.model_copy(
        update={"redis_url": redis_cluster.url, "redis_cluster": True, "event_partitions": 2}
    )
    with served(world, cluster, tmp_path / "spill-cluster") as client:
        got = {user: answer(client, user) for user in chosen}
        assert got == expected
        assert all(len(items) == 8 for items in got.values())

        user, (top, _) = chosen[0], got[chosen[0]][0]
        event: dict[str, Any] = {
            "event_id": "cluster-app-purchase-1",
            "user_id": user,
            "item_id": top,
            "event_type": "purchase",
            "timestamp": AT,
            "price": 10.0,
        }
        response = client.post("/events", json=event, headers={"X-API-Key": KEY})
        assert response.status_code == 202, response.text
        assert response.json()["accepted"] == 1, response.json()
        assert response.json()["spilled"] == 0, response.json()  # in the cluster, not the outbox
        assert top not in [item for item, _ in answer(client, user)]
