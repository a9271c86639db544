"""A log that cannot be written stops the daemon cleanly, with one line.

A full disk (or a file system gone read-only) while running must not leave
the daemon half-stopped: workers running, the interface promiscuous, the
API socket in place and SIGTERM ignored. It stops as for SIGTERM, says
which file and why, and exits 1 for systemd to restart it. A log
directory that cannot be written at all is refused at start (exit 78).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.daemon.conftest import WIKIPEDIA, env_for


def test_full_disk_stops_cleanly(netns_ok: None, pcaps: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        ["unshare", "--net", "--mount", sys.executable, "-m",
         "tests.daemon.logfail_probe", str(tmp_path), str(pcaps / WIKIPEDIA)],
        cwd=ROOT, env=env_for("compiled"), capture_output=True, text=True,
        timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])

    assert report["status"] == 1, report
    assert not report["promiscuous"] and not report["socket_left"], report
    assert report["workers_left"] == [], report
    stderr = report["stderr"]
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, stderr
    logdir = tmp_path / "logs"
    assert errors[0].startswith(f"sensord: ERROR: {logdir}/"), errors
    assert errors[0].endswith(": cannot write: No space left on device; stopping")


def test_read_only_logdir_refused_at_start(netns_ok: None, tmp_path: Path) -> None:
    logdir = tmp_path / "logs"
    logdir.mkdir()
    done = subprocess.run(
        ["unshare", "--net", "--mount", "sh", "-c",
         'mount -t tmpfs -o ro tmpfs "$1" && shift && exec "$@"', "sh", str(logdir),
         sys.executable, "-m", "sensor.cli.sensord", "--interface", "lo",
         "--logdir", str(logdir)],
        cwd=ROOT, env=env_for("compiled"), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 78, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"sensord: output.logdir = {str(logdir)!r}: cannot write in the log "
        "directory: Read-only file system"
    ]
