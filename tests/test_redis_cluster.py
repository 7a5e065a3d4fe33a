"""Tailwise on a Redis Cluster (REDIS_CLUSTER=1): a real 6-node cluster of private
redis-servers (tests/redis_cluster.py), a Feast repo of its own project on it.

    cluster_state ok, 3 masters each with a replica
    request-path reads (FeatureReader / OnlineFeatures, sync and asyncio cluster clients)
        == Feast's get_online_features on the same cluster
    users' keys spread over all masters; one user's own keys share a slot
    a master killed with SIGKILL -> its replica promoted -> reads and event writes
        recover -> every acknowledged event is in the offline tables exactly once
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from redis.exceptions import RedisClusterException

from serving.events import EventWriter, WriteResult
from serving.features import FeatureReader
from serving.graph import REDIS_DOWN
from serving.history import bootstrap_history
from serving.keys import Keys
from serving.spill import SpillLog
from tailwise.experiments.posteriors import Posterior, PosteriorStore
from tailwise.features.build import build_features
from tailwise.features.config import FeaturesParams
from tailwise.features.online import OnlineFeatures, erase_online
from tailwise.features.store import apply, materialize, open_store, teardown
from tailwise.ingest.pipeline import run_ingest
from tailwise.ingest.streams import consume
from tailwise.params import IngestParams
from tailwise.redis_clients import close_async, open_async_redis, open_redis
from tailwise.redis_server import durability, rewrite_persistence
from tailwise.synthetic import GenerateConfig, generate
from tests.feast_project import isolated_feast_settings
from tests.redis_cluster import LocalCluster
from tests.serving.events_support import CATEGORIES, NOW, make_event, rules

pytestmark = pytest.mark.integration

PARTITIONS = 4
SERVICE = "ranking_v1"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) or isinstance(b, list):
        return (
            a is not None
            and b is not None
            and len(a) == len(b)
            and all(_same(x, y) for x, y in zip(a, b, strict=True))
        )
    if a is None or b is None:
        return (a is None or pd.isna(a)) and (b is None or pd.isna(b))
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(b)))
    return bool(a == b)


@pytest.fixture(scope="module")
def world(redis_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Generated data, its features applied and materialised into the cluster."""
    root = tmp_path_factory.mktemp("cluster_world")
    generate(GenerateConfig(users=300, items=80, days=30, seed=11), root / "raw")
    run_ingest(
        root / "clean", IngestParams(duckdb_memory_limit="1GB"), b"c" * 40, source=root / "raw"
    )
    build_features(root / "clean", root / "features", FeaturesParams())
    settings = isolated_feast_settings(root / "features", root / "registry.db").model_copy(
        update={
            "redis_url": redis_cluster.url,
            # Every node is a startup node, as where a node may be lost: a client made
            # after the URL's node died finds the cluster through the others.
            "redis_cluster_nodes": ",".join(f"127.0.0.1:{p}" for p in redis_cluster.ports[1:]),
            "redis_cluster": True,
            "event_partitions": PARTITIONS,
        }
    )
    store, _ = apply(settings)
    materialize(settings)
    client = open_redis(settings, socket_timeout=2, socket_connect_timeout=2)
    users = sorted(pd.read_parquet(root / "features" / "user_profile.parquet")["user_id"])
    items = sorted(pd.read_parquet(root / "features" / "item_catalog.parquet")["item_id"])
    try:
        yield {
            "root": root,
            "settings": settings,
            "store": store,
            "client": client,
            "users": users,
            "items": items,
            "keys": Keys.of(store.project, settings),
        }
    finally:
        teardown(settings, store)
        client.close()


def test_the_cluster_is_ok_with_three_replicated_masters(redis_cluster: LocalCluster) -> None:
    for port in redis_cluster.ports:
        info = redis_cluster.info(port)
        assert info["cluster_state"] == "ok", port
        assert info["cluster_slots_assigned"] == "16384" and info["cluster_known_nodes"] == "6"
    masters = redis_cluster.masters()
    assert len(masters) == 3
    for port in masters:
        assert int(redis_cluster.node(port).info("replication")["connected_slaves"]) == 1


def _user_feature_names(store: Any, reader: FeatureReader) -> list[str]:
    return [f"{v.name}:{f.name}" for v in reader.user_views for f in v.features]


