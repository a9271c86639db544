"""systemd notifications: READY=1, WATCHDOG=1, STATUS=, STOPPING=1.

Uses systemd-python (``systemd.daemon.notify``) when it is installed, and
otherwise sends the datagram itself: the protocol is one ``KEY=VALUE``
datagram to the AF_UNIX socket named in ``$NOTIFY_SOCKET`` (a leading ``@``
means the abstract namespace), as sd_notify(3) documents. Without
``$NOTIFY_SOCKET`` (not started by systemd) every call does nothing.

The watchdog interval comes from ``$WATCHDOG_USEC`` (set by systemd when the
unit has ``WatchdogSec=``, for the main process only: ``$WATCHDOG_PID``);
:meth:`Notifier.watchdog` sends at most one ping per half interval, as
sd_watchdog_enabled(3) advises.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def _fallback(message: str) -> bool:
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(address)
        s.sendall(message.encode())
    return True


def _pick() -> tuple[Callable[[str], bool], str]:
    try:
        from systemd import daemon  # type: ignore[attr-defined]
    except ImportError:
        return _fallback, "builtin"
    return (lambda m: bool(daemon.notify(m))), "systemd-python"


class Notifier:
    """Tells systemd how the daemon is doing; does nothing outside systemd."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._send, self.backend = _pick()
        self.clock = clock
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        #: Seconds between watchdog pings, or 0 when there is no watchdog.
        self.watchdog_every = int(usec) / 2e6 if usec.isdigit() and mine else 0.0
        self._last_ping = float("-inf")

    def send(self, message: str) -> None:
        """Send one notification; a failure is logged, never raised."""
        try:
            self._send(message)
        except OSError as e:
            log.warning("systemd notification %r failed: %s", message.split("=")[0], e)

    def ready(self, status: str = "") -> None:
        """Capture runs: tell systemd the start is complete."""
        self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, text: str) -> None:
        """One line shown by ``systemctl status``."""
        self.send(f"STATUS={text}")

    def stopping(self) -> None:
        """A stop has begun (flushing may take a moment)."""
        self.send("STOPPING=1")

    def reloading(self) -> None:
        """A reload has begun; :meth:`ready` ends it."""
        self.send("RELOADING=1")

    def watchdog(self) -> None:
        """Ping the watchdog if half its interval has passed since the last ping."""
        if not self.watchdog_every:
            return
        now = self.clock()
        if now - self._last_ping >= self.watchdog_every:
            self._last_ping = now
            self.send("WATCHDOG=1")
