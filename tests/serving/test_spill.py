"""SpillLog: durable appends, locked drains that resume, files of dead processes replayed."""

from __future__ import annotations

import subprocess
import sys
from contextlib import closing
from pathlib import Path

from serving.spill import SpillLog
from tests.feast_project import ROOT


def records(n: int, start: int = 0) -> list[dict[str, int]]:
    return [{"n": i} for i in range(start, start + n)]


def drain_all(log: SpillLog, max_batch: int = 500) -> list[int]:
    got: list[int] = []
    with closing(log.drain(max_batch)) as batches:
        for batch in batches:
            got += [r["n"] for r in batch.records]
            batch.commit()
    return got


def test_appends_are_pending_until_drained_and_committed(tmp_path: Path) -> None:
    log = SpillLog(tmp_path)
    assert log.pending() == 0 and not log.has_pending() and drain_all(log) == []
    log.append(records(3))
    log.append(records(2, start=3))
    assert log.pending() == 5 and log.has_pending()
    assert drain_all(log, max_batch=2) == [0, 1, 2, 3, 4]
    assert log.pending() == 0 and not log.has_pending() and list(tmp_path.iterdir()) == []


def test_an_uncommitted_batch_stops_the_drain_and_the_next_one_resumes(tmp_path: Path) -> None:
    log = SpillLog(tmp_path)
    log.append(records(5))
    with closing(log.drain(max_batch=2)) as batches:
        first = next(batches)
        first.commit()
        second = next(batches)  # not committed: the caller could not place it
        assert [r["n"] for r in second.records] == [2, 3]
        assert next(batches, None) is None
    assert log.pending() == 3 and log.has_pending()
    assert drain_all(SpillLog(tmp_path)) == [2, 3, 4]


def test_appends_during_a_drain_go_to_a_new_file_and_are_not_lost(tmp_path: Path) -> None:
    log = SpillLog(tmp_path)
    log.append(records(2))
    with closing(log.drain()) as batches:
        batch = next(batches)
        log.append(records(2, start=2))  # a request arriving while replay runs
        batch.commit()
        assert next(batches, None) is None  # the live file is this process's: not now
    assert log.pending() == 2 and drain_all(log) == [2, 3]


def test_a_live_writers_file_is_left_to_it(tmp_path: Path) -> None:
    writer, other = SpillLog(tmp_path), SpillLog(tmp_path)
    writer.append(records(2))
    assert drain_all(other) == [] and other.pending() == 2  # locked by its writer
    writer.close()  # the writer's process ends
    assert drain_all(other) == [0, 1]


def test_files_of_dead_processes_are_replayed_by_a_new_one(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from serving.spill import SpillLog; "
        "log = SpillLog(Path(sys.argv[1])); log.append([{'n': 0}, {'n': 1}]); "
        "log.append([{'n': 2}]); import os; os._exit(0)"  # no clean shutdown
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, check=True)
    log = SpillLog(tmp_path)
    assert log.pending() == 6 and sorted(drain_all(log)) == [0, 0, 1, 1, 2, 2]


def test_a_torn_last_line_of_a_crashed_append_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "events-999999.jsonl").write_text('{"n": 0}\n{"n": 1}\n{"n": ')
    log = SpillLog(tmp_path)
    assert drain_all(log) == [0, 1] and not list(tmp_path.iterdir())


def test_a_stale_offset_does_not_skip_a_new_file_of_the_same_name(tmp_path: Path) -> None:
    log = SpillLog(tmp_path)
    log.append(records(3))
    with closing(log.drain(max_batch=2)) as batches:
        next(batches).commit()  # offset recorded for the sealed file, then interrupted
    sealed = next(tmp_path.glob("events-*-sealed*.jsonl"))
    offset = sealed.with_name(sealed.name + ".offset")
    fresh = tmp_path / "events-424242.jsonl"
    fresh.write_text('{"n": 7}\n{"n": 8}\n{"n": 9}\n')
    offset.rename(fresh.with_name(fresh.name + ".offset"))  # left behind, wrong inode
    sealed.unlink()
    assert drain_all(log) == [7, 8, 9]
