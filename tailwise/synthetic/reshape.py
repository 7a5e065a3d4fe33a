"""Reshapes of generated raw tables into the dataset shapes real sources have.

Each function takes the generator's raw frames (users, items, events as written: text
timestamps in mixed formats, defects included) and a seeded numpy generator, and returns
new frames. Timestamps that cannot be read (the generator's malformed ones) keep their
text, so the mess survives a reshape; every readable one is rewritten as ISO-8601 UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

Frames = dict[str, pd.DataFrame]


@dataclass(frozen=True)
class Window:
    """The generator's window [start, end) and the end a recent dataset moves it to."""

    start: datetime
    end: datetime
    recent_end: datetime


REQUIRED = {
    "users": ["user_id"],
    "items": ["item_id"],
    "events": ["user_id", "item_id", "event_type", "timestamp"],
}
# Strongest implicit signal -> a 1-5 star rating (before noise).
_STARS = {"purchase": 5, "add_to_cart": 4, "rating": 3, "product_view": 3, "page_view": 2}


def parse_times(text: pd.Series) -> pd.Series:
    """UTC timestamps from the generator's renderings (ISO with or without offset, epoch
    seconds); NaT where the text is not a timestamp."""
    raw = text.astype("string")
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    epoch = raw.str.fullmatch(r"-?\d+(\.\d+)?").fillna(False).astype(bool)
    if epoch.any():
        out[epoch] = pd.to_datetime(raw[epoch].astype(float), unit="s", utc=True)
    rest = ~epoch & raw.notna()
    if rest.any():
        out[rest] = pd.to_datetime(raw[rest], format="ISO8601", utc=True, errors="coerce")
    return out


def render_times(stamps: pd.Series, original: pd.Series) -> pd.Series:
    """ISO-8601 UTC text where `stamps` is set, the original text elsewhere."""
    text = stamps.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return text.where(stamps.notna(), original.astype("string")).astype(object)


TimeMap = Callable[[pd.Series], pd.Series]


def move_times(text: pd.Series, mapping: TimeMap) -> pd.Series:
    """Apply `mapping` (UTC timestamps -> UTC timestamps) to readable timestamps."""
    stamps = parse_times(text)
    moved = stamps.copy()
    ok = stamps.notna()
    if ok.any():
        moved[ok] = mapping(stamps[ok])
    return render_times(moved, text)


def stretch(start: datetime, end: datetime, new_start: datetime, new_end: datetime) -> TimeMap:
    """Linear map of [start, end) onto [new_start, new_end): order and gaps kept in
    proportion; times outside the window are moved by the same rule."""
    span = (end - start).total_seconds()
    new_span = (new_end - new_start).total_seconds()
    factor = new_span / span

    def mapping(ts: pd.Series) -> pd.Series:
        seconds = (ts - pd.Timestamp(start)).dt.total_seconds() * factor
        return pd.Timestamp(new_start) + pd.to_timedelta(seconds.round(), unit="s")

    return mapping


def only_required(frames: Frames) -> Frames:
    """Every optional column dropped."""
    return {name: frame[REQUIRED[name]].copy() for name, frame in frames.items()}


def ratings_1990s(frames: Frames, rng: np.random.Generator, window: Window) -> Frames:
    """One explicit 1-5 rating per (user, item) the person interacted with, dated 1995-1999.

    The star value follows the strongest event of the pair (purchase 5, cart 4, view 3,
    page view 2; a generated rating keeps its own value) plus noise of -2..+1. The
    generator's window is stretched onto 1995-01-01..1999-12-31, signups and item
    creation dates with it. No context columns: a ratings export has none."""
    events = frames["events"].copy()
    era = stretch(
        window.start, window.end, datetime(1995, 1, 1, tzinfo=UTC), datetime(2000, 1, 1, tzinfo=UTC)
    )
    events["stars"] = events["event_type"].map(_STARS).fillna(2).astype(int)
    rated = events["event_type"].eq("rating") & events["value"].notna()
    events.loc[rated, "stars"] = events.loc[rated, "value"].clip(1, 5).round().astype(int)
    events["at"] = parse_times(events["timestamp"])  # the earliest strongest event dates it
    events = events.sort_values(["stars", "at"], ascending=[False, True], kind="stable")
    pairs = events.drop_duplicates(["user_id", "item_id"], keep="first").sort_index().copy()
    noise = rng.choice([-2, -1, 0, 1], len(pairs), p=[0.15, 0.25, 0.4, 0.2])
    noise[pairs["event_type"].eq("rating").to_numpy()] = 0
    pairs["value"] = np.clip(pairs["stars"].to_numpy() + noise, 1, 5).astype(float)
    pairs["event_type"] = "rating"
    pairs["timestamp"] = move_times(pairs["timestamp"], era)
    # Accounts and items older than the window would stretch decades back: 1990 at most.
    floor = pd.Timestamp("1990-01-01", tz="UTC")
    users = frames["users"].copy()
    users["signup_at"] = move_times(users["signup_at"], lambda ts: era(ts).clip(lower=floor))
    items = frames["items"].copy()
    items["created_at"] = move_times(items["created_at"], lambda ts: era(ts).clip(lower=floor))
    keep = ["event_id", "user_id", "item_id", "event_type", "timestamp", "value"]
    return {"users": users, "items": items, "events": pairs[keep].reset_index(drop=True)}


