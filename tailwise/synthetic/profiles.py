"""Dataset profiles: the generator's output reshaped into shapes real sources have.

`tailwise generate --profile NAME` picks sizes (flags win over the profile, the profile
over params' `generate:`), runs the generator, then rewrites users, items and events in
the output folder with the profile's reshape (tailwise/synthetic/reshape.py), seeded
from the generator's seed, and records what it did in `profile.json`. Profiles that move
or rebuild the events remove `ground_truth/`, which describes the generator's timeline,
not theirs; `defects.*` still list the generator's defects, some in rows a reshape left out.

Profiles without consent columns (`no-attributes`, `minimal`) need
`ingest.consent_default: true` in params.yaml, as any source without them does.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from tailwise.synthetic import reshape
from tailwise.synthetic.config import GenerateConfig
from tailwise.synthetic.reshape import Frames, Window

TABLES = ("users", "items", "events")
Sizes = Callable[[dict[str, int]], dict[str, int]]


def _fixed(**sizes: int) -> Sizes:
    return lambda given: {**sizes, **given}


def _big(given: dict[str, int]) -> dict[str, int]:
    users = given.get("users", 2000)
    return {"users": users, "items": max(20_000, 10 * users), "days": 30, **given}


@dataclass(frozen=True)
class Profile:
    """A named dataset shape: its sizes rule, its reshape and what it promises."""

    name: str
    summary: str
    sizes: Sizes
    reshape: Callable[[Frames, np.random.Generator, Window], Frames] | None = None
    recent: bool = False  # the generated window is moved to end yesterday
    keeps_truth: bool = True


def _no_attributes(frames: Frames, rng: np.random.Generator, window: Window) -> Frames:
    return {**frames, "users": frames["users"][["user_id"]], "items": frames["items"][["item_id"]]}


def _minimal(frames: Frames, rng: np.random.Generator, window: Window) -> Frames:
    return reshape.only_required(frames)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "ratings-1990s",
            "explicit 1-5 ratings only (one per user and item), dated 1995-1999, no context",
            _fixed(users=1000, items=400, days=60),
            reshape.ratings_1990s,
            keeps_truth=False,
        ),
        Profile(
            "grocery-rebuy",
            "purchases only, most of them re-buys of a few staples, ending yesterday",
            _fixed(users=1000, items=300, days=60),
            reshape.grocery_rebuy,
            recent=True,
            keeps_truth=False,
        ),
        Profile(
            "no-attributes",
            "items with only item_id, users with only user_id (no consent columns)",
            _fixed(users=1000, items=400, days=30),
            _no_attributes,
        ),
        Profile(
            "sparse-tail",
            "few sessions per user (Zipf), eight burst days over a year ending yesterday, "
            "most items rarely or never seen",
            _fixed(users=2000, items=2000, days=60),
            reshape.sparse_tail,
            recent=True,
            keeps_truth=False,
        ),
        Profile(
            "big-catalogue",
            "20,000+ items, at least 10x the users",
            _big,
        ),
        Profile(
            "minimal",
            "only the required columns, tiny (200 users, 100 items, 30 days)",
            _fixed(users=200, items=100, days=30),
            _minimal,
        ),
    )
}


def profile_help() -> str:
    """One line per profile, for the command's help."""
    return "; ".join(f"{p.name}: {p.summary}" for p in PROFILES.values())


def get_profile(name: str) -> Profile:
    from tailwise.params import ParamsError

    if name not in PROFILES:
        raise ParamsError(f"--profile {name!r}: unknown profile; valid: {', '.join(PROFILES)}")
    return PROFILES[name]


def profile_sizes(name: str, given: dict[str, int]) -> dict[str, int]:
    """Users, items and days for the profile; `given` (the flags) wins."""
    return get_profile(name).sizes(given)


def apply_profile(
    name: str, cfg: GenerateConfig, out: Path, today: date | None = None
) -> dict[str, int]:
    """Reshape the tables `generate(cfg, out)` wrote in place; returns rows per table.

    `today` (default: the current UTC date) anchors the profiles whose data ends
    yesterday; the same seed, sizes and `today` give the same tables."""
    profile = get_profile(name)
    out = Path(out)
    frames = {t: pd.read_parquet(out / f"{t}.parquet") for t in TABLES}
    today = today or datetime.now(UTC).date()
    window = Window(
        cfg.window_start,
        cfg.window_end,
        datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(seconds=1),
    )
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(cfg.seed, spawn_key=(9,))))
    if profile.reshape is not None:
        frames = profile.reshape(frames, rng, window)
    for table, frame in frames.items():
        frame.to_parquet(out / f"{table}.parquet", index=False)
    if not profile.keeps_truth:
        shutil.rmtree(out / "ground_truth", ignore_errors=True)
    rows = {t: len(f) for t, f in frames.items()}
    record = {
        "profile": name,
        "summary": profile.summary,
        "seed": cfg.seed,
        "generated": {"users": cfg.users, "items": cfg.items, "days": cfg.days},
        "window": [cfg.window_start.isoformat(), cfg.window_end.isoformat()],
        "today": today.isoformat() if profile.recent else None,
        "rows": rows,
        "columns": {t: list(f.columns) for t, f in frames.items()},
        "ground_truth": profile.keeps_truth,
    }
    (out / "profile.json").write_text(json.dumps(record, indent=2) + "\n")
    return rows
