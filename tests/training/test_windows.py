"""Windows fitted to the data: configured windows kept when they hold enough users, quantile
windows otherwise (said in describe / as_manifest), or a WindowError naming the parameter;
all measured back from the newest event, whatever its era."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailwise.errors import DataError
from training.config import SplitParams
from training.split import days_before
from training.windows import WindowError, plan_windows


def log(users: int, days: int, start: str, per_day: int = 1, seed: int = 0) -> pd.DataFrame:
    """Each user views one new item per day for `days` days from `start`."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        for d in range(days):
            for n in range(per_day):
                item = f"i{rng.integers(0, 10_000)}"
                when = pd.Timestamp(start, tz="UTC") + pd.Timedelta(days=d, hours=n)
                rows.append((f"u{u}", item, "product_view", when))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"])


def test_configured_windows_are_kept_when_they_hold_enough_users() -> None:
    plan = plan_windows(log(30, 30, "2026-01-01"), SplitParams(), cut_days=7, label_windows=1)
    assert plan.rule == "configured"
    assert plan.split.test_days == 7 and plan.cut_days == 7 and plan.label_windows == 1
    assert plan.counts == {"test": 30, "validation": 30, "ranker label window 0": 30}
    assert plan.as_manifest()["rule"] == "configured"


def test_sparse_1997_log_falls_back_to_quantile_windows_and_says_so() -> None:
    # 40 users over two years, one event every 20 days: a 7-day window holds ~14 users.
    events = log(40, 2, "1997-03-01")
    events["timestamp"] += pd.to_timedelta(np.arange(len(events)) * 9, unit="D")
    plan = plan_windows(events, SplitParams(), cut_days=7, label_windows=2)
    assert plan.rule == "quantile"
    assert plan.label_windows == 1
    end = events["timestamp"].max()
    test_start = end - pd.Timedelta(days=plan.split.test_days)
    share = (events["timestamp"] >= test_start).mean()
    assert 0.05 < share <= 0.15  # the last fallback_share (0.1) of events
    assert all(n > 0 for name, n in plan.counts.items() if name != "validation")
    text = plan.describe()
    assert "quantile" in text and "evaluation.split.min_window_users=20" in text
    assert plan.as_manifest()["reasons"] and plan.as_manifest()["test_days"] > 7


def test_error_fallback_names_the_parameter() -> None:
    events = log(5, 30, "2026-01-01")
    with pytest.raises(WindowError) as raised:
        plan_windows(events, SplitParams(fallback="error"), cut_days=7, label_windows=1)
    message = str(raised.value)
    assert isinstance(raised.value, DataError)
    assert "evaluation.split.test_days=7" in message
    assert "evaluation.split.min_window_users" in message and "holds 5 users" in message


def test_data_too_small_even_for_quantile_windows_is_a_window_error() -> None:
    # Every event at one instant: no window can have a history before it.
    events = log(3, 1, "2026-01-01")
    with pytest.raises(WindowError, match=r"evaluation\.split\.fallback_share"):
        plan_windows(events, SplitParams(), cut_days=7, label_windows=1)


def test_lower_min_window_users_keeps_the_configured_windows() -> None:
    events = log(5, 30, "2026-01-01")
    plan = plan_windows(events, SplitParams(min_window_users=5), cut_days=7, label_windows=1)
    assert plan.rule == "configured"


def test_recorded_quantile_windows_cut_the_same_instants_again(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from training.config import EvaluationParams
    from training.pipeline import prepare_split, recorded_split
    from training.ranker import RankerConfig

    events = log(12, 3, "1998-05-01", per_day=2)
    events["timestamp"] += pd.to_timedelta(np.arange(len(events)) * 977, unit="s")
    events["weight"] = 1.0
    (tmp_path / "events").mkdir()
    events.to_parquet(tmp_path / "events" / "part-0.parquet", index=False)
    pd.DataFrame({"item_id": sorted(set(events["item_id"]))}).to_parquet(
        tmp_path / "items.parquet", index=False
    )
    evaluation = EvaluationParams()
    prepared = prepare_split(tmp_path, evaluation, RankerConfig())
    assert prepared.plan.rule == "quantile"
    record = json.loads(json.dumps(prepared.record()))
    again = recorded_split(tmp_path, evaluation, record)
    assert again.test_start == prepared.split.test_start
    assert again.validation_start == prepared.split.validation_start
    other = EvaluationParams.model_validate({"split": {"test_days": 3}})
    assert recorded_split(tmp_path, other, record).test_start != prepared.split.test_start


def test_cuts_from_fractional_days_land_on_the_microsecond() -> None:
    """A quantile window recorded as fractional days cuts the event it started at, to the
    microsecond, in every stage (Feast's offline store refuses nanoseconds)."""
    end = pd.Timestamp("2026-07-22 12:41:43", tz="UTC")
    start = pd.Timestamp("2026-05-15 09:12:07.123456", tz="UTC")
    days = (end - start) / pd.Timedelta(days=1)
    cut = days_before(end, days)
    assert cut == start
    assert cut.nanosecond == 0
    assert days_before(cut, -days) == end
