"""cold_start.parquet: popular items by context from the last days of weighted events."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.training.conftest import events
from training.cold_start import COLUMNS, popular_by_context


def with_context(frame: pd.DataFrame, devices: list[str], countries: list[str]) -> pd.DataFrame:
    return frame.assign(device=devices, country=countries)


def test_scores_are_weighted_shares_per_context_and_old_events_are_left_out() -> None:
    log = with_context(
        events(
            ("u1", "i1", "2026-01-01"),  # older than 14 days before the last event
            ("u1", "i2", "2026-01-20", "purchase"),
            ("u2", "i3", "2026-01-21"),
            ("u3", "i3", "2026-01-22"),
            ("u3", "i4", "2026-01-25", "page_view"),
        ),
        ["mobile", "mobile", "desktop", "mobile", "mobile"],
        ["DE", "DE", "FR", "FR", None],
    )
    table = popular_by_context(log, days=14, top=200)
    assert list(table.columns) == list(COLUMNS)
    every = table[table["dimension"] == "all"]
    assert list(every["item_id"]) == ["i2", "i3", "i4"]  # 5.0, 1.0 + 1.0, 0.1
    assert list(every["value"]) == ["", "", ""] and list(every["rank"]) == [1, 2, 3]
    np.testing.assert_allclose(every["score"], [5 / 7.1, 2 / 7.1, 0.1 / 7.1])
    assert "i1" not in set(table["item_id"])
    mobile = table[(table["dimension"] == "device") & (table["value"] == "mobile")]
    assert list(mobile["item_id"]) == ["i2", "i3", "i4"]
    np.testing.assert_allclose(mobile["score"].sum(), 1.0)
    countries = table[table["dimension"] == "country"]
    assert set(countries["value"]) == {"DE", "FR"}  # the event without a country counts in 'all'
    assert table["rank"].dtype == np.int64 and table["score"].dtype == np.float64


def test_top_cuts_each_context_and_ties_break_by_item_id() -> None:
    log = events(*[(f"u{n}", f"i{n % 5}", "2026-01-10") for n in range(10)])
    table = popular_by_context(log.assign(device="tv", country="NL"), top=3)
    assert table.groupby(["dimension", "value"]).size().eq(3).all()
    assert list(table.loc[table["dimension"] == "all", "item_id"]) == ["i0", "i1", "i2"]
    assert popular_by_context(log, top=3)["dimension"].unique().tolist() == ["all"]


def test_bad_arguments_name_the_problem() -> None:
    with pytest.raises(ValueError, match="weight"):
        popular_by_context(pd.DataFrame({"item_id": [], "timestamp": []}))
    with pytest.raises(ValueError, match="days"):
        popular_by_context(events(("u1", "i1", "2026-01-01")), days=0)
