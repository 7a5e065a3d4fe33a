"""The local Redis server (the online store) for a demo, a test or a development machine,
and whether a Redis server keeps what it acknowledged.

`ensure_redis` answers whether Redis is reachable at REDIS_URL and, when it is not and
the URL points at this machine, starts a `redis-server` with the append-only file on and
`appendfsync always` (`server_args`): a write Redis answered is on disk, so an event the
API acknowledged survives a crash of Redis or of the machine. `always` was chosen over
`everysec` by a measurement (bench/durability.py, bench/results/durability.md).

`durability` reads what a given server does (CONFIG GET appendonly / appendfsync, the
version for WAITAOF) and says whether acknowledged writes can be lost; `tailwise serve`
refuses such a server unless told to only warn (ServingConfig.redis_durability).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import redis

HOW_TO_GET_REDIS = (
    "Redis is not reachable at {url} and no redis-server is installed. Install it "
    "(Debian/Ubuntu: `sudo apt-get install redis-server`; macOS: `brew install redis`), "
    "or point REDIS_URL at a running Redis, then run the command again."
)
# The fsync policy Tailwise starts Redis with and asks of a server it is given.
APPENDFSYNC = "always"
WAITAOF_SINCE = (7, 2)


class ServiceError(RuntimeError):
    """A service the command needs is not available; the message says how to get it."""


def server_args(directory: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """redis-server arguments: AOF on, fsync before each answer, no RDB snapshots (the AOF
    is the record), files under `directory`."""
    return [
        "--bind",
        host,
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        APPENDFSYNC,
        "--dir",
        str(Path(directory).resolve()),
    ]


@dataclass(frozen=True)
class Durability:
    """What a Redis server does with an acknowledged write."""

    appendonly: bool
    appendfsync: str
    version: tuple[int, ...]

    @property
    def waitaof(self) -> bool:
        """The server has WAITAOF (Redis >= 7.2): a writer can wait for its own fsync."""
        return self.version[:2] >= WAITAOF_SINCE

    @property
    def durable(self) -> bool:
        """Every acknowledged write is on disk: AOF with fsync per write, or AOF and
        WAITAOF (the events writer then waits for the local fsync)."""
        return self.appendonly and (self.appendfsync == "always" or self.waitaof)

    def problem(self, url: str) -> str | None:
        """None when durable, else a sentence saying what can be lost and how to fix it."""
        if self.durable:
            return None
        version = ".".join(map(str, self.version))
        if not self.appendonly:
            what = "keeps no append-only file (appendonly no)"
        else:
            what = f"syncs its append-only file {self.appendfsync} and has no WAITAOF"
        return (
            f"Redis at {url} (version {version}) {what}: events the API acknowledges can be "
            "lost when Redis or the machine stops. Run it with `--appendonly yes "
            f"--appendfsync {APPENDFSYNC}` (or `redis-cli CONFIG SET appendonly yes` and "
            f"`CONFIG SET appendfsync {APPENDFSYNC}`), or let `tailwise redis` start one; "
            "`--set redis_durability=warn` serves anyway."
        )


def durability(client: redis.Redis) -> Durability:
    """Durability of the server behind `client` (CONFIG GET and INFO server); of a Redis
    Cluster, that of its weakest node (every node is asked)."""
    found = [_durability(node) for node in _nodes(client)]
    if len(found) == 1:
        return found[0]
    weak = [f.appendfsync for f in found if f.appendfsync != APPENDFSYNC]
    return Durability(
        all(f.appendonly for f in found),
        weak[0] if weak else APPENDFSYNC,
        min(f.version for f in found),
    )


def _nodes(client: redis.Redis) -> list[redis.Redis]:
    """The client itself, or a client per node of a Redis Cluster."""
    from tailwise.redis_clients import is_cluster

    if not is_cluster(client):
        return [client]
    nodes: Any = client.get_nodes()  # type: ignore[attr-defined]
    return [client.get_redis_connection(n) for n in nodes]  # type: ignore[attr-defined]


def _durability(client: redis.Redis) -> Durability:
    config: dict[Any, Any] = client.config_get("append*")  # type: ignore[assignment]
    text = {_s(k): _s(v) for k, v in config.items()}
    info: dict[str, Any] = client.info("server")  # type: ignore[assignment]
    version = tuple(int(p) for p in str(info.get("redis_version", "0")).split(".") if p.isdigit())
    return Durability(text.get("appendonly") == "yes", text.get("appendfsync", ""), version)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def rewrite_persistence(client: redis.Redis) -> None:
    """Rewrite the server's files after an erasure: the append-only file (and an RDB
    snapshot, when configured) still hold the erased writes until rewritten; on a Redis
    Cluster, every node's."""
    for node in _nodes(client):
        found = _durability(node)
        config: dict[Any, Any] = node.config_get("save")  # type: ignore[assignment]
        for command, wanted in (
            ("BGREWRITEAOF", found.appendonly),
            ("BGSAVE", any(config.values())),
        ):
            if not wanted:
                continue
            try:
                node.execute_command(command, *(["SCHEDULE"] if command == "BGSAVE" else []))
            except redis.ResponseError as exc:  # one is running: ask again once it is done
                if "in progress" not in str(exc):
                    raise


def redis_alive(url: str, timeout: float = 0.5) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def ensure_redis(url: str, workdir: Path, start: bool = True) -> str:
    """Return a line saying where Redis runs; start a local one if allowed and possible."""
    if redis_alive(url):
        found = durability(redis.Redis.from_url(url))
        warning = found.problem(url)
        return f"Redis answers at {url}" + (f"\nWARNING: {warning}" if warning else "")
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    server = shutil.which("redis-server")
    if not start or server is None or host not in ("127.0.0.1", "localhost", "::1"):
        raise ServiceError(HOW_TO_GET_REDIS.format(url=url))
    workdir.mkdir(parents=True, exist_ok=True)
    log = (workdir / "redis.log").resolve()
    subprocess.run(
        [server, "--daemonize", "yes", *server_args(workdir, port, host), "--logfile", str(log)],
        check=True,
        capture_output=True,
    )
    for _ in range(50):
        if redis_alive(url):
            return (
                f"started a local redis-server at {url} (append-only file, fsync "
                f"{APPENDFSYNC}; data and log in {workdir})"
            )
        time.sleep(0.1)
    raise ServiceError(
        f"started redis-server but it does not answer at {url}; see {workdir}/redis.log"
    )
