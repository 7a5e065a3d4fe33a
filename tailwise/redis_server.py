"""The local Redis server (the online store) for a demo or a development machine.

`ensure_redis` answers whether Redis is reachable at REDIS_URL and, when it is not and
the URL points at this machine, starts a `redis-server` that keeps nothing on disk.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import redis

HOW_TO_GET_REDIS = (
    "Redis is not reachable at {url} and no redis-server is installed. Install it "
    "(Debian/Ubuntu: `sudo apt-get install redis-server`; macOS: `brew install redis`), "
    "or point REDIS_URL at a running Redis, then run the command again."
)


class ServiceError(RuntimeError):
    """A service the command needs is not available; the message says how to get it."""


def redis_alive(url: str, timeout: float = 0.5) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def ensure_redis(url: str, workdir: Path, start: bool = True) -> str:
    """Return a line saying where Redis runs; start a local one if allowed and possible."""
    if redis_alive(url):
        return f"Redis answers at {url}"
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    server = shutil.which("redis-server")
    if not start or server is None or host not in ("127.0.0.1", "localhost", "::1"):
        raise ServiceError(HOW_TO_GET_REDIS.format(url=url))
    workdir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            server,
            "--daemonize",
            "yes",
            "--bind",
            host,
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir.resolve()),
            "--logfile",
            str((workdir / "redis.log").resolve()),
        ],
        check=True,
        capture_output=True,
    )
    for _ in range(50):
        if redis_alive(url):
            return f"started a local redis-server at {url} (log: {workdir / 'redis.log'})"
        time.sleep(0.1)
    raise ServiceError(
        f"started redis-server but it does not answer at {url}; see {workdir}/redis.log"
    )
