"""The AF_PACKET ring readers, compiled and Python twin, on a real veth."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from tests.conftest import ROOT
from tests.daemon.conftest import env_for, require_netns


def probe(mode: str, impl: str) -> dict[str, Any]:
    done = subprocess.run(
        ["unshare", "--net", sys.executable, "-m", "tests.capture.ring_probe", mode],
        cwd=ROOT, env=env_for(impl), capture_output=True, check=False, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    expected = "sensor._ext.ring" if impl == "compiled" else "sensor.capture.ring"
    assert result["impl"] == expected
    return result


def test_frames_come_back_as_sent(impl: str) -> None:
    require_netns()
    started = time.time_ns()
    r = probe("frames", impl)

    # Byte for byte, the 802.1Q tag put back where it was on the wire.
    assert [g["data"] for g in r["got"]] == r["sent"]
    assert [g["caplen"] for g in r["got"]] == [64, 78, 1500]
    assert [g["wirelen"] for g in r["got"]] == [64, 78, 1500]
    assert {g["linktype"] for g in r["got"]} == {1}
    stamps = [g["ts"] for g in r["got"]]
    assert stamps == sorted(stamps) and started <= stamps[0] <= stamps[-1] <= r["now"]
    assert (
        r["packets_read"] == 3 and r["kernel_packets"] == 3 and r["kernel_drops"] == 0
    )
    assert r["promisc"] is True


def test_overflow_is_counted_not_hidden(impl: str) -> None:
    require_netns()
    # Two 4 KiB blocks hold 6 frames of 1000 bytes (3 per block, after the
    # block header); the other 34 find no room and are the kernel's drops.
    r = probe("overflow", impl)

    assert len(r["sent"]) == 40
    assert r["kernel_drops"] > 0
    assert r["packets_read"] + r["kernel_drops"] == r["kernel_packets"] == 40
    assert r["batches"] == 2 and r["packets_read"] == len(r["got"]) == 6
