"""Benchmark: the dataset matrix, generate -> ingest -> train on every shape.

For each dataset (the six `tailwise generate --profile` shapes, the default generator at
a larger size (large-shop: 14,000 items, 150,000+ events, where training time is judged)
and the hand-written corner-shop export, bench/data/corner-shop/), in a workspace of its own
(bench/work/datasets/<name>: its own params.yaml, Feast project and registry), runs the
commands a person runs, each as its own process: `tailwise generate --profile NAME` (for
corner-shop its make_data.py, then `ingest --mapping`), `tailwise ingest`, `tailwise
train`. Records rows in / kept / quarantined per table (quality_report.json), the
training time (the manifest's training_seconds and seconds per stage; the train command's
wall time besides),
NDCG@10 of the platform (the version's model: union+ranker with params.yaml's
training.ranker.candidates), most popular, EASE and, when
the version's manifest says repeats are allowed, buy-again, all read from the evaluation
`train` writes (metrics.json) and the published version's manifest. A stage that fails is
recorded with its exit code and message and the next dataset runs.

    .venv/bin/python bench/datasets.py                        # every dataset (long)
    .venv/bin/python bench/datasets.py --datasets minimal --fast
    .venv/bin/python bench/datasets.py --set training.ranker.candidates=two_tower --name datasets_two_tower

Writes bench/results/datasets.json and datasets.md (bench/datasets_report.py renders the
table; a dataset's "why" survives re-runs, so fill it in the JSON and re-render).
Datasets without consent columns are taken as consented (ingest.consent_default: true).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from datasets_report import assess, render  # noqa: E402

from serving.commands.serve import parse_overrides  # noqa: E402  (the --set of `tailwise serve`)

PROFILES = [
    "ratings-1990s",
    "grocery-rebuy",
    "no-attributes",
    "sparse-tail",
    "big-catalogue",
    "minimal",
]
# The default generator at a size: `tailwise generate` with these options.
SIZED = {"large-shop": ["--users", "8500", "--items", "14000", "--days", "60"]}
HAND_WRITTEN = {"corner-shop": ROOT / "bench" / "data" / "corner-shop"}
DATASETS = [*PROFILES, *SIZED, *HAND_WRITTEN]
TAILWISE = str(ROOT / ".venv" / "bin" / "tailwise")
PYTHON = str(ROOT / ".venv" / "bin" / "python")
# The models the table compares (metrics.json keys) and the metric; the platform's key
# follows training.ranker.candidates (training.pipeline.PLATFORM).
PLATFORM = {"two_tower": "two_tower+ranker", "union": "union+ranker"}
POPULAR, EASE, METRIC = "most_popular", "ease", "ndcg@10"
FAST = {  # --fast: the contract fuzz test's training settings, for a quick check
    "retrieval": {"embedding_dim": 8, "epochs": 1, "batch_size": 256},
    "ranker": {"n_candidates": 50, "n_estimators": 20, "min_child_weight": 1},
    "tune": {"enabled": False},
}
ANSI = re.compile(r"\x1b\[[0-9;]*m")
BOX = re.compile(r"^\s*[│┃┏┓┗┛┡┩━─╭╮╰╯═└┘┌┐]")  # rich's panels, tables and tracebacks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "datasets")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--fast", action="store_true", help="tiny training settings")
    parser.add_argument("--timeout", type=int, default=3 * 3600, help="seconds per stage")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a params.yaml setting for every dataset, dotted (training.ranker.candidates=union)",
    )
    parser.add_argument("--name", default="datasets", help="results file stem in --out")
    args = parser.parse_args()
    try:
        candidates = _settings(args.fast, args.set)["training"]["ranker"]["candidates"]
    except typer.BadParameter as exc:
        parser.error(str(exc))
    if candidates not in PLATFORM:
        parser.error(f"training.ranker.candidates: {candidates!r} is not one of {sorted(PLATFORM)}")
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        parser.error(f"--datasets: unknown {unknown}; valid: {', '.join(DATASETS)}")
    previous = _previous(args.out / f"{args.name}.json")
    results = []
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name}", flush=True)
        result = run_dataset(name, args.work / name, args.seed, args.fast, args.timeout, args.set)
        result["why"] = previous.get(name, {}).get("why", "")
        results.append(result)
        print(f"[{i}/{len(names)}] {name}: {result['status']}", flush=True)
    record = {
        "command": shlex.join(
            [".venv/bin/python", "bench/datasets.py", *sys.argv[1:]]
            if sys.argv[1:]
            else [".venv/bin/python", "bench/datasets.py"]
        ),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "git": _git_head(),
        "fast": args.fast,
        "seed": args.seed,
        "settings": parse_overrides({}, args.set),
        "models": {"platform": PLATFORM[candidates], "popularity": POPULAR, "ease": EASE},
        "all_datasets": DATASETS,
        "datasets": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.out / f"{args.name}.md").write_text(render(record))
    print(f"wrote {args.out / args.name}.json and {args.name}.md")


def run_dataset(
    name: str,
    folder: Path,
    seed: int,
    fast: bool,
    timeout: int,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """generate -> ingest -> train for one dataset; never raises for a failing stage."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    params = _params(folder, fast, overrides or [])
    env = _env(folder, params)
    result: dict[str, Any] = {"dataset": name, "status": "ok", "stages": {}}
    raw = folder / "raw"
    if name in HAND_WRITTEN:
        source = HAND_WRITTEN[name]
        generate = [PYTHON, str(source / "make_data.py"), "--out", str(raw)]
        ingest_from = ["--mapping", str(raw / "mapping.yaml")]
    else:
        shape = SIZED.get(name, ["--profile", name])
        generate = [TAILWISE, "generate", "--out", str(raw), *shape]
        generate += ["--seed", str(seed), "--params", str(params)]
        ingest_from = ["--source", str(raw)]
    ingest = [TAILWISE, "ingest", *ingest_from, "--out", "clean", "--params", str(params)]
    train = [TAILWISE, "train", "--data", "clean", "--features", "features"]
    train += ["--params", str(params), "--models", "models", "--work", "work"]
    train += ["--evaluation", "evaluation"]
    stages = [("generate", generate), ("ingest", [*ingest, "--no-show"]), ("train", train)]
    try:
        for stage, command in stages:
            outcome = _stage(stage, command, folder, env, timeout)
            result["stages"][stage] = outcome
            if stage == "generate" and name in HAND_WRITTEN and outcome["exit_code"] == 0:
                shutil.copy(HAND_WRITTEN[name] / "mapping.yaml", raw / "mapping.yaml")
            if outcome["exit_code"] != 0:
                result.update(status=f"{stage} failed", failure=outcome)
                break
    finally:
        if (folder / "registry.db").exists():
            _teardown(folder, env)
    result["rows"] = _rows(folder / "clean" / "quality_report.json") or _raw_rows(raw)
    train_stage = result["stages"].get("train", {})
    finished = train_stage.get("exit_code") == 0
    result["train_command_seconds"] = train_stage.get("seconds") if finished else None
    result.update(_quality(folder))
    result["train_seconds"] = (
        result.pop("manifest_seconds", None) or result["train_command_seconds"]
    )
    result.update(assess(result["ndcg"]))
    return result


