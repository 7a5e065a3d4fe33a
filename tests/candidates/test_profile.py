"""Popularity shaped by the user's profile: the smoothed lifts, unknown values, the
context, the stored tables (no row per person) and bad settings."""

from __future__ import annotations

import pandas as pd
import pytest

from tailwise.candidates import ProfilePopularity, default_sources
from tailwise.candidates.artifacts import read_sources, write_sources
from tailwise.candidates.profile import profile_context, request_profile
from tests.candidates.conftest import CUT, events, items_of

LOG = events(
    ("a", "s", 19, 3.0), ("b", "s", 19, 1.0), ("c", "t", 19, 4.0), ("d", "t", 19, 4.0),
    ("e", "x", 19, 9.0), ("late", "s", 25, 50.0),
)  # fmt: skip
PROFILES = pd.DataFrame(
    {
        "user_id": ["a", "b", "c", "d", "e", "new_f", "new_m", "new_x", "late"],
        "gender": ["female", "female", "male", "male", None, "female", "male", "x", "male"],
        "region": [None] * 9,
    }
)
TOTAL, USERS = 21.0, 5  # the weight and people before the cut ("late" is after it)


def conditional(w_value: float, w_item: float, share: float, prior_users: float) -> float:
    m = prior_users * TOTAL / USERS
    return (w_item + m * share) / (w_value + m)


def test_scores_are_the_smoothed_share_within_the_profile_group() -> None:
    source = ProfilePopularity(PROFILES, columns=["gender"], prior_users=1.0).fit(LOG, CUT)
    share = {"s": 4 / TOTAL, "t": 8 / TOTAL, "x": 9 / TOTAL}
    found = source.candidates(LOG, 3, users=["new_f", "new_m"])
    got = {(u, i): v for u, i, v in zip(found.user_id, found.item_id, found.score, strict=True)}
    # One column: P(j) * P(j | v) / P(j) = P(j | v).
    assert got[("new_f", "s")] == pytest.approx(conditional(4, 4, share["s"], 1.0))
    assert got[("new_f", "x")] == pytest.approx(conditional(4, 0, share["x"], 1.0))
    assert got[("new_m", "t")] == pytest.approx(conditional(8, 8, share["t"], 1.0))
    assert items_of(found, "new_f") == ["s", "x", "t"]
    assert items_of(found, "new_m") == ["t", "x", "s"]


def test_unknown_or_unseen_values_get_everyones_popularity() -> None:
    source = ProfilePopularity(PROFILES, columns=["gender"]).fit(LOG, CUT)
    found = source.candidates(LOG, 3, users=["e", "new_x", "nobody"])
    # Missing, held by nobody before the cut, no profile row ("e" has had x already).
    assert items_of(found, "e") == ["t", "s"]
    assert items_of(found, "new_x") == items_of(found, "nobody") == ["x", "t", "s"]
    nobody = found[found.user_id == "nobody"].set_index("item_id")["score"]
    assert nobody.to_dict() == pytest.approx({"x": 9 / TOTAL, "t": 8 / TOTAL, "s": 4 / TOTAL})


def test_a_larger_prior_pulls_small_groups_to_everyones_list() -> None:
    weak = ProfilePopularity(PROFILES, columns=["gender"], prior_users=1e6).fit(LOG, CUT)
    assert items_of(weak.candidates(LOG, 3, users=["new_f"]), "new_f") == ["x", "t", "s"]


def test_the_context_frame_gives_the_values_when_present() -> None:
    source = ProfilePopularity(PROFILES, columns=["gender"], prior_users=1.0).fit(LOG, CUT)
    assert items_of(source.candidates(LOG, 3, users=["new_f"]), "new_f")[0] == "s"
    context = pd.DataFrame({"user_id": ["new_f"], "profile_gender": ["male"]})
    found = source.candidates(LOG, 3, users=["new_f"], context=context)
    assert items_of(found, "new_f")[0] == "t"
    assert request_profile({"gender": "male", "age": 3}, ["gender"]) == {"profile_gender": "male"}
    assert request_profile({"gender": float("nan")}, ["gender"]) == {"profile_gender": None}


def test_stored_tables_hold_groups_and_items_only(tmp_path) -> None:
    source = ProfilePopularity(PROFILES).fit(LOG, CUT)  # default columns: only gender here
    assert source.column_list == ["gender"]  # region is empty, the others absent
    for frame in source.artifact().values():
        assert "user_id" not in frame.columns
    write_sources([source], tmp_path)
    (loaded,) = read_sources(tmp_path)
    assert loaded.column_list == ["gender"]
    context = profile_context(PROFILES, ["gender"])
    want = source.candidates(LOG, 3, users=["new_f", "new_m"], context=context)
    got = loaded.candidates(LOG, 3, users=["new_f", "new_m"], context=context)
    pd.testing.assert_frame_equal(got, want)


def test_default_sources_add_it_only_with_profile_columns() -> None:
    assert "popular_for_profile" not in [s.name for s in default_sources(False)]
    names = [s.name for s in default_sources(False, profiles=PROFILES)]
    assert "popular_for_profile" in names
    bare = PROFILES[["user_id", "region"]]
    assert "popular_for_profile" not in [s.name for s in default_sources(False, profiles=bare)]
    # ingest fills a dataset's missing attribute with "unknown": one value says nothing
    filled = PROFILES.assign(gender="unknown")
    assert "popular_for_profile" not in [s.name for s in default_sources(False, profiles=filled)]


def test_a_column_with_one_value_is_left_out() -> None:
    profiles = PROFILES.assign(age_band="unknown", country=["de", "fr"] * 4 + [None])
    source = ProfilePopularity(profiles)
    assert source.column_list == ["gender", "country"]


def test_bad_settings_name_the_parameter() -> None:
    with pytest.raises(ValueError, match="columns"):
        ProfilePopularity(PROFILES, columns=[])
    with pytest.raises(ValueError, match="user_id"):
        ProfilePopularity(PROFILES, columns=["user_id"])
    with pytest.raises(ValueError, match="prior_users"):
        ProfilePopularity(PROFILES, prior_users=0)
    with pytest.raises(ValueError, match="profiles"):
        ProfilePopularity(columns=["gender"]).fit(LOG, CUT)
    with pytest.raises(ValueError, match="user_id"):
        profile_context(PROFILES.drop(columns="user_id"), ["gender"])
