"""Redis for the demo: found when running, started when installed, explained when not."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import redis

from tailwise.ports import free_port
from tailwise.redis_server import ServiceError, durability, ensure_redis, redis_alive

pytestmark = pytest.mark.integration  # finds and starts redis-server


def test_running_redis_is_found() -> None:
    assert "answers" in ensure_redis("redis://127.0.0.1:6379", Path("unused"), start=False)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_local_redis_is_started_when_missing(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}"
    assert not redis_alive(url)
    try:
        message = ensure_redis(url, tmp_path / "redis")
        assert "started a local redis-server" in message
        assert redis_alive(url)
        assert durability(redis.Redis.from_url(url)).durable  # AOF, fsync always
    finally:
        subprocess.run(
            ["redis-cli", "-p", str(port), "shutdown", "nosave"], check=False, capture_output=True
        )


def test_no_redis_says_what_to_do(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}"
    with pytest.raises(ServiceError, match="apt-get install redis-server"):
        ensure_redis(url, tmp_path, start=False)
