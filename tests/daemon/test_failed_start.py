"""A start that fails after the workers were forked stops them at once.

Everything checkable is checked before capture (tests/cli/test_bad_input.py);
this covers what can still fail after the fork. The first SIGTERM may reach
a worker before it set its handler: the daemon must not then wait
``STOP_TIMEOUT`` for a worker that never heard it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.daemon.conftest import env_for

SCRIPT = """
import sys
import sensor.daemon.main as daemon
from sensor.cli import sensord

class FailingWriter:
    def __init__(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", sys.argv[1])

daemon.preflight = lambda cfg: None  # what it checks could change after it ran
daemon.RotatingLogWriter = FailingWriter
sys.exit(sensord.main(["--interface", "lo", "--workers", "2", "--logdir", sys.argv[1]]))
"""


def test_logs_failing_after_fork(netns_ok: None, tmp_path: Path) -> None:
    logdir = tmp_path / "logs"
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
         sys.executable, "-c", SCRIPT, str(logdir)],
        cwd=ROOT, env=env_for("compiled"), capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip

    assert done.returncode == 1, done.stderr
    assert "did not stop" not in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"sensord: {logdir}: Permission denied"
    )
