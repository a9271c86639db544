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
deleted first; 0 keeps all). A ``<log>.log`` deleted by hand while open is
noticed at the next :meth:`RotatingLogWriter.tick` and written afresh
(records written in between are lost with the deleted file); its rotation
has nothing to rename and is skipped. The directory is locked while the
writer is open (``.sensord.lock``, see :mod:`sensor.output`): a second
writer there is refused rather than rotating the first one's files away.

A file that cannot be written, flushed or closed (a full disk, a file
system gone read-only) raises :class:`OSError` whose ``filename`` is the
log's path, so that the caller can say which file failed and why.

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

from sensor.output import lock_logdir
from sensor.output.zeeklog import ordered

log = logging.getLogger(__name__)


def _stamp(t: float) -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(t))


def _named(e: OSError, path: Path) -> OSError:
    """``e`` with the log's path as its file name (a write's error has none)."""
    if e.filename is not None:
        return e
    return type(e)(e.errno, e.strerror or str(e), str(path))


def _deleted(f: _Open) -> bool:
    try:
        return os.fstat(f.file.fileno()).st_nlink == 0
    except (OSError, ValueError):  # closed, or not a real file
        return False


def _close_quietly(f: _Open) -> None:
    try:
        f.file.close()
    except OSError:
        pass


class _Open:
    """One open log file and what the rotation needs to know about it."""

    def __init__(self, path: Path, now: float) -> None:
        self.path = path
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
        # Another writer here would rotate our files away while we append.
        self._lock = lock_logdir(logdir)
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
        try:
            f.file.write(line)
        except OSError as e:
            raise _named(e, f.path) from e
        f.size += len(line)  # json.dumps escapes to ASCII: characters are bytes
        f.last = now
        self.counts[name] = self.counts.get(name, 0) + 1

    def tick(self) -> None:
        """Rotate files whose age is up even when nothing is being written,
        and let go of files deleted by hand (the next record opens anew)."""
        now = self.clock()
        for name, f in list(self._files.items()):
            if self.rotate_seconds and now - f.started >= self.rotate_seconds:
                self._rotate(name, f)
            elif _deleted(f):
                log.warning("%s: deleted while open; writing a new one", f.path)
                del self._files[name]
                _close_quietly(f)

    def flush(self) -> None:
        """Push buffered records to the files, so readers see them."""
        for f in self._files.values():
            try:
                f.file.flush()
            except OSError as e:
                raise _named(e, f.path) from e

    def close(self) -> None:
        """Flush and close every file (they are not rotated). Every file is
        closed even when one fails; the first failure is raised after."""
        failure: OSError | None = None
        for f in self._files.values():
            try:
                f.file.close()
            except OSError as e:
                failure = failure or _named(e, f.path)
        self._files.clear()
        self._lock.release()
        if failure is not None:
            raise failure

    def abandon(self) -> None:
        """Close every file, ignoring errors: for a writer that already
        failed, whose buffered records cannot be written anyway."""
        for f in self._files.values():
            _close_quietly(f)
        self._files.clear()
        self._lock.release()

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
        del self._files[name]
        try:
            f.file.close()
        except OSError as e:
            _close_quietly(f)
            raise _named(e, f.path) from e
        self._rename(name, self.logdir / f"{name}.log", f.started, f.last)
        self.rotations += 1

    def _rename(self, name: str, path: Path, start: float, end: float) -> None:
        base = f"{name}.{_stamp(start)}-{_stamp(end)}"
        target = self.logdir / f"{base}.log"
        n = 0
        while target.exists():
            n += 1
            target = self.logdir / f"{base}.{n}.log"
        try:
            os.rename(path, target)
        except FileNotFoundError:
            # Deleted by hand since it was opened: nothing to keep.
            log.warning("%s: deleted before its rotation; writing a new one", path)
            return
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
