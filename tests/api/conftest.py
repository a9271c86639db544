"""Helpers of the API tests: sensorctl as a subprocess, servers to drive.

Servers are real: ``sensord --replay ... --serve unix:PATH`` in a
subprocess, or an :class:`sensor.api.server.ApiServer` in the test's
process over an ApiState the test feeds (to control exactly when alerts
appear).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sensor.api.server import ApiServer
from sensor.api.state import ApiState
from tests.conftest import ROOT

OFFICE = ROOT / "pcaps" / "office" / "office.pcap"


def sensorctl(
    *args: str,
    socket: Path | str | None = None,
    preexec: Callable[[], None] | None = None,
    timeout: float = 90,
) -> subprocess.CompletedProcess[str]:
    """Run sensorctl (as ``python -m``) and return its result."""
    # Generous call timeout: the machine may be loaded by other tests.
    where = ["--timeout", "60"] + (
        ["--socket", str(socket)] if socket is not None else []
    )
    return subprocess.run(
        [sys.executable, "-m", "sensor.cli.sensorctl", *where, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec,
        cwd=ROOT,
    )


def sensorctl_json(*args: str, socket: Path | str) -> Any:
    """Run sensorctl --json; assert it succeeded; return the parsed output."""
    r = sensorctl("--json", *args, socket=socket)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def follower(*args: str, socket: Path | str) -> subprocess.Popen[str]:
    """``sensorctl alerts --follow --json ARGS`` running in the background."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sensor.cli.sensorctl",
            "--socket",
            str(socket),
            "--json",
            "alerts",
            "--follow",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def alert(n: int, detection: str = "scan.port") -> tuple[str, dict[str, Any]]:
    """An alerts record with id A<n>, as the detections write them."""
    return (
        "alerts",
        {
            "ts": 1000.0 + n // 3,  # equal timestamps: resume must not rely on time
            "id": f"A{n:08d}",
            "detection": detection,
            "score": 50.0 + n % 50,
            "device": {"ip": "192.0.2.10"},
            "src": {"ip": "192.0.2.10"},
            "dst": {"ip": "198.51.100.7", "port": 22},
            "uids": [f"C{n}"],
            "summary": f"alert number {n}",
            "reasons": [{"feature": "n", "value": n, "baseline": None}],
            "mitre": "T1046",
            "incident": None,
        },
    )


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A directory for sockets that every user may enter (for the uid tests)."""
    d = Path(tempfile.mkdtemp(prefix="sensor-api-test-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    for p in d.iterdir():
        p.unlink()
    d.rmdir()


@pytest.fixture
def served_state(sockdir: Path) -> Iterator[tuple[ApiState, Path]]:
    """An in-process server on a Unix socket over a state the test feeds."""
    state = ApiState("live")
    path = sockdir / "api.sock"
    server = ApiServer(state, f"unix:{path}", socket_group="")
    server.start()
    yield state, path
    server.stop()


class Sensord:
    """``sensord --replay ... --serve unix:PATH`` in the background."""

    def __init__(self, pcap: Path, logdir: Path, socket: Path, *extra: str) -> None:
        self.socket = socket
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sensor.cli.sensord",
                "--replay",
                str(pcap),
                "--logdir",
                str(logdir),
                "--serve",
                f"unix:{socket}",
                "--socket-group",
                "",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        wait_for(
            lambda: socket.exists() or self.proc.poll() is not None, "the API socket"
        )
        assert self.proc.poll() is None, self.proc.communicate()[1]

    def wait_replayed(self) -> dict[str, Any]:
        """Wait until the replay is done; return the final status."""
        status: dict[str, Any] = {}

        def done() -> bool:
            nonlocal status
            status = sensorctl_json("status", socket=self.socket)
            return not status["running"]

        wait_for(done, "the replay to finish", timeout=120)
        return status

    def stop(self) -> tuple[int, str, str]:
        """SIGTERM; return the exit status and output."""
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, out, err
