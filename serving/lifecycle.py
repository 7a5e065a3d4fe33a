"""A replica's background work, with an explicit start and stop.

    start(): a thread that every `interval` seconds
        replays spilled events once Redis takes writes again,
        follows a model switch another replica recorded in Redis (`follow_every` s),
        reloads item features after a materialisation (`items_every` s),
        reads the experiments' bandit weights (serving.experiments)
    switch(version): load and serve another version (a reload, or following one), then
        settle the heap
    stop(): the thread ends

GC: Ray Serve collects and freezes once after the replica starts
(RAY_SERVE_FREEZE_GC_ON_STARTUP), so collections while serving skip the loaded models,
TensorFlow, Feast and Ray. A replaced model would stay frozen for good and the new one be
walked by every full collection, so after a switch: unfreeze, collect, freeze.
"""

from __future__ import annotations

import gc
import logging
import threading
import time

import redis

from serving.bundle import BundleError
from serving.replica import Replica

logger = logging.getLogger("tailwise.serving")


class Lifecycle:
    def __init__(
        self,
        replica: Replica,
        interval: float = 0.5,
        follow_every: float = 2.0,
        items_every: float = 10.0,
    ) -> None:
        self.replica = replica
        self.interval, self.follow_every, self.items_every = interval, follow_every, items_every
        self._swap = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._followed = self._refreshed = 0.0

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the replica's background work is running already")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tailwise-background", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def switch(self, version: str) -> bool:
        """Serve `version` (no-op when it is served already); True when switched."""
        with self._swap:
            if version == self.replica.graph.bundle.version:
                return False
            self.replica.use(self.replica.load(version))
            settle_heap()  # the old model's objects go, the new one's are frozen
            logger.info("switched to model %s", version)
            return True

    def tick(self, now: float) -> None:
        """One pass of the background work at monotonic time `now`."""
        replica = self.replica
        if replica.writer.spill.has_pending():
            replayed = replica.writer.replay()
            if replayed:
                logger.info("replayed %d spilled event(s)", replayed)
        if now - self._followed > self.follow_every:
            self._followed = now
            wanted = replica.wanted_version()
            if wanted and wanted != replica.graph.bundle.version:
                self.switch(wanted)
        experiments = getattr(replica, "experiments", None)
        if experiments is not None:  # the bandits' weights, every allocation_refresh_seconds
            experiments.refresh(now)
        if now - self._refreshed > self.items_every:
            self._refreshed = now
            replica.graph.reader.refresh_items()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick(time.monotonic())
            except (redis.RedisError, OSError, BundleError) as exc:
                logger.warning("background task: %s", exc)


def settle_heap() -> None:
    """Free what a model switch left behind, then freeze what is alive (gc.freeze)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
