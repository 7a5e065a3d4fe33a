"""A CMS stand-in for push tests: a loopback HTTP server that verifies Standard Webhooks
signatures with the standardwebhooks library and keeps each webhook-id once."""

from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class Receiver:
    """Start with `start()`; `fail_first` answers 503 that many times, `drop_first`
    processes that many messages but closes the connection before answering."""

    def __init__(self, port: int, secret: str, fail_first: int = 0, drop_first: int = 0):
        self.port, self.webhook = port, Webhook(secret)
        self.fail_first, self.drop_first = fail_first, drop_first
        self.processed: dict[str, Any] = {}  # webhook-id -> payload, each kept once
        self.seen: Counter[str] = Counter()  # webhook-id -> requests with it
        self.verified = self.bad_signatures = self.requests = 0
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/content"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                receiver.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("content-length", 0)))
        headers = {k.lower(): v for k, v in request.headers.items()}
        with self.lock:
            self.requests += 1
            if self.fail_first > 0:
                self.fail_first -= 1
                return self._answer(request, 503, b"busy")
            try:
                payload = self.webhook.verify(body, headers)
            except WebhookVerificationError:
                self.bad_signatures += 1
                return self._answer(request, 401, b"bad signature")
            self.verified += 1
            msg_id = headers["webhook-id"]
            if headers.get("idempotency-key") != msg_id:
                return self._answer(request, 400, b"idempotency-key differs from webhook-id")
            self.seen[msg_id] += 1
            self.processed.setdefault(msg_id, payload)  # a repeat is acknowledged, not re-done
            if self.drop_first > 0:
                self.drop_first -= 1
                request.close_connection = True
                request.connection.close()  # processed, but the answer never arrives
                return None
        return self._answer(request, 204, b"")

    @staticmethod
    def _answer(request: BaseHTTPRequestHandler, status: int, text: bytes) -> None:
        request.send_response(status)
        request.send_header("content-length", str(len(text)))
        request.end_headers()
        request.wfile.write(text)
