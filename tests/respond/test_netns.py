"""Response in network namespaces made by the test (tests/respond/lab.py):
a client, a gateway with the sensor and nftables, servers; traffic only
between them, on documentation addresses.

The daemon scenario runs ``sensord --config`` on the gateway. The block
scenario runs the same chain in process: mirror -> capture ring -> engine ->
scan.port (idle_seconds 1) -> incidents -> responder -> nftables.
The reset scenario drives the responder's API (``create("reset", ...)``)
as an alert naming one connection would, on a switch whose mirror is the
sensor's only view of the connection.
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

CLIENT, NEVER = "192.0.2.10", "192.0.2.20"
SERVER, SERVER3 = "198.51.100.10", "198.51.100.12"


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "namespaces, nftables and raw sockets need root (CI runs as root)"
    for tool in ("unshare", "ip", "tc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/install-system installs it)"
    try:
        ctypes.CDLL("libnftables.so.1")
    except OSError:
        return (
            "libnftables.so.1 is missing (scripts/install-system installs libnftables1)"
        )
    return None


def lab(scenario: str, *args: str) -> dict[str, Any]:
    why = _why_not()
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        ["unshare", "--mount", "--net", sys.executable, "-m", "tests.respond.lab", scenario, *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


@pytest.fixture(scope="module")
def block() -> dict[str, Any]:
    return lab("block")


def test_scan_blocks_exactly_the_pair(block: dict[str, Any]) -> None:
    assert block["before"] == {"server": "ok", "server2": "ok"}
    assert block["scan"] == {"refused": 40}
    assert block["block_after_scan_s"] is not None, "no block within 20 s of the scan"
    assert block["sets_while_blocked"] == [[CLIENT, SERVER]]
    # The client's other traffic flows; the server is out of its reach.
    assert block["during"] == {
        "server": "timeout",
        "server2": "ok",
        "never_act_to_server": "ok",
    }
    applied = [a for a in block["actions"] if a["change"] == "apply"]
    assert [(a["target"], a["dst_ip"], a["detection"]) for a in applied] == [
        (CLIENT, SERVER, "scan.port")
    ]
    assert applied[0]["reason"].startswith("I")  # the incident the alert joined


def test_never_act_device_is_never_blocked(block: dict[str, Any]) -> None:
    assert block["scan_never"] == {"refused": 40}
    mine = [a for a in block["actions"] if a["target"] == NEVER]
    assert [(a["state"], a["change"]) for a in mine] == [("refused", "refuse")]
    assert "never-act network 192.0.2.16/28" in mine[0]["change_reason"]
    assert all(NEVER not in pair for pair in block["sets_while_blocked"])


def test_reconciler_restores_after_a_flush(block: dict[str, Any]) -> None:
    assert block["after_flush"] == "no table"
    assert block["after_flush_server"] == "ok"
    assert block["after_reconcile"] == [[CLIENT, SERVER]]
    assert block["after_reconcile_server"] == "timeout"


def test_block_is_gone_after_its_expiry(block: dict[str, Any]) -> None:
    assert 0.0 <= block["lifted_after_expiry_s"] < 1.5
    assert block["after"] == {"server": "ok"}
    expired = [a for a in block["actions"] if a["change"] == "expire"]
    assert [(a["target"], a["dst_ip"]) for a in expired] == [(CLIENT, SERVER)]
    # Without the daemon, the kernel's own timeout lifts a block.
    assert block["gone_blocked"] == "timeout"
    assert block["gone_after"] == "ok" and block["gone_sets"] == []


def test_circuit_breaker_trips(block: dict[str, Any]) -> None:
    third = [a for a in block["actions"] if a.get("dst_ip") == SERVER3]
    assert [(a["state"], a["mode"]) for a in third] == [("pending", "confirm")]
    names = [a["name"] for a in block["alerts"] if "name" in a]
    assert names == ["RESPONSE_BREAKER_TRIPPED"]
    assert block["server3_after_scan3"] == "ok" and block["sets_after_scan3"] == []


def test_reset_ends_a_connection_seen_only_on_the_mirror() -> None:
    r = lab("reset")
    assert r["held_before"]["ended"] is None
    changes = [(x["change"], x["state"], x["who"]) for x in r["records"]]
    assert changes == [("reset", "done", "tcp-reset")]
    assert r["held_after"]["ended"] == "ECONNRESET"
    # Both directions: the server's side of the connection was reset too.
    assert r["served"] == {"ECONNRESET": 1}
    assert r["again"] == "ok"
    # A silent connection is probed (an out-of-window ACK to the device,
    # which answers with its numbers) and then reset, both ends.
    assert [(x["change"], x["state"]) for x in r["idle_records"]] == [("reset", "done")]
    assert r["idle_held_after"]["ended"] == "ECONNRESET"
    assert r["idle_served"].get("ECONNRESET") == 2


def test_daemon_blocks_reconciles_and_leaves_the_kernel_to_expire(
    tmp_path: Path,
) -> None:
    # The same network with sensord --config on the gateway: mirror, workers,
    # pipeline, scan.port ([detect.scan.port] idle_seconds = 1), nftables.
    r = lab("daemon", str(tmp_path))
    assert r["started"], r["stderr"]
    assert r["block_after_scan_s"] is not None, r["stderr"]
    assert r["sets_while_blocked"] == [[CLIENT, SERVER]]
    assert r["during"] == {
        "server": "timeout",
        "server2": "ok",
        "never_act_to_server": "ok",
    }
    # The daemon's reconciler (every second) undoes a flush of the ruleset.
    assert r["after_flush"] == "no table"
    assert r["reconciled_after_s"] is not None and r["reconciled_after_s"] < 2.0
    assert r["after_reconcile_server"] == "timeout"
    changes = [
        (a["change"], a["state"], a["target"], a["dst_ip"]) for a in r["actions"]
    ]
    assert changes[:3] == [
        ("apply", "active", CLIENT, SERVER),
        ("refuse", "refused", NEVER, SERVER),
        ("propose", "pending", CLIENT, SERVER3),
    ]
    assert [a["name"] for a in r["alerts"] if "name" in a] == [
        "RESPONSE_BREAKER_TRIPPED"
    ]
    assert r["server3_after_scan3"] == "ok"
    # Stopped, the daemon leaves the block to the kernel, which ends it on time.
    assert r["status"] == 0
    assert (
        r["sets_after_stop"] == [[CLIENT, SERVER]]
        and r["server_after_stop"] == "timeout"
    )
    assert 0.0 <= r["kernel_lifted_after_expiry_s"] < 1.5
    assert r["server_after_expiry"] == "ok"
