"""Key names: one Redis keeps today's names; a cluster tags each user's keys by user id,
and event partitions are chosen by a stable hash of the user id."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from redis.crc import key_slot

from serving.keys import Keys
from tailwise.features.store import FeatureStoreError, feast_connection_string, repo_config
from tailwise.ingest.streams import partition_of
from tailwise.redis_clients import open_redis, startup_nodes
from tailwise.settings import Settings
from tests.feast_project import ROOT


def test_one_redis_keeps_the_names_and_the_single_events_stream() -> None:
    keys = Keys("shop")
    assert keys.recent("u1") == "tailwise:shop:recent:u1"
    assert keys.history("u1") == "tailwise:shop:history:u1"
    assert keys.event_streams == ("tailwise:shop:events",)
    assert keys.event_stream("anyone") == keys.events


def test_on_a_cluster_a_users_keys_share_one_slot() -> None:
    keys = Keys("shop", cluster=True)
    for user in ("u1", "someone-else", "ü:ber", "a}b"):
        own = [keys.recent(user), keys.seen(user), keys.purchased(user), keys.history(user)]
        assert len({key_slot(k.encode()) for k in [*own, keys.rec(user)]}) == 1, user
    assert keys.recent("u1") == "tailwise:shop:recent:{u1}"
    slots = {key_slot(Keys("shop", cluster=True).recent(f"u{n}").encode()) for n in range(200)}
    assert len(slots) > 150  # users themselves spread over the slots


def test_partitions_are_a_stable_hash_of_the_user_id() -> None:
    keys = Keys("shop", partitions=4)
    assert keys.event_streams == tuple(f"tailwise:shop:events.{n}" for n in range(4))
    assert partition_of("u1", 4) == zlib.crc32(b"u1") % 4  # the same in every process
    counts = [0] * 4
    for n in range(400):
        counts[partition_of(f"user-{n}", 4)] += 1
        assert keys.event_stream(f"user-{n}") == keys.event_streams[partition_of(f"user-{n}", 4)]
    assert min(counts) > 60
    with pytest.raises(ValueError, match="partitions must be at least 1, got 0"):
        Keys("shop", partitions=0)
    with pytest.raises(ValueError, match="cannot be used in Redis key names"):
        Keys("sh{op}")


def test_settings_switch_feast_and_the_clients_to_a_cluster(tmp_path: Path) -> None:
    settings = Settings(
        REDIS_URL="redis://10.0.0.5:7001",
        REDIS_CLUSTER="1",
        TAILWISE_EVENT_PARTITIONS="8",
        TAILWISE_FEATURE_REPO=ROOT / "feature_repo",
        TAILWISE_FEAST_REGISTRY=tmp_path / "registry.db",
    )
    assert Keys.of("shop", settings) == Keys("shop", cluster=True, partitions=8)
    config = repo_config(settings)
    assert config.online_store.redis_type == "redis_cluster"
    assert config.online_store.connection_string == "10.0.0.5:7001"
    single = repo_config(settings.model_copy(update={"redis_cluster": False}))
    assert single.online_store.redis_type == "redis"
    assert single.online_store.connection_string == "10.0.0.5:7001,db=0"
    several = settings.model_copy(update={"redis_cluster_nodes": "10.0.0.6:7002, h7:7003"})
    assert startup_nodes(several) == [("10.0.0.6", 7002), ("h7", 7003)]
    feast = repo_config(several).online_store.connection_string
    assert feast == "10.0.0.5:7001,10.0.0.6:7002,h7:7003"
    with pytest.raises(ValueError, match="REDIS_CLUSTER_NODES: 'h8' is not host:port"):
        startup_nodes(several.model_copy(update={"redis_cluster_nodes": "h8"}))
    with pytest.raises(FeatureStoreError, match="only database 0"):
        feast_connection_string("redis://10.0.0.5:7001/2", cluster=True)
    with pytest.raises(ValueError, match="only database 0"):
        open_redis(settings.model_copy(update={"redis_url": "redis://10.0.0.5:7001/3"}))
