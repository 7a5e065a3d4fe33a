"""SpillLog: durable appends, leased claims in id order, rows of dead processes replayed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from serving.spill import FILENAME, SpillLog
from tests.feast_project import ROOT


def records(n: int, start: int = 0) -> list[dict[str, int]]:
    return [{"n": i} for i in range(start, start + n)]


def drain_all(log: SpillLog, max_batch: int = 500) -> list[int]:
    got: list[int] = []
    while (batch := log.claim(max_batch)) is not None:
        got += [r["n"] for r in batch.records]
        batch.commit()
    return got


def test_appends_are_pending_until_claimed_and_committed(tmp_path: Path) -> None:
    log = SpillLog(tmp_path)
    assert log.pending() == 0 and not log.has_pending() and drain_all(log) == []
    assert not (tmp_path / FILENAME).exists()  # nothing spilled: no file
    log.append(records(3))
    log.append(records(2, start=3))
    assert log.pending() == 5 and log.has_pending()
    assert drain_all(log, max_batch=2) == [0, 1, 2, 3, 4]
    assert log.pending() == 0 and not log.has_pending()


def test_the_outbox_is_durable_wal_with_full_sync(tmp_path: Path) -> None:
    log = SpillLog(tmp_path)
    log.append(records(1))
    con = log._open()
    assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert con.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL


def test_a_released_batch_is_claimed_again_first(tmp_path: Path) -> None:
    log = SpillLog(tmp_path)
    log.append(records(5))
    first = log.claim(max_batch=2)
    assert first is not None and [r["n"] for r in first.records] == [0, 1]
    first.commit()
    second = log.claim(max_batch=2)  # the caller cannot place it: Redis went away
    assert second is not None and [r["n"] for r in second.records] == [2, 3]
    second.release()
    assert log.pending() == 3 and drain_all(SpillLog(tmp_path)) == [2, 3, 4]


def test_two_drains_at_once_get_different_rows(tmp_path: Path) -> None:
    one, two = SpillLog(tmp_path), SpillLog(tmp_path)
    one.append(records(4))
    a, b = one.claim(max_batch=2), two.claim(max_batch=2)
    assert a is not None and b is not None
    assert [r["n"] for r in a.records] == [0, 1] and [r["n"] for r in b.records] == [2, 3]
    assert two.claim() is None  # everything is leased
    b.commit()
    a.commit()
    assert one.pending() == 0


def test_rows_of_a_drain_that_died_are_claimed_once_its_lease_runs_out(tmp_path: Path) -> None:
    dead = SpillLog(tmp_path, lease_seconds=0.2)
    dead.append(records(3))
    assert dead.claim() is not None  # never committed nor released: the process died
    dead.close()
    other = SpillLog(tmp_path)
    assert other.claim() is None and other.pending() == 3
    time.sleep(0.3)
    assert drain_all(other) == [0, 1, 2]


def test_appends_during_a_drain_are_not_lost(tmp_path: Path) -> None:
    log = SpillLog(tmp_path)
    log.append(records(2))
    batch = log.claim()
    assert batch is not None
    log.append(records(2, start=2))  # a request arriving while replay runs
    batch.commit()
    assert log.pending() == 2 and drain_all(log) == [2, 3]


def test_rows_of_processes_that_crashed_are_replayed_by_a_new_one(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from serving.spill import SpillLog; "
        "log = SpillLog(Path(sys.argv[1])); log.append([{'n': 0}, {'n': 1}]); "
        "log.append([{'n': 2}]); import os; os._exit(0)"  # no clean shutdown
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, check=True)
    log = SpillLog(tmp_path)
    assert log.pending() == 6 and drain_all(log) == [0, 1, 2, 0, 1, 2]  # in id order


def test_processes_appending_while_another_drains_lose_and_repeat_nothing(
    tmp_path: Path,
) -> None:
    code = (
        "import sys; from pathlib import Path; from serving.spill import SpillLog; "
        "log = SpillLog(Path(sys.argv[1])); w = int(sys.argv[2]); "
        "[log.append([{'n': w * 1000 + i}]) for i in range(40)]"
    )
    writers = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(w)], cwd=ROOT)
        for w in (1, 2)
    ]
    log, got = SpillLog(tmp_path), []
    while any(p.poll() is None for p in writers):
        got += drain_all(log, max_batch=7)
        time.sleep(0.01)
    assert [p.returncode for p in writers] == [0, 0]
    got += drain_all(log)
    assert sorted(got) == [w * 1000 + i for w in (1, 2) for i in range(40)]
    for w in (1, 2):  # each writer's records come out in the order it wrote them
        assert [n for n in got if n // 1000 == w] == [w * 1000 + i for i in range(40)]


def test_a_batch_with_a_record_that_is_not_json_stores_nothing(tmp_path: Path) -> None:
    log = SpillLog(tmp_path)
    log.append(records(1))
    with pytest.raises(TypeError):
        log.append([{"n": 1}, {"n": object()}])  # the second cannot be stored
    assert drain_all(log) == [0]
    with pytest.raises(ValueError, match="max_batch"):
        log.claim(0)
