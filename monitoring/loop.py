"""The closed loop for one deployment: monitor, retrain through DVC, challenge, switch.

    tailwise events consume --once     streams -> data/served (events the retrain will see)
    tailwise monitor run --model LATEST report + summary.json + decision (policy.py)
      no retrain -> done
    dvc repro evaluate                 ingest (raw + served events) -> features -> training
                                       -> evaluation; the new version is published as a
                                       challenger, tied to its data, params and code in dvc.lock
    tailwise models challenge          champion vs challenger on the newest holdout window;
                                       promoted or rejected, recorded in registry.jsonl
      promoted -> tailwise features apply + materialize (new items, fresh values)
               -> POST <serve-url>/admin/reload {"version": ...}  (no failed requests)

Every step is the project's own command run in the deployment's folder (`root`, where
dvc.yaml and params.yaml are), so the loop does what a person would type and the import
boundaries hold (monitoring never imports serving or training). Each pass appends one line
to monitoring/reports/loop.jsonl with the decision, the steps' times and the outcome.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tailwise import registry

logger = logging.getLogger(__name__)
LOOP_LOG = Path("monitoring/reports/loop.jsonl")
KEY_FILE = Path(".tailwise/admin_key")  # /admin/reload takes an admin-scope key


class LoopError(RuntimeError):
    """A step of the loop failed; the message names the command and its output's tail."""


class PassOutcome(BaseModel):
    """One pass of the loop."""

    started_at: datetime
    root: str
    champion: str | None
    report: str | None = None
    retrain: bool = False
    reasons: list[str] = Field(default_factory=list)
    challenger: str | None = None
    decision: str | None = None  # promoted / rejected / None (no retraining)
    decision_reasons: list[str] = Field(default_factory=list)
    scores: dict[str, dict[str, float]] = Field(default_factory=dict)
    reloaded: bool | None = None
    serving_version: str | None = None
    seconds: dict[str, float] = Field(default_factory=dict)


@dataclass
class LoopConfig:
    root: Path = Path(".")
    window: str | None = None
    serve_url: str | None = None
    api_key: str | None = None
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    timeout_s: float = 3600.0


def run_pass(cfg: LoopConfig, step: Callable[[str], None] = lambda _: None) -> PassOutcome:
    """One pass: consume, monitor, and when the policy asks, retrain, challenge and switch."""
    root = cfg.root.resolve()
    models = root / "data/models"
    out = PassOutcome(
        started_at=datetime.now(UTC), root=str(root), champion=registry.champion(models)
    )
    if out.champion is None:
        raise LoopError(f"no champion in {models}: train and publish a first version")
    _timed(out, "consume", step, lambda: tailwise_command(cfg, "events", "consume", "--once"))
    window = ["--window", cfg.window] if cfg.window else []
    _timed(
        out,
        "monitor",
        step,
        lambda: tailwise_command(cfg, "monitor", "run", "--model", str(out.champion), *window),
    )
    summary_path = newest_summary(root / "monitoring/reports")
    summary = json.loads(summary_path.read_text())
    out.report = str(summary_path.parent / "report.html")
    decision = summary.get("decision") or {}
    out.retrain, out.reasons = bool(decision.get("retrain")), list(decision.get("reasons", []))
    if out.retrain:
        _retrain(cfg, out, models, step)
    _append(root / LOOP_LOG, out)
    return out


def _retrain(cfg: LoopConfig, out: PassOutcome, models: Path, step: Callable[[str], None]) -> None:
    dvc = shutil.which("dvc", path=_path(cfg)) or "dvc"
    _timed(out, "retrain", step, lambda: run_command(cfg, [dvc, "repro", "evaluate"]))
    before = len(registry.entries(models))
    _timed(out, "challenge", step, lambda: tailwise_command(cfg, "models", "challenge"))
    decided = [e for e in registry.entries(models)[before:] if e.action != "published"]
    if not decided:
        out.decision_reasons = ["the retrain published no new version (nothing changed)"]
        return
    entry = decided[-1]
    out.challenger, out.decision = entry.version, entry.action
    out.decision_reasons, out.scores = entry.reasons, entry.scores
    if entry.action != "promoted":
        return
    _timed(out, "materialize", step, lambda: _materialize(cfg))
    if cfg.serve_url:
        _timed(out, "reload", step, lambda: _reload(cfg, out, entry.version))


def _materialize(cfg: LoopConfig) -> None:
    tailwise_command(cfg, "features", "apply")
    tailwise_command(cfg, "features", "materialize")


def _reload(cfg: LoopConfig, out: PassOutcome, version: str) -> None:
    """POST /admin/reload; the serving app switches without failing requests."""
    key = cfg.api_key or api_key(cfg.root, cfg.env)
    if key is None:
        raise LoopError(
            f"no admin key to reload {cfg.serve_url}: set TAILWISE_ADMIN_KEYS or start the "
            f"server with `tailwise serve --background` (it writes {KEY_FILE})"
        )
    request = urllib.request.Request(
        f"{cfg.serve_url.rstrip('/')}/admin/reload",  # type: ignore[union-attr]
        data=json.dumps({"version": version}).encode(),
        headers={"Content-Type": "application/json", "X-API-Key": key},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as reply:
            body = json.loads(reply.read())
    except urllib.error.URLError as exc:
        raise LoopError(f"reload at {cfg.serve_url} failed: {exc}") from exc
    out.reloaded, out.serving_version = True, body.get("model_version")


def api_key(root: Path, env: Mapping[str, str]) -> str | None:
    keys = [k.strip() for k in env.get("TAILWISE_ADMIN_KEYS", "").split(",") if k.strip()]
    if keys:
        return keys[0]
    path = root / KEY_FILE
    return path.read_text().strip() if path.exists() else None


def newest_summary(reports: Path) -> Path:
    found = sorted(reports.glob("*/summary.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise LoopError(f"monitor run wrote no summary.json under {reports}")
    return found[-1]


def _timed(out: PassOutcome, name: str, step: Callable[[str], None], fn: Callable[[], Any]) -> None:
    step(name)
    started = time.perf_counter()
    fn()
    out.seconds[name] = round(time.perf_counter() - started, 2)


def _path(cfg: LoopConfig) -> str:
    """PATH with this interpreter's folder first: dvc's stages call `tailwise`."""
    return os.pathsep.join([str(Path(sys.executable).parent), cfg.env.get("PATH", "")])


def tailwise_command(cfg: LoopConfig, *args: str) -> None:
    """`tailwise ARGS` in the deployment's folder (LoopError names it if it fails)."""
    run_command(cfg, [sys.executable, "-m", "tailwise.cli", *args])


def run_command(cfg: LoopConfig, command: list[str]) -> None:
    env = {**cfg.env, "PATH": _path(cfg), "TF_USE_LEGACY_KERAS": "1"}
    done = subprocess.run(
        command,
        cwd=cfg.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=cfg.timeout_s,
        check=False,
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        shown = " ".join(Path(command[0]).name if i == 0 else c for i, c in enumerate(command))
        raise LoopError(f"`{shown}` in {cfg.root} exited {done.returncode}:\n{tail}")


def _append(path: Path, outcome: PassOutcome) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(outcome.model_dump_json() + "\n")
