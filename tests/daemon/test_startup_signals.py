"""Signals during start-up: SIGTERM stops as it does later (exit 0, no
failure reported, nothing left behind); SIGHUP is held until the daemon
runs, then applied as a reload, instead of killing it (status 129).

A hook in the start sends the signal at a known point, so that the test
does not depend on timing.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.daemon.conftest import env_for

SCRIPT = """
import os, signal, sys
import sensor.config
import sensor.daemon.main as daemon
from sensor.cli import sensord

where, signum = sys.argv[2], int(sys.argv[3])

def hooked(owner, name):
    original = getattr(owner, name)
    def hook(*args, **kwargs):
        if name != "_start_api":
            os.kill(os.getpid(), signum)
        result = original(*args, **kwargs)
        if name == "_start_api":  # the workers are forked and starting
            os.kill(os.getpid(), signum)
        return result
    setattr(owner, name, hook)

hooked(*{"config": (sensor.config, "load"),
         "workers": (daemon.Daemon, "_start_api")}[where])
sys.exit(sensord.main(["--config", sys.argv[1]]))
"""


def start(tmp_path: Path, where: str, sig: int) -> tuple[subprocess.Popen[str], Path]:
    conf = tmp_path / "sensor.toml"
    conf.write_text(
        '[capture]\ninterface = "lo"\nworkers = 2\n'
        f'[output]\nlogdir = "{tmp_path / "logs"}"\n'
        f'[model]\nstate = "{tmp_path / "state.db"}"\n[api]\nlisten = ""\n'
    )
    err = tmp_path / "stderr"
    cmd = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
           sys.executable, "-c", SCRIPT, str(conf), where, str(int(sig))]  # fmt: skip
    with open(err, "w") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env_for("compiled"), stderr=f, text=True)
    return proc, err


@pytest.mark.parametrize("where", ["config", "workers"])
def test_sigterm_during_start_is_a_stop(
    netns_ok: None, tmp_path: Path, where: str
) -> None:
    proc, err = start(tmp_path, where, signal.SIGTERM)
    try:
        status = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = err.read_text()
    assert status == 0, text
    assert "Traceback" not in text and "ERROR" not in text, text
    assert "capture workers started" not in text and "capturing with" not in text


def test_sighup_during_start_is_held(netns_ok: None, tmp_path: Path) -> None:
    proc, err = start(tmp_path, "config", signal.SIGHUP)
    try:
        deadline = time.monotonic() + 30
        while "reload: applied" not in err.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, (proc.returncode, err.read_text())
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = err.read_text()
    assert status == 0, text
    assert "capturing with 2 workers" in text and "reload: applied" in text, text
    assert "Traceback" not in text and "ERROR" not in text, text
