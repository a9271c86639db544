"""Log files that rotate by size or age without losing or splitting a record.

:class:`RotatingLogWriter` has :class:`sensor.output.zeeklog.LogWriter`'s
interface (``write``, ``close``, ``counts``, a context manager) and the same
record format. A file is rotated only between two records: it is flushed,
closed and renamed to ``<log>.<start>-<end>.log`` (UTC times of its first
and last write, ``YYYYmmddTHHMMSS``; ``.1``, ``.2`` ... added if that name
is taken), and the next record opens a fresh ``<log>.log``. A reader that
follows ``conn.log`` by name therefore sees whole records only, and every
record is in exactly one file.

A ``<log>.log`` left by an earlier run is rotated away when first opened,
never truncated. At most ``keep`` rotated files are kept per log (oldest
deleted first; 0 keeps all).

The clock is injected (``clock``) so that tests rotate by time without
sleeping.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Self

from sensor.output.zeeklog import ordered

log = logging.getLogger(__name__)


def _stamp(t: float) -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(t))


class _Open:
    """One open log file and what the rotation needs to know about it."""

    def __init__(self, path: Path, now: float) -> None:
        # Open across many writes, closed by rotation or close().
        self.file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115
        self.started = now
        self.last = now
        self.size = self.file.tell()


class RotatingLogWriter:
    """Writes records to ``DIR/<log>.log``, rotating by size and by age.

    ``rotate_bytes`` (0: never by size) and ``rotate_seconds`` (0: never by
    age) may be changed between writes (SIGHUP does).
    """

    def __init__(
        self,
        logdir: str | os.PathLike[str],
        rotate_bytes: int = 0,
        rotate_seconds: float = 0,
        keep: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.keep = keep
        self.clock = clock
        self._files: dict[str, _Open] = {}
        #: Records written per log.
        self.counts: dict[str, int] = {}
        #: Files rotated so far.
        self.rotations = 0

    def write(self, name: str, record: dict[str, Any]) -> None:
        """Append one record to ``<name>.log``, rotating first if it is due."""
        now = self.clock()
        f = self._files.get(name)
        if f is not None and self._due(f, now):
            self._rotate(name, f)
            f = None
        if f is None:
            f = self._open(name, now)
        line = json.dumps(ordered(name, record), separators=(",", ":")) + "\n"
        f.file.write(line)
        f.size += len(line)  # json.dumps escapes to ASCII: characters are bytes
        f.last = now
        self.counts[name] = self.counts.get(name, 0) + 1

    def tick(self) -> None:
        """Rotate files whose age is up even when nothing is being written."""
        now = self.clock()
        for name, f in list(self._files.items()):
            if self.rotate_seconds and now - f.started >= self.rotate_seconds:
                self._rotate(name, f)

    def flush(self) -> None:
        """Push buffered records to the files, so readers see them."""
        for f in self._files.values():
            f.file.flush()

    def close(self) -> None:
        """Flush and close every file (they are not rotated)."""
        for f in self._files.values():
            f.file.close()
        self._files.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- rotation ----------------------------------------------------------

    def _due(self, f: _Open, now: float) -> bool:
        if self.rotate_bytes and f.size >= self.rotate_bytes:
            return True
        return bool(self.rotate_seconds) and now - f.started >= self.rotate_seconds

    def _open(self, name: str, now: float) -> _Open:
        path = self.logdir / f"{name}.log"
        if name not in self.counts and path.exists() and path.stat().st_size > 0:
            # Left by an earlier run: keep it, under a rotated name.
            mtime = path.stat().st_mtime
            self._rename(name, path, mtime, mtime)
        f = self._files[name] = _Open(path, now)
        return f

    def _rotate(self, name: str, f: _Open) -> None:
        f.file.close()
        del self._files[name]
        self._rename(name, self.logdir / f"{name}.log", f.started, f.last)
        self.rotations += 1

    def _rename(self, name: str, path: Path, start: float, end: float) -> None:
        base = f"{name}.{_stamp(start)}-{_stamp(end)}"
        target = self.logdir / f"{base}.log"
        n = 0
        while target.exists():
            n += 1
            target = self.logdir / f"{base}.{n}.log"
        os.rename(path, target)
        log.debug("%s: rotated to %s", path, target.name)
        self._prune(name)

    def _prune(self, name: str) -> None:
        if not self.keep:
            return
        rotated = sorted(
            (p for p in self.logdir.glob(f"{name}.*.log")),
            key=lambda p: (p.stat().st_mtime, p.name),
        )
        for old in rotated[: max(0, len(rotated) - self.keep)]:
            old.unlink(missing_ok=True)
