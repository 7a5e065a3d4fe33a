"""Pushing rendered blocks to a CMS: a SQLite outbox, Standard Webhooks signing, retries.

    blocks --Outbox.add (one transaction; a block already there is not added again)
           --deliver: each pending message, oldest first
               POST url  webhook-id = the block's idempotency key (the same on every try)
                         webhook-timestamp, webhook-signature = v1,base64(HMAC-SHA256 of
                         "id.timestamp.body") by the standardwebhooks library
               2xx                        --> delivered (kept with its time, never re-sent)
               timeout, connection, 408, 429, 5xx --> retried with exponential back-off
                                              (tenacity); still failing: left pending
               other 4xx                  --> rejected (the receiver refused it for good)
           --> DeliveryReport (delivered, pending, rejected, attempts per message)

Nothing is lost while the receiver is down: pending messages stay in the outbox file and
the next `deliver` (the next push, or `tailwise content deliver`) sends them. A receiver
may see a message twice (its 2xx lost on the way back); the webhook-id lets it keep one.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created REAL NOT NULL,
    delivered REAL
)"""
RETRY_STATUS = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Block:
    """One rendered block to push: `target` is the segment or user it was rendered for."""

    slot: str
    target: str
    payload: dict[str, Any]

    def body(self) -> str:
        return json.dumps(
            {"type": "content.block", "slot": self.slot, "target": self.target, **self.payload},
            sort_keys=True,
            separators=(",", ":"),
        )

    def key(self) -> str:
        """Idempotency key: the same block (slot, target, content) gets the same key, so
        pushing it again is a no-op for the outbox and for the receiver."""
        digest = hashlib.sha256(self.body().encode()).hexdigest()[:24]
        return f"msg_{self.slot}_{digest}"


class Retryable(Exception):
    """A failure worth another try (the receiver is down, slow or overloaded)."""


class Rejected(Exception):
    """The receiver refused the message for good (a 4xx other than 408/425/429)."""


@dataclass
class DeliveryReport:
    delivered: list[str] = field(default_factory=list)
    pending: dict[str, str] = field(default_factory=dict)  # msg_id -> last error
    rejected: dict[str, str] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    queued: int = 0  # new messages this run added
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "queued": self.queued,
            "delivered": len(self.delivered),
            "pending": len(self.pending),
            "rejected": len(self.rejected),
            "seconds": round(self.seconds, 3),
            "messages": {
                **{
                    m: {"status": "delivered", "attempts": self.attempts[m]} for m in self.delivered
                },
                **{
                    m: {"status": "pending", "attempts": self.attempts[m], "error": e}
                    for m, e in self.pending.items()
                },
                **{
                    m: {"status": "rejected", "attempts": self.attempts[m], "error": e}
                    for m, e in self.rejected.items()
                },
            },
        }


