"""The drift scenario: train, serve, replay traffic, shift the world, and let the loop react.

    generate (seeded; with or without a shift `shift_days` before the window's end)
      --split at the shift--> data/raw (people, the catalogue as it was, events before)
                              replay/ (the events after, and the catalogue with new items)
    dvc repro evaluate                   the champion (first version: it serves)
    features apply + materialize; tailwise serve --background on its own port
    replay day by day: POST /events (every event) and POST /recommend (a sample of that
      day's active people, with the device and country of their visit)
    one pass of the loop (loop.py): consume -> monitor -> [retrain -> challenge -> switch]
    serve --stop; scenario.json: detection, time from the shift's first traffic to the
      promotion, quality of champion and challenger on the shifted holdout

The control run is the same with `shift=None`: nothing should be retrained. Everything runs
in its own folder, Feast project and port (workspace.py), so it leaves the repo's data and
the demo's Redis keys alone.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from bench.workspace import prepare, workspace_env
from monitoring.loop import (
    LoopConfig,
    PassOutcome,
    run_command,
    run_pass,
    tailwise_command,
)
from serving.commands.background import KEY_FILE
from tailwise import registry
from tailwise.ports import free_port
from tailwise.synthetic import GenerateConfig, generate
from tailwise.synthetic.config import DefectRates, ShiftConfig

BATCH = 500

SHIFT: dict[str, Any] = {
    "top_taste": {"Toys": 1.5, "Electronics": -1.0},
    "device_mix": {"tablet": 0.5, "mobile": 0.35, "desktop": 0.15},
    "new_items_share": 0.1,
}
TINY_PARAMS: dict[str, Any] = {
    "evaluation": {"split": {"validation_days": 5, "test_days": 5}, "ks": [5, 10]},
    "training": {
        "retrieval": {"epochs": 1, "batch_size": 256, "embedding_dim": 8, "seed": 0},
        "ranker": {"n_estimators": 20, "min_child_weight": 1, "n_candidates": 50, "seed": 0},
    },
}


def scenario_params(tiny: bool) -> dict[str, Any]:
    """params.yaml overrides of both runs. The replay sends days of traffic in seconds, so
    the champion is minutes old when the loop looks (cool-down 0), and the batch features
    of the logged vectors stay as materialised before the replay (a deployment would
    materialise daily): feature-vector drift is reported but not a trigger here, the
    incoming events are. The shift concentrates demand on one category, so a model that
    follows it covers less of the catalogue: the coverage guard allows half (it is there to
    catch a collapse to a few popular items). The baseline guard is off: the scenario
    measures the loop (shift -> retrain -> champion against challenger), and where the
    platform stands against the baselines is bench/train_quality.py's measure. At the tiny
    scale (the tests) the promotion margin is 0: the holdout is a few hundred people, where
    NDCG@10 moves by more than the 2% a deployment's margin asks, so a challenger that scores
    higher on the shifted holdout is promoted (the control run shows that nothing is
    retrained without a shift)."""
    retrain = {
        "cooldown_hours": 0,
        "drift_share": None,
        "min_feature_rows": 100,
        "min_scores": 500,
        "min_event_rows": 500,
    }
    params: dict[str, Any] = {
        "monitoring": {"reference_rows": 5000, "retrain": retrain},
        "promotion": {"max_coverage_loss": 0.5, "beat_best_baseline": False},
    }
    if tiny:
        params.update(TINY_PARAMS)
        params["promotion"]["margin"] = 0.0
    return params


class ScenarioError(RuntimeError):
    """A scenario step failed; the message names the step and what to look at."""


class ScenarioConfig(BaseModel):
    """One run: the world, the shift (None: the control run) and where it runs."""

    model_config = ConfigDict(extra="forbid")

    name: str
    users: int = Field(5000, ge=50)
    items: int = Field(1000, ge=20)
    days: int = Field(60, ge=20)
    seed: int = 7
    shift_days: int = Field(14, ge=2, description="Days of served traffic after the shift.")
    shift: dict[str, Any] | None = Field(
        None, description="ShiftConfig fields but `at` (set from shift_days); None: control."
    )
    requests_per_day: int = Field(80, ge=1, description="POST /recommend per replayed day.")
    port: int = 8100
    redis_url: str = "redis://127.0.0.1:6379"
    params: dict[str, Any] = Field(default_factory=dict, description="params.yaml overrides.")
    serve_settings: list[str] = Field(
        default_factory=lambda: ["log_feature_sample=1", "cache_ttl_seconds=0"]
    )
    concurrency: int = Field(8, ge=1)

    @property
    def end_date(self) -> date:
        """The generated window ends yesterday, so monitoring's window (ending now) holds it."""
        return (datetime.now(UTC) - timedelta(days=1)).date()

    @property
    def shift_at(self) -> date:
        return self.end_date - timedelta(days=self.shift_days - 1)

    @property
    def project(self) -> str:
        return f"tw_scenario_{self.name}".replace("-", "_")


