"""Signals that come while the live daemon starts: held, then taken over.

Until the daemon has set its own handlers, SIGTERM, SIGINT and SIGHUP
would take their default action: SIGHUP would end the process with status
129 (a reload sent too early kills the service) and SIGTERM would end it
without putting the interface back. ``sensord`` calls :func:`hold` as soon
as it knows it will capture live; :class:`sensor.daemon.main.Daemon` then
takes the held signals over (:func:`take`): a stop stops the start, a
reload is applied once the daemon runs.

The interpreter's own start and the import of ``sensord`` (about 0.3 s)
come before :func:`hold`; a SIGHUP then still ends the process. systemd
sends none: a reload job waits for the start job to finish (READY=1).
"""

from __future__ import annotations

import signal

#: The signals held, in the order they came.
_held: list[int] = []


def hold() -> None:
    """Note SIGTERM, SIGINT and SIGHUP from now on instead of acting on them."""
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, _note)


def take() -> list[int]:
    """The signals held so far (and forget them)."""
    out = list(_held)
    _held.clear()
    return out


def _note(signum: int, frame: object) -> None:
    _held.append(signum)
