"""End to end: ``sensord --replay`` gives the analyzers whole TCP streams.

Four small shared captures, replayed by each implementation of the
connection table in a subprocess: the analyzer logs they should produce are
scored against Zeek's with ``zeek-compare``, and the files carried past the
first packets of a connection (an HTTP body of 4.7 KB, SMTP attachments of
10 KB) must have all their bytes, which the table's first-packets budget
(4 KiB per direction) alone could not give.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sensor.proto.registry import ANALYZERS
from tests.conftest import PCAPS, SHARED
from tests.test_zeek_agreement import replay_one

TRACES = "zeek/traces"
CAPTURES = ("http__get.pcap", "wikipedia.pcap", "tls__tls1.2.pcap", "smtp.pcap")

#: Logs scored, with the share of Zeek's records that must be fully equal.
LOGS = {"http": 1.0, "ssl": 1.0, "smtp": 1.0, "dns": 1.0}

#: The logs some registered analyzer writes.
WRITTEN = {name for cls in ANALYZERS for name in cls.logs}


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def score(log: str, expected: Path, actual: Path) -> dict[str, int]:
    result = subprocess.run(
        [
            sys.executable,
            str(SHARED / "tools" / "zeek-compare"),
            "--log",
            log,
            "--json",
            "--show",
            "0",
            str(expected),
            str(actual),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads([x for x in result.stdout.splitlines() if x.startswith("{")][-1])


@pytest.fixture(scope="module", params=["compiled", "python"])
def replayed(
    request: pytest.FixtureRequest,
    pcaps: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Path]:
    """The four captures replayed once per implementation (as ``impl``)."""
    impl = str(request.param)
    if impl == "compiled":
        pytest.importorskip("sensor._ext.flow", reason="compiled extensions not built")
    root = tmp_path_factory.mktemp(f"streams-{impl}")
    out = {}
    for name in CAPTURES:
        run = replay_one(pcaps / TRACES / name, root / name, impl)
        assert run.error is None, f"{name}: {run.error}"
        out[name] = run.logdir
    return out


@pytest.mark.parametrize("capture", CAPTURES)
def test_analyzer_logs_agree_with_zeek(capture: str, replayed: dict[str, Path]) -> None:
    zeek = PCAPS / "zeek-logs" / TRACES / capture
    ours = replayed[capture]
    conn_uids = {r["uid"] for r in read(ours / "conn.log")}
    scored = 0
    for log, floor in LOGS.items():
        if not (zeek / f"{log}.log").exists() or log not in WRITTEN:
            continue
        records = read(ours / f"{log}.log")
        assert records, f"{capture}: no {log}.log"
        assert {r["uid"] for r in records} <= conn_uids
        s = score(log, zeek / f"{log}.log", ours / f"{log}.log")
        assert s["equal"] >= floor * s["expected"], f"{capture} {log}: {s}"
        scored += 1
    if capture != "tls__tls1.2.pcap" or "ssl" in WRITTEN:
        assert scored, f"{capture}: no analyzer log to score"


@pytest.mark.parametrize("capture", ["http__get.pcap", "smtp.pcap"])
def test_files_past_the_first_packets_arrive_whole(
    capture: str, replayed: dict[str, Path]
) -> None:
    zeek = read(PCAPS / "zeek-logs" / TRACES / capture / "files.log")
    ours = read(replayed[capture] / "files.log")
    assert max(r["seen_bytes"] for r in zeek) > 4096
    assert sorted(r["seen_bytes"] for r in ours) == sorted(
        r["seen_bytes"] for r in zeek
    )
    assert all(r.get("missing_bytes", 0) == 0 for r in ours)
