"""Attribution: by request id first, else the user's latest exposure within the window
(both edges included), one outcome per experiment the exposure was in."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from tailwise.experiments.attribution import OUTCOME_COLUMNS, attribute

T0 = pd.Timestamp("2026-12-03 10:00", tz="UTC")
WINDOW = pd.Timedelta(hours=24)


def exposure(
    request: str, user: str, minutes: float, experiment: str = "exp", variant: str = "a"
) -> dict[str, Any]:
    return {
        "request_id": request,
        "user_id": user,
        "experiment": experiment,
        "variant": variant,
        "propensity": 0.5,
        "slot": None,
        "timestamp": T0 + pd.Timedelta(minutes=minutes),
    }


def event(
    user: str,
    at: pd.Timedelta,
    request: str | None = None,
    event_type: str = "product_view",
    **more: Any,
) -> dict[str, Any]:
    return {
        "event_id": f"e-{user}-{at}-{event_type}",
        "user_id": user,
        "item_id": "i1",
        "event_type": event_type,
        "timestamp": T0 + at,
        "request_id": request,
        **more,
    }


def test_an_event_with_its_request_id_credits_that_request() -> None:
    exposures = pd.DataFrame(
        [exposure("r1", "u1", 0, variant="a"), exposure("r2", "u1", 30, variant="b")]
    )
    # The click names the older request: it is credited there, not to the latest.
    out = attribute(
        exposures, pd.DataFrame([event("u1", pd.Timedelta(minutes=40), "r1", position=3)]), WINDOW
    )
    assert list(out.columns) == OUTCOME_COLUMNS
    assert out[["request_id", "variant", "position"]].values.tolist() == [["r1", "a", 3]]


def test_a_request_in_two_layers_credits_both_experiments() -> None:
    exposures = pd.DataFrame(
        [exposure("r1", "u1", 0, "home", "a"), exposure("r1", "u1", 0, "search", "x")]
    )
    out = attribute(exposures, pd.DataFrame([event("u1", pd.Timedelta(minutes=1), "r1")]), WINDOW)
    assert sorted(zip(out["experiment"], out["variant"], strict=True)) == [
        ("home", "a"),
        ("search", "x"),
    ]


def test_without_a_request_id_the_latest_exposure_in_the_window_is_credited() -> None:
    exposures = pd.DataFrame(
        [
            exposure("r1", "u1", 0, variant="a"),
            exposure("r2", "u1", 60, variant="b"),
            exposure("r3", "u2", 0, variant="a"),
        ]
    )
    events = pd.DataFrame(
        [
            event("u1", pd.Timedelta(minutes=90)),  # after r2 -> r2
            event("u1", pd.Timedelta(minutes=30)),  # between -> r1
            event("u2", pd.Timedelta(minutes=-5)),  # before any -> none
            event("u9", pd.Timedelta(minutes=5)),  # never exposed -> none
            event("u2", pd.Timedelta(minutes=5), "r-unknown"),
        ]
    )  # falls back -> r3
    out = attribute(exposures, events, WINDOW)
    got = sorted(zip(out["user_id"], out["request_id"], out["variant"], strict=True))
    assert got == [("u1", "r1", "a"), ("u1", "r2", "b"), ("u2", "r3", "a")]


@pytest.mark.parametrize(
    ("after", "credited"),
    [
        (pd.Timedelta(0), True),  # the exposure's own instant
        (WINDOW, True),  # the window's last instant
        (WINDOW + pd.Timedelta(microseconds=1), False),  # just past it
    ],
)
def test_the_window_edges(after: pd.Timedelta, credited: bool) -> None:
    out = attribute(
        pd.DataFrame([exposure("r1", "u1", 0)]), pd.DataFrame([event("u1", after)]), WINDOW
    )
    assert (len(out) == 1) is credited


def test_revenue_is_price_times_quantity_of_purchases_only() -> None:
    exposures = pd.DataFrame([exposure("r1", "u1", 0)])
    events = pd.DataFrame(
        [
            event("u1", pd.Timedelta(minutes=1), "r1", "purchase", price=10.0, value=3.0),
            event("u1", pd.Timedelta(minutes=2), "r1", "purchase", price=4.0, value=None),
            event("u1", pd.Timedelta(minutes=3), "r1", "add_to_cart", price=99.0, value=1.0),
        ]
    )
    out = attribute(exposures, events, WINDOW)
    assert out["revenue"].tolist() == [30.0, 4.0, 0.0]


def test_events_counted_once_and_bad_input_named() -> None:
    exposures = pd.DataFrame([exposure("r1", "u1", 0)])
    e = event("u1", pd.Timedelta(minutes=1), "r1")
    assert len(attribute(exposures, pd.DataFrame([e, e]), WINDOW)) == 1
    assert attribute(exposures.iloc[:0], pd.DataFrame([e]), WINDOW).empty
    with pytest.raises(ValueError, match="window must be positive"):
        attribute(exposures, pd.DataFrame([e]), pd.Timedelta(0))
    with pytest.raises(ValueError, match=r"events lack column\(s\) \['event_type'\]"):
        attribute(exposures, pd.DataFrame([{"user_id": "u1", "timestamp": T0}]), WINDOW)
