"""The published assignment vectors: (user, salt) -> bucket, and the variant under weights.

`python -m tests.experiments.vectors` rewrites assignment_vectors.json; the test suite
checks the committed file against the code byte for byte, so any change to the hashing
(which would move users between variants of running experiments) shows as a failure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tailwise.experiments.assignment import BUCKETS, bucket, pick

PATH = Path(__file__).parent / "assignment_vectors.json"
USERS = ["u0000001", "u0000030", "u4242", "", "Ünïcödé-user", "user with spaces", "7"]
SALTS = ["homepage-2026-12", "checkout:layer", "s1"]
WEIGHTS = [
    [["control", 0.5], ["treatment", 0.5]],
    [["champion", 0.45], ["challenger", 0.45], ["holdout", 0.1]],
    [["a", 0.2], ["b", 0.0], ["c", 0.8]],
]


def build() -> dict[str, Any]:
    vectors = []
    for salt in SALTS:
        for user in USERS:
            b = bucket(salt, user)
            picks = [pick(b, [(n, w) for n, w in weights])[0] for weights in WEIGHTS]
            vectors.append({"user_id": user, "salt": salt, "bucket": b, "variants": picks})
    return {
        "hash": "sha256 of UTF-8 '<salt>:<user_id>'; first 8 bytes big-endian / 2**64 = u",
        "buckets": BUCKETS,
        "bucket": "floor(u * buckets)",
        "variant": "first variant (weight > 0) whose cumulative weight exceeds bucket/buckets",
        "weights": WEIGHTS,
        "vectors": vectors,
    }


def render(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode()


if __name__ == "__main__":
    PATH.write_bytes(render(build()))
    print(f"wrote {PATH}")
