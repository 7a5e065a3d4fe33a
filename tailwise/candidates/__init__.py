"""Candidate sources: many small ways to propose items, run alike by training and serving.

    events before a cut --source.fit(events, cut)--> fitted source --artifact()--> tables
    user histories --source.candidates(histories, n)--> (user_id, item_id, source, score, rank)
    {source: candidates} --union_candidates--> one row per (user, item), each source's
        score, rank and within-user normalised score as columns
    {source: candidates} + relevant pairs --candidate_recall--> recall per source and union

Sources: popularity (overall, recent and per context column), popular_in_<column> (popular items of
the categories / brands a user favours), trending, new_arrivals (the catalogue's newest
items), covisitation (time-decayed item-item),
ease (EASE item-item neighbours), popular_for_profile (popularity shaped by the user's
profile: age band, gender, country, ...), buy_again (only where repeats are allowed).
`default_sources` builds the standard set; `save_artifacts` writes a version's tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from tailwise.candidates.base import CandidateSource
from tailwise.candidates.buy_again import BuyAgain
from tailwise.candidates.covisitation import CoVisitation
from tailwise.candidates.ease import EaseNeighbours, ease_weights
from tailwise.candidates.popularity import NewArrivals, Popularity, Trending
from tailwise.candidates.profile import ProfilePopularity
from tailwise.candidates.recall import candidate_recall
from tailwise.candidates.taste import AttributePopularity
from tailwise.candidates.union import union_candidates

__all__ = [
    "AttributePopularity",
    "BuyAgain",
    "CandidateSource",
    "CoVisitation",
    "EaseNeighbours",
    "NewArrivals",
    "Popularity",
    "ProfilePopularity",
    "Trending",
    "candidate_recall",
    "default_sources",
    "ease_weights",
    "save_artifacts",
    "union_candidates",
]


def default_sources(
    allow_repeats: bool,
    context_columns: Iterable[str] = ("device", "country"),
    items: pd.DataFrame | None = None,
    item_columns: Iterable[str] = ("category_l1", "category", "brand"),
    recent_days: float = 7.0,
    profiles: pd.DataFrame | None = None,
) -> list[CandidateSource]:
    """The standard sources: popularity overall, over the last `recent_days` and per
    context column; popularity within the item groups a user favours (each of
    `item_columns` that `items` has); trending; the newest items when `items` has a
    created_at; co-visitation; EASE neighbours;
    popularity shaped by the user's profile when `profiles` (user_id + profile columns)
    has any of its columns; and buy-again when repeats are allowed."""
    sources: list[CandidateSource] = [Popularity(), Popularity(days=recent_days)]
    sources += [Popularity(by=column) for column in context_columns]
    if items is not None:
        present = [c for c in item_columns if c in items.columns and items[c].notna().any()]
        sources += [AttributePopularity(items, column) for column in present]
    sources.append(Trending())
    if items is not None and "created_at" in items.columns and items["created_at"].notna().any():
        sources.append(NewArrivals(items))
    sources += [CoVisitation(), EaseNeighbours()]
    if profiles is not None:
        profiled = ProfilePopularity(profiles)
        if profiled.column_list:
            sources.append(profiled)
    if allow_repeats:
        sources.append(BuyAgain())
    return sources


def save_artifacts(sources: Iterable[CandidateSource], folder: Path) -> list[Path]:
    """Write every fitted source's tables as `folder/<source>/<table>.parquet`."""
    written = []
    for source in sources:
        for table, frame in source.artifact().items():
            path = Path(folder) / source.name / f"{table}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.to_parquet(path, index=False)
            written.append(path)
    return written
