"""Fixtures: a local webhook receiver, and one monitored world (two daily runs) shared by
the end-to-end, report and browser tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from monitoring.run import RunPaths, RunResult, run_monitor
from tests.monitoring.world import (
    CATEGORICAL,
    DAY1,
    NUMERIC,
    FakeFeatures,
    World,
    build_world,
    small_params,
)

EVENT_TYPES = ("page_view", "product_view", "add_to_cart", "purchase", "rating")


@dataclass
class Receiver:
    """A webhook on 127.0.0.1 that records what is POSTed to it."""

    url: str
    status: int = 200
    received: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            box["r"].received.append(
                {
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": json.loads(self.rfile.read(length)),
                }
            )
            self.send_response(box["r"].status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # port 0: a free one
    box["r"] = Receiver(f"http://127.0.0.1:{server.server_address[1]}/hooks/tailwise")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield box["r"]
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Monitored:
    world: World
    source: FakeFeatures
    runs: list[RunResult]


@pytest.fixture(scope="session")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Monitored:
    """Day 1 (the model's first served day) and day 2 (drifted) monitored in turn."""
    world = build_world(tmp_path_factory.mktemp("monitored"))
    source = FakeFeatures([*NUMERIC, *CATEGORICAL])
    paths = RunPaths(world.models, world.served, world.clean, world.out)
    runs = [
        run_monitor(small_params(), paths, DAY1 + timedelta(days=d), lambda _: source, EVENT_TYPES)
        for d in (1, 2)
    ]
    return Monitored(world, source, runs)


def report_files(out: Path) -> list[Path]:
    return sorted(out.glob("*/report.html"))