def _stage(stage: str, command: list[str], folder: Path, env: dict, timeout: int) -> dict:
    """Run one command, its output to <stage>.log; prints a line every 30 s while it runs."""
    log = folder / f"{stage}.log"
    started = time.perf_counter()
    print(f"    {stage}: {shlex.join([Path(command[0]).name, *command[1:]])}", flush=True)
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
        code = None
        while code is None:
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                elapsed = time.perf_counter() - started
                if elapsed > timeout:
                    proc.kill()
                    proc.wait()
                    code = -9
                    break
                print(f"    {stage}: still running ({elapsed:.0f}s)", flush=True)
    seconds = round(time.perf_counter() - started, 1)
    outcome: dict[str, Any] = {"exit_code": code, "seconds": seconds, "log": _shown(log)}
    if code != 0:
        outcome["message"] = _message(log.read_text(errors="replace"), code, timeout)
    print(f"    {stage}: exit {code} in {seconds:.1f}s", flush=True)
    return outcome


def _shown(path: Path) -> str:
    """A path relative to the repository when it is inside it (results are committed)."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _message(output: str, code: int, timeout: int) -> str:
    """The error line(s) a failing command printed, else the end of its output."""
    if code == -9:
        return f"stopped after --timeout {timeout}s"
    lines = [ANSI.sub("", line).rstrip() for line in output.splitlines()]
    lines = [line for line in lines if line.strip() and not BOX.match(line)]
    if "Traceback" in output and lines:  # an uncaught exception: its last line says what
        return f"traceback: {lines[-1].strip()}"[:800]
    starts = [k for k, line in enumerate(lines) if line.lstrip().startswith("error:")]
    if starts:  # the CLI's own message (exit 3): the last one, with its wrapped lines
        return " ".join(part.strip() for part in lines[starts[-1] : starts[-1] + 6])[:800]
    return " ".join(part.strip() for part in lines[-6:])[:800]


def _settings(fast: bool, overrides: list[str]) -> dict[str, Any]:
    """params.yaml as every dataset runs it: consent by default, --fast, the --set items."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    # Profiles without consent columns: their owner has consent by other means.
    params["ingest"]["consent_default"] = True
    if fast:
        for key, values in FAST.items():
            params["training"].setdefault(key, {}).update(values)
    return parse_overrides(params, overrides)


