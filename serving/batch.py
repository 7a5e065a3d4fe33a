"""`tailwise recommend`: recommendations for a file of users through the serving graph.

The same `RecommendGraph` the HTTP app runs (features from Redis, retrieval, ranking,
rules), in this process, without Ray: what a batch job gets is what an application would
have been served (the version's repeat decision says whether a user's purchased and seen
items are left out), except that nothing is cached or logged. Needs the features
materialised (`tailwise features materialize`). `Tally` counts the users with history
(known users) and how many of them got the cold-start list, which should be none.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd
import redis

from serving.bundle import load_bundle
from serving.config import ServingConfig
from serving.features import FeatureReader, check_features
from serving.graph import Answer, RecommendGraph, Request
from serving.history import bootstrap_history
from serving.keys import Keys
from tailwise.features.store import check_registry, open_store
from tailwise.redis_clients import close_async, open_async_redis, open_redis
from tailwise.settings import Settings
from tailwise.versions import version_folder


@dataclass
class Tally:
    """Known users answered, and those of them that got the cold-start list (and why)."""

    known: int = 0
    cold: int = 0
    without_features: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, answer: Answer) -> None:
        if not answer.known:
            return
        self.known += 1
        self.without_features += answer.without_features
        if answer.cold_start:
            self.cold += 1
            self.reasons[answer.known_cold_start or "unknown"] += 1

    def describe(self) -> str:
        text = f"{self.cold} of {self.known} users with history got the cold-start list"
        if self.reasons:
            text += " (" + ", ".join(f"{r}: {n}" for r, n in sorted(self.reasons.items())) + ")"
        return text


def open_graph(config: ServingConfig, settings: Settings) -> RecommendGraph:
    """A graph over the configured model version, no cache; the version's repeat decision
    says whether purchased and seen items are left out (unless `config.rules` says)."""
    bundle = load_bundle(version_folder(config.models_dir, config.model_version))
    client = open_redis(settings)
    aclient = open_async_redis(settings)
    store = open_store(settings)
    check_registry(
        store,
        bundle.manifest.get("data_version"),
        f"model version {bundle.version}",
        f"`tailwise features build --data {config.clean_dir}`, `tailwise features apply` and "
        "`tailwise features materialize` (the data the version was trained on)",
    )
    reader = FeatureReader(store, client, bundle.ranking_service, list(bundle.item_ids))
    check_features(bundle, reader)
    keys = Keys.of(store.project, settings)
    if (config.clean_dir / "events").exists():
        bootstrap_history(client, keys, config.clean_dir)
    batch = config.model_copy(update={"cache_ttl_seconds": 0})
    return RecommendGraph(bundle, reader, aclient, keys, batch, record=False)


def recommend_users(
    graph: RecommendGraph,
    user_ids: Sequence[str],
    k: int,
    progress: Callable[[int], None] | None = None,
    tally: Tally | None = None,
) -> pd.DataFrame:
    """Rows user_id, item_id, rank (1 = best), score for every listed user; `tally`
    counts the known users and those of them answered by the cold-start list."""
    if not 1 <= k <= 1000:
        raise ValueError(f"k must be between 1 and 1000, got {k}")
    requests = [
        Request(user_id=u, k=k, request_id=f"batch-{n}") for n, u in enumerate(user_ids, start=1)
    ]
    rows = []

    def collect(n: int, answer: Answer) -> None:
        if answer.body.get("degraded"):
            raise redis.ConnectionError(f"Redis at {graph.client} is unreachable")
        if tally is not None:
            tally.add(answer)
        user = requests[n].user_id
        for rank, item in enumerate(answer.body["items"], start=1):
            rows.append((user, item["item_id"], rank, item["score"]))
        if progress is not None:
            progress(n + 1)

    answer_all(graph, requests, collect)
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rank", "score"])


def answer_all(
    graph: RecommendGraph,
    requests: Sequence[Request],
    each: Callable[[int, Answer], None] | None = None,
) -> list[Answer]:
    """The graph's answers, one request after the other, from outside an event loop;
    `each(position, answer)` as they come. The graph's connections are closed at the end:
    they belong to the loop that opened them."""

    async def run() -> list[Answer]:
        answers = []
        try:
            for n, req in enumerate(requests):
                answers.append(await graph.recommend(req))
                if each is not None:
                    each(n, answers[-1])
            return answers
        finally:
            await close_async(graph.client)

    return asyncio.run(run())
