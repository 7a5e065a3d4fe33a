"""`tailwise recommend`: recommendations for a file of users through the serving graph.

The same `RecommendGraph` the HTTP app runs (features from Redis, retrieval, ranking,
rules), in this process, without Ray: what a batch job gets is what an application would
have been served (the version's repeat decision says whether a user's purchased and seen
items are left out), except that nothing is cached or logged. Needs the features
materialised (`tailwise features materialize`). `Tally` counts the users with history
(known users) and how many of them got the cold-start list, which should be none.

`recommend_users_on_ray` answers the same users with Ray tasks: the list split into
contiguous shards, each task opening its own graph over the same version and Redis and
running `recommend_users` on its shard, the shards' rows concatenated in order, so the
output equals the single-process one row for row. It joins a running cluster when
RAY_ADDRESS is set (every node then needs the version and feature_repo/ at the same paths,
as replicas do), else starts Ray here with one CPU per worker.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import redis

from serving.bundle import load_bundle
from serving.config import ServingConfig
from serving.features import FeatureReader, check_features
from serving.graph import Answer, RecommendGraph, Request
from serving.history import bootstrap_history
from serving.keys import Keys
from tailwise.features.store import check_registry, open_store
from tailwise.ray_jobs import connected
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

    def merge(self, other: Tally) -> None:
        self.known += other.known
        self.cold += other.cold
        self.without_features += other.without_features
        self.reasons.update(other.reasons)

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
    at: datetime | None = None,
) -> pd.DataFrame:
    """Rows user_id, item_id, rank (1 = best), score for every listed user; `tally`
    counts the known users and those of them answered by the cold-start list. Every user
    is answered as of one request time, `at` (default: now), so the batch does not drift
    with the clock while it runs and can be reproduced."""
    if not 1 <= k <= 1000:
        raise ValueError(f"k must be between 1 and 1000, got {k}")
    at = at or datetime.now(UTC)
    requests = [
        Request(user_id=u, k=k, timestamp=at, request_id=f"batch-{n}")
        for n, u in enumerate(user_ids, start=1)
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


@dataclass
class BatchRun:
    """What a batch of users got, and from which version."""

    recs: pd.DataFrame
    tally: Tally
    version: str
    allow_repeats: bool
    tower_fallback: str | None


def recommend_users_on_ray(
    config: ServingConfig,
    settings: Settings,
    user_ids: Sequence[str],
    k: int,
    workers: int,
    progress: Callable[[int], None] | None = None,
    at: datetime | None = None,
) -> BatchRun:
    """`recommend_users` over `workers` contiguous shards of `user_ids`, one Ray task each
    (its own graph over `config`'s version), all as of the request time `at` (default:
    now, taken once here); rows in the order of `user_ids`."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if not 1 <= k <= 1000:
        raise ValueError(f"k must be between 1 and 1000, got {k}")
    import ray

    config, settings = config.resolved(), settings.resolved()  # tasks run elsewhere
    at = at or datetime.now(UTC)
    size = -(-len(user_ids) // workers) if user_ids else 0
    shards = [list(user_ids[i : i + size]) for i in range(0, len(user_ids), size or 1)]
    env = {"TF_USE_LEGACY_KERAS": "1", "OMP_NUM_THREADS": "1"}
    env["TF_CPP_MIN_LOG_LEVEL"] = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")
    with connected(workers, env):
        task: Any = ray.remote(num_cpus=1, max_retries=1)(recommend_batch)  # typed per arity
        pending = {task.remote(config, settings, shard, k, at): n for n, shard in enumerate(shards)}
        parts: dict[int, BatchRun] = {}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            try:
                parts[pending.pop(done[0])] = ray.get(done[0])
            except ray.exceptions.RayTaskError as exc:  # the task's own error, as in-process
                cause = getattr(exc, "cause", None)
                raise (cause if isinstance(cause, Exception) else exc) from None
            if progress is not None:
                progress(sum(len(shards[n]) for n in parts))
    if not parts:
        raise ValueError("no users to recommend for")
    ordered = [parts[n] for n in range(len(shards))]
    tally = Tally()
    for part in ordered:
        tally.merge(part.tally)
    first = ordered[0]
    recs = pd.concat([p.recs for p in ordered], ignore_index=True)
    return BatchRun(recs, tally, first.version, first.allow_repeats, first.tower_fallback)


def recommend_batch(
    config: ServingConfig,
    settings: Settings,
    user_ids: Sequence[str],
    k: int,
    at: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> BatchRun:
    """`recommend_users` in this process over a graph of its own (`open_graph`): what
    `tailwise recommend` runs with one worker, and each Ray task with several."""
    graph = open_graph(config, settings)
    tally = Tally()
    recs = recommend_users(graph, user_ids, k, progress, tally, at)
    bundle = graph.bundle
    return BatchRun(recs, tally, bundle.version, bundle.allow_repeats, bundle.tower_fallback)


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