def test_request_path_reads_equal_feasts_get_online_features(world: dict[str, Any]) -> None:
    store, client = world["store"], world["client"]
    reader = FeatureReader(store, client, SERVICE, world["items"])
    users = [*world["users"][:30], "no-such-user"]
    names = _user_feature_names(store, reader)
    sdk = (
        open_store(world["settings"])
        .get_online_features(features=names, entity_rows=[{"user_id": u} for u in users])
        .to_dict()
    )
    found = 0
    for i, user in enumerate(users):
        got = reader.user(user)
        assert set(got) == {n.split(":")[1] for n in names}
        for name, value in got.items():
            assert _same(value, sdk[name][i]), (user, name, value, sdk[name][i])
        found += any(v is not None for v in got.values())
    assert found == len(users) - 1  # every real user has features; the unknown one none

    item_names = [f"{v.name}:{f.name}" for v in reader.item_views for f in v.features]
    sample = world["items"][:40]
    sdk_items = store.get_online_features(
        features=item_names, entity_rows=[{"item_id": i} for i in sample]
    ).to_dict()
    looked = reader.items.lookup(sample)
    for ref in item_names:
        name = ref.split(":")[1]
        for a, b in zip(looked[name], sdk_items[name], strict=True):
            assert _same(a, b), name

    # The request path's asyncio client: one pipeline with the Feast hash and the user's
    # own keys (different slots, split by node by redis-py), as RecommendGraph._read sends.
    async def read_async() -> list[dict[str, Any]]:
        aclient = open_async_redis(world["settings"], socket_timeout=2)
        keys: Keys = world["keys"]
        try:
            out = []
            for user in users:
                pipe = aclient.pipeline(transaction=False)
                reader.users.queue_read(pipe, user)
                pipe.smembers(keys.purchased(user))
                pipe.exists(keys.seen(user), keys.purchased(user), keys.history(user))
                raw, _, _ = await pipe.execute()
                out.append(reader.users.decode(raw))
            return out
        finally:
            await close_async(aclient)

    for user, got in zip(users, asyncio.run(read_async()), strict=True):
        assert got == reader.user(user), user


def _writer(world: dict[str, Any], spill_dir: Path) -> EventWriter:
    store, client = world["store"], world["client"]
    view = store.get_feature_view("user_realtime_session")
    online = OnlineFeatures(client, store.project, "user_id", [view])
    writer = EventWriter(
        client, world["keys"], online, CATEGORIES, SpillLog(spill_dir), cooldown_seconds=0.2
    )
    writer.wait_replica_ms = 500
    return writer


def _events(users: list[str], start: int, n: int) -> list[dict[str, Any]]:
    api_events = [
        make_event(
            user=users[(start + k) % len(users)],
            item=f"i{(start + k) % 3 + 1}",
            minutes=((start + k) % 500) / 10,
            event_id=f"ev-{start + k}",
        )
        for k in range(n)
    ]
    return rules().clean(api_events, NOW).events


def test_users_keys_spread_over_all_masters(
    world: dict[str, Any], redis_cluster: LocalCluster, tmp_path: Path
) -> None:
    client, keys, users = world["client"], world["keys"], world["users"][:60]
    _writer(world, tmp_path / "spill").write(_events(users, 0, 60))
    masters = {f"127.0.0.1:{p}" for p in redis_cluster.masters()}
    feast_keys = OnlineFeatures(client, world["store"].project, "user_id", [])
    user_nodes, feast_nodes = set(), set()
    for user in users:
        own = [keys.recent(user), keys.seen(user), keys.history(user), keys.rec(user)]
        assert len({client.keyslot(k) for k in own}) == 1, user  # the hash tag holds
        assert client.exists(keys.recent(user), keys.seen(user), keys.history(user)) == 3
        user_nodes.add(client.get_node_from_key(keys.recent(user)).name)
        feast_nodes.add(client.get_node_from_key(feast_keys.key(user)).name)
    assert user_nodes == masters and feast_nodes == masters
    stream_nodes = {client.get_node_from_key(s).name for s in keys.event_streams}
    assert len(keys.event_streams) == PARTITIONS and len(stream_nodes) >= 2
    for port in redis_cluster.masters():
        assert redis_cluster.node(port).dbsize() > 0


