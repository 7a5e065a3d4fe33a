"""The personal-data scan over the real app (a Replica of the served world, in process):
ids that are e-mail addresses or phone numbers go through every endpoint that takes a
user id, in both modes, including while Redis writes spill; then Redis (keys and values
of the project), the served-event log, the spill files, the model folders and the reports
hold none of them. DELETE /users/{id} then erases the pseudonymised person online."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr

from serving.auth import ApiKeys
from serving.config import ServingConfig
from serving.lifecycle import Lifecycle
from serving.replica import Replica
from serving.routes import build_api
from tailwise.erasure import find_traces
from tailwise.ingest.streams import consume
from tailwise.privacy import pseudonym
from tests.serving.conftest import ServedWorld

pytestmark = pytest.mark.slow
KEY = {"X-API-Key": "scan-key"}
ADMIN = {"X-API-Key": "scan-admin"}
SECRET = "p" * 40
PERSONAL = ["alice@example.com", "+49 170 1234567", "(555) 123-4567"]
NEEDLES = [b"alice@example.com", b"alice@", b"170 1234567", b"(555) 123"]


@pytest.fixture(scope="module")
def replica(served_world: ServedWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    config = ServingConfig(
        models_dir=served_world.models,
        clean_dir=served_world.clean,
        spill_dir=tmp_path_factory.mktemp("scan_spill"),
        api_keys=["scan-key"],
        admin_keys=["scan-admin"],
        log_feature_sample=1.0,
    )
    settings = served_world.settings.model_copy(update={"hmac_key": SecretStr(SECRET)})
    yield Replica(config, settings)


def _app(replica: Any, mode: str) -> TestClient:
    replica.config = replica.config.model_copy(update={"personal_ids": mode})
    return TestClient(
        build_api(replica, Lifecycle(replica), ApiKeys(["scan-key"], admin_keys=["scan-admin"]))
    )


def _event(user: str, n: int) -> dict[str, Any]:
    stamp = datetime.now(UTC).isoformat()
    return {
        "user_id": user,
        "item_id": "i1",
        "event_type": "product_view",
        "timestamp": stamp,
        "event_id": f"scan-{n}",
    }


def _redis_bytes(client: redis.Redis, project: str) -> bytes:
    chunks: list[bytes] = []
    for pattern in (f"tailwise:{project}:*", f"*{project}"):
        for key in client.scan_iter(match=pattern, count=1000):
            chunks.append(key)
            kind = client.type(key)
            if kind == b"stream":
                chunks += [v for _, f in client.xrange(key) for v in f.values()]
            elif kind == b"list":
                chunks += client.lrange(key, 0, -1)
            elif kind == b"set":
                chunks += list(client.smembers(key))
            elif kind == b"hash":
                chunks += [b for kv in client.hgetall(key).items() for b in kv]
            elif kind == b"string":
                chunks.append(client.get(key) or b"")
    return b"\n".join(chunks)


def test_no_personal_id_is_stored_anywhere(
    replica: Any, served_world: ServedWorld, tmp_path: Path
) -> None:
    with _app(replica, "refuse") as app:
        for n, user in enumerate(PERSONAL):
            assert app.post("/recommend", json={"user_id": user}).status_code == 422
            assert app.post("/events", json=_event(user, n), headers=KEY).status_code == 422
            assert app.delete(f"/users/{user}", headers=ADMIN).status_code == 422
    with _app(replica, "pseudonymise") as app:
        for n, user in enumerate(PERSONAL):
            assert app.post("/events", json=_event(user, 10 + n), headers=KEY).status_code == 202
            answer = app.post("/recommend", json={"user_id": user})
            assert answer.status_code == 200, answer.json()
        replica.writer._down_until = time.monotonic() + 60  # Redis "down": the outbox takes it
        spilled = app.post("/events", json=_event(PERSONAL[0], 20), headers=KEY).json()
        assert spilled["spilled"] == 1
        replica.writer._down_until = 0.0
        erased = app.delete(f"/users/{PERSONAL[1]}", headers=ADMIN)
        assert erased.status_code == 200 and erased.json()["online_removed"] > 0
        assert erased.json()["user_id"] == pseudonym(PERSONAL[1], SECRET.encode())
    client, keys = replica.client, replica.keys
    served = tmp_path / "served"
    while consume(client, keys, served).read:
        pass
    stored = _redis_bytes(client, keys.project)
    assert pseudonym(PERSONAL[0], SECRET.encode()).encode() in stored  # kept, pseudonymous
    assert pseudonym(PERSONAL[1], SECRET.encode()).encode() not in stored  # erased
    assert not [n for n in NEEDLES if n in stored]
    roots = [
        served,
        replica.config.spill_dir,
        served_world.models,
        served_world.root / "evaluation",
    ]
    files = [p for root in roots for p in root.rglob("*") if p.is_file()]
    assert files
    assert [p for p in files if any(n in p.read_bytes() for n in NEEDLES)] == []
    assert find_traces(roots, PERSONAL) == []
