"""Push with the receiver down, then back: every block lands exactly once, signed."""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path

import pytest

from tailwise.content.push import Block, Outbox, WebhookSender, deliver, push
from tailwise.ports import free_port
from tests.content.receiver import Receiver

SECRET = "whsec_" + base64.b64encode(b"a test secret of 32 bytes long!!").decode()
OTHER = "whsec_" + base64.b64encode(b"someone else's secret, 32 bytes").decode()


def blocks(n: int = 5) -> list[Block]:
    return [
        Block(
            "home_hero", f"segment {k}", {"headline": f"h{k}", "html": f"<p>{k}</p>", "items": []}
        )
        for k in range(n)
    ]


def test_receiver_down_then_back_every_block_once_signed(tmp_path: Path) -> None:
    port, waits = free_port(), []
    outbox, sender = Outbox(tmp_path / "outbox.sqlite3"), WebhookSender(SECRET, timeout=2)
    url = f"http://127.0.0.1:{port}/hooks/content"

    down = push(blocks(), url, outbox, sender, attempts=3, backoff=0.5, sleep=waits.append)
    assert down.queued == 5 and not down.delivered and len(down.pending) == 5
    assert all(down.attempts[m] == 3 for m in down.pending)
    assert "ConnectError" in next(iter(down.pending.values()))
    assert waits[:2] == [0.5, 1.0]  # exponential back-off between tries
    assert outbox.counts() == {"pending": 5}

    # Back, but busy twice and losing its answer to one processed message.
    receiver = Receiver(port, SECRET, fail_first=2, drop_first=1).start()
    try:
        back = deliver(outbox, sender, attempts=4, backoff=0.01)
        assert len(back.delivered) == 5 and not back.pending and not back.rejected
        assert set(receiver.processed) == {b.key() for b in blocks()}
        assert max(receiver.seen.values()) == 2 and sum(receiver.seen.values()) == 6
        assert receiver.bad_signatures == 0 and receiver.verified == 6
        assert {p["target"] for p in receiver.processed.values()} == {
            f"segment {k}" for k in range(5)
        }
        assert outbox.counts() == {"delivered": 5}

        again = push(blocks(), url, outbox, sender, attempts=2, backoff=0.01)
        assert again.queued == 0 and not again.delivered  # same blocks, same keys: nothing new
        assert receiver.requests == 8  # 2 busy answers + 6 verified, none since
    finally:
        receiver.stop()
        sender.close()
        outbox.close()


def test_receiver_returning_during_the_back_off_gets_everything_in_one_run(tmp_path: Path) -> None:
    port = free_port()
    receiver = Receiver(port, SECRET)
    timer = threading.Timer(0.4, receiver.start)
    outbox, sender = Outbox(tmp_path / "outbox.sqlite3"), WebhookSender(SECRET, timeout=1)
    started = time.monotonic()
    timer.start()
    try:
        report = push(blocks(3), receiver.url, outbox, sender, attempts=6, backoff=0.1)
        assert len(report.delivered) == 3, report.as_dict()
        assert report.attempts[blocks(3)[0].key()] > 1  # the first one waited for it
        assert time.monotonic() - started < 5
        assert sorted(receiver.seen.values()) == [1, 1, 1] and receiver.verified == 3
    finally:
        timer.cancel()
        receiver.stop()
        sender.close()
        outbox.close()


def test_a_wrong_signature_is_refused_and_not_retried(tmp_path: Path) -> None:
    port = free_port()
    receiver = Receiver(port, SECRET).start()
    outbox, forger = Outbox(tmp_path / "outbox.sqlite3"), WebhookSender(OTHER, timeout=1)
    try:
        report = push(blocks(1), receiver.url, outbox, forger, attempts=5, backoff=0.01)
        assert len(report.rejected) == 1 and "401" in next(iter(report.rejected.values()))
        assert receiver.bad_signatures == 1 and not receiver.processed
        assert outbox.counts() == {"rejected": 1}
    finally:
        receiver.stop()
        forger.close()
        outbox.close()


def test_the_signature_is_the_standard_one() -> None:
    """v1,base64(HMAC-SHA256(secret, "id.timestamp.body")), by hand."""
    import hashlib
    import hmac
    from datetime import UTC, datetime

    sender = WebhookSender(SECRET)
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    headers = sender.headers("msg_x", '{"a":1}', now)
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f'msg_x.{int(now.timestamp())}.{{"a":1}}'.encode(), hashlib.sha256)
    assert headers["webhook-signature"] == "v1," + base64.b64encode(mac.digest()).decode()
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    sender.close()


@pytest.mark.parametrize("secret", ["", "whsec_%%%not-base64"])
def test_a_missing_or_bad_secret_is_a_clear_error(secret: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        WebhookSender(secret)
