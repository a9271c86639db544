"""Two live daemons on one host must not share what only one can own.

The nftables table of a network namespace, a log directory and a state
directory (its response-state.json) each belong to one sensord: a second
one is refused at start (exit 78) with one line naming what is taken and by
whom; a replay into a live daemon's log directory is refused (exit 1), and
so is ``sensord --cleanup`` while a daemon owns the table. The run is in a
network namespace of the test's own (tests/daemon/twice.py).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.daemon.conftest import env_for, require_netns


@pytest.fixture(scope="module")
def twice(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    require_netns()
    why = None
    try:  # the daemons use the nftables back-end; the test lists tables
        ctypes.CDLL("libnftables.so.1")
    except OSError:
        why = "libnftables.so.1 is missing (scripts/install-system installs libnftables1)"
    if shutil.which("nft") is None:
        why = "nft is not installed (scripts/install-system installs nftables)"
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    work = tmp_path_factory.mktemp("twice")
    done = subprocess.run(
        ["unshare", "--net", sys.executable, "-m", "tests.daemon.twice", str(work)],
        cwd=ROOT, env=env_for("compiled"), capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["a_started"], report["a_stderr"]
    report["work"] = str(work)
    return report


def test_second_daemon_on_the_table_is_refused(twice: dict[str, Any]) -> None:
    assert twice["table"] == {
        "status": 78,
        "line": f"sensord: response: nftables: another sensord (pid {twice['a_pid']}) "
        "owns the table inet sensor in this network namespace",
    }


def test_cleanup_while_a_daemon_owns_the_table_is_refused(
    twice: dict[str, Any],
) -> None:
    assert twice["cleanup"] == {
        "status": 1,
        "line": "sensord: --cleanup: cannot remove table inet sensor: "
        f"another sensord (pid {twice['a_pid']}) owns it in this network "
        "namespace and would put it back; stop it first",
    }
    assert (
        twice["tables_after_cleanup"] == twice["tables_with_a"] == ["table inet sensor"]
    )


def test_second_daemon_on_the_log_directory_is_refused(
    twice: dict[str, Any],
) -> None:
    logs = Path(twice["work"]) / "logs"
    assert twice["logdir"] == {
        "status": 78,
        "line": f"sensord: output.logdir = '{logs}': in use by another sensord "
        f"(pid {twice['a_pid']})",
    }


def test_replay_into_a_live_log_directory_is_refused(twice: dict[str, Any]) -> None:
    logs = Path(twice["work"]) / "logs"
    assert twice["replay"] == {
        "status": 1,
        "line": f"sensord: {logs}: in use by another sensord (pid {twice['a_pid']})",
    }


def test_second_daemon_on_the_state_directory_is_refused(
    twice: dict[str, Any],
) -> None:
    state = Path(twice["work"]) / "state"
    assert twice["statedir"] == {
        "status": 78,
        "line": f"sensord: model.state = '{state / 'other.db'}': the response state "
        f"{state / 'response-state.json'} is in use by another sensord "
        f"(pid {twice['a_pid']}); give each daemon a state directory of its own",
    }


def test_a_daemon_sharing_nothing_runs_beside(twice: dict[str, Any]) -> None:
    assert twice["alone"]["status"] == "started", twice["alone"]


def test_all_is_free_once_the_first_stops(twice: dict[str, Any]) -> None:
    assert twice["a_status"] == 0, twice["a_stderr"]
    assert twice["table_after_a"]["status"] == "started", twice["table_after_a"]
    assert twice["cleanup_after_a"] == {
        "status": 0,
        "line": "sensord: removed table inet sensor",
    }
    assert twice["lock_files_left"] == []