class ScenarioResult(BaseModel):
    name: str
    shifted: bool
    shift: dict[str, Any] | None
    champion: str
    champion_test_ndcg: float | None  # on its own (pre-shift) test window
    replayed_events: int
    replayed_requests: int
    request_errors: int
    error_samples: list[str] = Field(default_factory=list)
    loop: PassOutcome
    serving_version_after: str | None
    seconds: dict[str, float]
    shift_to_decision_s: float
    shift_to_promotion_s: float | None


def run_scenario(
    cfg: ScenarioConfig, root: Path, step: Callable[[str], None] = lambda _: None
) -> ScenarioResult:
    """Run the scenario in `root` (created; an earlier run's outputs there are removed)."""
    seconds: dict[str, float] = {}
    clear_outputs(root)
    env = workspace_env(root, cfg.project, cfg.redis_url)
    env.setdefault("TAILWISE_DEMO", "1")
    # HAProxy's side listeners default to fixed ports another server on the machine may hold.
    env["RAY_SERVE_HAPROXY_METRICS_PORT"] = str(free_port())
    env["RAY_SERVE_HAPROXY_STATS_PORT"] = str(free_port())
    commands = LoopConfig(root=root, env=env)
    with _timer(seconds, "generate", step):
        prepare(root, cfg.params)
        replay = write_world(cfg, root)
    with _timer(seconds, "train champion", step):
        run_command(commands, ["dvc", "repro", "evaluate"])
        champion = registry.champion(root / "data/models")
        if champion is None:
            raise ScenarioError(f"dvc repro published no model in {root}/data/models")
        tailwise_command(commands, "features", "apply")
        tailwise_command(commands, "features", "materialize")
    url = f"http://127.0.0.1:{cfg.port}"
    with _timer(seconds, "start serving", step):
        tailwise_command(commands, "serve", "--stop")
        settings = [a for s in cfg.serve_settings for a in ("--set", s)]
        tailwise_command(commands, "serve", "--background", "--port", str(cfg.port), *settings)
    try:
        shift_started = time.monotonic()
        with _timer(seconds, "replay", step):
            write_catalogue(root, replay)
            sent = replay_traffic(cfg, url, write_key(root, env), replay, step)
        with _timer(seconds, "loop", step):
            loop = run_pass(
                LoopConfig(root=root, window=f"{cfg.shift_days + 1}d", serve_url=url, env=env),
                lambda name: step(f"loop: {name}"),
            )
        decided = time.monotonic()
        after = recommend_version(url, cfg)
    finally:
        tailwise_command(commands, "serve", "--stop")
    promotion = loop.seconds.get("reload")
    result = ScenarioResult(
        name=cfg.name,
        shifted=cfg.shift is not None,
        shift=_shift(cfg).model_dump(mode="json") if cfg.shift is not None else None,
        champion=champion,
        champion_test_ndcg=_own_ndcg(root / "data/models" / champion),
        replayed_events=sent["events"],
        replayed_requests=sent["requests"],
        request_errors=sent["errors"],
        error_samples=sent["error_samples"],
        loop=loop,
        serving_version_after=after,
        seconds=seconds,
        shift_to_decision_s=round(
            seconds["replay"] + sum(loop.seconds.get(s, 0) for s in ("consume", "monitor")), 1
        ),
        shift_to_promotion_s=round(decided - shift_started, 1) if promotion else None,
    )
    (root / "scenario.json").write_text(result.model_dump_json(indent=2) + "\n")
    return result


OUTPUTS = ("source", "replay", "data", "monitoring", ".tailwise", "dvc.lock", "scenario.json")


def clear_outputs(root: Path) -> None:
    """Remove what an earlier scenario run wrote in `root` (its DVC project stays)."""
    for name in OUTPUTS:
        path = root / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _shift(cfg: ScenarioConfig) -> ShiftConfig:
    return ShiftConfig.model_validate({**(cfg.shift or {}), "at": cfg.shift_at})


def write_world(cfg: ScenarioConfig, root: Path) -> dict[str, pd.DataFrame]:
    """Generate the world; data/raw gets what was known before the shift, the rest is
    returned (and kept in replay/) for the replay."""
    gen = GenerateConfig(
        users=cfg.users,
        items=cfg.items,
        days=cfg.days,
        seed=cfg.seed,
        end_date=cfg.end_date,
        defects=DefectRates.off(),
        shift=_shift(cfg) if cfg.shift is not None else None,
    )
    source = root / "source"
    generate(gen, source)
    at = pd.Timestamp(cfg.shift_at, tz="UTC")
    events = pd.read_parquet(source / "events.parquet")
    stamp = pd.to_datetime(events["timestamp"], utc=True, format="ISO8601")
    items = pd.read_parquet(source / "items.parquet")
    created = pd.to_datetime(items["created_at"], utc=True, format="ISO8601")
    raw = root / "data/raw"
    raw.mkdir(parents=True, exist_ok=True)
    pd.read_parquet(source / "users.parquet").to_parquet(raw / "users.parquet", index=False)
    items.loc[created < at].to_parquet(raw / "items.parquet", index=False)
    events.loc[stamp < at].to_parquet(raw / "events.parquet", index=False)
    truth = raw / "ground_truth"
    if truth.exists():
        shutil.rmtree(truth)
    (source / "ground_truth").rename(truth)
    later = events.loc[stamp >= at].assign(ts_utc=stamp[stamp >= at]).sort_values("ts_utc")
    (root / "replay").mkdir(exist_ok=True)
    later.drop(columns="ts_utc").to_parquet(root / "replay/events.parquet", index=False)
    items.to_parquet(root / "replay/items.parquet", index=False)
    return {"events": later, "items": items}