class Outbox:
    """Messages to deliver, in one SQLite file (WAL, synced commits) any process can use."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._con: sqlite3.Connection | None = None

    def add(self, url: str, blocks: Iterable[Block]) -> int:
        """Queue the blocks for `url`; returns how many were new."""
        rows = [(b.key(), url, b.body(), time.time()) for b in blocks]
        with self._lock:
            con = self._open()
            with con:
                con.execute("BEGIN IMMEDIATE")
                before = con.total_changes
                con.executemany(
                    "INSERT OR IGNORE INTO messages (msg_id, url, body, created) VALUES (?, ?, ?, ?)",
                    rows,
                )
                return con.total_changes - before

    def pending(self) -> list[tuple[str, str, str]]:
        """(msg_id, url, body) of every message not yet delivered or rejected, oldest first."""
        with self._lock:
            rows = self._open().execute(
                "SELECT msg_id, url, body FROM messages WHERE status = 'pending' ORDER BY id"
            )
            return [(str(m), str(u), str(b)) for m, u, b in rows.fetchall()]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._open().execute("SELECT status, count(*) FROM messages GROUP BY status")
            return {str(s): int(n) for s, n in rows.fetchall()}

    def mark(self, msg_id: str, status: str, attempts: int, error: str | None) -> None:
        delivered = time.time() if status == "delivered" else None
        with self._lock:
            con = self._open()
            with con:
                con.execute(
                    "UPDATE messages SET status = ?, attempts = attempts + ?, last_error = ?, "
                    "delivered = ? WHERE msg_id = ?",
                    (status, attempts, error, delivered, msg_id),
                )

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    def _open(self) -> sqlite3.Connection:
        if self._con is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(
                self.path, timeout=10, isolation_level=None, check_same_thread=False
            )
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.execute(_SCHEMA)
            self._con = con
        return self._con


class WebhookSender:
    """Signs and POSTs one message; raises Retryable or Rejected when it did not land."""

    def __init__(self, secret: str, timeout: float = 5.0, client: httpx.Client | None = None):
        if not secret:
            raise ValueError("the webhook secret is empty: set it (whsec_ + base64) to sign")
        try:
            self.webhook = Webhook(secret)
        except Exception as exc:  # the library raises a bare error for a bad secret
            raise ValueError(f"the webhook secret is not valid base64 (whsec_...): {exc}") from None
        self.client = client or httpx.Client(timeout=timeout)

    def headers(self, msg_id: str, body: str, now: datetime | None = None) -> dict[str, str]:
        now = now or datetime.now(UTC)
        return {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.webhook.sign(msg_id, now, body),
            "idempotency-key": msg_id,
        }

    def send(self, url: str, msg_id: str, body: str) -> None:
        # Signed at every try: the timestamp is fresh, the id (idempotency key) is not.
        try:
            response = self.client.post(
                url, content=body.encode(), headers=self.headers(msg_id, body)
            )
        except httpx.HTTPError as exc:
            raise Retryable(f"{type(exc).__name__}: {exc}") from exc
        if response.is_success:
            return
        message = f"HTTP {response.status_code}: {response.text[:200]}"
        if response.status_code >= 500 or response.status_code in RETRY_STATUS:
            raise Retryable(message)
        raise Rejected(message)

    def close(self) -> None:
        self.client.close()


def deliver(
    outbox: Outbox,
    sender: WebhookSender,
    attempts: int = 5,
    backoff: float = 0.5,
    max_backoff: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryReport:
    """Send every pending message, each with up to `attempts` tries (exponential back-off
    from `backoff` s); what still fails stays pending for the next run."""
    started, report = time.perf_counter(), DeliveryReport()
    for msg_id, url, body in outbox.pending():
        tries = 0

        def attempt(url: str = url, msg_id: str = msg_id, body: str = body) -> None:
            nonlocal tries
            tries += 1
            sender.send(url, msg_id, body)

        retrying = Retrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=backoff, max=max_backoff),
            retry=retry_if_exception_type(Retryable),
            sleep=sleep,
            reraise=False,
        )
        report.attempts[msg_id] = 0
        try:
            retrying(attempt)
        except RetryError as exc:
            error = str(exc.last_attempt.exception())
            outbox.mark(msg_id, "pending", tries, error)
            report.pending[msg_id] = error
        except Rejected as exc:
            outbox.mark(msg_id, "rejected", tries, str(exc))
            report.rejected[msg_id] = str(exc)
        else:
            outbox.mark(msg_id, "delivered", tries, None)
            report.delivered.append(msg_id)
        report.attempts[msg_id] = tries
    report.seconds = time.perf_counter() - started
    return report


def push(
    blocks: Iterable[Block],
    url: str,
    outbox: Outbox,
    sender: WebhookSender,
    attempts: int = 5,
    backoff: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryReport:
    """Queue the blocks (durably), then deliver everything pending, older messages too."""
    queued = outbox.add(url, blocks)
    report = deliver(outbox, sender, attempts, backoff, sleep=sleep)
    report.queued = queued
    return report
