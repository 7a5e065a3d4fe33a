"""A configured distribution shift: validated, measurable after `at`, invisible before."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from tailwise.cli import app
from tailwise.console import EXIT_BAD_INPUT
from tailwise.synthetic import DefectRates, GenerateConfig, generate, load_ground_truth
from tailwise.synthetic.utility import true_utility

AT = date(2026, 10, 22)  # day 20 of the 30-day window 2026-10-02 .. 2026-10-31
CUT = pd.Timestamp(AT, tz="UTC")
BASE = GenerateConfig(users=2000, items=300, days=30, seed=13, defects=DefectRates.off())
SHIFT = {
    "at": AT,
    "top_taste": {"Toys": 2.0},
    "device_mix": {"tablet": 0.6, "mobile": 0.3, "desktop": 0.1},
    "new_items": 30,
}
EVENT_COLUMNS = ["user_id", "item_id", "event_type", "timestamp", "value", "price"]
EVENT_COLUMNS += ["session_id", "device", "channel", "country"]


@dataclass
class Run:
    out: Path
    events: pd.DataFrame
    truth_items: pd.DataFrame

    @property
    def after(self) -> pd.Series:
        return self.events["ts"] >= CUT

    def share(self, column: str, value: str, after: bool) -> float:
        mask = self.after if after else ~self.after
        return float((self.events.loc[mask, column] == value).mean())


def _run(out: Path, cfg: GenerateConfig) -> Run:
    generate(cfg, out)
    events = pq.read_table(out / "events.parquet").to_pandas()
    truth_items = pq.read_table(out / "ground_truth" / "items.parquet").to_pandas()
    events["ts"] = pd.to_datetime(events["timestamp"], utc=True)
    events["top"] = events["item_id"].map(truth_items.set_index("item_id")["top_category"])
    return Run(out, events, truth_items)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    root = tmp_path_factory.mktemp("shift")
    shifted = GenerateConfig.model_validate({**BASE.model_dump(), "shift": SHIFT})
    return {"control": _run(root / "control", BASE), "shift": _run(root / "shift", shifted)}


def test_boosted_category_gains_share_after_the_shift(runs: dict[str, Run]) -> None:
    shift, control = runs["shift"], runs["control"]
    before, after = shift.share("top", "Toys", False), shift.share("top", "Toys", True)
    control_after = control.share("top", "Toys", True)
    assert after > before + 0.15, (before, after)
    assert after > control_after + 0.15, (control_after, after)


def test_device_mix_after_the_shift(runs: dict[str, Run]) -> None:
    shift, control = runs["shift"], runs["control"]
    assert shift.share("device", "tablet", True) == pytest.approx(0.6, abs=0.05)
    assert shift.share("device", "tablet", False) == control.share("device", "tablet", False)
    assert control.share("device", "tablet", True) < 0.3


def test_new_items_join_the_catalogue_and_get_events_after_the_shift(
    runs: dict[str, Run],
) -> None:
    shift = runs["shift"]
    items = pq.read_table(shift.out / "items.parquet").to_pandas()
    truth = shift.truth_items
    assert len(items) == len(truth) == 330
    new = truth.iloc[300:]
    assert new["item_id"].tolist() == [f"i{k:06d}" for k in range(300, 330)]
    assert items["item_id"].tolist() == truth["item_id"].tolist()
    assert new["is_new"].all()
    assert (new["created_at"] >= CUT).all()
    assert (new["created_at"] < CUT + pd.Timedelta(days=2)).all()
    ev = shift.events
    on_new = ev["item_id"].isin(new["item_id"])
    assert not on_new[~shift.after].any()
    assert on_new[shift.after].mean() > 0.03
    created = ev.loc[on_new, "item_id"].map(new.set_index("item_id")["created_at"])
    assert (ev.loc[on_new, "ts"] >= created).all()


def test_events_before_the_shift_are_unchanged(runs: dict[str, Run]) -> None:
    shift, control = runs["shift"], runs["control"]
    a = control.events.loc[~control.after, EVENT_COLUMNS].reset_index(drop=True)
    b = shift.events.loc[~shift.after, EVENT_COLUMNS].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    for name in ["users.parquet", "ground_truth/users.parquet"]:
        assert pq.read_table(control.out / name).equals(pq.read_table(shift.out / name)), name
    original = pq.read_table(shift.out / "ground_truth" / "items.parquet").slice(0, 300)
    assert original.equals(pq.read_table(control.out / "ground_truth" / "items.parquet"))


def test_world_json_records_the_shift(runs: dict[str, Run]) -> None:
    shift = json.loads((runs["shift"].out / "ground_truth" / "world.json").read_text())["shift"]
    assert shift["at"] == "2026-10-22T00:00:00+00:00"
    assert shift["top_taste"]["Toys"] == 2.0 and shift["top_taste"]["Home"] == 0.0
    assert shift["device_mix"] == {"mobile": 0.3, "desktop": 0.1, "tablet": 0.6}
    assert shift["new_item_ids"][0] == "i000300" and len(shift["new_item_ids"]) == 30
    assert all(d <= 0 for d in shift["leaf_log_dilution"])
    control = json.loads((runs["control"].out / "ground_truth" / "world.json").read_text())
    assert "shift" not in control and "shift" not in control["config"]


def test_true_utility_applies_the_shift_from_its_instant(runs: dict[str, Run]) -> None:
    users, items, world = load_ground_truth(runs["shift"].out)
    unshifted = {k: v for k, v in world.items() if k != "shift"}
    truth = runs["shift"].truth_items
    item_ids = truth["item_id"].iloc[:300].to_numpy()
    user_ids = np.full(len(item_ids), users.column("user_id")[0].as_py())
    leaf = [world["taxonomy"]["leaves"].index(c) for c in truth["category"].iloc[:300]]
    dilution = np.asarray(world["shift"]["leaf_log_dilution"])[leaf]
    toys = (truth["top_category"].iloc[:300] == "Toys").to_numpy()
    for at, want in [
        (CUT.timestamp() - 1, 0.0 * dilution),
        (CUT.timestamp(), 2.0 * toys + dilution),
    ]:
        shifted = true_utility(users, items, world, user_ids, item_ids, at=int(at))
        plain = true_utility(users, items, unshifted, user_ids, item_ids, at=int(at))
        ok = np.isfinite(plain)
        np.testing.assert_allclose(shifted[ok] - plain[ok], want[ok], atol=1e-9)


@pytest.mark.parametrize(
    ("shift", "words"),
    [
        ({"at": "2026-10-02"}, ["shift.at", "2026-10-02..2026-10-31"]),
        ({"at": "2026-11-01"}, ["shift.at", "window"]),
        ({"at": "2026-10-20", "top_taste": {"Toyz": 1.0}}, ["top_taste", "Toyz", "Electronics"]),
        ({"at": "2026-10-20", "device_mix": {"tablet": 0.5}}, ["device_mix", "sum to 1"]),
        ({"at": "2026-10-20", "device_mix": {"tablet": 1.5, "mobile": -0.5}}, [">= 0"]),
        ({"at": "2026-10-20", "device_mix": {"phone": 1.0}}, ["device_mix", "tablet"]),
        ({"at": "2026-10-20", "new_items": -1}, ["new_items"]),
        ({"at": "2026-10-20", "surprise": 1}, ["surprise"]),
    ],
)
def test_bad_shift_names_the_field(shift: dict, words: list[str]) -> None:
    with pytest.raises(ValidationError) as err:
        GenerateConfig(days=30, shift=shift)
    for word in words:
        assert word in str(err.value)


def test_defects_off_are_all_zero() -> None:
    assert set(DefectRates.off().model_dump().values()) == {0.0}


def test_cli_shift_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("shift.yaml").write_text("at: 2026-10-25\ntop_taste: {Books: 1.0}\nnew_items: 4\n")
    Path("bad.yaml").write_text("at: 2026-10-25\ntop_taste: {Bookz: 1.0}\n")
    runner = CliRunner()
    args = ["generate", "--out", "raw", "--users", "60", "--items", "20", "--days", "30"]
    result = runner.invoke(app, [*args, "--shift", "shift.yaml", "--no-defects"])
    assert result.exit_code == 0, result.output
    world = json.loads(Path("raw/ground_truth/world.json").read_text())
    assert world["shift"]["new_item_ids"] == ["i000020", "i000021", "i000022", "i000023"]
    assert set(json.loads(Path("raw/defects.json").read_text())["rates"].values()) == {0.0}
    result = runner.invoke(app, [*args, "--shift", "bad.yaml"])
    assert result.exit_code == EXIT_BAD_INPUT
    assert "--shift shift.top_taste" in result.output and "Bookz" in result.output
