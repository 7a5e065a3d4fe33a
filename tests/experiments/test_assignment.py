"""Assignment: the published vectors byte for byte, the same answer in other processes,
sticky users, splits that follow the weights, layers that keep experiments apart."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from tailwise.experiments.assignment import BUCKETS, assign, assign_variant, bucket, in_experiment
from tailwise.experiments.definitions import Experiment
from tests.experiments import vectors

NOW = datetime(2026, 12, 3, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def experiment(
    name: str = "exp",
    layer: str = "home",
    offset: float = 0.0,
    share: float = 1.0,
    weights: tuple[float, ...] = (0.5, 0.5),
) -> Experiment:
    return Experiment.model_validate(
        {
            "name": name,
            "salt": f"salt-{name}",
            "layer": layer,
            "traffic": {"offset": offset, "share": share},
            "start": "2026-12-01",
            "variants": [{"name": f"v{i}", "weight": w} for i, w in enumerate(weights)],
        }
    )


def test_the_committed_vectors_match_the_code_byte_for_byte() -> None:
    assert vectors.PATH.read_bytes() == vectors.render(vectors.build())


def test_the_vectors_follow_the_published_rule_without_the_code() -> None:
    data = json.loads(vectors.PATH.read_text())
    assert data["buckets"] == BUCKETS == 10_000
    for v in data["vectors"]:
        digest = hashlib.sha256(f"{v['salt']}:{v['user_id']}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        assert v["bucket"] == int(u * 10_000)
        for weights, variant in zip(data["weights"], v["variants"], strict=True):
            edge, expected = 0.0, None
            for name, w in weights:
                edge += w
                if w > 0 and v["bucket"] / 10_000 < edge:
                    expected = name
                    break
            assert variant == expected
    assert "b" not in {v["variants"][2] for v in data["vectors"]}  # weight 0: never chosen


def test_another_process_assigns_every_user_alike() -> None:
    users = [f"u{n:05d}" for n in range(300)]
    script = (
        "import json, sys\n"
        "from tailwise.experiments.assignment import bucket\n"
        "users = json.loads(sys.stdin.read())\n"
        "print(json.dumps([bucket('salt-exp', u) for u in users]))\n"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", script],
            input=json.dumps(users),
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": "", "PYTHONPATH": str(ROOT)},
        ).stdout
        for seed in ("1", "2")
    ]
    here = [bucket("salt-exp", u) for u in users]
    assert json.loads(runs[0]) == json.loads(runs[1]) == here


def test_a_user_keeps_their_variant_and_the_split_follows_the_weights() -> None:
    e = experiment(weights=(0.2, 0.3, 0.5))
    users = [f"user-{n}" for n in range(20_000)]
    first = [assign_variant(e, u).variant for u in users]
    assert first == [assign_variant(e, u).variant for u in users]
    shares = {name: first.count(name) / len(users) for name in ("v0", "v1", "v2")}
    assert abs(shares["v0"] - 0.2) < 0.015 and abs(shares["v2"] - 0.5) < 0.015
    a = assign_variant(e, "user-1")
    assert a.propensity == {"v0": 0.2, "v1": 0.3, "v2": 0.5}[a.variant]


def test_bandit_weights_move_only_users_across_a_boundary() -> None:
    e = experiment(weights=(0.5, 0.5))
    users = [f"user-{n}" for n in range(5_000)]
    before = {u: assign_variant(e, u).variant for u in users}
    after = {u: assign_variant(e, u, {"v0": 0.8, "v1": 0.2}).variant for u in users}
    moved = [u for u in users if before[u] != after[u]]
    assert all(before[u] == "v1" and after[u] == "v0" for u in moved)  # v1 -> v0 only
    assert 0.25 < len(moved) / len(users) < 0.35
    assert assign_variant(e, moved[0], {"v0": 0.8, "v1": 0.2}).propensity == 0.8


def test_experiments_of_one_layer_never_share_a_user_and_layers_are_independent() -> None:
    a = experiment("a", "home", 0.0, 0.5)
    b = experiment("b", "home", 0.5, 0.5)
    c = experiment("c", "search", 0.0, 0.5)
    users = [f"user-{n}" for n in range(10_000)]
    in_a = {u for u in users if in_experiment(a, u)}
    in_b = {u for u in users if in_experiment(b, u)}
    in_c = {u for u in users if in_experiment(c, u)}
    assert not in_a & in_b and len(in_a | in_b) == len(users)
    # An independent layer takes about half of each of the other layer's experiments.
    assert 0.45 < len(in_a & in_c) / len(in_a) < 0.55
    found = assign([a, b, c], "user-7", NOW)
    assert len(found) in (1, 2) and len({f.experiment for f in found} & {"a", "b"}) == 1


def test_inactive_experiments_assign_nobody() -> None:
    e = experiment()
    assert assign([e], "user-1", datetime(2026, 11, 30, tzinfo=UTC)) == []
    stopped = e.model_copy(update={"stop": datetime(2026, 12, 2, tzinfo=UTC)})
    assert assign([stopped], "user-1", NOW) == []
