"""Free TCP ports on this machine, for the local processes Tailwise starts (Ray Serve's
own ports, a private redis-server in tests and benchmarks)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port nothing on 127.0.0.1 holds right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
