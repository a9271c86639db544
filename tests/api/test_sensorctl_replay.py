"""sensord --replay --serve driven through sensorctl, as an operator would.

The bundled office capture holds a SYN scan of 300 ports of the file
server 192.168.10.10 by 192.168.10.102 at 09:02:30 (pcaps/README.md).
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from tests.api.conftest import OFFICE, Sensord, follower, sensorctl, sensorctl_json
from tests.replay import read_log

ME = pwd.getpwuid(os.geteuid()).pw_name


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Sensord:
    # A replay's response mode is observe; the operator asks for confirm
    # before following, which starts the replay (--serve-wait).
    d = tmp_path_factory.mktemp("office")
    server = Sensord(OFFICE, d / "logs", d / "sensor.sock", "--serve-wait", "60")
    r = sensorctl(
        "mode", "confirm", "--reason", "review the replay", socket=server.socket
    )
    assert r.returncode == 0, r.stderr
    watch = follower("--limit", "1", socket=server.socket)
    server.wait_replayed()
    watch.wait(timeout=30)
    yield server
    code, out, err = server.stop()
    assert code == 0, err
    # The summary line comes after serving, as without --serve.
    assert out.startswith("sensord: 2555 packets"), out


def test_status(office: Sensord) -> None:
    s = sensorctl_json("status", socket=office.socket)
    assert s["source"] == "replay" and s["running"] is False
    assert s["packets"] == "2555"  # uint64 is a string in protobuf JSON
    assert int(s["connections"]) == 432
    assert s["mode"] == "RESPONSE_MODE_CONFIRM"
    assert int(s["alerts"]) >= 1
    # Capture statistics and drops per worker, and learning progress.
    assert [(c["worker"], c["packets"], c["drops"]) for c in s["capture"]] == [(0, "2555", "0")]
    assert s["drops"] == "0" and s["degraded"] is False
    learning = s["learning"]
    assert int(learning["devices"]) >= 2 and 0.0 <= learning["progress"] <= 1.0
    assert s["version"] and s["uptime_seconds"] > 0


def test_alerts_lists_the_scan(office: Sensord) -> None:
    alerts = sensorctl_json("alerts", socket=office.socket)
    scans = [a for a in alerts if a["detection"] == "scan.port"]
    assert len(scans) == 1, alerts
    scan = scans[0]
    assert scan["src"]["ip"] == "192.168.10.102"
    assert scan["dst"]["ip"] == "192.168.10.10"
    assert scan["mitre"] == "T1046"
    assert scan["score"] >= 50
    # The same alert as alerts.log holds, and filters narrow the list.
    logged = [a for a in read_log(office.socket.parent / "logs" / "alerts.log")]
    assert scan["id"] in {a["id"] for a in logged}
    only = sensorctl_json("alerts", "--detection", "scan.port", socket=office.socket)
    assert [a["id"] for a in only] == [scan["id"]]
    one = sensorctl_json("alert", scan["id"], socket=office.socket)
    assert one["summary"] == scan["summary"]


def test_table_output(office: Sensord) -> None:
    r = sensorctl("alerts", socket=office.socket)
    assert r.returncode == 0, r.stderr
    head, *rows = r.stdout.splitlines()
    assert head.split()[:3] == ["ID", "TIME", "(UTC)"]
    assert any(
        "scan.port" in row and "192.168.10.102 -> 192.168.10.10" in row for row in rows
    )


def test_approve_puts_pending_action_in_force(office: Sensord) -> None:
    scan = sensorctl_json("alerts", "--detection", "scan.port", socket=office.socket)[0]
    pending = sensorctl_json("actions", "--state", "pending", socket=office.socket)
    mine = [a for a in pending if a["requested_by"] == "detection:scan.port"]
    assert len(mine) == 1, pending
    action = mine[0]
    assert action["incident"] == scan["incident"]
    assert action["kind"] == "block" and action["backend"] == "dry-run"
    assert (
        action["src"]["ip"] == "192.168.10.102"
        and action["dst"]["ip"] == "192.168.10.10"
    )

    r = sensorctl(
        "approve", action["id"], "--reason", "confirmed scan", socket=office.socket
    )
    assert r.returncode == 0, r.stderr

    after = {a["id"]: a for a in sensorctl_json("actions", socket=office.socket)}
    approved = after[action["id"]]
    assert approved["state"] == "ACTION_STATE_ACTIVE"
    last = approved["history"][-1]
    assert (last["change"], last["who"], last["reason"]) == (
        "approve",
        ME,
        "confirmed scan",
    )
    # People see it in the table too.
    table = sensorctl("actions", socket=office.socket).stdout
    assert f"approve by {ME}" in table

    # The change is in actions.log with who made it.
    logged = read_log(office.socket.parent / "logs" / "actions.log")
    assert any(
        r["id"] == action["id"] and r["state"] == "active" and r["who"] == ME
        for r in logged
    )

    # Approving twice is refused: the action is no longer pending.
    again = sensorctl(
        "approve", action["id"], "--reason", "again", socket=office.socket
    )
    assert again.returncode == 4
    assert "is active, not pending" in again.stderr


def test_errors_and_exit_codes(office: Sensord) -> None:
    r = sensorctl("device", "203.0.113.99", socket=office.socket)
    assert r.returncode == 3 and "no device '203.0.113.99'" in r.stderr

    block = sensorctl_json(
        "block", "192.168.10.103", "203.0.113.5", "--port", "443", "--for", "1h",
        "--reason", "manual test", socket=office.socket,
    )  # fmt: skip
    assert block["state"] == "ACTION_STATE_ACTIVE" and block["history"][-1]["who"] == ME

    r = sensorctl(
        "extend", block["id"], "--for", "2x", "--reason", "r", socket=office.socket
    )
    assert r.returncode == 2 and "duration '2x'" in r.stderr
    r = sensorctl(
        "extend", block["id"], "--for", "2h", "--reason", "longer", socket=office.socket
    )
    assert r.returncode == 0, r.stderr
    extended = sensorctl_json("action", block["id"], socket=office.socket)
    assert extended["expires"] == pytest.approx(block["expires"] + 7200)

    assert (
        sensorctl(
            "clear", block["id"], "--reason", "done", socket=office.socket
        ).returncode
        == 0
    )
    r = sensorctl("clear", block["id"], "--reason", "done", socket=office.socket)
    assert r.returncode == 4 and "already cleared" in r.stderr

    r = sensorctl("approve", "X999999", "--reason", "r", socket=office.socket)
    assert r.returncode == 3 and "no action 'X999999'" in r.stderr
    r = sensorctl("approve", "X999999", "--reason", " ", socket=office.socket)
    assert r.returncode == 2 and "needs a reason" in r.stderr

    r = sensorctl("status", socket=office.socket.parent / "absent.sock")
    assert r.returncode == 6 and "cannot reach the sensor" in r.stderr


def test_devices_and_device(office: Sensord) -> None:
    devices = sensorctl_json("devices", socket=office.socket)
    ips = {d["ip"] for d in devices}
    assert {"192.168.10.10", "192.168.10.102"} <= ips
    d = sensorctl_json("device", "192.168.10.102", socket=office.socket)
    assert d["device"]["ip"] == "192.168.10.102"
    peers = {p["endpoint"]["ip"]: p for p in d["peers"]}
    assert int(peers["192.168.10.10"]["connections"]) == 300  # the scan
    assert any(a["detection"] == "scan.port" for a in d["recent_alerts"])
    # The model summary: who it is, what it does, what it uses.
    assert (d["device"]["mac"], d["device"]["roles"]) == ("54:e1:ad:7b:30:c2", ["client"])
    assert {"name": "tcp/443", "direction": "used"}.items() <= d["services"][0].items()
    assert [b["feature"] for b in d["baselines"]] == ["max_upload_bytes"]
    server = sensorctl_json("device", "192.168.10.10", socket=office.socket)
    assert set(server["device"]["roles"]) == {"file_server", "web_server"}
    offered = {(s["name"], s["direction"]) for s in server["services"]}
    assert {("tcp/445", "offered"), ("smb", "offered")} <= offered

    # Filters.
    clients = {x["ip"] for x in sensorctl_json("devices", "--role", "client", socket=office.socket)}
    assert "192.168.10.102" in clients and "192.168.10.10" not in clients
    one = sensorctl_json("devices", "--query", "54:e1:ad", socket=office.socket)
    assert [x["ip"] for x in one] == ["192.168.10.102"]
    assert sensorctl_json("devices", "--tag", "no-such-tag", socket=office.socket) == []


def test_incidents(office: Sensord) -> None:
    incidents = sensorctl_json("incidents", socket=office.socket)
    assert incidents, "the scan makes an incident"
    one = sensorctl_json("incident", incidents[0]["id"], socket=office.socket)
    assert one["incident"]["id"] == incidents[0]["id"]
    assert {a["id"] for a in one["alerts"]} == set(one["incident"]["alerts"])


def test_mode(office: Sensord) -> None:
    r = sensorctl_json(
        "mode", "autonomous", "--detection", "scan.port", "--reason", "lab",
        socket=office.socket,
    )  # fmt: skip
    assert r["mode"] == "RESPONSE_MODE_CONFIRM"
    assert r["detections"] == {"scan.port": "RESPONSE_MODE_AUTONOMOUS"}
    r = sensorctl("mode", "autonomous", socket=office.socket)
    assert r.returncode == 2 and "--reason" in r.stderr
    r = sensorctl_json(
        "mode",
        "unset",
        "--detection",
        "scan.port",
        "--reason",
        "lab",
        socket=office.socket,
    )
    assert r.get("detections", {}) == {}

    # Per device tag: a tag can make response more careful, never bolder.
    r = sensorctl_json(
        "mode", "observe", "--tag", "server", "--reason", "lab", socket=office.socket
    )
    assert r["tags"] == {"server": "RESPONSE_MODE_OBSERVE"}
    r = sensorctl(
        "mode", "autonomous", "--tag", "server", "--reason", "lab", socket=office.socket
    )
    assert r.returncode == 2 and "a tag can only make response more careful" in r.stderr
    r = sensorctl_json(
        "mode", "unset", "--tag", "server", "--reason", "lab", socket=office.socket
    )
    assert r.get("tags", {}) == {}


def test_tcp_needs_tls_and_credentials(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    def run(*serve: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "sensor.cli.sensord",
                "--replay",
                str(OFFICE),
                "--logdir",
                str(tmp_path),
                "--serve",
                *serve,
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )

    r = run("127.0.0.1:47651")
    assert r.returncode == 78
    assert "TCP needs TLS" in r.stderr and "--insecure-loopback" in r.stderr
    r = run("0.0.0.0:47651", "--insecure-loopback")
    assert r.returncode == 78
    assert "only on 127.0.0.1, ::1 or localhost" in r.stderr


def test_tables_show_control_characters_escaped(office: Sensord) -> None:
    # A reason (or a name, a domain, a user agent from the network) with an
    # escape sequence or a bidirectional override must not drive the
    # operator's terminal: tables show it escaped, --json keeps it exact.
    reason = "looks \x1b[2Jfine \u202etxet\rover"
    made = sensorctl_json(
        "block", "192.168.10.55", "192.168.10.66", "--for", "1h", "--reason", reason,
        socket=office.socket,
    )  # fmt: skip
    table = sensorctl("action", made["id"], socket=office.socket)
    assert table.returncode == 0, table.stderr
    assert "looks \\x1b[2Jfine \\u202etxet\\rover" in table.stdout
    assert not any(c in table.stdout for c in "\x1b\u202e\r")
    again = sensorctl_json("action", made["id"], socket=office.socket)
    assert again["history"][0]["reason"] == reason
