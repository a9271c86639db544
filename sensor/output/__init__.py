"""Output: JSON-lines log writers with Zeek's field names.

Both writers (:class:`sensor.output.zeeklog.LogWriter` for a replay,
:class:`sensor.output.rotate.RotatingLogWriter` for the daemon) hold
``LOCK`` in their directory while open: two sensord writing one directory
would truncate or rotate away each other's files. The second is refused
with :class:`sensor.lockfile.InUse` (an OSError naming the directory).
"""

from __future__ import annotations

import os

from sensor.lockfile import LockFile

#: The lock file of a log directory (sensor.lockfile; gone when released).
LOCK = ".sensord.lock"


def lock_logdir(logdir: str | os.PathLike[str]) -> LockFile:
    """The log directory's lock, taken; InUse when another process has it."""
    lock = LockFile(os.path.join(logdir, LOCK), str(logdir))
    lock.acquire()
    return lock
