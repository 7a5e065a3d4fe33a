"""Config validation names the offending field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tailwise.synthetic import DefectRates, GenerateConfig


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"users": 0}, "users"),
        ({"items": -5}, "items"),
        ({"days": 0}, "days"),
        ({"chunk_users": 0}, "chunk_users"),
        ({"events_per_user_per_day": 0}, "events_per_user_per_day"),
        ({"defects": {"mixed_timezones": -0.1}}, "mixed_timezones"),
        ({"defects": {"duplicate_events": 1.5}}, "duplicate_events"),
        ({"userz": 10}, "userz"),
    ],
)
def test_invalid_config_names_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        GenerateConfig(**kwargs)
    assert field in str(err.value)


def test_defect_rate_bounds_name_field() -> None:
    with pytest.raises(ValidationError, match="category_spellings"):
        DefectRates(category_spellings=2.0)


def test_defaults_and_window() -> None:
    cfg = GenerateConfig()
    assert (cfg.users, cfg.items, cfg.days, cfg.seed) == (5000, 1000, 60, 42)
    assert cfg.window_end.isoformat() == "2026-11-01T00:00:00+00:00"
    assert (cfg.window_end - cfg.window_start).days == 60
    assert GenerateConfig(users=45001, chunk_users=20000).n_chunks == 3
