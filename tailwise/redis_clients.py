"""Redis clients for a single Redis or a Redis Cluster, chosen by one setting.

    Settings.redis_cluster False --> redis.Redis / redis.asyncio.Redis at REDIS_URL
    Settings.redis_cluster True  --> redis.cluster.RedisCluster /
                                     redis.asyncio.cluster.RedisCluster, REDIS_URL being
                                     any node of the cluster (the rest are discovered;
                                     REDIS_CLUSTER_NODES: more to try when it is down)

The cluster clients are redis-py's own: they route each command to the node owning its
key's slot, split a non-transactional pipeline by node, follow MOVED / ASK and refresh the
slot map after a failover. Commands that touch several keys at once (a Lua script, EXISTS
over several keys, a transaction) need those keys in one slot: serving.keys puts a hash
tag around the user id (`{user}`) in cluster mode for that reason.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.exceptions import (
    ClusterDownError,
    ClusterError,
    MasterDownError,
    RedisClusterException,
    TryAgainError,
)

from tailwise.settings import Settings

# Errors a cluster client raises while a slot has no reachable master (during a
# failover): like a connection error to a single Redis, the request can be retried later.
CLUSTER_UNAVAILABLE: tuple[type[Exception], ...] = (
    ClusterDownError,
    ClusterError,
    MasterDownError,
    TryAgainError,
    RedisClusterException,
)


def open_redis(settings: Settings, **options: Any) -> redis.Redis:
    """A blocking client for REDIS_URL (a cluster client when `settings.redis_cluster`);
    `options` are redis-py connection options (socket_timeout, ...)."""
    if settings.redis_cluster:
        _check_cluster_url(settings.redis_url)
        nodes = [redis.cluster.ClusterNode(h, p) for h, p in startup_nodes(settings)]
        # The cluster client has the commands of redis.Redis; typed as one for callers.
        return redis.cluster.RedisCluster.from_url(  # type: ignore[return-value]
            settings.redis_url, startup_nodes=nodes, **options
        )
    return redis.Redis.from_url(settings.redis_url, **options)


def open_async_redis(settings: Settings, **options: Any) -> redis.asyncio.Redis:
    """The `redis.asyncio` counterpart of `open_redis` (the request path's client).

    A `retry` option is passed to a single Redis only: the cluster client keeps its own
    retries, which are what refresh its slot map after a failover."""
    if settings.redis_cluster:
        _check_cluster_url(settings.redis_url)
        options.pop("retry", None)
        nodes = [redis.asyncio.cluster.ClusterNode(h, p) for h, p in startup_nodes(settings)]
        return redis.asyncio.cluster.RedisCluster.from_url(  # type: ignore[return-value]
            settings.redis_url, startup_nodes=nodes, **options
        )
    return redis.asyncio.Redis.from_url(settings.redis_url, **options)


def startup_nodes(settings: Settings) -> list[tuple[str, int]]:
    """(host, port) of REDIS_CLUSTER_NODES, the nodes tried after REDIS_URL's when a
    client starts (any one that answers tells it the whole cluster)."""
    nodes = []
    for item in (i.strip() for i in settings.redis_cluster_nodes.split(",")):
        if not item:
            continue
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65_536:
            raise ValueError(f"REDIS_CLUSTER_NODES: {item!r} is not host:port")
        nodes.append((host, int(port)))
    return nodes


def is_cluster(client: Any) -> bool:
    """Whether `client` (or a pipeline of it) talks to a Redis Cluster."""
    return isinstance(
        client,
        redis.cluster.RedisCluster
        | redis.cluster.ClusterPipeline
        | redis.asyncio.cluster.RedisCluster
        | redis.asyncio.cluster.ClusterPipeline,
    )


async def close_async(client: redis.asyncio.Redis) -> None:
    """Close an async client of either kind (its connections belong to the running loop)."""
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        await client.aclose()
    else:
        await client.connection_pool.disconnect()


def _check_cluster_url(url: str) -> None:
    db = url.split("?", 1)[0].rsplit("/", 1)[-1] if url.count("/") > 2 else ""
    if db not in ("", "0"):
        raise ValueError(f"REDIS_URL {url!r}: a Redis Cluster has only database 0, not {db!r}")
