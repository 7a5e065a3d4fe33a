"""Prefetch's early read (serving.ingress): which /recommend bodies send the graph's read.

The handler's side (claiming the read, one HMGET per request) runs against a real app in
test_app.py; here the decision itself, on the deployment class without Ray.
"""

from __future__ import annotations

from typing import Any

import orjson

from serving.config import ServingConfig
from serving.graph import Request as GraphRequest
from serving.ingress import Early, Ingress


class Graph:
    """Records what would have been sent."""

    def __init__(self) -> None:
        self.sent: list[GraphRequest] = []

    def prefetch(self, req: GraphRequest) -> Any:
        self.sent.append(req)
        return ("sent", req.user_id)


def _ingress(**config: Any) -> tuple[Any, Graph]:
    ingress = object.__new__(Ingress.func_or_class)  # no __init__: no models, no Redis
    ingress.config = ServingConfig(**config)
    ingress.api_keys = ["right"]
    graph = ingress.graph = Graph()
    return ingress, graph


BODY = {"user_id": " u1 ", "k": 3, "context": {"device": "mobile", "country": "DE"}}


def test_a_valid_body_is_validated_once_and_its_read_sent() -> None:
    ingress, graph = _ingress()
    early = ingress._early(orjson.dumps(BODY), [])
    assert isinstance(early, Early) and early.sent == ("sent", "u1")
    assert early.body.user_id == "u1"  # as validated: whitespace stripped
    (sent,) = graph.sent
    assert (sent.user_id, sent.k, sent.device, sent.country) == ("u1", 3, "mobile", "DE")
    stamped = {**BODY, "context": {"timestamp": "2026-01-02T03:04:05Z"}}
    assert ingress._early(orjson.dumps(stamped), []).sent is not None
    assert graph.sent[-1].timestamp is not None


def test_invalid_bodies_send_nothing_and_are_left_to_the_handler() -> None:
    ingress, graph = _ingress()
    for raw in (b'{"user_id": "u1", "k": ', b"[]", orjson.dumps({**BODY, "k": 0})):
        assert ingress._early(raw, []) is None
    assert graph.sent == []


def test_no_read_goes_out_without_the_key_a_recommend_needs() -> None:
    ingress, graph = _ingress(require_key_for_recommend=True)
    raw = orjson.dumps(BODY)
    for headers in ([], [(b"x-api-key", b"wrong")], [(b"x-api-key", "clé".encode())]):
        early = ingress._early(raw, headers)
        assert early is not None and early.sent is None
    assert graph.sent == []
    assert ingress._early(raw, [(b"x-api-key", b"right")]).sent == ("sent", "u1")