def grocery_rebuy(frames: Frames, rng: np.random.Generator, window: Window) -> Frames:
    """Purchases only, most of them re-buys, the window moved to end at `recent_end`.

    Each person's staples are the first three distinct items they showed interest in;
    every session becomes an order of 2-5 lines, each a staple with probability 0.9,
    else the item the session was about (lines of one item in an order merge). Quantity
    goes to `value`, the item's list price to `price`."""
    events = frames["events"]
    events = events[events["session_id"].notna()]
    prices = frames["items"].set_index("item_id")["price"]
    staples = events.drop_duplicates(["user_id", "item_id"]).groupby("user_id")["item_id"]
    staple_lists = staples.agg(lambda s: list(s.iloc[:3])).to_dict()
    firsts = events.drop_duplicates("session_id").sort_values(["user_id", "session_id"])
    rows = []
    for first in firsts.itertuples(index=False):
        mine = staple_lists[first.user_id]
        for line in range(int(rng.integers(2, 6))):
            staple = rng.random() < 0.9
            item = mine[int(rng.integers(0, len(mine)))] if staple else first.item_id
            rows.append(
                {
                    "event_id": f"{first.event_id}-{line}",
                    "user_id": first.user_id,
                    "item_id": item,
                    "event_type": "purchase",
                    "timestamp": first.timestamp,
                    "value": float(rng.integers(1, 4)),
                    "price": prices.get(item, np.nan),
                    "session_id": first.session_id,
                    "device": first.device,
                    "channel": first.channel,
                    "country": first.country,
                }
            )
    orders = pd.DataFrame(rows).drop_duplicates(["session_id", "item_id"]).reset_index(drop=True)
    recent = stretch(
        window.start, window.end, window.start + (window.recent_end - window.end), window.recent_end
    )
    orders["timestamp"] = move_times(orders["timestamp"], recent)
    users = frames["users"].copy()
    users["signup_at"] = move_times(users["signup_at"], recent)
    items = frames["items"].copy()
    items["created_at"] = move_times(items["created_at"], recent)
    return {"users": users, "items": items, "events": orders}


def sparse_tail(frames: Frames, rng: np.random.Generator, window: Window) -> Frames:
    """Few sessions per person (Zipf-distributed, most people one), squeezed into eight
    burst days spread over the year ending at `recent_end`; the catalogue stays whole, so most
    items are rarely or never touched."""
    events = frames["events"].copy()
    sessions = events[["user_id", "session_id"]].drop_duplicates()
    sessions["order"] = sessions.groupby("user_id").cumcount()
    quota = sessions["user_id"].drop_duplicates().to_frame()
    quota["quota"] = np.minimum(rng.zipf(2.2, len(quota)), 20)
    sessions = sessions.merge(quota, on="user_id")
    kept = sessions[sessions["order"] < sessions["quota"]]
    events = events[events["session_id"].isin(kept["session_id"]) | events["session_id"].isna()]
    year_start = window.recent_end - pd.Timedelta(days=365)
    bursts = sorted(rng.choice(365, 8, replace=False))
    day_of = dict(zip(kept["session_id"], rng.choice(bursts, len(kept)), strict=True))
    stamps = parse_times(events["timestamp"])
    days = events["session_id"].map(day_of).fillna(bursts[-1]).astype(int)
    moved = (
        pd.Timestamp(year_start).floor("D")
        + pd.to_timedelta(days, unit="D")
        + (stamps - stamps.dt.floor("D"))
    )
    events["timestamp"] = render_times(moved.where(stamps.notna()), events["timestamp"])
    return {**frames, "events": events.reset_index(drop=True)}
