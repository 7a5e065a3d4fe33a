"""Exposures and outcomes of a simulated experiment with known rates (test helper)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

DAY0 = pd.Timestamp("2026-11-01", tz="UTC")


def experiment_tables(
    rng: np.random.Generator,
    users: int,
    weights: Mapping[str, float],
    ctr: Mapping[str, float],
    days: int = 5,
    buy: float = 0.3,
    name: str = "exp",
    latency: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user is assigned by `weights`, seen 1-4 times over `days`; each exposure is
    clicked at the variant's rate; a click is bought with probability `buy` (value ~ 50)."""
    names = list(weights)
    p = np.array([weights[v] for v in names])
    variant = np.array(names)[rng.choice(len(names), users, p=p / p.sum())]
    per_user = rng.integers(1, 5, users)
    rows = np.repeat(np.arange(users), per_user)
    v = variant[rows]
    when = DAY0 + pd.to_timedelta(rng.uniform(0, days * 86400, len(rows)), unit="s")
    exposures = pd.DataFrame(
        {
            "request_id": [f"r{k}" for k in range(len(rows))],
            "user_id": [f"u{u}" for u in rows],
            "experiment": name,
            "variant": v,
            "propensity": np.array([weights[x] for x in v]) / p.sum(),
            "slot": None,
            "timestamp": when,
        }
    )
    if latency:
        exposures["latency_ms"] = rng.gamma(4, 5, len(rows))
        exposures["error"] = rng.random(len(rows)) < 0.01
    rate = np.array([ctr[x] for x in v])
    clicked = rng.random(len(rows)) < rate
    clicks = exposures.loc[clicked]
    bought = clicks.loc[rng.random(len(clicks)) < buy]
    frames = [
        clicks.assign(event_type="product_view", revenue=0.0),
        bought.assign(event_type="purchase", revenue=rng.gamma(5, 10, len(bought))),
    ]
    outcomes = pd.concat(frames, ignore_index=True)
    outcomes["position"] = 0
    outcomes["timestamp"] = outcomes["timestamp"] + pd.Timedelta(minutes=1)
    cols = ["request_id", "user_id", "experiment", "variant", "event_type", "revenue",
            "position", "timestamp"]  # fmt: skip
    return exposures, outcomes[cols]
