"""The per-request union (tailwise.candidates.online) gives the batch definition's rows:
the same items in the same order and every feature to 1e-9, for every source, on drawn
histories with repeats, purchases, devices, countries, item groups and items new since
the cut."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailwise.candidates import default_sources
from tailwise.candidates.artifacts import read_sources, write_sources
from tailwise.candidates.features import ItemStats, candidate_features, source_frames
from tailwise.candidates.online import OnlineUnion
from tailwise.candidates.profile import profile_context, request_profile
from tailwise.candidates.requests import UserEvents
from tests.candidates.drawn import CUT, drawn, drawn_profiles


def fitted(
    history: pd.DataFrame,
    items: pd.DataFrame,
    repeats: bool,
    tmp_path,
    profiles: pd.DataFrame | None = None,
) -> tuple:
    """The sources fitted at CUT, written and read back as a version stores them."""
    sources = default_sources(repeats, items=items, profiles=profiles)
    for source in sources:
        source.fit(history, CUT)
    stats = ItemStats().fit(history, CUT)
    write_sources([*sources, stats], tmp_path)
    loaded = read_sources(tmp_path)
    return [s for s in loaded if not isinstance(s, ItemStats)], loaded[-1]


@pytest.mark.parametrize("repeats", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("later_days", [0.0, 9.5])
def test_per_request_rows_equal_the_batch_rows(tmp_path, seed, repeats, later_days) -> None:
    history, items = drawn(seed)
    profiles = drawn_profiles(seed)
    sources, stats = fitted(history, items, repeats, tmp_path, profiles)
    assert "popular_for_profile" in [s.name for s in sources]
    union = OnlineUnion(sources, stats)
    assert union.profile_columns == ["age_band", "gender", "country"]  # income_band: empty
    at = CUT + pd.Timedelta(days=later_days)
    # Users with events, people with a profile and no event, and someone with neither.
    users = [*sorted(history["user_id"].unique())[:12], "u31", "u34", "nobody"]
    context = profile_context(profiles, union.profile_columns)
    frames = source_frames(sources, history, 8, users, at, not repeats, context)
    want = candidate_features(frames, stats.table, history, at, 8, keep=25)
    rows = profiles.set_index("user_id")
    for user in users:
        mine = history[history["user_id"] == user]
        row = rows.loc[user].to_dict() if user in rows.index else {}
        got = union.rows(
            UserEvents.from_frame(mine) if len(mine) else UserEvents.empty(),
            at.timestamp(),
            8,
            keep=25,
            context=request_profile(row, union.profile_columns),
            exclude_seen=not repeats,
        )
        expected = want[want["user_id"] == user]
        assert got.items.tolist() == expected["item_id"].tolist(), user
        for name, values in got.columns.items():
            np.testing.assert_allclose(
                values, expected[name].to_numpy(np.float64), rtol=1e-9, atol=1e-9, err_msg=name
            )


def test_request_context_picks_the_popularity_list(tmp_path) -> None:
    history, items = drawn(3)
    sources, stats = fitted(history, items, False, tmp_path)
    union = OnlineUnion(sources, stats)
    user = history["user_id"].iloc[0]
    mine = history[history["user_id"] == user]
    context = pd.DataFrame({"user_id": [user], "device": ["desktop"], "country": ["NL"]})
    frames = source_frames(sources, history, 5, [user], CUT, context=context)
    want = candidate_features(frames, stats.table, history, CUT, 5)
    got = union.rows(
        UserEvents.from_frame(mine),
        CUT.timestamp(),
        5,
        context={"device": "desktop", "country": "NL"},
    )
    assert got.items.tolist() == want["item_id"].tolist()
    np.testing.assert_allclose(
        got.columns["popularity_device_rank"], want["popularity_device_rank"].to_numpy(float)
    )


def test_restricted_union_keeps_only_the_named_sources(tmp_path) -> None:
    history, items = drawn(4)
    sources, stats = fitted(history, items, False, tmp_path)
    union = OnlineUnion(sources, stats).restricted(["popularity", "ease"])
    assert union.names == ["popularity", "ease"]
    with pytest.raises(ValueError, match="unknown source"):
        OnlineUnion(sources, stats).restricted(["nope"])
