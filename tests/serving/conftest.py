"""Fixtures the serving event tests share (Redis clients, keys cleaned up per test, the
real-time view, event writers), defined in events_support.py with its helpers."""

from tests.serving.events_support import (  # noqa: F401  (pytest collects fixtures here)
    client_fixture,
    down_client_fixture,
    keys_fixture,
    make_writer_fixture,
    online_fixture,
    realtime_view_fixture,
)