def write_catalogue(root: Path, replay: dict[str, pd.DataFrame]) -> None:
    """The catalogue feed catches up at the shift: new items reach data/raw (the retrain
    reads them; the champion never saw them)."""
    replay["items"].to_parquet(root / "data/raw/items.parquet", index=False)


def write_key(root: Path, env: dict[str, str]) -> str | None:
    """The write-scope key /events takes: TAILWISE_API_KEYS, else the one the background
    server wrote (the admin key the loop reloads with is refused on /events)."""
    keys = [k.strip() for k in env.get("TAILWISE_API_KEYS", "").split(",") if k.strip()]
    if keys:
        return keys[0]
    path = root / KEY_FILE
    return path.read_text().strip() if path.exists() else None


def replay_traffic(
    cfg: ScenarioConfig,
    url: str,
    key: str | None,
    replay: dict[str, pd.DataFrame],
    step: Callable[[str], None],
) -> dict[str, Any]:
    """Each day: its events through POST /events, then recommendations for the people of a
    sample of that day's events, in the context (device, country, time) of that event."""
    events = replay["events"]
    rng = np.random.default_rng(cfg.seed)
    counts: dict[str, Any] = {"events": 0, "requests": 0, "errors": 0}
    errors: list[str] = []
    days = events["ts_utc"].dt.floor("D")
    columns = [c for c in events.columns if c != "ts_utc"]
    with ThreadPoolExecutor(cfg.concurrency) as pool:
        for n, (day, part) in enumerate(events.groupby(days, sort=True), start=1):
            step(f"replay: day {n}/{days.nunique()} ({day:%Y-%m-%d})")
            records = _records(part[columns])
            batches = [records[i : i + BATCH] for i in range(0, len(records), BATCH)]
            for error in pool.map(lambda b: _post(url, "/events", {"events": b}, key), batches):
                _count(counts, errors, error)
            counts["events"] += len(records)
            # Requests one second before sampled interactions, as the reference draws its
            # rows; context.timestamp gives the request-time features that instant.
            chosen = part.iloc[
                np.sort(rng.choice(len(part), min(cfg.requests_per_day, len(part)), replace=False))
            ]
            bodies = [
                {
                    "user_id": r.user_id,
                    "k": 10,
                    "context": {
                        **{k: getattr(r, k) for k in ("device", "country") if _set(r, k)},
                        "timestamp": (r.ts_utc - pd.Timedelta(seconds=1)).isoformat(),
                    },
                }
                for r in chosen.itertuples()
            ]
            for error in pool.map(lambda b: _post(url, "/recommend", b, key), bodies):
                _count(counts, errors, error)
            counts["requests"] += len(bodies)
    counts["error_samples"] = errors[:5]
    return counts


def _count(counts: dict[str, Any], errors: list[str], error: str | None) -> None:
    if error is not None:
        counts["errors"] += 1
        errors.append(error)


def _set(row: Any, name: str) -> bool:
    value = getattr(row, name, None)
    return isinstance(value, str) and bool(value)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for record in frame.to_dict(orient="records"):
        out.append({k: v for k, v in record.items() if not _missing(v)})
    return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _post(url: str, path: str, body: dict[str, Any], key: str | None) -> str | None:
    """None when the API answered 2xx, else what went wrong (status and body, or the error)."""
    headers = {"Content-Type": "application/json", **({"X-API-Key": key} if key else {})}
    request = urllib.request.Request(
        url + path, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return None if 200 <= reply.status < 300 else f"{path} {reply.status}"
    except urllib.error.HTTPError as exc:
        return f"{path} {exc.code}: {exc.read()[:300]!r}"
    except OSError as exc:
        return f"{path}: {exc!r}"


def recommend_version(url: str, cfg: ScenarioConfig) -> str | None:
    """The model version the serving app answers with now."""
    request = urllib.request.Request(
        url + "/recommend",
        data=json.dumps({"user_id": "scenario-probe", "k": 1}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return str(json.loads(reply.read())["model_version"])
    except OSError:
        return None


def _own_ndcg(folder: Path) -> float | None:
    path = folder / "metrics.json"
    if not path.exists():
        return None
    value = json.loads(path.read_text()).get("two_tower+ranker", {}).get("ndcg@10")
    return None if value is None else float(value)


class _timer:
    def __init__(self, seconds: dict[str, float], name: str, step: Callable[[str], None]):
        self.seconds, self.name, self.step = seconds, name, step

    def __enter__(self) -> None:
        self.step(self.name)
        self.started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.seconds[self.name] = round(time.perf_counter() - self.started, 1)
