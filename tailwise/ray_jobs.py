"""Ray for batch jobs that fan out over shards (the feature build, the ranker's training
examples, batch recommendations): where the tasks run, and which shard a key belongs to.

    connected(cpus) --> the Ray instance this process is connected to already; else the
      running cluster RAY_ADDRESS names (with the CPUs it has); else a local instance with
      `cpus` CPUs. A connection made here is closed when the job ends.
    shard_of(keys, shards) --> crc32 of each key's text modulo `shards`: the same shard in
      every process and run (Python's `hash` is salted per process)
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pyarrow as pa


@contextmanager
def connected(cpus: int, env: Mapping[str, str] | None = None) -> Iterator[None]:
    """Ray for a job of `cpus` one-CPU tasks; `env`: environment variables for the
    workers of an instance started here (a running instance keeps its own)."""
    import ray

    if ray.is_initialized():
        yield
        return
    runtime_env = {"env_vars": dict(env)} if env else None
    if os.environ.get("RAY_ADDRESS"):  # a running cluster, with the CPUs it has
        ray.init(log_to_driver=False, runtime_env=runtime_env)
    else:
        ray.init(
            num_cpus=cpus, include_dashboard=False, log_to_driver=False, runtime_env=runtime_env
        )
    try:
        yield
    finally:
        ray.shutdown()


def shard_of(keys: pa.Array | pa.ChunkedArray, shards: int) -> np.ndarray:
    """Shard of each key: crc32 of its UTF-8 text modulo `shards`; the same in every process
    and run (Python's `hash` is salted per process). Null keys go to shard 0."""
    codes, uniques = pd.factorize(keys.to_numpy(zero_copy_only=False))
    per_key = np.fromiter(
        (zlib.crc32(str(k).encode()) % shards for k in uniques), np.int64, len(uniques)
    )
    return np.where(codes >= 0, per_key[np.maximum(codes, 0)], 0)
