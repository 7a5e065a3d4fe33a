"""What one serving replica holds, built once: Redis clients, the Feast store, the graph of
the model version being served, the event rules and writer, the metrics.

    ServingConfig, Settings --> Replica
        .graph   RecommendGraph of the current version (replaced whole by `load` + `use`)
        .rules   EventRules (consent, time window), .writer EventWriter (Redis or spill)
        .experiments  ExperimentRouter (serving.experiments), None without experiments

The request path reads Redis through `redis.asyncio` (`aclient`); loading a version, the
history bootstrap, event writes and the background work use the blocking client (`client`)
off the event loop.
"""

from __future__ import annotations

import logging

import redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from serving.bundle import load_bundle
from serving.config import ServingConfig
from serving.event_rules import ConsentBook, EventRules
from serving.events import EventWriter
from serving.experiments import build_router
from serving.features import FeatureReader, check_features
from serving.graph import RecommendGraph
from serving.history import bootstrap_history
from serving.keys import Keys
from serving.metrics import ServingMetrics
from serving.personal import replica_key
from serving.spill import SpillLog
from tailwise.erasure import record_online
from tailwise.features.online import erase_online
from tailwise.features.store import open_store
from tailwise.params import load_params
from tailwise.redis_clients import open_async_redis, open_redis
from tailwise.redis_server import durability, rewrite_persistence
from tailwise.settings import Settings
from tailwise.versions import version_folder

logger = logging.getLogger("tailwise.serving")


class Replica:
    def __init__(self, config: ServingConfig, settings: Settings) -> None:
        self.config, self.settings = config, settings
        self.metrics = ServingMetrics()
        timeout = config.redis_timeout_seconds
        self.client = open_redis(settings, socket_timeout=timeout, socket_connect_timeout=timeout)
        # No retries on the request path: an outage costs a request one timeout, then the
        # graph answers from memory for a while (serving.graph). A cluster client keeps
        # its own retries: they follow a failover to the promoted replica.
        self.aclient = open_async_redis(
            settings,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self.store = open_store(settings)
        self.keys = Keys.of(self.store.project, settings)
        self.graph = self.load(self.wanted_version())
        self.metrics.set_model(self.graph.bundle.version)
        self.rules, self.writer = self._events()
        self.experiments = build_router(
            config, self.keys, self.client, self.load, self.metrics.registry, self.graph
        )
        events = self.keys.event_streams
        streams = (
            {"events": events[0]}
            if len(events) == 1
            else {f"events.{n}": s for n, s in enumerate(events)}
        )
        self.metrics.watch_streams(self.client, {**streams, "served": self.keys.served})

    def load(self, version: str | None) -> RecommendGraph:
        """The graph of `version` (default: LATEST), checked against Feast and warmed up."""
        bundle = load_bundle(version_folder(self.config.models_dir, version))
        reader = FeatureReader(
            self.store, self.client, bundle.ranking_service, list(bundle.item_ids)
        )
        check_features(bundle, reader)
        graph = RecommendGraph(bundle, reader, self.aclient, self.keys, self.config)
        graph.warm_up()
        return graph

    def use(self, graph: RecommendGraph) -> None:
        """Serve `graph` from now on; it keeps the answers remembered for an outage."""
        graph.last = self.graph.last
        self.graph = graph  # one reference assignment: a request uses one graph throughout
        self.writer.online = graph.reader.users
        self.metrics.set_model(graph.bundle.version)
        self.metrics.reloads.inc()

    def wanted_version(self) -> str | None:
        """The configured version, else the one recorded in Redis by a reload (when its
        folder exists here), else None (LATEST)."""
        if self.config.model_version:
            return self.config.model_version
        try:
            wanted = self.client.get(self.keys.model)
        except redis.RedisError:
            return None
        if wanted is None:
            return None
        name = wanted.decode() if isinstance(wanted, bytes) else str(wanted)
        return name if (self.config.models_dir / name / "manifest.json").exists() else None

    def record_version(self, version: str) -> None:
        """Tell the other replicas (they follow `keys.model`)."""
        try:
            self.client.set(self.keys.model, version)
        except redis.RedisError:
            logger.warning(
                "could not record model %s in Redis; other replicas keep theirs", version
            )

    def forget(self, user_id: str) -> dict[str, int]:
        """Erase a person from this replica's online side: recorded in the erasure ledger
        first (the consumer then drops what is left), then Redis (features, history,
        caches, stream entries), the spill log and the answers kept in memory. Raises
        PrivacyError without a pseudonymisation key (the ledger needs it)."""
        ids = sorted({user_id, self.rules.consent.resolve(user_id)})
        record_online(self.client, self.keys.project, ids, replica_key(self.settings))
        online = erase_online(self.client, self.keys.project, ids, self.keys.partitions)
        spilled = self.writer.spill.forget(ids)
        for user in ids:
            self.graph.last.answers.pop(user, None)
        rewrite_persistence(self.client)
        return {"online_removed": online, "spill_removed": spilled}

    async def close(self) -> None:
        await self.aclient.aclose()
        self.client.close()

    def _events(self) -> tuple[EventRules, EventWriter]:
        params = load_params(self.config.params_path).ingest
        clean = self.config.clean_dir
        consent = (
            ConsentBook.from_clean(clean, params)
            if (clean / "users.parquet").exists()
            else ConsentBook.empty(params)
        )
        if (clean / "events").exists():
            loaded = bootstrap_history(self.client, self.keys, clean)
            logger.info("history bootstrap: %d users", loaded)
        items = self.graph.reader.items.columns
        categories = dict(zip(items["item_id"], items["category"], strict=True))
        spill = SpillLog(self.config.spill_dir / self.keys.project)
        writer = EventWriter(self.client, self.keys, self.graph.reader.users, categories, spill)
        writer.wait_aof_ms = _wait_aof_ms(self.client, self.config.redis_timeout_seconds)
        writer.wait_replica_ms = max(1, int(self.config.redis_timeout_seconds * 1000))
        return EventRules(params, consent), writer


def _wait_aof_ms(client: redis.Redis, timeout_s: float) -> int | None:
    """WAITAOF's timeout when the server needs it for durable writes (AOF on, fsync not
    per write, Redis >= 7.2), else None."""
    try:
        found = durability(client)
    except redis.RedisError:
        return None
    if found.appendonly and found.appendfsync != "always" and found.waitaof:
        return max(1, int(timeout_s * 1000))
    return None
