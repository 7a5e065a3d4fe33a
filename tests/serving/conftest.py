"""Fixtures of the serving tests.

The events path: the real Redis under a fresh project per test (its keys
`tailwise:<project>:*` and the Feast hashes ending with the project are deleted
afterwards), the real real-time feature view and event writers over it; the helpers they
use are in events_support.py.

The served world: generated data, a tiny trained model version and its features in a
private redis-server (tests/conftest.py), built once per session for the tests that need
real models and features; the outage tests pause that server without touching the
machine's shared Redis.

The served app: that world behind the real Ray Serve app (serving.server.start), started
once per session for every test that talks HTTP to it (test_app, test_contract,
test_overload), with a write key, an admin key and a small `max_in_flight` so a short
burst overloads it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from serving.config import ServingConfig
from serving.events import EventWriter
from serving.keys import Keys
from serving.spill import SpillLog
from tailwise.features.online import OnlineFeatures
from tailwise.ports import free_port
from tailwise.settings import Settings
from tests.conftest import PrivateRedis
from tests.feast_project import ROOT, isolated_feast_settings
from tests.serving.events_support import CATEGORIES, DOWN_URL, REDIS_URL

TINY_PARAMS = """
evaluation:
  split: {validation_days: 5, test_days: 5}
  ks: [5, 10]
training:
  retrieval: {epochs: 1, batch_size: 256, embedding_dim: 8, seed: 0, history_items: 3}
  ranker: {n_estimators: 20, min_child_weight: 1, n_candidates: 50, seed: 0}
"""


@pytest.fixture(scope="session", name="realtime_view")
def realtime_view_fixture() -> Any:
    """The user_realtime_session FeatureView as feature_repo/ defines it."""
    from tailwise.features.store import definitions

    before = os.environ.get("TAILWISE_FEATURES_DIR")
    try:
        objects = definitions(Settings(TAILWISE_FEATURE_REPO=ROOT / "feature_repo"))
    finally:  # definitions() exports the features folder for Feast; do not leak it
        if before is None:
            os.environ.pop("TAILWISE_FEATURES_DIR", None)
        else:
            os.environ["TAILWISE_FEATURES_DIR"] = before
    return next(o for o in objects if getattr(o, "name", None) == "user_realtime_session")


@pytest.fixture(name="client")
def client_fixture() -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(REDIS_URL)
    yield conn
    conn.close()


@pytest.fixture(name="keys")
def keys_fixture(client: redis.Redis) -> Iterator[Keys]:
    project = f"test_{uuid.uuid4().hex[:8]}"
    yield Keys(project)
    doomed = [
        *client.scan_iter(match=f"tailwise:{project}:*", count=1000),
        *client.scan_iter(match=f"*{project}", count=1000),  # Feast hashes end with it
    ]
    if doomed:
        client.delete(*doomed)


@pytest.fixture(name="online")
def online_fixture(client: redis.Redis, keys: Keys, realtime_view: Any) -> OnlineFeatures:
    return OnlineFeatures(client, keys.project, "user_id", [realtime_view])


@pytest.fixture(name="make_writer")
def make_writer_fixture(
    client: redis.Redis, keys: Keys, realtime_view: Any, tmp_path: Path
) -> Callable[..., EventWriter]:
    """EventWriter over a given client (default: the real one), spilling into tmp_path."""

    def make(conn: redis.Redis | None = None, spill_dir: Path | None = None, **kw: Any):
        conn = conn or client
        online = OnlineFeatures(conn, keys.project, "user_id", [realtime_view])
        spill = SpillLog(spill_dir or tmp_path / "spill")
        return EventWriter(conn, keys, online, CATEGORIES, spill, **kw)

    return make


@pytest.fixture(name="down_client")
def down_client_fixture() -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(DOWN_URL, socket_connect_timeout=0.2, socket_timeout=0.2)
    yield conn
    conn.close()


@dataclass
class ServedWorld:
    root: Path
    clean: Path
    features: Path
    models: Path
    version: str
    settings: Settings
    redis: PrivateRedis


def _run(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tailwise.cli", *args], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"tailwise {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


@pytest.fixture(scope="session")
def served_world(
    generated: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: Callable[[], PrivateRedis],
) -> ServedWorld:
    """A trained version under models/, its features applied and materialised."""
    _, clean = generated
    root = tmp_path_factory.mktemp("served")
    server = redis_server()
    features, models = root / "features", root / "models"
    settings = isolated_feast_settings(features, root / "registry.db", "tw_serve").model_copy(
        update={"redis_url": server.url}
    )
    (root / "params.yaml").write_text(TINY_PARAMS)
    env = {
        **os.environ,
        "TF_USE_LEGACY_KERAS": "1",
        "REDIS_URL": server.url,
        "TAILWISE_FEATURE_REPO": str(ROOT / "feature_repo"),
        "TAILWISE_FEATURES_DIR": str(features),
        "TAILWISE_FEAST_PROJECT": str(settings.feast_project),
        "TAILWISE_FEAST_REGISTRY": str(root / "registry.db"),
    }
    _run(
        [
            "train",
            "--data",
            str(clean),
            "--features",
            str(features),
            "--models",
            str(models),
            "--work",
            str(root / "work"),
            "--evaluation",
            str(root / "evaluation"),
            "--params",
            str(root / "params.yaml"),
        ],
        env,
    )
    _run(["features", "apply"], env)
    _run(["features", "materialize"], env)
    version = (models / "LATEST").read_text().strip()
    return ServedWorld(root, clean, features, models, version, settings, server)


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(raw, clean) of a generated 600-user set."""
    from tailwise.ingest.pipeline import run_ingest
    from tailwise.params import IngestParams
    from tailwise.synthetic import GenerateConfig, generate

    root = tmp_path_factory.mktemp("generated_serving")
    generate(GenerateConfig(users=600, items=150, days=35, seed=11), root / "raw")
    run_ingest(root / "clean", IngestParams(), b"t" * 40, source=root / "raw")
    return root / "raw", root / "clean"


@dataclass
class ServedApp:
    url: str
    config: ServingConfig
    write_key: str
    admin_key: str


@contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def served_app(
    served_world: ServedWorld, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedApp]:
    """The served world behind the real Ray Serve app, until the session ends."""
    from serving import server

    world = served_world
    config = ServingConfig(
        models_dir=world.models,
        clean_dir=world.clean,
        spill_dir=tmp_path_factory.mktemp("spill"),
        port=free_port(),
        api_keys=["test-key"],
        admin_keys=["test-admin-key"],
        cache_ttl_seconds=60,
        max_body_bytes=100_000,
        max_in_flight=4,  # test_overload's burst of 40 sees 503s; sequential tests never do
    )
    ports = {
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
    }
    with _env(ports):
        try:
            url = server.start(config, world.settings, ready_timeout=300)
            yield ServedApp(url, config, "test-key", "test-admin-key")
        finally:
            server.stop()
