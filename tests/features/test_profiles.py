"""user_profile: validity instant, ranks, pass-through extras; local-time buckets."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tailwise.features.build import FeaturesError, build_features
from tailwise.features.config import FeaturesParams
from tests.features.conftest import build_small, event, item, user


def test_profile_valid_from_signup_else_first_event_else_always(tmp_path):
    users = [
        user("u1", signup="2025-05-05", loyalty_tier="gold"),
        user("u2", signup=None, loyalty_tier="none"),
        user("u3", signup=None, loyalty_tier=None),
    ]
    out = build_small(
        tmp_path,
        users,
        [item("a")],
        [
            event("u1", "a", "2026-03-01T10:00:00"),
            event("u2", "a", "2026-03-03T10:00:00"),
        ],
    )
    p = pd.read_parquet(out / "user_profile.parquet").set_index("user_id")
    assert list(p["event_timestamp"].dt.strftime("%Y-%m-%d %H")) == [
        "2025-05-05 00",
        "2026-03-03 10",
        "1970-01-01 00",
    ]
    assert p.loc["u1", "signup_epoch"] == pd.Timestamp("2025-05-05", tz="UTC").timestamp()
    assert p.loc["u1", "income_rank"] == 3 and p.loc["u1", "age_band"]
    assert p.loc["u1", "loyalty_tier"] == "gold"  # declared extra column passes through
    assert "consent_tracking" not in p.columns and not any(c.endswith("_hmac") for c in p)
    manifest = json.loads((out / "features_manifest.json").read_text())
    assert manifest["tables"]["user_profile"]["rows"] == 3
    assert {"name": "age", "type": "int64"} in manifest["tables"]["user_profile"]["columns"]


@pytest.mark.parametrize("day", ["2026-01-15", "2026-07-15"])
def test_a_late_evening_utc_event_from_germany_is_night(tmp_path, day):
    out = build_small(
        tmp_path,
        [user("u1"), user("u2")],
        [item("a")],
        [
            event("u1", "a", f"{day}T23:30:00", country="DE"),  # 00:30 / 01:30 in Berlin
            event("u2", "a", f"{day}T23:30:00", country=None),  # unknown country: UTC evening
        ],
    )
    d = pd.read_parquet(out / "user_daily.parquet").set_index("user_id")
    first = d.sort_values("event_timestamp").groupby(level=0).head(1)
    assert first.loc["u1", "share_night"] == 1.0 and first.loc["u1", "share_evening"] == 0.0
    assert first.loc["u2", "share_evening"] == 1.0


def test_missing_input_is_named(tmp_path):
    with pytest.raises(FeaturesError, match=r"users\.parquet"):
        build_features(tmp_path, tmp_path / "out", FeaturesParams())
