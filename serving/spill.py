"""The local durable log that keeps events accepted while Redis is unreachable.

Each process appends JSON lines to its own file, `events-<pid>.jsonl`, and fsyncs every
append before the request is answered, so an accepted event survives a crash. The
process holds an exclusive `fcntl.flock` on its open file for as long as it writes to it;
the kernel drops the lock when the process dies. Draining (replay into Redis) therefore:

1. seals this process's own file (renames it, closes it: later appends start a new file);
2. takes each file's lock without waiting (a file still locked belongs to a live writer or
   to another drainer, and is skipped), oldest file first;
3. hands out batches of records; after each batch the caller commits, which records the
   byte offset in `<file>.offset` (written atomically, tagged with the file's inode);
4. deletes the file once every line has been committed.

An interrupted drain resumes from the last committed offset, so at most one batch is
handed out twice (the events stream's consumer deduplicates by event_id).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PATTERN = "events-*.jsonl"


@dataclass
class SpillBatch:
    """Records read from one spill file; `commit()` once they are safely elsewhere."""

    records: list[dict[str, Any]]
    path: Path
    end: int  # byte offset just after the batch's last line
    inode: int
    committed: bool = field(default=False, init=False)

    def commit(self) -> None:
        _write_offset(self.path, self.inode, self.end)
        self.committed = True


class SpillLog:
    """Append-only, fsync'ed JSONL files in `directory`, one per writing process."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None

    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Durably append the records (one JSON line each); raises OSError if the disk
        refuses, after removing any partial line."""
        if not records:
            return
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()
        with self._lock:
            fd = self._active()
            size = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, size)
                raise

    def pending(self) -> int:
        """Records not yet replayed, over all files (this process's and dead ones')."""
        total = 0
        for path in self._files():
            try:
                with path.open("rb") as f:
                    f.seek(_read_offset(path, os.fstat(f.fileno()).st_ino))
                    total += f.read().count(b"\n")
            except FileNotFoundError:
                continue
        return total

    def has_pending(self) -> bool:
        """Cheap check (file sizes only) for a background loop: anything to replay?"""
        for path in self._files():
            try:
                with path.open("rb") as f:
                    stat = os.fstat(f.fileno())
                    if stat.st_size > _read_offset(path, stat.st_ino):
                        return True
            except FileNotFoundError:
                continue
        return False

    def drain(self, max_batch: int = 500) -> Generator[SpillBatch, None, None]:
        """Batches of spilled records, oldest file first, each file locked while read.

        Commit each batch before asking for the next one: an uncommitted batch ends the
        drain of its file (the caller could not place it). Close the generator (or
        exhaust it) to release the lock; `contextlib.closing` does both.
        """
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._seal()
        for path in self._files():
            yield from self._drain_file(path, max_batch)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd, self._path = None, None

    # -- internals -------------------------------------------------------------------

    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        files = []
        for path in self.directory.glob(PATTERN):
            try:
                files.append((path.stat().st_mtime_ns, path.name, path))
            except FileNotFoundError:
                continue
        return [p for _, _, p in sorted(files)]

    def _active(self) -> int:
        """This process's locked append file, (re)opened when missing or replaced."""
        if self._fd is not None and self._path is not None and _same_file(self._fd, self._path):
            return self._fd
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.directory.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        for n in range(1000):
            path = self.directory / (f"events-{pid}.jsonl" if n == 0 else f"events-{pid}-{n}.jsonl")
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a drainer holds it (a dead process with our pid)
                os.close(fd)
                continue
            if not _same_file(fd, path):  # deleted by a drainer just before we locked it
                os.close(fd)
                continue
            if os.fstat(fd).st_size == 0:
                _offset_path(path).unlink(missing_ok=True)  # a new file: no progress yet
            _fsync_dir(self.directory)
            self._fd, self._path = fd, path
            return fd
        raise OSError(f"no spill file could be opened in {self.directory}")

    def _seal(self) -> None:
        """Move this process's file out of the way so it can be drained."""
        with self._lock:
            if self._fd is None or self._path is None:
                return
            if os.fstat(self._fd).st_size and _same_file(self._fd, self._path):
                sealed = self._path.with_name(
                    f"{self._path.stem}-sealed{time.time_ns()}{self._path.suffix}"
                )
                os.rename(self._path, sealed)
                offset = _offset_path(self._path)
                if offset.exists():
                    os.rename(offset, _offset_path(sealed))
                _fsync_dir(self.directory)
            os.close(self._fd)  # releases the lock
            self._fd, self._path = None, None

    def _drain_file(self, path: Path, max_batch: int) -> Iterator[SpillBatch]:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # a live writer's file, or another drainer has it
            if not _same_file(fd, path):
                return  # already drained and deleted
            inode = os.fstat(fd).st_ino
            with os.fdopen(os.dup(fd), "rb") as f:
                f.seek(_read_offset(path, inode))
                batch: list[dict[str, Any]] = []
                for line in f:
                    if not line.endswith(b"\n"):
                        break  # torn last line of a crashed append: never acknowledged
                    try:
                        batch.append(json.loads(line))
                    except json.JSONDecodeError:
                        logger.warning("skipping an unreadable line in %s", path)
                    if len(batch) >= max_batch:
                        if not (yield from _hand_out(batch, path, f.tell(), inode)):
                            return
                        batch = []
                if not (yield from _hand_out(batch, path, f.tell(), inode)):
                    return
            # Offset first: a crash in between replays the file again (duplicates are
            # harmless) instead of leaving an offset that a new file could inherit.
            _offset_path(path).unlink(missing_ok=True)
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)


def _hand_out(
    records: list[dict[str, Any]], path: Path, end: int, inode: int
) -> Generator[SpillBatch, None, bool]:
    """Yield one batch; its return value says whether the caller committed it."""
    if not records:
        return True
    batch = SpillBatch(records, path, end, inode)
    yield batch
    return batch.committed


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _offset_path(path: Path) -> Path:
    return path.with_name(path.name + ".offset")


def _read_offset(path: Path, inode: int) -> int:
    """Committed byte offset; 0 when absent or left by another file of the same name."""
    try:
        tagged_inode, offset = _offset_path(path).read_text().split()
    except (FileNotFoundError, ValueError):
        return 0
    return int(offset) if int(tagged_inode) == inode else 0


def _write_offset(path: Path, inode: int, offset: int) -> None:
    target = _offset_path(path)
    tmp = target.with_name(target.name + ".tmp")
    with tmp.open("w") as f:
        f.write(f"{inode} {offset}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
