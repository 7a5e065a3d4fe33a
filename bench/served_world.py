"""A served world of its own for the reliability benchmarks (replica_crash, soak).

    generate (GenerateConfig) -> ingest -> `tailwise train` (small params) -> features apply
    + materialize, into `<root>` with a private redis-server (AOF, fsync always, as
    `tailwise redis` starts it) and a Feast project of its own; then the app on it
    (serving.server.start) with a write key.

The world is kept in `<root>` (default bench/work/served-world) and reused by later runs;
its Redis is started again from its append-only file. The repo's data/ and the machine's
shared Redis are never touched.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from tailwise.ports import free_port
from tailwise.redis_server import server_args

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = ROOT / "bench" / "work" / "served-world"
PROJECT = "tw_bench_world"
PARAMS = """
evaluation:
  split: {validation_days: 5, test_days: 5}
  ks: [5, 10]
training:
  retrieval: {epochs: 1, batch_size: 256, embedding_dim: 16, seed: 0, history_items: 5}
  ranker: {n_estimators: 40, min_child_weight: 1, n_candidates: 100, seed: 0}
"""


# Ray Serve's limits on starting a proxy (5 s to answer the ready check, 30 s for HAProxy)
# restart it over and over on a busy 2-core machine; the benchmarks time the app, not its
# start. (The raylet's own wait for its agents, ~15 s, is not configurable: `serve` starts
# again when it runs out.)
ATTEMPTS = 4
SLOW_START = {
    "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60",
    "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": "30",
    "RAY_SERVE_HAPROXY_STARTUP_TIMEOUT_S": "120",
}


class WorldError(RuntimeError):
    """The world cannot be built or served; the message names the step."""


@dataclass
class World:
    root: Path
    redis_url: str
    process: subprocess.Popen[bytes]

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def clean(self) -> Path:
        return self.root / "clean"

    def env(self) -> dict[str, str]:
        """The environment every command and the app run with."""
        return {
            "REDIS_URL": self.redis_url,
            "TF_USE_LEGACY_KERAS": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "TAILWISE_FEATURE_REPO": str(ROOT / "feature_repo"),
            "TAILWISE_FEATURES_DIR": str(self.root / "features"),
            "TAILWISE_FEAST_PROJECT": PROJECT,
            "TAILWISE_FEAST_REGISTRY": str(self.root / "registry.db"),
        }

    def users(self) -> list[str]:
        import pandas as pd

        table = pd.read_parquet(self.root / "features" / "user_profile.parquet")
        return sorted(table["user_id"].astype(str).unique())

    def items(self) -> list[str]:
        import pandas as pd

        table = pd.read_parquet(self.root / "features" / "item_catalog.parquet")
        return sorted(table["item_id"].astype(str).unique())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def post(url: str, body: dict[str, Any], key: str | None, timeout: float) -> int | str:
    """POST `body` as JSON: the HTTP status, or "timeout" / "connection" when no whole
    answer came (refused, reset, cut short)."""
    headers = {"Content-Type": "application/json", **({"X-API-Key": key} if key else {})}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return int(exc.code)
    except TimeoutError:
        return "timeout"
    except OSError as exc:  # refused, reset, or a timeout wrapped by urllib
        return "timeout" if "timed out" in str(exc) else "connection"
    except http.client.HTTPException:  # the answer cut short
        return "connection"


def metric_samples(base: str) -> list[Any]:
    """Every sample of the app's /metrics (prometheus_client's parser): name, labels, value."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        text = response.read().decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def require_positive(parser: argparse.ArgumentParser, args: Any, names: tuple[str, ...]) -> None:
    """A usage error naming the first option of `names` (attributes of `args`) not > 0."""
    for name in names:
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0")


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise WorldError("redis-server is not installed (apt-get install redis-server)")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = subprocess.Popen(
        [binary, *server_args(directory, port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 60
    while True:
        try:
            client.ping()
            return process, f"redis://127.0.0.1:{port}"
        except (redis.ConnectionError, redis.BusyLoadingError):
            if time.monotonic() > deadline or process.poll() is not None:
                raise WorldError(f"redis-server in {directory} did not start") from None
            time.sleep(0.05)


def _cli(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tailwise.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise WorldError(f"tailwise {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def build(world: World, users: int, items: int, days: int) -> None:
    """Generate, ingest, train and load the features (skipped when models/LATEST exists)."""
    from tailwise.ingest.pipeline import run_ingest
    from tailwise.params import IngestParams
    from tailwise.synthetic import GenerateConfig, generate

    root = world.root
    generate(GenerateConfig(users=users, items=items, days=days, seed=7), root / "raw")
    run_ingest(root / "clean", IngestParams(), b"b" * 40, source=root / "raw")
    (root / "params.yaml").write_text(PARAMS)
    env = world.env()
    dirs = {"--data": "clean", "--features": "features", "--models": "models"}
    args = [x for flag, name in dirs.items() for x in (flag, str(root / name))]
    work = ["--work", str(root / "work"), "--evaluation", str(root / "evaluation")]
    _cli(["train", *args, *work, "--params", str(root / "params.yaml")], env)
    _cli(["features", "apply"], env)
    _cli(["features", "materialize"], env)
    (root / "world.json").write_text(json.dumps({"users": users, "items": items, "days": days}))


def open_world(
    root: Path = DEFAULT_ROOT, users: int = 2000, items: int = 300, days: int = 35
) -> World:
    """The world in `root`, built first when it is not there yet; its Redis running."""
    root = root.resolve()
    process, url = start_redis(root / "redis")
    world = World(root, url, process)
    try:
        if not (root / "models" / "LATEST").exists():
            build(world, users, items, days)
    except BaseException:
        world.stop()
        raise
    return world


def serve(world: World, write_key: str, **config: Any) -> str:
    """The app on this world (Ray Serve, HAProxy) until serving.server.stop(); its URL."""
    from serving import server
    from serving.config import ServingConfig
    from tailwise.settings import Settings

    os.environ.update(world.env())
    for name, seconds in SLOW_START.items():  # read by Ray and Serve when they start
        os.environ.setdefault(name, seconds)
    fields: dict[str, Any] = {
        "port": free_port(),
        "models_dir": world.models,
        "clean_dir": world.clean,
        "spill_dir": world.root / "spill",
        "api_keys": [write_key],
        "admin_keys": [f"{write_key}-admin"],
        **config,
    }
    config = ServingConfig.model_validate(fields)
    import psutil
    import ray

    me = psutil.Process()
    for attempt in range(1, ATTEMPTS + 1):
        before = {child.pid for child in me.children(recursive=True)}
        try:
            return server.start(config, Settings(), ready_timeout=600)
        except Exception as exc:
            # Ray gives its raylet 30 s to register and Serve its proxy 60 s to start:
            # too few on a busy machine. Ray's limits are constants; start again.
            if ray.is_initialized():
                server.stop()
            for child in me.children(recursive=True):  # a failed ray.init leaves its GCS
                if child.pid not in before:
                    child.kill()
            if attempt == ATTEMPTS:
                raise
            print(f"starting the app failed ({exc}); attempt {attempt + 1}", file=sys.stderr)
            time.sleep(30)
    raise WorldError("unreachable")
