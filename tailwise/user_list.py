"""The user-list file batch recommendations read (`tailwise recommend --users`).

One user id per line; blank lines and '#' comments are skipped. Training's batch
recommender and the serving graph's batch command read the same file the same way.
"""

from __future__ import annotations

from pathlib import Path


def read_user_ids(path: Path) -> list[str]:
    """The listed user ids, in file order, each once; ValueError naming the file when
    there is none."""
    ids = [line.strip() for line in path.read_text().splitlines()]
    ids = [i for i in ids if i and not i.startswith("#")]
    if not ids:
        raise ValueError(f"{path}: no user ids (expected one id per line)")
    return list(dict.fromkeys(ids))
