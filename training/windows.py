"""Fitting the time windows to the data before anything is trained.

    clean events --plan_windows(split params, ranker label windows)--> WindowPlan
      configured windows, counted: users with a relevant item (training.split.window_truth)
        in the test window, the validation window and each ranker label window
      every one holds >= evaluation.split.min_window_users --> rule 'configured'
      else evaluation.split.fallback:
        'quantile'  each window is the last fallback_share of the events before it, by time:
                    test = the last share of all events, validation = the share before it,
                    one ranker label window = the last share of the history before the test
                    window --> rule 'quantile' (said in the output and the manifest)
        'error'     WindowError naming the parameter and the count

Every window is measured back from the data's newest event, never from today, so a log
from 1997 is cut the same way as one from last week. The plan's `split` and `ranker`
values replace the configured ones everywhere the stages cut time (training.pipeline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tailwise.errors import DataError
from training.config import SplitParams
from training.split import days_before, window_truth

DAY = pd.Timedelta(days=1)
_REPEATS_HINT = (
    " (only items new to a user count while repeats are not allowed: set "
    "recommend.allow_repeats: true where people buy the same items again)"
)


class WindowError(DataError):
    """A time window cannot hold enough users; the message names the parameter."""


@dataclass(frozen=True)
class WindowPlan:
    """The windows the stages use and how they were chosen."""

    split: SplitParams
    cut_days: float | None
    label_windows: int | None
    rule: str  # 'configured' | 'quantile'
    counts: dict[str, int] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    configured: SplitParams | None = None  # the windows params.yaml asked for

    def describe(self) -> str:
        counted = ", ".join(f"{name} {n}" for name, n in self.counts.items())
        text = f"windows: {self.rule} (users with a relevant item: {counted})"
        if self.rule != "configured":
            text += f"; evaluation.split.fallback=quantile because {'; '.join(self.reasons)}"
        return text

    def as_manifest(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            # Unrounded: later stages cut the same instants from these numbers.
            "validation_days": self.split.validation_days,
            "test_days": self.split.test_days,
            "ranker_cut_days": self.cut_days,
            "ranker_label_windows": self.label_windows,
            "users_with_relevant_items": dict(self.counts),
            "reasons": list(self.reasons),
            "configured": configured_days(self.configured or self.split),
        }


def configured_days(params: SplitParams) -> dict[str, float]:
    """The configured lengths a plan started from (a later stage compares its own)."""
    return {"validation_days": params.validation_days, "test_days": params.test_days}


def plan_windows(
    events: pd.DataFrame,
    params: SplitParams,
    cut_days: float | None = None,
    label_windows: int | None = None,
    allow_repeats: bool = False,
) -> WindowPlan:
    """The windows for `events` (see the module docstring); `cut_days` / `label_windows` are
    the ranker's (None when no ranker is trained)."""
    if events.empty:
        raise WindowError("no events to cut into windows: the clean event log is empty")
    events = events.assign(timestamp=pd.to_datetime(events["timestamp"], utc=True))
    counts, short = _count(events, params, cut_days, label_windows, allow_repeats)
    if not short:
        return WindowPlan(params, cut_days, label_windows, "configured", counts, [], params)
    if params.fallback == "error":
        raise WindowError(
            f"{short[0]}; widen that window, lower evaluation.split.min_window_users "
            f"(now {params.min_window_users}) or set evaluation.split.fallback: quantile"
        )
    split, q_cut = _quantile_windows(events, params.fallback_share, params)
    q_windows = None if cut_days is None else 1
    q_counts, _ = _count(events, split, q_cut, q_windows, allow_repeats)
    empty = [name for name, n in q_counts.items() if n == 0 and name != "validation"]
    if empty:
        raise WindowError(
            f"even the quantile windows (evaluation.split.fallback_share="
            f"{params.fallback_share}) leave no user with a relevant item in the "
            f"{' and '.join(empty)} window: the data is too small or too sparse to train "
            f"and evaluate ({events['user_id'].nunique()} users, {len(events)} events); "
            "raise evaluation.split.fallback_share or bring more events"
        )
    return WindowPlan(split, q_cut, q_windows, "quantile", q_counts, short, params)


def _count(
    events: pd.DataFrame,
    params: SplitParams,
    cut_days: float | None,
    label_windows: int | None,
    allow_repeats: bool,
) -> tuple[dict[str, int], list[str]]:
    """Users with a relevant item per window, and why any window is too short."""
    end = events["timestamp"].max()
    ts = events["timestamp"]
    test_start = days_before(end, params.test_days)
    validation_start = days_before(test_start, params.validation_days)
    windows = {
        "test": (
            ts >= test_start,
            ts < test_start,
            f"evaluation.split.test_days={params.test_days:g}",
        ),
    }
    if params.validation_days > 0:
        windows["validation"] = (
            (ts >= validation_start) & (ts < test_start),
            ts < validation_start,
            f"evaluation.split.validation_days={params.validation_days:g}",
        )
    history = events[ts < test_start]
    if cut_days is not None and label_windows is not None:
        h_ts = history["timestamp"]
        h_end = h_ts.max() if len(history) else test_start
        for window in range(label_windows):
            cut = days_before(h_end, cut_days * (window + 1))
            inside = h_ts >= cut
            if window:
                inside &= h_ts < days_before(cut, -cut_days)
            windows[f"ranker label window {window}"] = (
                _on(events, history.index[inside.to_numpy()]),
                _on(events, history.index[(h_ts < cut).to_numpy()]),
                f"training.ranker.cut_days={cut_days:g} with label_windows={label_windows}",
            )
    counts, short = {}, []
    for name, (inside, before, parameter) in windows.items():
        window, past = events[inside], events[before]
        n = 0
        if len(window) and len(past):
            n = len(window_truth(window, past, params, allow_repeats).users)
        counts[name] = n
        if n < params.min_window_users:
            short.append(
                f"the {name} ({parameter}) holds {n} users with a relevant item and "
                f"{len(past)} events before it, fewer than evaluation.split.min_window_users="
                f"{params.min_window_users}"
            )
    return counts, short


def _on(events: pd.DataFrame, index: pd.Index) -> pd.Series:
    return pd.Series(events.index.isin(index), index=events.index)


def _quantile_windows(
    events: pd.DataFrame, share: float, params: SplitParams
) -> tuple[SplitParams, float]:
    """Windows holding the last `share` of events each: test, validation before it, and the
    ranker's one label window at the end of the history before the test window."""
    ts = events["timestamp"]
    end = ts.max()
    test_start = ts.quantile(1 - share, interpolation="higher")
    validation_start = ts.quantile(1 - 2 * share, interpolation="higher")
    if test_start <= ts.min():
        raise WindowError(
            f"the events span {ts.min()} .. {end}: too few distinct times to cut a test "
            f"window of the last evaluation.split.fallback_share={share} of events"
        )
    # Every event of the last share may share one instant: keep a sliver of a window.
    test_days = max((end - test_start) / DAY, 1e-6)
    validation_days = (test_start - validation_start) / DAY
    history = ts[ts < days_before(end, test_days)]
    h_end = history.max()
    label_start = history.quantile(1 - share, interpolation="higher")
    cut_days = max((h_end - label_start) / DAY, 1e-6)
    split = params.model_copy(update={"test_days": test_days, "validation_days": validation_days})
    return split, float(cut_days)
