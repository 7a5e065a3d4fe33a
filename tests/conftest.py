"""Test tiers, and the private redis-server the served and scenario worlds run on.

Every test belongs to exactly one tier (the run's header counts them; `-m <tier>` selects):

    unit         pure code and temporary files; no Redis, no Feast, no training
    integration  the real Redis on this machine or a real Feast repo (own project name)
    e2e          trains models or starts Ray Serve (the `slow` marker: `make test-fast` skips it)

A test declares its tier with `@pytest.mark.<tier>` (or a module's `pytestmark`) when it
wants to; otherwise `pytest_collection_modifyitems` assigns it, first rule that matches:

    1. marked `slow`                              -> e2e
    2. uses a fixture in E2E_FIXTURES             -> e2e
    3. uses a fixture in INTEGRATION_FIXTURES     -> integration
    4. anything else                              -> unit

Modules that build a Feast repo or reach Redis without these fixtures say `integration`
themselves. Collection fails on a test with two tiers, and a unit test that opens a Redis
connection fails with a message saying to mark it (the autouse guard below).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tailwise.ports import free_port
from tailwise.redis_server import server_args
from tests.redis_cluster import LocalCluster, start_cluster

TIERS = ("unit", "integration", "e2e")
# Fixtures that train a model version (or serve one) before the test runs.
E2E_FIXTURES = frozenset({"served_world"})
# Fixtures that reach the real Redis or build a real Feast repo.
INTEGRATION_FIXTURES = frozenset(
    {
        "client",
        "down_client",
        "keys",
        "make_writer",
        "online",
        "realtime_view",
        "feature_world",
        "redis_server",
        "redis_cluster",
    }
)


def tier_of(item: pytest.Item) -> str:
    """The tier `item` declares, or the one the rules of the module docstring give it."""
    declared = [name for name in TIERS if item.get_closest_marker(name) is not None]
    if len(declared) > 1:
        raise pytest.UsageError(f"{item.nodeid} is marked {' and '.join(declared)}: keep one tier")
    if declared:
        return declared[0]
    fixtures = set(getattr(item, "fixturenames", ()))
    if item.get_closest_marker("slow") is not None or fixtures & E2E_FIXTURES:
        return "e2e"
    if fixtures & INTEGRATION_FIXTURES:
        return "integration"
    return "unit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = tier_of(item)
        if item.get_closest_marker(tier) is None:
            item.add_marker(tier)
        found = [name for name in TIERS if item.get_closest_marker(name) is not None]
        if found != [tier]:
            raise pytest.UsageError(f"{item.nodeid} has tiers {found}: exactly one is allowed")


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> str:
    counts = {name: sum(1 for i in items if i.get_closest_marker(name)) for name in TIERS}
    return "tiers: " + ", ".join(f"{n} {name}" for name, n in counts.items())


@pytest.fixture(autouse=True)
def _unit_tests_stay_off_redis(request: pytest.FixtureRequest) -> Iterator[None]:
    """A unit test that opens a Redis connection fails, naming the marker it needs."""
    if request.node.get_closest_marker("unit") is None:
        yield
        return

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(
            f"{request.node.nodeid} opened a Redis connection: mark it "
            "@pytest.mark.integration (see tests/conftest.py)"
        )

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(redis.connection.AbstractConnection, "connect", refuse)
        yield


class PrivateRedis:
    """A redis-server subprocess on a free port; `pause`/`resume` simulate an outage.

    It runs as `tailwise redis` starts one (append-only file, fsync always, files in
    `directory`; `persist=False`: nothing on disk); `kill` (SIGKILL) and `restart` (same
    port and files) test a crash."""

    def __init__(self, directory: Path, persist: bool = True) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.binary, self.directory, self.persist = binary, directory, persist
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self._launch()

    def _launch(self) -> None:
        if self.persist:
            args = server_args(self.directory, self.port)
        else:
            no_disk = ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
            args = ["--port", str(self.port), "--bind", "127.0.0.1", *no_disk]
        self.process = subprocess.Popen(
            [self.binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except (redis.ConnectionError, redis.BusyLoadingError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save."""
        self.process.kill()
        self.process.wait(timeout=10)

    def restart(self) -> None:
        self._launch()

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.resume()
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., PrivateRedis]]:
    """Starts private redis-servers (own port, own files) on demand; all stop at the end.

    The outage tests stop and resume one without touching the machine's shared Redis."""
    started: list[PrivateRedis] = []

    def start(persist: bool = True) -> PrivateRedis:
        started.append(PrivateRedis(tmp_path_factory.mktemp("redis"), persist=persist))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A 6-node Redis Cluster (3 masters, 3 replicas) of private redis-servers for the
    module's tests; every process is stopped and its folder removed at the end."""
    directory = tmp_path_factory.mktemp("cluster")
    try:
        cluster = start_cluster(directory)
        if cluster is None:
            pytest.skip("redis-server and redis-cli are needed for a Redis Cluster")
        try:
            yield cluster
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


CHROMIUM = os.environ.get("TAILWISE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = (
    os.environ.get("TAILWISE_CHROMEDRIVER")
    or shutil.which("chromedriver")
    or "/usr/bin/chromedriver"
)
BROWSER_WAIT_S = 60


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium through selenium (Debian's chromium and chromium-driver, or
    TAILWISE_CHROMIUM / TAILWISE_CHROMEDRIVER); the test is skipped, saying what to
    install, where they are missing."""
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        pytest.skip(
            f"no headless browser: {CHROMIUM} or {DRIVER} is missing "
            "(apt-get install chromium chromium-driver)"
        )
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_page_load_timeout(BROWSER_WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()