def test_durability_erasure_history_and_posteriors_work_on_the_cluster(
    world: dict[str, Any], redis_cluster: LocalCluster, tmp_path: Path
) -> None:
    client, keys, project = world["client"], world["keys"], world["store"].project
    found = durability(client)  # every node asked: all run AOF with fsync always
    assert found.durable and found.appendfsync == "always"
    redis_cluster.node(redis_cluster.masters()[0]).config_set("appendfsync", "everysec")
    try:
        assert durability(client).appendfsync == "everysec"  # the weakest node shows
    finally:
        redis_cluster.node(redis_cluster.masters()[0]).config_set("appendfsync", "always")

    # The history bootstrap writes every user's keys through the cluster pipeline.
    assert bootstrap_history(client, keys, world["root"] / "clean") > 0
    with_events = pd.read_parquet(world["root"] / "clean" / "events", columns=["user_id"])
    some = str(with_events["user_id"].max())  # not among the users the failover test reads
    assert some not in world["users"][:40]
    assert client.exists(keys.seen(some), keys.history(some), keys.recent(some)) == 3

    # Erasure finds the person's tagged keys on whichever master holds them, their Feast
    # hash and their entries in every event partition; then every node rewrites its AOF.
    writer = _writer(world, tmp_path / "spill")
    writer.write(_events([some], 5000, 3))
    feast_key = OnlineFeatures(client, project, "user_id", []).key(some)
    assert client.exists(feast_key) == 1 and client.xlen(keys.event_stream(some)) > 0
    removed = erase_online(client, project, [some], PARTITIONS)
    assert removed >= 3 + 4  # the 3 stream entries, the Feast hash and the per-user keys
    assert client.exists(feast_key, keys.seen(some), keys.history(some), keys.recent(some)) == 0
    assert all(
        json.loads(fields[b"e"])["user_id"] != some
        for stream in keys.event_streams
        for _, fields in client.xrange(stream)
    )
    rewrite_persistence(client)

    # The bandits' posteriors and allocation change in one transaction (one slot).
    store = PosteriorStore(client, keys.prefix)
    store.write("exp-a", {"a": Posterior(10, 3), "b": Posterior(12, 5)}, {"a": 0.4, "b": 0.6})
    assert store.read_posteriors("exp-a") == {"a": Posterior(10, 3), "b": Posterior(12, 5)}
    assert store.read_allocations(["exp-a", "none"]) == {"exp-a": {"a": 0.4, "b": 0.6}}
    assert store.allocated_at("exp-a") is not None


def _write(writer: EventWriter, events: list[dict[str, Any]], acked: set[str]) -> WriteResult:
    result = writer.write(events)
    assert result.accepted == len(events)  # in Redis, or in the durable outbox
    acked.update(result.event_ids)
    return result


def test_a_killed_master_fails_over_and_no_acknowledged_event_is_lost(
    world: dict[str, Any], redis_cluster: LocalCluster, tmp_path: Path
) -> None:
    """Runs last in this module: it kills the master of an event partition (its replica
    takes over), then starts it again (it rejoins as a replica)."""
    client, keys, store = world["client"], world["keys"], world["store"]
    users = world["users"][:40]
    writer = _writer(world, tmp_path / "spill")
    reader = FeatureReader(store, client, SERVICE, world["items"])
    realtime = {f.name for f in store.get_feature_view("user_realtime_session").features}

    def batch_features(user: str) -> dict[str, Any]:  # the events below move the rest
        return {k: v for k, v in reader.user(user).items() if k not in realtime}

    before = {u: batch_features(u) for u in users}
    assert all(before[u]["age"] is not None for u in users)
    # Events earlier tests of this module wrote are in the streams too: expected as well.
    acked = {
        json.loads(fields[b"e"])["event_id"]
        for stream in keys.event_streams
        for _, fields in client.xrange(stream)
    }
    for start in range(1000, 1040, 8):
        assert _write(writer, _events(users, start, 8), acked).spilled == 0
    assert not writer.spill.has_pending()  # each batch reached a replica in time

    victim = int(client.get_node_from_key(keys.event_streams[0]).port)
    assert victim in redis_cluster.masters()
    feast_keys = OnlineFeatures(client, store.project, "user_id", [])
    on_victim = next(
        u for u in world["users"] if client.get_node_from_key(feast_keys.key(u)).port == victim
    )
    expected = batch_features(on_victim)
    # The request path's asyncio client, long-lived as in a replica (one event loop).
    loop = asyncio.new_event_loop()
    aclient = loop.run_until_complete(_connected(world["settings"]))

    async def read_async() -> dict[str, Any] | None:
        """The user's batch features through the asyncio cluster pipeline; None for an
        error the graph answers from memory for (REDIS_DOWN)."""
        try:
            pipe = aclient.pipeline(transaction=False)
            reader.users.queue_read(pipe, on_victim)
            (raw,) = await pipe.execute()
            return {k: v for k, v in reader.users.decode(raw).items() if k not in realtime}
        except REDIS_DOWN:
            return None

    # The replica waits for the test's word before it takes over, so that reads and
    # writes meet the dead master whatever the machine's speed.
    replica = redis_cluster.replica_of(victim)
    redis_cluster.hold_failover(replica, True)
    try:
        assert loop.run_until_complete(read_async()) == expected
        redis_cluster.kill(victim)
        assert loop.run_until_complete(read_async()) is None  # REDIS_DOWN
        _fail_over_and_recover(world, redis_cluster, victim, writer, acked, reader, before, replica)
        assert loop.run_until_complete(read_async()) == expected
    finally:
        redis_cluster.hold_failover(replica, False)
        loop.run_until_complete(close_async(aclient))
        loop.close()
        if victim not in redis_cluster.alive():  # back, as the promoted one's replica
            redis_cluster.restart(victim)
    _replay_and_consume(world, redis_cluster, writer, acked, tmp_path / "served")


