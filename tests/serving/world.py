"""A served world: generated data, a tiny trained model version, features in a private Redis.

Built once per session for the serving tests that need real models and features. The
private redis-server (its own port, nothing on disk) lets the outage tests stop and resume
Redis without touching the machine's shared instance.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tailwise.ports import free_port
from tailwise.settings import Settings
from tests.feast_project import ROOT, isolated_feast_settings

TINY_PARAMS = """
evaluation:
  split: {validation_days: 5, test_days: 5}
  ks: [5, 10]
training:
  retrieval: {epochs: 1, batch_size: 256, embedding_dim: 8, seed: 0}
  ranker: {n_estimators: 20, min_child_weight: 1, n_candidates: 50, seed: 0}
"""


class PrivateRedis:
    """A redis-server subprocess on a free port; `pause`/`resume` simulate an outage."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}"
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        self.resume()
        self.process.terminate()
        self.process.wait(timeout=10)


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
    generated: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedWorld]:
    _, clean = generated
    root = tmp_path_factory.mktemp("served")
    server = PrivateRedis(root)
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
    try:
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
        yield ServedWorld(root, clean, features, models, version, settings, server)
    finally:
        server.stop()


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
