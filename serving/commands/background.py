"""A server started with `tailwise serve --background`: start it detached, stop it by pid.

start_background: re-runs `tailwise serve` with the same flags as a detached process
  (log in LOG_FILE, pid in PID_FILE, a generated API key in KEY_FILE) and waits until
  it answers
stop_background: SIGTERM to PID_FILE's process, then waits up to a minute for it
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from tailwise.console import console

if TYPE_CHECKING:  # the CLI loads this module for every command: nothing heavy at import
    from serving.config import ServingConfig

PID_FILE = Path(".tailwise/serve.pid")
LOG_FILE = Path(".tailwise/serve.log")
KEY_FILE = Path(".tailwise/api_key")
ADMIN_KEY_FILE = Path(".tailwise/admin_key")  # monitoring.loop reads it for /admin/reload


def start_background(
    config: ServingConfig, generated: str | None, overrides: list[str], admin: str | None = None
) -> None:
    import os
    import subprocess
    import sys

    from serving.server import wait_ready

    PID_FILE.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if generated:
        env["TAILWISE_API_KEYS"] = generated
    if admin:
        env["TAILWISE_ADMIN_KEYS"] = admin
    args = ["--host", config.host, "--port", str(config.port), "--models", str(config.models_dir)]
    if config.model_version:
        args += ["--model", config.model_version]
    if config.num_replicas:
        args += ["--replicas", str(config.num_replicas)]
    if config.ray_address:
        args += ["--address", config.ray_address]
    for item in overrides:
        args += ["--set", item]
    with LOG_FILE.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tailwise.cli", "serve", *args],
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    PID_FILE.write_text(str(process.pid))
    # for serving/demo_requests.sh and the monitoring loop; readable by this user only
    for path, key in ((KEY_FILE, generated), (ADMIN_KEY_FILE, admin)):
        if key:
            path.write_text(key)
            path.chmod(0o600)
    url = f"http://{config.host}:{config.port}"
    console.print(f"starting the server in the background (log: {LOG_FILE}) ...")
    wait_ready(url, timeout=300)
    console.print(f"[green]serving[/green] {url}  (API docs: {url}/docs; pid {process.pid})")
    if generated:
        console.print(f"API key for /events: [bold]{generated}[/bold]")
    if admin:
        console.print(f"admin key for /admin: [bold]{admin}[/bold] (also in {ADMIN_KEY_FILE})")
    console.print("stop it with: tailwise serve --stop")


def stop_background() -> None:
    import os
    import signal

    if not PID_FILE.exists():
        console.print(f"no background server ({PID_FILE} not found)")
        return
    pid = int(PID_FILE.read_text().strip())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        console.print(f"process {pid} had already exited")
    else:
        for _ in range(120):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.5)
        console.print(f"stopped the server (pid {pid})")
    PID_FILE.unlink(missing_ok=True)
