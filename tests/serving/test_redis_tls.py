"""TLS to Redis: a private redis-server that speaks only TLS (a CA and server certificate
made in the test), reached through a `rediss://` REDIS_URL by everything that talks to
Redis: the request path's clients (as serving.replica builds them, sync and asyncio), the
event writer, the offline consumer, and Feast's online store (its connection string)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
import redis.asyncio

from serving.events import EventWriter
from serving.keys import Keys
from serving.spill import SpillLog
from tailwise.features.online import OnlineFeatures
from tailwise.features.store import FeatureStoreError, feast_connection_string
from tailwise.ingest.streams import consume
from tailwise.ports import free_port
from tests.serving.events_support import CATEGORIES, NOW, make_event, rules
from tests.tls_support import Certificates, make_certificates

pytestmark = pytest.mark.integration


@dataclass
class TlsRedis:
    port: int
    certs: Certificates

    @property
    def url(self) -> str:
        ca = quote(str(self.certs.ca))
        return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={ca}&ssl_cert_reqs=required"


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    folder = tmp_path_factory.mktemp("tls_redis")
    certs = make_certificates(folder / "certs")
    port = free_port()
    tls = ["--tls-port", str(port), "--port", "0", "--tls-auth-clients", "no"]
    files = ["--tls-cert-file", str(certs.cert), "--tls-key-file", str(certs.key)]
    files += ["--tls-ca-cert-file", str(certs.ca)]
    no_disk = ["--save", "", "--appendonly", "no", "--dir", str(folder)]
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", *tls, *files, *no_disk],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = TlsRedis(port, certs)
    client = redis.Redis.from_url(server.url)
    deadline = time.monotonic() + 15
    try:
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        yield server
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


def test_the_server_speaks_only_tls_and_only_to_clients_that_trust_its_ca(
    tls_redis: TlsRedis,
) -> None:
    plain = redis.Redis(port=tls_redis.port, socket_timeout=1, socket_connect_timeout=1)
    with pytest.raises(redis.ConnectionError):
        plain.ping()
    untrusting = redis.Redis.from_url(
        f"rediss://127.0.0.1:{tls_redis.port}/0", socket_timeout=2, socket_connect_timeout=2
    )
    with pytest.raises(redis.ConnectionError, match=r"(?i)certificate"):
        untrusting.ping()


def test_the_request_paths_clients_work_over_rediss(tls_redis: TlsRedis) -> None:
    # as serving.replica.Replica builds them (longer timeouts: a TLS handshake on a busy machine)
    sync = redis.Redis.from_url(tls_redis.url, socket_timeout=5, socket_connect_timeout=5)
    sync.set("tls:probe", "1")

    async def read() -> Any:
        aclient = redis.asyncio.Redis.from_url(
            tls_redis.url, socket_timeout=5, socket_connect_timeout=5
        )
        try:
            return await aclient.get("tls:probe")
        finally:
            await aclient.aclose()

    assert asyncio.run(read()) == b"1"


def test_events_written_over_tls_are_consumed_over_tls(
    tls_redis: TlsRedis, realtime_view: Any, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(tls_redis.url)
    keys = Keys("tls_events")
    online = OnlineFeatures(client, keys.project, "user_id", [realtime_view])
    writer = EventWriter(client, keys, online, CATEGORIES, SpillLog(tmp_path / "spill"))
    events = rules().clean([make_event("u1", f"i{i}", i) for i in range(3)], NOW).events
    result = writer.write(events)
    assert (result.accepted, result.spilled) == (3, 0)  # nothing fell back to the spill log
    consumed = consume(client, keys, tmp_path / "served")
    assert (consumed.read, consumed.written) == (3, 3)


def test_feasts_online_store_connects_over_tls(tls_redis: TlsRedis) -> None:
    from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig

    connection = feast_connection_string(tls_redis.url)
    assert "ssl=true" in connection and f"ssl_ca_certs={tls_redis.certs.ca}" in connection
    store = RedisOnlineStore()
    client = store._get_client(RedisOnlineStoreConfig(connection_string=connection))
    assert client.ping() is True
    assert client.connection_pool.connection_class is redis.SSLConnection
    with pytest.raises(FeatureStoreError, match="'ssl_bogus' is not one of"):
        feast_connection_string(tls_redis.url + "&ssl_bogus=1")
