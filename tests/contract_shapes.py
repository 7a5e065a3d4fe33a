"""Dataset shapes the contract admits, drawn by hypothesis and written as raw tables.

A `Shape` is a handful of drawn parameters (sizes, era, timeline, event-type mix, repeat
habit, which optional columns are absent or all-null, file formats); `write_shape` turns
it into users/items/events files with a numpy generator seeded from the shape, so a
failing example shrinks on the parameters and replays byte for byte. Nothing here is
taken from the synthetic generator: these are the shapes it was not written for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import strategies as st

from tailwise.schema import EVENTS, ITEMS, USERS

EVENT_TYPES = ("page_view", "product_view", "add_to_cart", "purchase", "rating")
FORMATS = ("csv", "parquet", "jsonl")
OPTIONAL = {t.name: [c.name for c in t.columns if not c.required] for t in (USERS, ITEMS, EVENTS)}


@dataclass(frozen=True)
class Shape:
    seed: int = 0
    users: int = 30
    items: int = 40
    events_per_user: float = 8.0
    start_year: int = 2025
    span_days: int = 60
    bursty: bool = False  # events crowd into a few days instead of spreading evenly
    event_types: tuple[str, ...] = ("product_view", "purchase")
    repeat_share: float = 0.1  # chance that an event re-picks an item the person had
    absent: dict[str, tuple[str, ...]] = field(default_factory=dict)  # table -> columns
    nulled: dict[str, tuple[str, ...]] = field(default_factory=dict)  # table -> columns
    formats: tuple[str, str, str] = ("csv", "csv", "csv")  # users, items, events

    def describe(self) -> str:
        return (
            f"seed={self.seed} users={self.users} items={self.items} "
            f"epu={self.events_per_user:.1f} {self.start_year}+{self.span_days}d "
            f"bursty={self.bursty} types={','.join(self.event_types)} "
            f"repeat={self.repeat_share:.2f} absent={self.absent} nulled={self.nulled} "
            f"formats={self.formats}"
        )


@st.composite
def shapes(draw: st.DrawFn) -> Shape:
    """Tiny to small datasets of any era, mix and column subset."""
    absent: dict[str, tuple[str, ...]] = {}
    nulled: dict[str, tuple[str, ...]] = {}
    for table, columns in OPTIONAL.items():
        fate = draw(
            st.lists(st.sampled_from(("keep", "absent", "null")), min_size=len(columns)),
        )
        fate = (fate + ["keep"] * len(columns))[: len(columns)]
        absent[table] = tuple(c for c, f in zip(columns, fate, strict=True) if f == "absent")
        nulled[table] = tuple(c for c, f in zip(columns, fate, strict=True) if f == "null")
    return Shape(
        seed=draw(st.integers(0, 2**16)),
        users=draw(st.integers(8, 60)),
        items=draw(st.integers(6, 120)),
        events_per_user=draw(st.floats(2.0, 25.0)),
        start_year=draw(st.integers(1975, 2026)),
        span_days=draw(st.sampled_from((5, 21, 60, 365, 730))),
        bursty=draw(st.booleans()),
        event_types=tuple(
            draw(st.lists(st.sampled_from(EVENT_TYPES), min_size=1, max_size=4, unique=True))
        ),
        repeat_share=draw(st.sampled_from((0.0, 0.1, 0.5, 0.8))),
        absent=absent,
        nulled=nulled,
        formats=tuple(draw(st.sampled_from(FORMATS)) for _ in range(3)),  # type: ignore[arg-type]
    )


def write_shape(shape: Shape, folder: Path) -> dict[str, pd.DataFrame]:
    """Write users, items and events for `shape` into `folder`; returns the frames."""
    rng = np.random.default_rng(shape.seed)
    frames = {
        "users": _users(shape, rng),
        "items": _items(shape, rng),
        "events": _events(shape, rng),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for (name, frame), fmt in zip(frames.items(), shape.formats, strict=True):
        frame = frame.drop(columns=list(shape.absent.get(name, ())))
        for col in shape.nulled.get(name, ()):
            frame[col] = None
        frames[name] = frame
        _write(frame, folder / f"{name}.{fmt}", fmt)
    return frames


def _write(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True, date_format="iso")


def _start(shape: Shape) -> pd.Timestamp:
    start = pd.Timestamp(year=shape.start_year, month=1, day=1, tz="UTC")
    latest = pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=shape.span_days + 1)
    return min(start, latest.floor("D"))


def _users(shape: Shape, rng: np.random.Generator) -> pd.DataFrame:
    n = shape.users
    ids = [f"person-{i}" for i in range(n)]
    signup = _start(shape) - pd.to_timedelta(rng.integers(0, 400, n), unit="D")
    return pd.DataFrame(
        {
            "user_id": ids,
            "age": rng.integers(16, 90, n),
            "gender": rng.choice(["female", "male", "non_binary"], n),
            "country": rng.choice(["DE", "FR", "US", "BR"], n),
            "region": rng.choice(["north", "south"], n),
            "income_band": rng.choice(["low", "lower_mid", "upper_mid", "high"], n),
            "signup_at": [t.isoformat() for t in signup],
            "consent_personalization": rng.random(n) < 0.95,
            "consent_tracking": rng.random(n) < 0.9,
            "email": [f"p{i}@example.org" for i in range(n)],
            "full_name": [f"Person Number{i}" for i in range(n)],
            "phone": [f"+49 30 {1000000 + i}" for i in range(n)],
        }
    )


def _items(shape: Shape, rng: np.random.Generator) -> pd.DataFrame:
    n = shape.items
    created = _start(shape) - pd.to_timedelta(rng.integers(0, 200, n), unit="D")
    return pd.DataFrame(
        {
            "item_id": [f"sku-{i}" for i in range(n)],
            "title": [f"Thing {i}" for i in range(n)],
            "description": ["a thing"] * n,
            "category": rng.choice(["Food/Fruit", "Food/Dairy", "Home", "Toys|Games"], n),
            "brand": rng.choice(["acme", "globex", "initech"], n),
            "price": np.round(rng.gamma(2.0, 10.0, n), 2),
            "created_at": [t.isoformat() for t in created],
        }
    )


def _events(shape: Shape, rng: np.random.Generator) -> pd.DataFrame:
    start = _start(shape)
    popularity = rng.zipf(1.6, shape.items).astype(float)
    popularity /= popularity.sum()
    rows = []
    burst_days = rng.integers(0, shape.span_days, 4)
    for u in range(shape.users):
        count = max(1, int(rng.poisson(shape.events_per_user)))
        had: list[int] = []
        for _ in range(count):
            if had and rng.random() < shape.repeat_share:
                item = int(rng.choice(had))
            else:
                item = int(rng.choice(shape.items, p=popularity))
            had.append(item)
            day = rng.choice(burst_days) if shape.bursty else rng.integers(0, shape.span_days)
            when = start + pd.Timedelta(days=int(day), seconds=int(rng.integers(0, 86400)))
            kind = str(rng.choice(shape.event_types))
            rows.append((f"person-{u}", f"sku-{item}", kind, when, u))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "ts", "u"])
    n = len(frame)
    rating = frame["event_type"] == "rating"
    return pd.DataFrame(
        {
            "user_id": frame["user_id"],
            "item_id": frame["item_id"],
            "event_type": frame["event_type"],
            "timestamp": [t.isoformat() for t in frame["ts"]],
            "event_id": [f"ev-{i}" for i in range(n)],
            "value": np.where(rating, rng.integers(1, 6, n), rng.integers(1, 3, n)).astype(float),
            "price": np.round(rng.gamma(2.0, 10.0, n), 2),
            "session_id": [f"s{u}-{i // 5}" for i, u in enumerate(frame["u"])],
            "device": rng.choice(["mobile", "desktop", "tablet"], n),
            "channel": rng.choice(["organic", "email"], n),
            "country": rng.choice(["DE", "FR", "US"], n),
        }
    )
