"""Assignment: which experiment and variant a user gets, from salted SHA-256 hashes of the id.

    user_id --sha256("<layer>:<user>")--> position in the layer, [0, 1): the experiment
            whose traffic range holds it (or none)
    user_id --sha256("<salt>:<user>")--> bucket in 0..BUCKETS-1: the variant whose
            cumulative weight range holds bucket / BUCKETS

Nothing depends on the process (no `hash()`, no RNG): every replica, process and machine
assigns a user alike, and a user keeps their variant for as long as the weights do. When a
bandit changes the weights, only users whose bucket moves across a boundary change
variant. The propensity is the weight of the variant at that moment: the probability the
user had of getting it, given that they were in the experiment. The published vectors
(tests/experiments/assignment_vectors.json) pin the hashing down byte for byte.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from tailwise.experiments.definitions import Experiment

BUCKETS = 10_000
_SCALE = float(2**64)


def unit(salt: str, user_id: str) -> float:
    """A uniform number in [0, 1) from the first 8 bytes of sha256("<salt>:<user_id>")."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def bucket(salt: str, user_id: str) -> int:
    """The user's bucket under `salt`, 0..BUCKETS-1."""
    return min(int(unit(salt, user_id) * BUCKETS), BUCKETS - 1)


def pick(bucket_: int, weights: Sequence[tuple[str, float]]) -> tuple[str, float]:
    """The (variant, weight) whose cumulative range holds `bucket_`; weights sum to 1.
    Rounding leaves the last bucket to the last variant with a weight above zero."""
    edge = 0.0
    point = bucket_ / BUCKETS
    chosen = None
    for name, weight in weights:
        if weight <= 0:
            continue
        chosen = (name, weight)
        edge += weight
        if point < edge:
            return chosen
    if chosen is None:
        raise ValueError("no variant has a weight above zero")
    return chosen


@dataclass(frozen=True)
class Assignment:
    experiment: str
    variant: str
    propensity: float
    bucket: int


def assign_variant(
    experiment: Experiment, user_id: str, weights: Mapping[str, float] | None = None
) -> Assignment:
    """The user's variant of `experiment` under `weights` (default: the definition's)."""
    current = weights or experiment.weights
    ordered = [(v.name, float(current.get(v.name, 0.0))) for v in experiment.variants]
    b = bucket(experiment.salt, user_id)
    name, weight = pick(b, ordered)
    return Assignment(experiment.name, name, round(weight, 6), b)


def in_experiment(experiment: Experiment, user_id: str) -> bool:
    """Whether the user's position in the experiment's layer is in its traffic range."""
    position = unit(experiment.layer, user_id)
    return experiment.traffic.offset <= position < experiment.traffic.end


def assign(
    experiments: Sequence[Experiment],
    user_id: str,
    now: datetime,
    weights: Mapping[str, Mapping[str, float]] | None = None,
) -> list[Assignment]:
    """The user's assignments, at most one per layer, among the experiments active at
    `now`; `weights` per experiment name override the definitions' (a bandit's)."""
    found = []
    for e in experiments:
        if e.active(now) and in_experiment(e, user_id):
            found.append(assign_variant(e, user_id, (weights or {}).get(e.name)))
    return found
