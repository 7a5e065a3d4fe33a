"""One serving replica with experiments, answering /recommend for a list of users through
FastAPI's test client (no Ray)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from serving.auth import ApiKeys
from serving.config import ServingConfig
from serving.lifecycle import Lifecycle
from serving.replica import Replica
from serving.routes import build_api
from tailwise.settings import Settings

FIELDS = ("experiment", "variant", "propensity", "model_version")


def answers(config: ServingConfig, settings: Settings, users: list[str]) -> list[dict[str, Any]]:
    """The experiment fields, model version and item reasons of each user's answer."""
    replica = Replica(config, settings)
    app = build_api(replica, Lifecycle(replica, interval=3600), ApiKeys(["k"]))
    out = []
    with TestClient(app) as client:
        for user in users:
            response = client.post("/recommend", json={"user_id": user, "k": 5, "slot": "home"})
            response.raise_for_status()
            body = response.json()
            out.append(
                {
                    **{f: body.get(f) for f in FIELDS},
                    "request_id": body["request_id"],
                    "items": [i["item_id"] for i in body["items"]],
                    "reasons": [i["reason"] for i in body["items"]],
                }
            )
    return out