async def _connected(settings: Any) -> Any:
    aclient = open_async_redis(settings, socket_timeout=1, socket_connect_timeout=1)
    await aclient.initialize()
    return aclient


def _fail_over_and_recover(
    world: dict[str, Any],
    redis_cluster: LocalCluster,
    victim: int,
    writer: EventWriter,
    acked: set[str],
    reader: FeatureReader,
    before: dict[str, dict[str, Any]],
    replica: int,
) -> None:
    keys, store, users = world["keys"], world["store"], sorted(before)
    realtime = {f.name for f in store.get_feature_view("user_realtime_session").features}

    # Events of users whose partition the victim held keep coming while the cluster
    # notices and promotes the replica: each batch is acknowledged (into Redis or the
    # outbox). The first meets the dead master (the replica is held); then the replica
    # may take over. Bounded by count and time.
    hit = [u for u in users if keys.event_stream(u) == keys.event_streams[0]]
    assert hit
    first = _write(writer, _events(hit, 2000, 4), acked)
    assert first.spilled == 4, "the dead master's partition took a write"
    redis_cluster.hold_failover(replica, False)
    start, deadline, recovered = 2004, time.monotonic() + 45, False
    for _ in range(200):
        if time.monotonic() > deadline:
            break
        result = _write(writer, _events(hit, start, 4), acked)
        start += 4
        if result.spilled == 0 and redis_cluster.healthy_without(victim):
            recovered = True
            break
        time.sleep(0.2)
    assert recovered, "event writes did not reach Redis again after the failover"
    assert victim not in redis_cluster.masters() and len(redis_cluster.masters()) == 3
    # The promoted master has no replica yet: its entries are in Redis and, unconfirmed,
    # in the outbox too.
    assert writer.spill.has_pending()

    # Reads through the request path recover: same features as before the failover, and
    # Feast's own client agrees.
    for user in users:
        got = {k: v for k, v in reader.user(user).items() if k not in realtime}
        assert got == before[user], user
    names = _user_feature_names(store, reader)
    sdk = store.get_online_features(
        features=names, entity_rows=[{"user_id": u} for u in users[:5]]
    ).to_dict()
    for i, user in enumerate(users[:5]):
        for name, value in before[user].items():
            assert _same(value, sdk[name][i]), (user, name)

    # A process starting now, with REDIS_URL naming the dead node, finds the cluster
    # through REDIS_CLUSTER_NODES (without them it cannot start).
    dead = world["settings"].model_copy(
        update={"redis_url": f"redis://127.0.0.1:{victim}", "redis_cluster_nodes": ""}
    )
    with pytest.raises(RedisClusterException, match="cannot be connected"):
        open_redis(dead, socket_connect_timeout=1)
    alive = redis_cluster.masters()[0]
    late = open_redis(
        dead.model_copy(update={"redis_cluster_nodes": f"127.0.0.1:{alive}"}),
        socket_connect_timeout=1,
    )
    try:
        fresh = OnlineFeatures(late, store.project, "user_id", reader.user_views)
        for user in users[:5]:
            got = {k: v for k, v in fresh.read(user).items() if k not in realtime}
            assert got == before[user], user
    finally:
        late.close()


def _replay_and_consume(
    world: dict[str, Any],
    redis_cluster: LocalCluster,
    writer: EventWriter,
    acked: set[str],
    out: Path,
) -> None:
    client, keys, users = world["client"], world["keys"], world["users"][:40]
    # The killed node comes back as the replica of its promoted one; the outbox (events
    # the lone master could not replicate, or sent while no master served the slot) is
    # replayed, and new writes are confirmed again.
    redis_cluster.wait_until(redis_cluster.healthy, 60, "the restarted node replicates again")
    for _ in range(50):
        writer.replay()
        if not writer.spill.has_pending():
            break
        time.sleep(0.2)
    assert not writer.spill.has_pending(), "the outbox did not drain into the cluster"
    assert _write(writer, _events(users, 9000, 8), acked).spilled == 0
    assert not writer.spill.has_pending()

    # Every partition consumed by its group: each acknowledged event exactly once.
    duplicates = 0
    for _ in range(100):
        passed = consume(client, keys, out, count=200)
        duplicates += passed.duplicates
        if passed.read == 0:
            break
    assert passed.read == 0, "the streams did not drain"
    assert duplicates > 0  # events both in a stream and replayed from the outbox
    rows = pd.read_parquet(out / "events")
    assert rows["event_id"].is_unique
    assert set(rows["event_id"]) == acked
    for stream in keys.event_streams:  # all committed: the consumer trimmed them
        assert client.xlen(stream) == 0
