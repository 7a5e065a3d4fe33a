"""The request path's own Redis connection: commands go out now, their replies are read later.

    send(commands) -> Pending   one sendall of packed commands (RESP)
    receive(pending) -> replies the replies of those commands; replies of commands sent
                                before them are read first and kept for their owners

Sending is split from reading so a request's read can go out as soon as its body is in
and validated (serving.ingress.Prefetch) and its round trip overlaps the framework's
routing instead of following it. Replies come back in the order the commands went out,
so the pending sends are a queue; one that nobody claims (its graph was replaced by a
model switch in between) is read past by the next read and dropped, which costs that read
no wait (those replies come before its own); past MAX_PENDING unread sends the
connection starts over.

redis-py opens the connection (authentication, database, timeouts); the commands go out
with one sendall on its socket and the replies are read with hiredis' parser: redis-py's
pipeline costs ~0.1 ms more per call here (pool checkout, readiness check, packing, reply
callbacks) than the round trip itself. Any failure closes the connection, forgets every
pending send (their replies would never come on the next connection: their owners send
again) and is raised as redis-py's error.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, NoReturn

import hiredis
import redis

RECV_BYTES = 65536
MAX_PENDING = 256  # sends not read yet; more means nobody will read them: start over


@dataclass(eq=False)
class Pending:
    """Commands sent on a `RequestConnection`; `replies` once read."""

    commands: list[bytes]
    line: RequestConnection = field(repr=False)  # sent on
    generation: int  # its connection they went out on
    replies: list[Any] | None = field(default=None, repr=False)


class RequestConnection:
    """One connection, used from one thread (the replica's event loop)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.connection: Any = None  # redis-py Connection, opened on first use
        self.parser: Any = None  # its hiredis reply parser
        self.pending: deque[Pending] = deque()
        self.generation = 0  # times closed: a send from an earlier one has no replies coming

    def round_trip(self, commands: list[bytes]) -> list[Any]:
        """The replies of `commands`, sent now."""
        return self.receive(self.send(commands))

    def send(self, commands: list[bytes]) -> Pending:
        if len(self.pending) >= MAX_PENDING:  # unclaimed sends piling up
            self.close()
        try:
            if self.connection is None or self.connection._sock is None:
                self._open()
            self.connection._sock.sendall(b"".join(commands))
        except BaseException as exc:
            self._fail(exc)
        sent = Pending(commands, self, self.generation)
        self.pending.append(sent)
        return sent

    def receive(self, sent: Pending) -> list[Any]:
        """`sent`'s replies; sent again first when its connection has closed since. An
        error reply is raised as redis.ResponseError once all of them are read, so the
        connection stays in step."""
        if sent.line is not self:
            raise ValueError("these commands were sent on another connection")
        if sent.replies is None and sent.generation != self.generation:
            sent = self.send(sent.commands)
        try:
            while sent.replies is None:
                head = self.pending[0]
                head.replies = self._read(len(head.commands))
                self.pending.popleft()
        except BaseException as exc:
            self._fail(exc)
        for reply in sent.replies:
            if isinstance(reply, hiredis.ReplyError):
                raise redis.ResponseError(str(reply))
        return sent.replies

    def close(self) -> None:
        """Close the connection; the pending sends' owners send again on the next one."""
        if self.connection is not None:
            self.connection.disconnect()
        self.pending.clear()
        self.generation += 1

    def _open(self) -> None:
        if self.connection is None:
            pool = self.client.connection_pool
            self.connection = pool.connection_class(**pool.connection_kwargs)
        self.connection.connect()
        self.parser = hiredis.Reader()
        if self.pending:  # (every way to lose the socket goes through close)
            self.pending.clear()
            self.generation += 1

    def _read(self, count: int) -> list[Any]:
        sock, parser = self.connection._sock, self.parser
        out: list[Any] = []
        while len(out) < count:
            reply = parser.gets()
            if reply is False:
                data = sock.recv(RECV_BYTES)
                if not data:
                    raise redis.ConnectionError("Redis closed the connection")
                parser.feed(data)
            else:
                out.append(reply)
        return out

    def _fail(self, exc: BaseException) -> NoReturn:
        """Close the connection and raise `exc` as redis-py's error."""
        self.close()
        if isinstance(exc, TimeoutError):  # socket.timeout
            raise redis.TimeoutError(f"Redis did not answer: {exc}") from exc
        if isinstance(exc, OSError | hiredis.ProtocolError):
            raise redis.ConnectionError(f"Redis connection failed: {exc}") from exc
        raise exc
