"""bench/models.py prints every figure the models promise, and a device fits 2 KiB.

The benchmark runs here on the small office capture (its figures of speed
are not judged: tests assert no timings); the memory figure is not a
timing and is held to the aim of under 2 KiB per device.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

OFFICE = ROOT / "pcaps" / "office" / "office.pcap"


def test_bench_prints_cost_memory_throughput_and_state_size(tmp_path: Path) -> None:
    out = tmp_path / "models.json"
    run = subprocess.run(
        [
            sys.executable, str(ROOT / "bench" / "models.py"), "--capture", str(OFFICE),
            "--packets", "0", "--devices", "2000", "--values", "2000",
            "--dual-devices", "200", "--repeat", "1", "--json", str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    for start in (
        "update: ",
        "memory: ",
        "memory, each device also with a link-local IPv6 address and a DHCP name: ",
        "throughput, engine: ",
        "throughput, engine + models: ",
        "models cost ",
        "state after the whole capture: ",
    ):
        assert any(line.startswith(start) for line in lines), (start, run.stdout)

    figures = json.loads(out.read_text())
    update, memory, db = figures["update"], figures["memory"], figures["db"]
    assert update["conns"] > 400 and update["us_per_conn"] > 0
    assert memory["devices"] > 1900 and memory["row_bytes"] == 1368
    assert memory["bytes_per_device"] < 2048, memory
    assert figures["models"]["packets"] == figures["engine"]["packets"] > 2000
    assert db["db_bytes"] > 0 and db["devices"] == update["devices"] > 5
