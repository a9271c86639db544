"""sensord --interface in network namespaces: same conn.log as --replay.

tcpreplay sends a shared capture into one end of a veth pair; sensord
captures on the other end. Timestamps are the capture's (the kernel stamps
each frame on arrival), so ts, duration and uid (derived from the first
packet's time) differ; every other conn.log field must be identical.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.conftest import WIKIPEDIA, live_run
from tests.replay import read_log, sensord

VOLATILE = {"ts", "duration", "uid"}


def comparable(records: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps({k: v for k, v in r.items() if k not in VOLATILE}, sort_keys=True) for r in records)


def replayed(pcap: Path, logdir: Path) -> list[dict[str, Any]]:
    result = sensord("--replay", str(pcap), "--logdir", str(logdir))
    assert result.returncode == 0, result.stderr
    return read_log(logdir / "conn.log")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_live_conn_log_equals_replay(netns_ok: None, pcaps: Path, tmp_path: Path, impl: str, workers: str) -> None:
    pcap = pcaps / WIKIPEDIA
    report = live_run([pcap], tmp_path / "live", impl, "--workers", workers)

    assert report["status"] == 0, report
    assert "Traceback" not in report["stderr"]
    live = read_log(tmp_path / "live" / "conn.log")
    expected = replayed(pcap, tmp_path / "replay")
    assert len(live) == len(expected) == 34
    assert comparable(live) == comparable(expected)

    # Every packet reached a worker, none dropped, per the kernel's counters.
    health = read_log(tmp_path / "live" / "health.log")
    assert {h["worker"] for h in health} == set(range(int(workers)))
    assert sum(h["packets"] for h in health) == 136
    assert sum(h["drops"] for h in health) == 0
    assert sum(h["processed"] for h in health) == 136
    if workers == "2":
        # The fanout spreads by flow hash: both workers had connections.
        assert all(h["packets"] > 0 for h in health)
