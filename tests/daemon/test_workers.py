"""A worker that dies or hangs, or an interface that disappears, stops the
daemon with status 1 (for systemd to restart it) instead of leaving traffic
unwatched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.daemon.conftest import env_for


def start(
    tmp_path: Path, interface: str = "lo", health: float = 1.0
) -> tuple[subprocess.Popen[str], Path]:
    conf = tmp_path / "sensor.toml"
    conf.write_text(
        f'[capture]\ninterface = "{interface}"\nworkers = 1\n'
        f"[daemon]\nworker_timeout = 2.0\n[health]\ninterval = {health}\n"
    )
    err = tmp_path / "stderr"
    env = dict(env_for("compiled"), SENSOR_DEBUG_HANG="1")
    # unshare without --fork, and sh's exec: the child's pid is sensord's.
    setup = ""
    if interface == "cap0":
        setup = "ip link add tx0 type veth peer name cap0 && ip link set cap0 up && "
    cmd = ["unshare", "--net", "sh", "-c", f'{setup}exec "$@"', "sh", sys.executable,
           "-m", "sensor.cli.sensord", "--config", str(conf), "--logdir", str(tmp_path / "logs")]  # fmt: skip
    with open(err, "w") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=f, text=True)
    deadline = time.monotonic() + 45
    while "capturing with" not in err.read_text() and time.monotonic() < deadline:
        assert proc.poll() is None, err.read_text()
        time.sleep(0.05)
    return proc, err


def worker_pid(pid: int) -> int:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


@pytest.mark.parametrize(
    "sig, expected",
    [
        (signal.SIGKILL, "worker 0 exited with status -9; stopping"),
        (signal.SIGUSR2, "worker 0 silent for"),
    ],
    ids=["killed", "hung"],
)
def test_lost_worker_stops_the_daemon(
    netns_ok: None, tmp_path: Path, sig: int, expected: str
) -> None:
    proc, err = start(tmp_path)
    try:
        os.kill(worker_pid(proc.pid), sig)
        status = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert status == 1
    assert expected in err.read_text()
    assert "Traceback" not in err.read_text()


def test_interface_removed_stops_the_daemon(netns_ok: None, tmp_path: Path) -> None:
    proc, err = start(tmp_path, "cap0")
    try:
        subprocess.run(
            ["nsenter", "-t", str(proc.pid), "-n", "ip", "link", "del", "tx0"],
            check=True,
        )
        status = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert status == 1
    assert "sensord: ERROR: cap0: interface is gone; stopping" in err.read_text()
    assert "Traceback" not in err.read_text()


def test_interface_removed_between_health_samples(
    netns_ok: None, tmp_path: Path
) -> None:
    # With health sampled once an hour, the loss is still seen at once (the
    # worker's ENETDOWN, or the check every second), not at the next sample.
    proc, err = start(tmp_path, "cap0", health=3600.0)
    try:
        subprocess.run(
            ["nsenter", "-t", str(proc.pid), "-n", "ip", "link", "del", "tx0"],
            check=True,
        )
        status = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = err.read_text()
    assert status == 1, text
    assert "sensord: ERROR: cap0: interface is gone; stopping" in text
    assert "Traceback" not in text
