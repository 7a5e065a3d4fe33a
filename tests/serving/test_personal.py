"""Personal data in user ids: refused with a 422 naming the field, or pseudonymised with
ingestion's keyed hash, on every endpoint that takes a user id (stand-in replica)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from serving.auth import ApiKeys
from serving.config import ServingConfig
from serving.metrics import ServingMetrics
from serving.routes import build_api
from tailwise.privacy import personal_kind, pseudonym, pseudonymise
from tests.serving.test_routes import KEY, Graph, Lifecycle, Rules, Writer

pytestmark = pytest.mark.unit
SECRET = b"k" * 40
PERSONAL = ["alice@example.com", " Bob.Smith@Mail.co.uk", "+49 170 1234567", "(555) 123-4567"]
NOT_PERSONAL = ["u0000030", "12345678", "card-0042", "user@local", "A-1", "2024-01-02"]


@pytest.mark.parametrize("value", PERSONAL)
def test_addresses_and_numbers_are_personal(value: str) -> None:
    assert personal_kind(value) in ("an e-mail address", "a phone number")


@pytest.mark.parametrize("value", NOT_PERSONAL)
def test_ordinary_ids_are_not(value: str) -> None:
    assert personal_kind(value) is None


def test_the_pseudonym_is_ingestions_hash_of_the_normalised_value() -> None:
    expected = pseudonymise(pd.Series(["alice@example.com"]), SECRET).iat[0]
    assert pseudonym(" Alice@Example.com", SECRET) == expected
    assert pseudonym("+49 170 1234567", SECRET) == pseudonym("+49-170-123 4567", SECRET)


def _client(tmp_path: Path, mode: str) -> Iterator[TestClient]:
    async def close() -> None:
        return None

    replica = SimpleNamespace(
        config=ServingConfig(models_dir=tmp_path, personal_ids=mode),
        settings=SimpleNamespace(),
        graph=Graph(),
        metrics=ServingMetrics(),
        rules=Rules(),
        writer=Writer(),
        close=close,
    )
    app = build_api(replica, Lifecycle(), ApiKeys(["right"], admin_keys=["boss"]))  # type: ignore[arg-type]
    with TestClient(app) as client:
        client.replica = replica  # type: ignore[attr-defined]
        yield client


@pytest.fixture
def refusing(tmp_path: Path) -> Iterator[TestClient]:
    yield from _client(tmp_path, "refuse")


def event(user: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {"user_id": user, "item_id": "i1", "event_type": "purchase", "timestamp": now}


@pytest.mark.parametrize("user", PERSONAL)
def test_personal_ids_are_refused_naming_the_field(refusing: TestClient, user: str) -> None:
    response = refusing.post("/recommend", json={"user_id": user})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "user_id"
    assert "personal data" in response.json()["error"]
    one = refusing.post("/events", json=event(user), headers=KEY)
    assert one.status_code == 422 and one.json()["detail"][0]["field"] == "user_id"
    batch = refusing.post("/events", json=[event("u1"), event(user)], headers=KEY)
    assert batch.status_code == 422 and batch.json()["detail"][0]["field"] == "events.1.user_id"
    assert refusing.replica.graph.asked == []  # type: ignore[attr-defined]


def test_personal_ids_are_pseudonymised_when_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import serving.personal

    monkeypatch.setattr(serving.personal, "replica_key", lambda _settings: SECRET)
    for client in _client(tmp_path, "pseudonymise"):
        assert client.post("/recommend", json={"user_id": "alice@example.com"}).status_code == 200
        (asked,) = client.replica.graph.asked  # type: ignore[attr-defined]
        assert asked.user_id == pseudonym("alice@example.com", SECRET)
        assert client.post("/events", json=event("u1"), headers=KEY).status_code == 202


def test_delete_user_needs_an_admin_key_refuses_personal_ids_and_erases(
    refusing: TestClient,
) -> None:
    erased: list[str] = []
    refusing.replica.forget = lambda user: (
        erased.append(user)
        or {  # type: ignore[attr-defined]
            "online_removed": 3,
            "spill_removed": 1,
        }
    )
    admin = {"X-API-Key": "boss"}
    assert refusing.delete("/users/u1").status_code == 401
    assert refusing.delete("/users/u1", headers=KEY).status_code == 403  # a write key
    assert refusing.delete("/users/alice@example.com", headers=admin).status_code == 422
    response = refusing.delete("/users/u1", headers=admin)
    assert response.status_code == 200, response.json()
    assert response.json()["online_removed"] == 3 and erased == ["u1"]
    assert "tailwise forget --user u1" in response.json()["offline"]
