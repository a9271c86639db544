"""ssl.log and x509.log against what Zeek wrote for every shared capture.

The captures are replayed through the Engine with every registered analyzer
(so that SMTP hands its STARTTLS streams to TLS), once per implementation of
the connection table (the Python twin with SENSOR_NO_EXTENSIONS=1), by
tests/proto/tls_harness.py in a subprocess: the pipeline ``sensord
--replay`` runs, with the connection table's reassembled streams.

ssl.log is scored with ../shared/tools/zeek-compare (its fields) and by the
harness on every field Zeek wrote; x509.log by the harness (zeek-compare has
no x509 entry), records paired by fingerprint, host_cert and client_cert.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PCAPS, ROOT, SHARED
from tests.proto import tls_harness

ZEEK_LOGS = PCAPS / "zeek-logs"
COMPARE = SHARED / "tools" / "zeek-compare"
MIN_EQUAL = 0.95

#: Captures below MIN_EQUAL, and why.
BELOW = {
    "benign/winlab_2016-08-16_2104_aug16_part2.pcapng": "two connections with a hole in the server's stream (missed_bytes 1460): Zeek stops reading both directions when the hole is acknowledged, before the client's ClientKeyExchange; the stream reassembler reports the gap only at the end, so the client's G and I letters are read (ssl_history CGI for C, CsGI for Cs)",
}


def dump(
    impl: str, tmp: Path, full: bool, captures: list[str] | None = None
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """{capture: {log: records}} from the harness run under ``impl``."""
    env = dict(os.environ)
    if impl == "python":
        env["SENSOR_NO_EXTENSIONS"] = "1"
    else:
        pytest.importorskip("sensor._ext.flow")
    out = tmp / f"{impl}-{full}.json"
    cmd = [sys.executable, str(ROOT / "tests/proto/tls_harness.py"), "--dump", str(out)]
    cmd += ["--full"] if full else []
    subprocess.run(cmd + (captures or []), env=env, check=True, cwd=ROOT)
    return dict(json.loads(out.read_text()))


@pytest.fixture(scope="module", params=["compiled", "python"])
def replays(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    return dump(str(request.param), tmp_path_factory.mktemp("tls"), full=False)


def scores(
    got: dict[str, dict[str, list[dict[str, Any]]]],
) -> dict[str, dict[str, tuple[int, int, int]]]:
    """{log: {capture: (expected, equal, extra)}} by the harness's full-field scoring."""
    out: dict[str, dict[str, tuple[int, int, int]]] = {"ssl": {}, "x509": {}}
    for rel, logs in got.items():
        for log, per_capture in out.items():
            want = tls_harness.read(ZEEK_LOGS / rel / f"{log}.log")
            if want:
                n, eq, _, _ = tls_harness.score(want, logs.get(log, []), log)
                per_capture[rel] = (n, eq, len(logs.get(log, [])) - n)
    return out


def test_every_capture_is_scored(replays: dict[str, Any]) -> None:
    assert len(replays) == len(tls_harness.captures()) == 27


def test_agreement(replays: dict[str, Any]) -> None:
    s = scores(replays)
    for log in ("ssl", "x509"):
        total = sum(n for n, _, _ in s[log].values())
        equal = sum(eq for _, eq, _ in s[log].values())
        assert equal >= MIN_EQUAL * total, (log, equal, total)
        below = {rel for rel, (n, eq, _) in s[log].items() if eq < MIN_EQUAL * n}
        assert below <= BELOW.keys(), (log, below - BELOW.keys())
    assert sum(eq for _, eq, _ in s["ssl"].values()) == 514  # of 516
    assert sum(eq for _, eq, _ in s["x509"].values()) == 124  # of 124
    # Not one record Zeek did not write, nor one missing.
    assert all(extra == 0 for log in s.values() for _, _, extra in log.values())


def compare(expected: Path, records: list[dict[str, Any]], tmp: Path) -> dict[str, Any]:
    ours = tmp / "ssl.log"
    ours.write_text("".join(json.dumps(r) + "\n" for r in records))
    res = subprocess.run(
        [
            sys.executable,
            str(COMPARE),
            "--log",
            "ssl",
            str(expected),
            str(ours),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(res.stdout.strip().splitlines()[-2]))


def test_zeek_compare_on_every_ssl_log(replays: dict[str, Any], tmp_path: Path) -> None:
    total = equal = 0
    for rel, logs in replays.items():
        expected = ZEEK_LOGS / rel / "ssl.log"
        if expected.exists():
            s = compare(expected, logs.get("ssl", []), tmp_path)
            total += s["expected"]
            equal += s["equal"]
    assert (equal, total) == (516, 516)


def test_zeek_test_baselines(replays: dict[str, Any], tmp_path: Path) -> None:
    pairs = [json.loads(line) for line in (PCAPS / "zeek-pairs.jsonl").open()]
    pairs = [p for p in pairs if p["log"] == "ssl"]
    assert len(pairs) == 4
    results = {}
    for pair in pairs:
        s = compare(
            PCAPS / pair["baseline"],
            replays[pair["trace"]].get("ssl", []),
            tmp_path,
        )
        results[pair["trace"]] = (s["equal"], s["expected"])
    assert results == {
        "zeek/traces/tls__tls-conn-with-extensions.pcap": (1, 1),
        "zeek/traces/tls__tls1.2.pcap": (1, 1),
        "zeek/traces/tls__google-duplicate.pcap": (2, 2),
        "zeek/traces/tls__smtp-starttls.pcap": (1, 1),
    }
