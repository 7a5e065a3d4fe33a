"""Drawn event histories for the candidate sources: repeats, purchases, missing weights,
devices and countries with gaps, item groups with gaps, and items new after the cut."""

from __future__ import annotations

import numpy as np
import pandas as pd

CUT = pd.Timestamp("2026-10-20", tz="UTC")
KINDS = ["product_view", "add_to_cart", "purchase", "Purchase"]


def drawn(seed: int, users: int = 30, n_items: int = 40) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events over September-October (some after the cut, some of items new then) and a
    catalogue whose optional columns have gaps."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        for _ in range(int(rng.integers(0, 25))):
            item = f"i{int(rng.zipf(1.6)) % n_items:02d}"
            day = pd.Timestamp("2026-09-01", tz="UTC") + pd.Timedelta(
                seconds=int(rng.integers(0, 55 * 86_400))
            )
            if day >= CUT and rng.random() < 0.3:
                item = f"new{int(rng.integers(0, 3))}"
            rows.append(
                {
                    "user_id": f"u{u:02d}",
                    "item_id": item,
                    "timestamp": day,
                    "event_type": KINDS[int(rng.integers(0, 4))],
                    "weight": float(rng.choice([0.1, 1.0, 3.0, 5.0, np.nan])),
                    "device": [None, "mobile", "desktop"][int(rng.integers(0, 3))],
                    "country": [None, "DE", "FR", "NL"][int(rng.integers(0, 4))],
                }
            )
    items = pd.DataFrame(
        {
            "item_id": [f"i{i:02d}" for i in range(n_items)],
            "category": [None if i % 7 == 0 else f"c{i % 4}" for i in range(n_items)],
            "brand": [f"b{i % 3}" if i % 5 else None for i in range(n_items)],
            # Entered the catalogue a day apart from August on (some after the cut, one
            # unknown, two on the same day).
            "created_at": [
                None if i == 3 else pd.Timestamp("2026-08-01", tz="UTC") + pd.Timedelta(days=i)
                for i in range(n_items - 1)
            ]
            + [pd.Timestamp("2026-08-01", tz="UTC") + pd.Timedelta(days=n_items - 2)],
        }
    )
    return pd.DataFrame(rows), items


def drawn_profiles(seed: int, users: int = 30) -> pd.DataFrame:
    """Profiles of drawn()'s users plus people without events: gaps, a value held by
    one person, an empty column and an integer one (age)."""
    rng = np.random.default_rng(1000 + seed)
    n = users + 5
    return pd.DataFrame(
        {
            "user_id": [f"u{u:02d}" for u in range(n)],
            "age_band": [
                [None, "18-24", "25-34", "55-64"][int(rng.integers(0, 4))] for _ in range(n)
            ],
            "gender": ["female" if rng.random() < 0.5 else "male" for _ in range(n - 1)] + ["x"],
            "country": [[None, "DE", "FR"][int(rng.integers(0, 3))] for _ in range(n)],
            "income_band": [None] * n,
            "age": rng.integers(18, 80, n),
        }
    )
