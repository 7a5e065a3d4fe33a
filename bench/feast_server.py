"""Feast's own Python feature server answering the ranking feature read, for scale.

`feast serve` (one worker, the repo's feature_store.yaml: the same registry and Redis the
serving app reads) gets POST /get-online-features for the `ranking_v1` service with one
user, that user's candidates (as many items as the app ranks) and the request context,
which is the feature read inside one /recommend. Requests go one at a time (closed loop):
the server takes tens of milliseconds per call, so an open loop at the app's rates would
only measure its queue. Used by bench/serve_load.py, which prints the figures next to the
full /recommend.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ITEMS = ROOT / "data" / "features" / "item_catalog.parquet"
SERVICE = "ranking_v1"


def item_ids(n: int, seed: int) -> list[str]:
    """n catalogue item ids (sampled with a seed), the stand-in for one user's candidates."""
    import pandas as pd

    ids = pd.read_parquet(ITEMS, columns=["item_id"])["item_id"].astype(str).unique()
    rng = np.random.default_rng(seed)
    return [str(i) for i in rng.choice(ids, size=min(n, len(ids)), replace=False)]


def request_body(user: str, items: list[str], device: str, country: str) -> dict[str, Any]:
    n = len(items)
    return {
        "feature_service": SERVICE,
        "entities": {
            "user_id": [user] * n,
            "item_id": items,
            "request_device": [device] * n,
            "request_country": [country] * n,
            "request_ts": [int(time.time())] * n,
        },
    }


def start(port: int) -> subprocess.Popen[bytes]:
    """`feast serve` in the feature repo, on loopback, access log off."""
    feast = Path(sys.executable).with_name("feast")
    cmd = [str(feast), "serve", "-h", "127.0.0.1", "-p", str(port), "--no-access-log"]
    env = {**os.environ, "TAILWISE_FEATURES_DIR": str(ROOT / "data" / "features")}
    return subprocess.Popen(
        cmd,
        cwd=ROOT / "feature_repo",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_up(client: Any, base: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            raise RuntimeError(f"feast serve exited with {proc.returncode}: {err}")
        try:
            if client.get(base + "/health").status_code == 200:
                return
        except httpx.HTTPError:  # not listening yet
            pass
        time.sleep(0.5)
    raise TimeoutError(f"feast serve did not answer /health within {timeout_s:g} s")


def measure(
    users: list[str], n_items: int, requests: int, port: int, seed: int = 42
) -> dict[str, Any]:
    """p50/p99 of `requests` sequential feature reads (after 10 uncounted), with errors."""
    import httpx

    rng = np.random.default_rng(seed)
    items = item_ids(n_items, seed)
    proc = start(port)
    base = f"http://127.0.0.1:{port}"
    latencies: list[float] = []
    errors = 0
    try:
        with httpx.Client(timeout=10.0) as client:
            wait_up(client, base, proc, 120.0)
            for i in range(requests + 10):
                user = str(users[int(rng.integers(len(users)))])
                body = request_body(user, items, "mobile", "DE")
                started = time.perf_counter()
                r = client.post(base + "/get-online-features", json=body)
                took = (time.perf_counter() - started) * 1000
                if r.status_code != 200:
                    errors += 1
                    if errors == 1:
                        print(f"feast serve answered {r.status_code}: {r.text[:300]}")
                elif i >= 10:
                    latencies.append(took)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [None] * 99
    return {
        "what": f"POST /get-online-features, service {SERVICE}, 1 user + {len(items)} items "
        "+ request context, one worker, one request at a time",
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": round(q[49], 2) if q[49] is not None else None,
        "p99_ms": round(q[98], 2) if q[98] is not None else None,
    }
