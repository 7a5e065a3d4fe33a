"""`tailwise generate --profile`: each profile writes the shape it promises, seeded."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tailwise.cli import app
from tailwise.repeats import repeat_share
from tailwise.synthetic import GenerateConfig, generate
from tailwise.synthetic.profiles import PROFILES, apply_profile, profile_sizes
from tailwise.synthetic.reshape import REQUIRED, parse_times

TODAY = date(2026, 12, 3)
SMALL = {"users": 80, "items": 60, "days": 20}


def make(name: str, out: Path, seed: int = 5, **sizes: int) -> dict[str, pd.DataFrame]:
    given = {**SMALL, **sizes}
    if name == "big-catalogue":
        given.pop("items")  # the profile's point: its own catalogue size
    cfg = GenerateConfig(seed=seed, **profile_sizes(name, given))
    generate(cfg, out)
    apply_profile(name, cfg, out, today=TODAY)
    return {t: pd.read_parquet(out / f"{t}.parquet") for t in ("users", "items", "events")}


def times(events: pd.DataFrame) -> pd.Series:
    return parse_times(events["timestamp"]).dropna()


def test_ratings_1990s(tmp_path: Path) -> None:
    frames = make("ratings-1990s", tmp_path)
    events = frames["events"]
    assert set(events["event_type"]) == {"rating"}
    assert set(events["value"]) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert events["value"].nunique() >= 4
    assert not events.duplicated(["user_id", "item_id"]).any()
    ts = times(events)
    assert ts.min() >= pd.Timestamp("1995-01-01", tz="UTC")
    assert ts.max() < pd.Timestamp("2000-01-01", tz="UTC")
    assert {"device", "session_id", "channel"}.isdisjoint(events.columns)
    signup = parse_times(frames["users"]["signup_at"]).dropna()
    assert signup.max() < pd.Timestamp("2000-01-01", tz="UTC")
    assert not (tmp_path / "ground_truth").exists()


def test_grocery_rebuy(tmp_path: Path) -> None:
    events = make("grocery-rebuy", tmp_path)["events"]
    assert set(events["event_type"]) == {"purchase"}
    share, basis = repeat_share(events.assign(timestamp=parse_times(events["timestamp"])))
    assert basis == "purchases" and share > 0.5
    ts = times(events)
    assert ts.max() < pd.Timestamp(TODAY, tz="UTC")
    assert ts.max() >= pd.Timestamp(TODAY, tz="UTC") - pd.Timedelta(days=2)


def test_no_attributes(tmp_path: Path) -> None:
    frames = make("no-attributes", tmp_path)
    assert list(frames["users"].columns) == ["user_id"]
    assert list(frames["items"].columns) == ["item_id"]
    assert set(REQUIRED["events"]) < set(frames["events"].columns)


def test_sparse_tail(tmp_path: Path) -> None:
    events = make("sparse-tail", tmp_path, users=300, items=200, days=40)["events"]
    days = times(events).dt.floor("D")
    assert days.nunique() <= 8
    assert days.max() - days.min() > pd.Timedelta(days=60)  # eight bursts over a year
    sessions = events.groupby("user_id")["session_id"].nunique()
    assert sessions.median() <= 2
    assert sessions.max() > 3 * sessions.median()  # a long tail of active users
    touched = events["item_id"].value_counts()
    assert touched.iloc[0] > 5 * touched.median()  # a few items take most events


def test_big_catalogue(tmp_path: Path) -> None:
    frames = make("big-catalogue", tmp_path, users=100)
    users = frames["users"]["user_id"].nunique()
    assert len(frames["items"]) >= 20_000
    assert len(frames["items"]) >= 10 * users


def test_minimal(tmp_path: Path) -> None:
    frames = make("minimal", tmp_path)
    for table, columns in REQUIRED.items():
        assert list(frames[table].columns) == columns
    assert len(frames["events"]) > 0
    assert profile_sizes("minimal", {})["users"] <= 500


@pytest.mark.parametrize("name", list(PROFILES))
def test_deterministic_for_a_seed(name: str, tmp_path: Path) -> None:
    sizes = {"users": 20} if name == "big-catalogue" else {}
    first = make(name, tmp_path / "a", **sizes)
    again = make(name, tmp_path / "b", **sizes)
    other = make(name, tmp_path / "c", seed=6, **sizes)
    for table in first:
        pd.testing.assert_frame_equal(first[table], again[table])
    assert not first["events"].equals(other["events"])
    record = json.loads((tmp_path / "a" / "profile.json").read_text())
    assert record["profile"] == name and record["rows"]["events"] == len(first["events"])


def test_command_takes_a_profile_and_documents_them(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "raw"
    result = runner.invoke(
        app, ["generate", "--out", str(out), "--profile", "minimal", "--users", "30"]
    )
    assert result.exit_code == 0, result.output
    assert list(pd.read_parquet(out / "users.parquet").columns) == ["user_id"]
    assert json.loads((out / "profile.json").read_text())["generated"]["users"] == 30
    bad = runner.invoke(app, ["generate", "--out", str(out), "--profile", "nope"])
    assert bad.exit_code == 3 and "--profile" in bad.output and "minimal" in bad.output
    help_text = " ".join(runner.invoke(app, ["generate", "--help"]).output.split())
    for profile in PROFILES.values():
        assert f"{profile.name}: {profile.summary}" in help_text
