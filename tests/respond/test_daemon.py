"""The live daemon runs the response: records from the workers go through
the pipeline, and the nftables back-end puts blocks in the kernel.

tcpreplay sends the office capture into a veth in a network namespace of
the test's own (tests/daemon/netns.py); the capture's addresses never leave
it. With every detection autonomous, the alerts become blocks in the
kernel (the namespace's own, gone with it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema

from tests.conftest import ROOT
from tests.daemon.conftest import env_for, live_run, require_netns

SCHEMA = json.loads((ROOT / "sensor/output/schemas/actions.schema.json").read_text())


def test_daemon_blocks_through_nftables(tmp_path: Path) -> None:
    require_netns()
    conf = tmp_path / "sensor.toml"
    conf.write_text(
        '[capture]\ninterface = "cap0"\nworkers = 1\n'
        f'[model]\nstate = "{tmp_path / "state.db"}"\n'
        '[response]\nmode = "autonomous"\nbackends = ["nftables"]\n'
    )
    report = live_run(
        [ROOT / "pcaps/office/office.pcap"],
        tmp_path / "live", "compiled", "--config", str(conf), "--pps", "2000",
    )  # fmt: skip
    assert report["status"] == 0, report
    assert "response: mode autonomous, back-ends nftables" in report["stderr"]
    lines = (tmp_path / "live" / "actions.log").read_text().splitlines()
    actions = [json.loads(line) for line in lines]
    for a in actions:
        jsonschema.validate(a, SCHEMA)
    applied = [a for a in actions if a["change"] == "apply"]
    assert applied, actions
    assert all(a["backend"] == "nftables" and a["state"] == "active" for a in applied)
    assert not [a for a in actions if a["change"] == "fail"]
    # The office capture's SYN scan of the file server, judged at the latest
    # when the daemon stops, becomes a block of exactly that pair.
    scans = [(a["target"], a.get("dst_ip")) for a in applied if a["detection"] == "scan.port"]
    assert scans == [("192.168.10.102", "192.168.10.10")]
    # The workers' early notices of the scan's refused attempts went to the
    # detections only: no log of them, and conn.log keeps every attempt.
    assert not (tmp_path / "live" / "conn_early.log").exists()
    conns = (tmp_path / "live" / "conn.log").read_text().splitlines()
    assert sum('"conn_state":"REJ"' in line for line in conns) > 200
    # The open intents are kept for a restart.
    state = json.loads((tmp_path / "response-state.json").read_text())
    assert {i["id"] for i in state["intents"]} == {a["id"] for a in applied}


def test_cleanup_removes_the_table() -> None:
    require_netns()
    script = (
        "from sensor.respond.backends.nftables import NFTables\n"
        "from sensor.respond.intent import Intent\n"
        "n = NFTables()\n"
        "n.apply(Intent(action='block', target='192.0.2.10', reason='t', requested_by='t',"
        " created=0.0, expires=60.0, dst_ip='198.51.100.10'), 0.0)\n"
        "import subprocess, sys\n"
        "a = subprocess.run([sys.executable, '-m', 'sensor.cli.sensord', '--cleanup'], capture_output=True, text=True)\n"
        "b = subprocess.run([sys.executable, '-m', 'sensor.cli.sensord', '--cleanup'], capture_output=True, text=True)\n"
        "print(a.returncode, a.stdout.strip(), '|', b.returncode, b.stdout.strip())\n"
    )
    done = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", script],
        cwd=ROOT, env=env_for("compiled"), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "0 sensord: removed table inet sensor | 0 sensord: no table inet sensor to remove"
    )
