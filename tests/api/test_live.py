"""The daemon capturing live serves the API: a follower gets alerts as the
traffic arrives, and an approval is written to actions.log by the daemon
with who made it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.api.conftest import OFFICE
from tests.conftest import ROOT
from tests.daemon.conftest import env_for, require_netns
from tests.replay import read_log


def test_live_daemon_serves_the_api(tmp_path: Path) -> None:
    require_netns()
    done = subprocess.run(
        [
            "unshare",
            "--net",
            sys.executable,
            "-m",
            "tests.api.live_probe",
            "--dir",
            str(tmp_path),
            "--wait",
            "60",
            str(OFFICE),
        ],
        cwd=ROOT,
        env=env_for("compiled"),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout.strip().splitlines()[-1])
    assert r["exit"] == 0, r["stderr"]
    assert "Traceback" not in r["stderr"]

    # Before any traffic the API answers, live, with nothing seen yet.
    before = r["before"]
    assert before["code"] == 0, before
    assert before["out"]["source"] == "live" and before["out"]["running"] is True
    assert int(before["out"].get("alerts", 0)) == 0

    # The follower, started before tcpreplay, got an alert as it came.
    assert len(r["followed"]) == 1, r["follow_err"]
    followed = r["followed"][0]
    assert followed["src"]["ip"] == "192.168.10.102"

    status = r["status"]["out"]
    assert status["mode"] == "RESPONSE_MODE_CONFIRM"
    assert int(status["alerts"]) >= 1 and int(status["actions_pending"]) >= 1
    assert int(status["packets"]) > 0  # what the workers read, live

    # The approval: in force at once, and in actions.log with the user.
    assert r["approve"]["code"] == 0, r["approve"]
    approved = r["approve"]["out"]
    assert approved["state"] == "ACTION_STATE_ACTIVE"
    user = __import__("pwd").getpwuid(os.geteuid()).pw_name
    logged = read_log(tmp_path / "logs" / "actions.log")
    assert any(
        x["id"] == approved["id"] and x["change"] == "approve" and x["who"] == user
        for x in logged
    ), logged
    assert r["socket_left"] is False  # removed at stop
