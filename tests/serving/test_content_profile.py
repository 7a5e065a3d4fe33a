"""graph.profile on the real Redis: the user's feature hash in one round trip, and an empty
profile (with the graph marked degraded) when Redis is unreachable."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import redis.asyncio

from serving.graph import RecommendGraph
from tailwise.features.online import OnlineFeatures
from tests.serving.events_support import DOWN_URL, REDIS_URL


def graph_over(url: str, online: OnlineFeatures) -> RecommendGraph:
    """A graph with only what `profile` reads: the async client and the user reader."""
    graph = RecommendGraph.__new__(RecommendGraph)
    graph.client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=0.2)
    graph.reader = SimpleNamespace(users=online)  # type: ignore[assignment]
    graph.retry_after, graph.down_until = 1.0, 0.0
    return graph


def profile(graph: RecommendGraph, user: str) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        try:
            return await graph.profile(user)
        finally:
            await graph.client.aclose()

    return asyncio.run(run())


def test_profile_reads_the_users_features(online: OnlineFeatures) -> None:
    values = {"rt_last_items": ["i1", "i2"], "rt_last_category": "shoes", "rt_session_events": 3}
    online.write("u1", "user_realtime_session", values, datetime.now(UTC))
    read = profile(graph_over(REDIS_URL, online), "u1")
    assert read == online.read("u1")
    assert read["rt_last_category"] == "shoes" and list(read["rt_last_items"]) == ["i1", "i2"]
    assert all(v is None for v in profile(graph_over(REDIS_URL, online), "nobody").values())


def test_profile_is_empty_and_the_graph_degraded_while_redis_is_down(
    online: OnlineFeatures,
) -> None:
    graph = graph_over(DOWN_URL, online)
    assert profile(graph, "u1") == {} and graph.degraded
