"""The dataset matrix's table: bench/results/datasets.json -> datasets.md.

`assess` turns a dataset's NDCG@10 figures into the goals of the matrix (the platform at
least 1.5x most popular, and not more than 10% below EASE or, where repeats are allowed,
buy-again); `render` writes the Markdown table with the command that produced it. After
filling a dataset's "why" in the JSON, re-render without re-running:

    .venv/bin/python bench/datasets_report.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
POPULARITY_FACTOR = 1.5  # the platform must reach this multiple of most popular's NDCG@10
PEER_SHORTFALL = 0.10  # and fall at most this share below EASE and buy-again
# Training time goal (`tailwise train`, no tuning) on shapes at least this large.
LARGE_ITEMS, LARGE_EVENTS, LARGE_TRAIN_SECONDS = 14_000, 150_000, 300


def assess(ndcg: dict[str, float | None]) -> dict[str, Any]:
    """Ratio to popularity and each goal met (True/False) or not measurable (None)."""
    platform, popularity = ndcg.get("platform"), ndcg.get("popularity")
    ratio = platform / popularity if platform is not None and popularity else None
    goals: dict[str, bool | None] = {
        "beats_popularity_1_5x": None if ratio is None else ratio >= POPULARITY_FACTOR
    }
    for peer in ("ease", "buy_again"):
        value = ndcg.get(peer)
        goals[f"within_10pct_of_{peer}"] = (
            None if platform is None or value is None else platform >= (1 - PEER_SHORTFALL) * value
        )
    return {"platform_over_popularity": ratio, "goals": goals}


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _flag(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "**no**")


def _rows(rows: dict[str, dict[str, int]], key: str) -> str:
    if not rows:
        return "-"
    return " / ".join(f"{rows.get(t, {}).get(key, '-'):,}" for t in ("users", "items", "events"))


def _status(d: dict[str, Any]) -> str:
    if d["status"] == "ok":
        return "ok"
    failure = d.get("failure", {})
    message = str(failure.get("message", "")).replace("|", "\\|")
    return f"{d['status']} (exit {failure.get('exit_code')}): {message}"


def render(record: dict[str, Any]) -> str:
    lines = [
        "# Dataset matrix: generate -> ingest -> train on every shape",
        "",
        f"Command: `{record['command']}`  ",
        f"Date: {record['date']}; commit {record['git']}; {record['machine']}; seed "
        f"{record['seed']}; training settings: {'fast (--fast)' if record['fast'] else 'params.yaml'}.  ",
        f"NDCG@10 on each dataset's test window, from the evaluation `tailwise train` writes: "
        f"platform = `{record['models']['platform']}`, popularity = "
        f"`{record['models']['popularity']}`, EASE = `{record['models']['ease']}`, buy-again "
        "only where the version's manifest allows repeats. Rows are users / items / events "
        "(ingest's quality_report.json). Goals: platform >= 1.5x popularity; at most 10% "
        "below EASE and buy-again. Where a goal is not met, `why` says why (kept across "
        "re-runs in datasets.json).",
        "",
        "| dataset | rows in | kept | quarantined | train s | platform | popularity | EASE "
        "| buy-again | platform / popularity | >= 1.5x popularity | within 10% of EASE "
        "| within 10% of buy-again | status | why |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in record["datasets"]:
        ndcg = d.get("ndcg", {})
        verdict = assess(ndcg)
        goals = verdict["goals"]
        ratio = verdict["platform_over_popularity"]
        lines.append(
            "| "
            + " | ".join(
                [
                    d["dataset"],
                    _rows(d.get("rows", {}), "input"),
                    _rows(d.get("rows", {}), "kept"),
                    _rows(d.get("rows", {}), "quarantined"),
                    _num(d.get("train_seconds"), 0),
                    _num(ndcg.get("platform")),
                    _num(ndcg.get("popularity")),
                    _num(ndcg.get("ease")),
                    _num(ndcg.get("buy_again")),
                    "-" if ratio is None else f"{ratio:.2f}x",
                    _flag(goals["beats_popularity_1_5x"]),
                    _flag(goals["within_10pct_of_ease"]),
                    _flag(goals["within_10pct_of_buy_again"]),
                    _status(d),
                    str(d.get("why", "")).replace("|", "\\|"),
                ]
            )
            + " |"
        )
    lines += _timing_lines(record["datasets"])
    ran = {d["dataset"] for d in record["datasets"]}
    missing = [name for name in record.get("all_datasets", []) if name not in ran]
    if missing:
        lines += ["", f"Not run in this record: {', '.join(missing)}."]
    lines += [
        "",
        "Each dataset's commands and logs: bench/work/datasets/<dataset>/ (`generate.log`, "
        "`ingest.log`, `train.log`; not committed).",
        "",
    ]
    return "\n".join(lines)


def _timing_lines(datasets: list[dict[str, Any]]) -> list[str]:
    """Seconds per training stage of each dataset, and the training time goal on the
    large shapes (kept items and events at least LARGE_ITEMS and LARGE_EVENTS)."""
    lines = [
        "",
        "Training time (`tailwise train` without tuning, s): the whole command as timed"
        " from outside (features built, training, evaluation, the report), the training"
        " stages of the version's manifest, and their seconds. Goal: the command under "
        f"{LARGE_TRAIN_SECONDS} s on a shape with at least {LARGE_ITEMS:,} items and "
        f"{LARGE_EVENTS:,} events. A stage marked `_alongside` ran in a second thread"
        " while the ones before it ran; `_wait` is what the stage then waited for it.",
        "",
        "| dataset | items | events | command s | manifest s | goal | stages |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in datasets:
        rows = d.get("rows", {})
        items = rows.get("items", {}).get("kept")
        events = rows.get("events", {}).get("kept")
        seconds = d.get("train_command_seconds")
        large = bool(items and events and items >= LARGE_ITEMS and events >= LARGE_EVENTS)
        goal = "-"
        if large:
            goal = "yes" if seconds is not None and seconds < LARGE_TRAIN_SECONDS else "**no**"
        stages = ", ".join(f"{k} {v:g}" for k, v in (d.get("stage_seconds") or {}).items())
        lines.append(
            f"| {d['dataset']} | {'-' if items is None else f'{items:,}'} | "
            f"{'-' if events is None else f'{events:,}'} | {_num(seconds, 0)} | "
            f"{_num(d.get('train_seconds'), 0)} | {goal} | "
            f"{stages or '-'} |"
        )
    return lines


def main() -> None:
    results = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "bench" / "results"
    record = json.loads((results / "datasets.json").read_text())
    (results / "datasets.md").write_text(render(record))
    print(f"wrote {results / 'datasets.md'}")


if __name__ == "__main__":
    main()
