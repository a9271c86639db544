"""ssl.log and x509.log against what Zeek wrote for every shared capture.

The captures are replayed through the Engine with the TLS analyzer, once per
implementation of the connection table (the Python twin in a subprocess
with SENSOR_NO_EXTENSIONS=1), by tests/proto/tls_harness.py:

- with the payload limits lifted (every segment, in capture order), which
  stands in for whole reassembled streams until the connection table
  delivers them;
- with the Engine's defaults (today the first 8 packets / 4 KiB per
  direction), the figure ``sensord --replay`` gives now.

ssl.log is scored with ../shared/tools/zeek-compare (its fields) and by the
harness on every field Zeek wrote; x509.log by the harness (zeek-compare has
no x509 entry), records paired by fingerprint.
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

#: Captures below MIN_EQUAL with every segment delivered in capture order, and why.
BELOW_FULL = {
    "fingerprints/ja3_ssl-chrome.pcap": "a retransmitted server segment (conn history t) repeats bytes inside the Certificate message when segments come in capture order; whole streams fix it",
    "zeek/traces/tls__smtp-starttls.pcap": "TLS after SMTP STARTTLS: the SMTP analyzer does not hand the stream over yet",
    "attacks/exploit/ndpi__malware.pcapng": "a retransmitted server segment, as in ja3_ssl-chrome",
    "benign/winlab_2016-08-16_2104_aug16_part2.pcapng": "two connections with content gaps (missed_bytes 1460) where Zeek stops reading; without gap() calls from the table the analyzer reads on",
}

#: Floors with the Engine's default payload limits (first 8 packets / 4 KiB
#: per direction): server certificates beyond 4 KiB and the finishing
#: ChangeCipherSpecs are cut. TODO: raise to MIN_EQUAL once the connection
#: table delivers whole streams.
DEFAULT_FLOOR = {"ssl": 0.94, "x509": 0.70}


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
) -> dict[bool, Any]:
    tmp = tmp_path_factory.mktemp("tls")
    return {full: dump(str(request.param), tmp, full) for full in (True, False)}


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


def test_every_capture_is_scored(replays: dict[bool, Any]) -> None:
    assert len(replays[True]) == len(tls_harness.captures()) == 27


def test_agreement_with_every_segment(replays: dict[bool, Any]) -> None:
    s = scores(replays[True])
    for log in ("ssl", "x509"):
        total = sum(n for n, _, _ in s[log].values())
        equal = sum(eq for _, eq, _ in s[log].values())
        assert equal >= MIN_EQUAL * total, (log, equal, total)
        below = {rel for rel, (n, eq, _) in s[log].items() if eq < MIN_EQUAL * n}
        assert below <= BELOW_FULL.keys(), (log, below - BELOW_FULL.keys())
    assert sum(eq for _, eq, _ in s["ssl"].values()) == 511  # of 516
    assert sum(eq for _, eq, _ in s["x509"].values()) == 118  # of 124
    # No record Zeek did not write, but for the STARTTLS one Zeek has and we lack.
    assert all(extra <= 0 for log in s.values() for _, _, extra in log.values())


def test_agreement_with_default_limits(replays: dict[bool, Any]) -> None:
    s = scores(replays[False])
    for log, floor in DEFAULT_FLOOR.items():
        total = sum(n for n, _, _ in s[log].values())
        equal = sum(eq for _, eq, _ in s[log].values())
        assert equal >= floor * total, (log, equal, total)


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


def test_zeek_compare_on_every_ssl_log(
    replays: dict[bool, Any], tmp_path: Path
) -> None:
    total = equal = 0
    for rel, logs in replays[True].items():
        expected = ZEEK_LOGS / rel / "ssl.log"
        if expected.exists():
            s = compare(expected, logs.get("ssl", []), tmp_path)
            total += s["expected"]
            equal += s["equal"]
    assert (equal, total) == (513, 516)


def test_zeek_test_baselines(replays: dict[bool, Any], tmp_path: Path) -> None:
    pairs = [json.loads(line) for line in (PCAPS / "zeek-pairs.jsonl").open()]
    pairs = [p for p in pairs if p["log"] == "ssl"]
    assert len(pairs) == 4
    results = {}
    for pair in pairs:
        s = compare(
            PCAPS / pair["baseline"],
            replays[True][pair["trace"]].get("ssl", []),
            tmp_path,
        )
        results[pair["trace"]] = (s["equal"], s["expected"])
    # STARTTLS: see BELOW_FULL.
    assert results == {
        "zeek/traces/tls__tls-conn-with-extensions.pcap": (1, 1),
        "zeek/traces/tls__tls1.2.pcap": (1, 1),
        "zeek/traces/tls__google-duplicate.pcap": (2, 2),
        "zeek/traces/tls__smtp-starttls.pcap": (0, 1),
    }
