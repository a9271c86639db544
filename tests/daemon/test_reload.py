"""SIGHUP: reloadable options apply at once, others wait for a restart,
a broken file changes nothing, and open connections carry on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.daemon.conftest import env_for
from tests.replay import read_log


def test_sighup_applies_filter_and_rotation_keeps_state(
    netns_ok: None, tmp_path: Path
) -> None:
    config = tmp_path / "sensor.toml"
    config.write_text(
        '[capture]\ninterface = "cap0"\nworkers = 1\nbpf_filter = ""\n[output]\nrotate_bytes = 0\n'
    )
    logdir = tmp_path / "logs"
    done = subprocess.run(
        ["unshare", "--net", sys.executable, "-m", "tests.daemon.reload_probe", str(config), str(logdir)],
        cwd=ROOT, env=env_for("compiled"), capture_output=True, check=False, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout.strip().splitlines()[-1])
    assert (
        r["status"] == 0
        and r["reloaded"]
        and r["bad_reload_logged"]
        and r["alive_after_bad_reload"]
    ), r

    stderr = r["stderr"]
    assert "reload: applied capture.bpf_filter, output.rotate_bytes" in stderr
    assert "reload: capture.workers: a change needs a restart; keeping 1" in stderr

    records = [c for path in sorted(logdir.glob("conn*.log")) for c in read_log(path)]
    seen = sorted((c["proto"], c["id.orig_p"], c["orig_pkts"]) for c in records)
    # The TCP SYN sent after the reload was filtered out in the kernel; the
    # UDP flow begun before the reload is one connection with both packets.
    assert seen == [("tcp", 40000, 1), ("udp", 40000, 2), ("udp", 40001, 1)]
    # Rotation after every record: each record ended up in a file of its own.
    assert len(list(logdir.glob("conn.*.log"))) == 2
