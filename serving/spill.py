"""The local outbox that keeps events accepted while Redis is unreachable.

    EventWriter.write --Redis down--> SpillLog.append: one SQLite transaction, committed
        (WAL, synchronous=FULL) before the request is answered, so an accepted event
        survives a crash of the process or the machine
    EventWriter.replay --> SpillLog.claim: the oldest rows by id, leased to this caller
        --the events reach Redis--> SpillBatch.commit deletes them
        --Redis fails again--> SpillBatch.release hands them back for the next replay

SQLite does the locking: any number of processes append to and drain the same file. A
claim leases its rows for `lease_seconds`, so two drains at once get different rows; a
drain that dies mid-batch leaves its lease to run out, after which the rows are claimed
again. Redis may then see an event twice: the events stream's consumer keeps one row per
event_id (tailwise.ingest.streams) and the writer's recent-list and history updates skip
an event already there.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailwise.erasure import forget_outbox

FILENAME = "outbox.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    record TEXT NOT NULL,
    lease TEXT,
    lease_until REAL NOT NULL DEFAULT 0
)"""


@dataclass
class SpillBatch:
    """Spilled records leased to one caller: `commit()` once they are safely elsewhere,
    `release()` when they could not be placed."""

    records: list[dict[str, Any]]
    ids: list[int]
    lease: str
    log: SpillLog

    def commit(self) -> None:
        self.log._finish(self, "DELETE FROM outbox WHERE lease = ? AND id IN ({})")

    def release(self) -> None:
        self.log._finish(
            self, "UPDATE outbox SET lease = NULL, lease_until = 0 WHERE lease = ? AND id IN ({})"
        )


class SpillLog:
    """A SQLite outbox table in `directory`, shared by every process that uses the folder."""

    def __init__(self, directory: Path, lease_seconds: float = 60.0, busy_timeout_s: float = 10.0):
        self.path = Path(directory) / FILENAME
        self.lease_seconds, self.busy_timeout_s = lease_seconds, busy_timeout_s
        self._lock = threading.Lock()  # one connection, shared by this process's threads
        self._con: sqlite3.Connection | None = None

    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Durably add the records (committed and synced when this returns); raises
        sqlite3.Error or OSError when the disk refuses, with nothing added."""
        if not records:
            return
        rows = [(json.dumps(r, separators=(",", ":")),) for r in records]
        with self._lock:
            con = self._open()
            with con:  # one transaction: all the records or none
                con.execute("BEGIN IMMEDIATE")
                con.executemany("INSERT INTO outbox (record) VALUES (?)", rows)

    def pending(self) -> int:
        """Records not yet replayed (leased ones included), over all processes."""
        return self._count("SELECT count(*) FROM outbox")

    def has_pending(self) -> bool:
        """Cheap check for a background loop: anything to replay?"""
        return bool(self._count("SELECT EXISTS (SELECT 1 FROM outbox)"))

    def claim(self, max_batch: int = 500) -> SpillBatch | None:
        """The oldest unleased records (by id), leased to the caller; None when there are
        none. Rows another drain holds are skipped until its lease runs out."""
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        lease, now = uuid.uuid4().hex, time.time()
        with self._lock:
            con = self._existing()
            if con is None:
                return None
            with con:
                con.execute("BEGIN IMMEDIATE")  # claims do not interleave
                rows = con.execute(
                    "SELECT id, record FROM outbox WHERE lease_until < ? ORDER BY id LIMIT ?",
                    (now, max_batch),
                ).fetchall()
                ids = [i for i, _ in rows]
                con.executemany(
                    "UPDATE outbox SET lease = ?, lease_until = ? WHERE id = ?",
                    [(lease, now + self.lease_seconds, i) for i in ids],
                )
        if not rows:
            return None
        return SpillBatch([json.loads(r) for _, r in rows], ids, lease, self)

    def forget(self, user_ids: Sequence[str]) -> int:
        """Delete the records of these users, leased ones too, leaving no copy on disk
        (tailwise.erasure.forget_outbox); returns how many went."""
        if not user_ids:
            return 0
        with self._lock:
            con = self._existing()
            return 0 if con is None else forget_outbox(con, user_ids)

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    def _finish(self, batch: SpillBatch, statement: str) -> None:
        marks = ", ".join("?" * len(batch.ids))
        with self._lock:
            con = self._open()
            with con:
                con.execute(statement.format(marks), (batch.lease, *batch.ids))

    def _count(self, query: str) -> int:
        with self._lock:
            con = self._existing()
            row = con.execute(query).fetchone() if con is not None else None
        return int(row[0]) if row else 0

    def _existing(self) -> sqlite3.Connection | None:
        """The connection, or None while no process has spilled yet (a process that never
        spills never makes the file)."""
        if self._con is None and not self.path.exists():
            return None
        return self._open()

    def _open(self) -> sqlite3.Connection:
        if self._con is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout_s,
                isolation_level=None,  # transactions are begun explicitly
                check_same_thread=False,
            )
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")  # a commit is on disk when it returns
            con.execute("PRAGMA secure_delete=ON")  # an erased record leaves no bytes behind
            con.execute(_SCHEMA)
            self._con = con
        return self._con
