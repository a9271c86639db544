"""Lock files: one holder at a time, named in the refusal, gone after it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sensor.lockfile import InUse, LockFile, check, holder
from tests.conftest import ROOT


def test_second_holder_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    path = str(tmp_path / ".sensord.lock")
    first = LockFile(path, "logs")
    first.acquire()
    assert holder(path) == os.getpid()

    with pytest.raises(InUse) as refused:
        LockFile(path, "logs").acquire()
    assert (
        str(refused.value)
        == f"[Errno 16] in use by another sensord (pid {os.getpid()}): 'logs'"
    )
    assert (refused.value.filename, refused.value.pid) == ("logs", os.getpid())
    with pytest.raises(InUse):
        check(path, "logs")

    first.release()
    assert not os.path.exists(path)
    assert holder(path) is None
    check(path)  # nothing raised


def test_free_again_after_release(tmp_path: Path) -> None:
    lock = LockFile(str(tmp_path / "x.lock"))
    lock.acquire()
    lock.release()
    lock.release()  # twice is harmless
    again = LockFile(str(tmp_path / "x.lock"))
    again.acquire()
    assert again.held
    again.release()


def test_a_stale_file_does_not_hold(tmp_path: Path) -> None:
    # Left by a holder that was killed: nobody has it locked.
    path = tmp_path / "x.lock"
    path.write_text("999999\n")
    assert holder(str(path)) is None
    lock = LockFile(str(path))
    lock.acquire()
    assert path.read_text() == f"{os.getpid()}\n"
    lock.release()


def test_the_kernel_drops_the_lock_of_a_killed_holder(tmp_path: Path) -> None:
    path = str(tmp_path / "x.lock")
    script = (
        "import os, sys\n"
        "from sensor.lockfile import LockFile\n"
        "LockFile(sys.argv[1]).acquire()\n"
        "print(os.getpid(), flush=True)\n"
        "sys.stdin.read()\n"
        "os._exit(0)  # no release: the file stays, unlocked\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, path], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    pid = int(proc.stdout.readline())
    assert holder(path) == pid
    proc.stdin.close()
    proc.wait(timeout=30)

    assert os.path.exists(path)
    assert holder(path) is None


def test_a_check_at_the_same_moment_does_not_fail_a_start(tmp_path: Path) -> None:
    """holder() takes a shared lock for a moment: an acquire that meets it
    tries again instead of refusing the start."""
    import fcntl
    import threading

    path = str(tmp_path / "x.lock")
    open(path, "w").close()
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # a check, caught in the middle
    threading.Timer(0.03, os.close, (fd,)).start()
    lock = LockFile(path)
    lock.acquire()  # no InUse
    assert holder(path) == os.getpid()
    lock.release()


def test_release_leaves_another_holders_file(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    first = LockFile(str(path))
    first.acquire()
    path.unlink()  # deleted by hand ...
    second = LockFile(str(path))
    second.acquire()  # ... and taken by another
    first.release()
    assert path.exists() and holder(str(path)) == os.getpid()
    second.release()
    assert not path.exists()
