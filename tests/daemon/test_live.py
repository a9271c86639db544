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

import jsonschema
import pytest

from tests.conftest import ROOT
from tests.daemon.conftest import WIKIPEDIA, live_run
from tests.replay import read_log, sensord

VOLATILE = {"ts", "duration", "uid"}
HEALTH_SCHEMA = json.loads(
    (ROOT / "sensor" / "output" / "schemas" / "health.schema.json").read_text()
)


def check_health(records: list[dict[str, Any]]) -> None:
    validator = jsonschema.Draft202012Validator(HEALTH_SCHEMA)
    for record in records:
        validator.validate(record)


def comparable(records: list[dict[str, Any]]) -> list[str]:
    return sorted(
        json.dumps({k: v for k, v in r.items() if k not in VOLATILE}, sort_keys=True)
        for r in records
    )


def replayed(pcap: Path, logdir: Path) -> list[dict[str, Any]]:
    result = sensord("--replay", str(pcap), "--logdir", str(logdir))
    assert result.returncode == 0, result.stderr
    return read_log(logdir / "conn.log")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_live_conn_log_equals_replay(
    netns_ok: None, pcaps: Path, tmp_path: Path, impl: str, workers: str
) -> None:
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
    check_health(health)
    assert {h["worker"] for h in health} == set(range(int(workers)))
    assert sum(h["packets"] for h in health) == 136
    assert sum(h["drops"] for h in health) == 0
    assert sum(h["processed"] for h in health) == 136
    if workers == "2":
        # The fanout spreads by flow hash: both workers had connections.
        assert all(h["packets"] > 0 for h in health)


def test_drops_are_counted_and_raise_a_health_alert(
    netns_ok: None, pcaps: Path, tmp_path: Path
) -> None:
    # A tiny ring and the slow pure-Python path, fed at top speed: the ring
    # overflows. The kernel's counters must account for every packet sent.
    conf = tmp_path / "sensor.toml"
    conf.write_text(
        '[capture]\ninterface = "cap0"\nblock_size = 65536\nblocks = 2\n'
        "[health]\nmax_drop_ratio = 0.01\n"
    )
    report = live_run(
        [pcaps / WIKIPEDIA],
        tmp_path / "live",
        "python",
        "--config",
        str(conf),
        "--loop",
        "40",
    )

    assert report["status"] == 0, report
    health = read_log(tmp_path / "live" / "health.log")
    check_health(health)
    packets = sum(h["packets"] for h in health)
    drops = sum(h["drops"] for h in health)
    assert packets == 136 * 40
    assert drops > 0
    assert sum(h["processed"] for h in health) == packets - drops
    assert any(h["degraded"] for h in health)

    # Health alerts have a name; the detections' alerts (the pipeline runs
    # live too) have a detection instead.
    alerts = [a for a in read_log(tmp_path / "live" / "alerts.log") if "name" in a]
    assert [a["name"] for a in alerts] == ["CAPTURE_DEGRADED"]
    assert alerts[0]["response_mode"] == "confirm" and alerts[0]["drop_ratio"] > 0.01
    assert "dropped" in report["stderr"] and "capture degraded" in report["stderr"]


def test_stop_under_load_is_prompt_and_clean(
    netns_ok: None, pcaps: Path, tmp_path: Path
) -> None:
    # Traffic never pauses: the workers drain at most one ring's worth,
    # flush, and the daemon exits 0 within seconds, with every record whole.
    report = live_run(
        [pcaps / WIKIPEDIA],
        tmp_path / "live",
        "compiled",
        "--workers",
        "2",
        "--pps",
        "20000",
        "--stop-during",
        "1.5",
    )

    assert report["status"] == 0, report
    assert report["stop_seconds"] < 5, report
    assert "stopped" in report["stderr"] and "Traceback" not in report["stderr"]
    conns = read_log(tmp_path / "live" / "conn.log")  # every line parses
    assert len(conns) >= 34
    # Frames still arriving after the drain reach the socket but no worker.
    health = read_log(tmp_path / "live" / "health.log")
    processed = sum(h["processed"] for h in health)
    assert (
        0
        < processed
        <= sum(h["packets"] for h in health) - sum(h["drops"] for h in health)
    )


def test_fanout_keeps_every_connection_whole(
    netns_ok: None, pcaps: Path, tmp_path: Path
) -> None:
    # A version scan: 1,008 connections, many of them a packet or two, both
    # directions of each hashed to the same worker or the records would differ.
    pcap = pcaps / "attacks/scan/evilfingers_nmap_version_scan.pcap"
    report = live_run(
        [pcap], tmp_path / "live", "compiled", "--workers", "2", "--pps", "5000"
    )

    assert report["status"] == 0, report
    live = read_log(tmp_path / "live" / "conn.log")
    expected = replayed(pcap, tmp_path / "replay")
    assert len(live) == len(expected) == 1008
    assert comparable(live) == comparable(expected)
    health = read_log(tmp_path / "live" / "health.log")
    assert [h["drops"] for h in health] == [0, 0]
    assert min(h["packets"] for h in health) > 500  # both workers had a share