def _params(folder: Path, fast: bool, overrides: list[str]) -> Path:
    params = _settings(fast, overrides)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def _env(folder: Path, params: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TAILWISE_DEMO", None)
    env.update(
        {
            "TF_USE_LEGACY_KERAS": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "TAILWISE_HMAC_KEY": env.get("TAILWISE_HMAC_KEY") or uuid.uuid4().hex * 2,
            "TAILWISE_HOME": str(folder / "home"),
            "TAILWISE_FEATURE_REPO": str(ROOT / "feature_repo"),
            "TAILWISE_FEATURES_DIR": str(folder / "features"),
            "TAILWISE_FEAST_PROJECT": f"tw_bench_{uuid.uuid4().hex[:8]}",
            "TAILWISE_FEAST_REGISTRY": str(folder / "registry.db"),
            "TAILWISE_PARAMS": str(params),
            "COLUMNS": "200",  # error messages on one line in the logs
        }
    )
    return env


def _teardown(folder: Path, env: dict) -> None:
    """Remove the dataset's Feast project (its Redis keys) once it is measured."""
    code = (
        "from tailwise.features.store import open_store, teardown\n"
        "from tailwise.settings import Settings\n"
        "s = Settings()\n"
        "teardown(s, open_store(s))\n"
    )
    done = subprocess.run([PYTHON, "-c", code], cwd=folder, env=env, capture_output=True)
    if done.returncode != 0:
        print(f"    teardown of {env['TAILWISE_FEAST_PROJECT']} failed (exit {done.returncode})")


def _rows(report: Path) -> dict[str, dict[str, int]]:
    """Per table: input, kept, quarantined (and the other buckets) from ingest's report."""
    if not report.exists():
        return {}
    tables = json.loads(report.read_text()).get("tables", {})
    keys = ("input", "kept", "quarantined", "duplicates_merged", "excluded_no_consent")
    out = {}
    for table in ("users", "items", "events"):
        entry = tables.get(table) or {}
        out[table] = {k: int(entry[k]) for k in keys if isinstance(entry.get(k), int | float)}
    return out


def _raw_rows(raw: Path) -> dict[str, dict[str, int]]:
    """Rows the generator wrote, when ingest left no report (its input, nothing kept)."""
    record = raw / "profile.json"
    if not record.exists():
        return {}
    rows = json.loads(record.read_text())["rows"]
    return {table: {"input": int(n)} for table, n in rows.items()}


def _quality(folder: Path) -> dict[str, Any]:
    """NDCG@10 per compared model and the repeat decision, from what `train` wrote."""
    metrics_file = folder / "evaluation" / "metrics.json"
    if not metrics_file.exists():
        return {"ndcg": {}, "allow_repeats": None}
    metrics = json.loads(metrics_file.read_text())
    buy_again = next((k for k in metrics if "buy" in k.lower() and "again" in k.lower()), None)
    candidates = yaml.safe_load((folder / "params.yaml").read_text())["training"]["ranker"]
    models = {"platform": PLATFORM[candidates["candidates"]], "popularity": POPULAR, "ease": EASE}
    repeats = _repeats(folder / "models")
    if repeats and buy_again:
        models["buy_again"] = buy_again
    ndcg = {
        role: metrics[key].get(METRIC)
        for role, key in models.items()
        if isinstance(metrics.get(key), dict)
    }
    manifest = _manifest(folder / "models")
    return {
        "ndcg": ndcg,
        "allow_repeats": repeats,
        "buy_again_model": buy_again,
        "manifest_seconds": manifest.get("training_seconds"),
        "stage_seconds": manifest.get("stage_seconds") or {},
    }


def _manifest(models: Path) -> dict[str, Any]:
    """The published version's manifest.json ({} when there is none)."""
    latest = models / "LATEST"
    if not latest.exists():
        return {}
    manifest = models / latest.read_text().strip() / "manifest.json"
    return json.loads(manifest.read_text()) if manifest.exists() else {}


def _repeats(models: Path) -> bool | None:
    value = (_manifest(models).get("recommend") or {}).get("allow_repeats")
    return bool(value) if value is not None else None


def _previous(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    return {d["dataset"]: d for d in json.loads(path.read_text()).get("datasets", [])}


def _git_head() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return done.stdout.strip()


if __name__ == "__main__":
    main()
