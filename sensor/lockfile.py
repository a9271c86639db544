"""Lock files that keep two sensor processes off one shared resource.

Design note. A resource that two daemons must not share (a log directory,
the response state, the nftables table of a network namespace) is guarded
by an exclusive ``flock`` on a lock file, held for as long as the process
uses the resource; the kernel drops it when the process ends, however it
ends, so a crash never leaves a stale lock. The holder writes its pid into
the file, for the refusal to name it, and removes the file before letting
go, so that no lock file outlives its holder. A process that opened the
file just before it was removed would lock a file no longer there: after
locking, the path must still name the file that was locked, or the lock is
taken again (the usual remedy, as in ``flock(1)``-based lockers).
"""

from __future__ import annotations

import errno
import fcntl
import os
import time


class InUse(OSError):
    """Another process holds the lock. ``filename`` names what the lock
    guards, ``strerror`` says who holds it, ``pid`` is its pid (0 when
    unknown)."""

    def __init__(self, guarded: str, pid: int) -> None:
        super().__init__(errno.EBUSY, f"in use by {holder_text(pid)}", guarded)
        self.pid = pid


#: How often, and how long apart, acquire() tries again when the lock is
#: taken: long enough for a check's shared lock to be let go.
CHECK_RETRIES = 5
CHECK_WAIT = 0.02


def holder_text(pid: int) -> str:
    """ "another sensord (pid N)", or without the pid when unknown."""
    return f"another sensord (pid {pid})" if pid else "another sensord"


class LockFile:
    """An exclusive lock on ``path`` guarding ``guarded`` (for messages)."""

    def __init__(self, path: str, guarded: str | None = None) -> None:
        self.path = path
        self.guarded = guarded or path
        self._fd = -1

    @property
    def held(self) -> bool:
        """True between :meth:`acquire` and :meth:`release`."""
        return self._fd >= 0

    def acquire(self) -> None:
        """Take the lock now or raise :class:`InUse`; OSError when the file
        cannot be made (its directory is missing or not writable)."""
        tries = 0
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _read_pid(fd)
                os.close(fd)
                # A check (holder(): a shared lock for a moment) is no
                # holder: it is let go within milliseconds, a holder is not.
                tries += 1
                if tries <= CHECK_RETRIES:
                    time.sleep(CHECK_WAIT)
                    continue
                raise InUse(self.guarded, pid) from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # removed by its last holder after we opened it

        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            os.close(fd)  # a full disk: not held, and not left open
            raise
        self._fd = fd

    def release(self) -> None:
        """Remove the file and let go (nothing when not held)."""
        if self._fd < 0:
            return
        try:
            # While still holding it (see the design note), and only our own
            # file: one deleted by hand may be another holder's by now.
            if _same_file(self._fd, self.path):
                os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = -1


def holder(path: str) -> int | None:
    """The pid holding the lock on ``path`` (0 when it cannot be read), or
    None when nobody holds it. Takes nothing and makes no file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        # Shared: two checks at once do not see each other as holders.
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_pid(fd)
    finally:
        os.close(fd)
    return None


def check(path: str, guarded: str | None = None) -> None:
    """Raise :class:`InUse` when another process holds the lock on ``path``."""
    pid = holder(path)
    if pid is not None:
        raise InUse(guarded or path, pid)


def _read_pid(fd: int) -> int:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0)
    except (OSError, ValueError):
        return 0


def _same_file(fd: int, path: str) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)
