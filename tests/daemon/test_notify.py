"""sd_notify messages, through systemd-python and through the built-in sender."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from sensor.daemon import notify


@pytest.fixture(params=["systemd-python", "builtin"])
def listener(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> socket.socket:
    if request.param == "systemd-python":
        pytest.importorskip("systemd.daemon")
    else:
        monkeypatch.setattr(notify, "_pick", lambda: (notify._fallback, "builtin"))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(tmp_path / "notify"))
    s.settimeout(1)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    return s


def test_ready_status_and_watchdog_pacing(listener: socket.socket) -> None:
    now = [100.0]
    n = notify.Notifier(clock=lambda: now[0])
    assert (
        n.watchdog_every == 1.5
    )  # half of WatchdogSec, as sd_watchdog_enabled(3) advises

    n.ready("capturing on eth1")
    assert listener.recv(4096) == b"READY=1\nSTATUS=capturing on eth1"
    n.watchdog()
    n.watchdog()  # too soon: not sent
    now[0] += 1.5
    n.watchdog()
    n.stopping()
    got = [listener.recv(4096) for _ in range(3)]
    assert got == [b"WATCHDOG=1", b"WATCHDOG=1", b"STOPPING=1"]


def test_watchdog_for_another_pid_is_ignored(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert notify.Notifier().watchdog_every == 0.0


def test_outside_systemd_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.setattr(notify, "_pick", lambda: (notify._fallback, "builtin"))
    n = notify.Notifier()
    n.ready()
    n.watchdog()
    assert n.watchdog_every == 0.0
