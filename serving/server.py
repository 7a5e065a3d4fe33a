"""`tailwise serve`: run the serving app on a local Ray instance, or on an existing Ray
cluster (`ServingConfig.ray_address`, `tailwise serve --address`), until Ctrl-C.

On a cluster the app is deployed through this driver and the cluster stays up: stopping
deletes the app and disconnects. The nodes' own environment decides Ray Serve's data plane
(the variables below are read by the processes Ray starts, so they apply only to a local
instance), and every node needs the code, the model versions and the clean data at the
same paths (README, "On a Ray cluster").

Ray Serve's HAProxy ingress and throughput-optimised data plane are switched on unless the
environment says otherwise (RAY_SERVE_ENABLE_HA_PROXY, RAY_SERVE_THROUGHPUT_OPTIMIZED;
ray[serve] ships the haproxy binary). On 2 cores they tripled the requests per second a
one-deployment app holds (bench/results/serve_load.md).

Ray starts its workers at nice 15 so that batch tasks yield the CPU to its own daemons
(GCS, raylet). Here the workers are the replicas and the proxy: the latency-critical
processes of the host, and at nice 15 any normal-priority process beside them (the events
consumer, a retraining, a backup) takes their core first. A local instance starts them at
nice 0 unless the environment sets RAY_worker_niceness (bench/results/soak.md).

With HAProxy on, Ray Serve also starts a fallback proxy on fixed ports (8500 HTTP, 9500
gRPC) bound with SO_REUSEPORT: two local Ray instances (a demo and a test run, say) would
share them, and the kernel would hand some requests of one app to the other. Unless the
environment sets them, each server gets free ports of its own.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from serving.auth import ADMIN, WRITE, env_keys
from serving.config import ServingConfig
from tailwise.ports import free_port
from tailwise.settings import Settings

FAST_PATH = {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}
WORKER_PRIORITY = {"RAY_worker_niceness": "0"}  # Ray's spelling; its default is 15
OWN_PORTS = ("RAY_SERVE_FALLBACK_PROXY_HTTP_PORT", "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT")
APP_NAME = "tailwise"


class ServeError(RuntimeError):
    """The app did not come up; the message says what to look at."""


def check_durability(config: ServingConfig, settings: Settings) -> str | None:
    """Refuse (ServeError) a Redis that can lose acknowledged events, or return the warning
    when `config.redis_durability` is "warn"; None when it keeps every acknowledged write."""
    import redis

    from tailwise.redis_clients import open_redis
    from tailwise.redis_server import durability

    try:
        found = durability(open_redis(settings, socket_timeout=5))
    except redis.RedisError as exc:
        raise ServeError(f"cannot check Redis at {settings.redis_url}: {exc}") from exc
    problem = found.problem(settings.redis_url)
    if problem and config.redis_durability == "refuse":
        raise ServeError(problem)
    return problem


def start(config: ServingConfig, settings: Settings, ready_timeout: float = 180) -> str:
    """Start Ray and the app; return the base URL once /readyz answers 200. A Redis that
    can lose acknowledged events is refused first, or warned about (check_durability)."""
    warning = check_durability(config, settings)
    if warning:
        from tailwise.console import console

        console.print(f"[bold red]WARNING: {warning}[/bold red]")
    if config.ray_address is None:
        for name, value in {**FAST_PATH, **WORKER_PRIORITY}.items():
            os.environ.setdefault(name, value)
        for name in OWN_PORTS:
            os.environ.setdefault(name, str(free_port()))
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import ray
    from ray import serve

    from serving.app import REPLICA_ENV, build

    if not ray.is_initialized():
        runtime_env = {"env_vars": REPLICA_ENV}
        if config.ray_address is None:
            ray.init(include_dashboard=False, log_to_driver=False, runtime_env=runtime_env)
        else:
            try:
                ray.init(address=config.ray_address, log_to_driver=False, runtime_env=runtime_env)
            except (ConnectionError, ValueError) as exc:
                raise ServeError(
                    f"cannot connect to the Ray cluster at ray_address={config.ray_address!r}:"
                    f" {exc}"
                ) from exc
    serve.start(
        proxy_location=config.proxy_location,
        http_options={"host": config.host, "port": config.port},
    )
    serve.run(build(config, settings), name=APP_NAME, route_prefix="/", blocking=False)
    url = f"http://{config.host}:{config.port}"
    wait_ready(url, ready_timeout)
    return url


def stop(app_only: bool = False) -> None:
    """Stop Serve and Ray; `app_only` (a cluster's Serve is shared): delete this app and
    disconnect, leaving the cluster and its other apps running."""
    import ray
    from ray import serve

    if not ray.is_initialized():  # serve.shutdown() would start a Ray instance to stop
        return
    try:
        if app_only:
            serve.delete(APP_NAME)
        else:
            serve.shutdown()
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class ReplicaProcess:
    """A live replica: its process and the Ray node it runs on (hex node id)."""

    pid: int
    node_id: str


def replica_pids(app: str = APP_NAME, deployment: str = "Ingress") -> list[int]:
    """Process ids of the deployment's live replicas (replica_processes)."""
    return sorted(replica.pid for replica in replica_processes(app, deployment))


def replica_processes(app: str = APP_NAME, deployment: str = "Ingress") -> list[ReplicaProcess]:
    """The deployment's live replicas, from the actor table of the Ray instance or
    cluster this process is connected to (directly, not through ray://).

    Not ray.util.state.list_actors: it asks the dashboard's API server, which `start` leaves
    off, and without one it falls back to 127.0.0.1:8265, where another Ray instance on the
    same machine may answer with its own replicas."""
    import ray
    from ray._private import state

    if not ray.is_initialized():
        raise ServeError("not connected to Ray: start the app in this process first")
    name = f"ServeReplica:{app}:{deployment}"
    table = state.actors()  # the GCS actor table the state API reads too
    return sorted(
        (
            ReplicaProcess(int(row["Pid"]), str(row["Address"]["NodeID"]))
            for row in table.values()
            if row["ActorClassName"] == name and row["State"] == "ALIVE" and row.get("Pid")
        ),
        key=lambda replica: (replica.node_id, replica.pid),
    )


def wait_ready(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise ServeError(f"{url}/readyz not ready after {timeout:.0f}s ({last}); see Ray's logs")


def ensure_api_key(config: ServingConfig) -> tuple[ServingConfig, str | None]:
    """Keys from TAILWISE_API_KEYS or the config; else a generated one (returned to print)."""
    return _ensure_keys(config, "api_keys", WRITE)


def ensure_admin_key(config: ServingConfig) -> tuple[ServingConfig, str | None]:
    """Admin keys from TAILWISE_ADMIN_KEYS or the config; else a generated one (to print)."""
    return _ensure_keys(config, "admin_keys", ADMIN)


def _ensure_keys(config: ServingConfig, field: str, scope: str) -> tuple[ServingConfig, str | None]:
    """A replica reads the scope's variable from its own environment: on a cluster
    (ray_address) that is another node's, so the driver's keys go in the config."""
    if getattr(config, field):
        return config, None
    given = env_keys(scope)
    if given:
        if config.ray_address is None:
            return config, None
        return config.model_copy(update={field: given}), None
    key = secrets.token_urlsafe(24)
    return config.model_copy(update={field: [key]}), key


def run_until_stopped(on_ready: Callable[[str], Any], config: ServingConfig) -> None:
    """Start, call `on_ready(url)`, block until SIGINT/SIGTERM, then stop cleanly."""
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        url = start(config, Settings())
        on_ready(url)
        stopping.wait()
    finally:
        stop(app_only=config.ray_address is not None)
