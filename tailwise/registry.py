"""The model registry: which version serves, and every decision that made it so.

    <models>/LATEST          the champion: the version serving loads and reloads to
    <models>/registry.jsonl  one JSON line per decision, appended, never rewritten:
        published  a version was evaluated and copied in (the first one becomes champion)
        promoted   a challenger beat the champion on the newest holdout window
        rejected   it did not (the numbers and reasons say why)

Training appends `published`, the challenge appends `promoted` / `rejected` and moves
LATEST; `tailwise models list` reads it. Appends are single short writes of one line, so a
reader never sees half an entry.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

REGISTRY, LATEST = "registry.jsonl", "LATEST"
Action = Literal["published", "promoted", "rejected"]


class Entry(BaseModel):
    """One decision about one version."""

    at: datetime
    action: Action
    version: str
    champion: str | None = Field(None, description="The champion when the decision was made.")
    reasons: list[str] = Field(default_factory=list)
    scores: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="champion / challenger -> metric -> value"
    )
    window: dict[str, str] = Field(default_factory=dict, description="start / end (UTC)")


def champion(models_dir: Path) -> str | None:
    """The version LATEST names, or None before the first one."""
    path = models_dir / LATEST
    return path.read_text().strip() or None if path.exists() else None


def set_champion(models_dir: Path, version: str) -> None:
    """Point LATEST at `version` (write then rename: readers see the old or the new name)."""
    staged = models_dir / f".{LATEST}.tmp"
    staged.write_text(version + "\n")
    staged.replace(models_dir / LATEST)


def record(models_dir: Path, entry: Entry) -> Entry:
    models_dir.mkdir(parents=True, exist_ok=True)
    with (models_dir / REGISTRY).open("a") as f:
        f.write(entry.model_dump_json() + "\n")
    return entry


def entries(models_dir: Path) -> list[Entry]:
    """Every decision, oldest first; a line that is not an entry is an error naming it."""
    path = models_dir / REGISTRY
    if not path.exists():
        return []
    out = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(Entry.model_validate_json(line))
        except ValueError as exc:
            raise ValueError(f"{path} line {n}: not a registry entry: {exc}") from exc
    return out


def now() -> datetime:
    return datetime.now(UTC)


def versions(models_dir: Path) -> list[dict[str, Any]]:
    """One row per version: its last decision, when it was made, and whether it serves."""
    current = champion(models_dir)
    rows: dict[str, dict[str, Any]] = {}
    for e in entries(models_dir):
        row = rows.setdefault(e.version, {"version": e.version, "published": e.at})
        row.update(
            status=e.action,
            decided=e.at,
            reasons=e.reasons,
            scores=e.scores.get("challenger") or e.scores.get("version") or {},
        )
    if current is not None and current not in rows:  # published before the registry existed
        when = datetime.fromtimestamp((models_dir / LATEST).stat().st_mtime, UTC)
        rows[current] = {
            "version": current,
            "published": when,
            "status": "champion",
            "decided": when,
            "reasons": ["named in LATEST before the registry recorded decisions"],
            "scores": {},
        }
    for row in rows.values():
        row["serving"] = row["version"] == current
    return sorted(rows.values(), key=lambda r: r["published"])


def summary_json(models_dir: Path) -> str:
    return json.dumps(versions(models_dir), default=str, indent=2)
