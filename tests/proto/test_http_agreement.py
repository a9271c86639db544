"""http.log and files.log against what Zeek wrote for the same captures.

Every capture for which Zeek wrote an http.log or files.log is replayed
through the Engine (``sensord --replay``'s pipeline), once per implementation
of the connection table (tests/proto/http_harness.py --engine, in a
subprocess so that SENSOR_NO_EXTENSIONS takes effect at import).

Records are paired and compared as ``zeek-compare`` does (files.log, which
zeek-compare does not know, by 4-tuple and direction in time order; see
``http_harness.compare_files``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PCAPS
from tests.proto import http_harness as harness

ROOT = Path(__file__).resolve().parents[2]
ZEEK_LOGS = PCAPS / "zeek-logs"

#: Share of Zeek's records that must be fully equal.
MIN_EQUAL = 0.95

#: files.log cannot reach MIN_EQUAL: the floor reached, and why.
FILES_FLOOR = 0.78

#: Captures below MIN_EQUAL, and why.
KNOWN_BELOW = {
    ("files", "attacks/c2/elcabezzonn_empire_c2.pcapng"): "bodies that run to the end of the connection: Zeek's file sees CRLF-normalised lines, we keep the bytes that were sent (so the hashes are the file's)",
    ("files", "benign/apps/ndpi__netflix.pcap"): "fragmented MP4 that libmagic names and Zeek does not, and bodies cut by segments missing from the capture",
    ("files", "zeek/traces/http__ctu-62604-80.pcap"): "a 22-byte form part that libmagic calls a ZIP archive from its first bytes; Zeek names nothing",
    ("files", "zeek/traces/http__methods.pcap"): "HTTP/0.9 replies: libmagic sees HTML where Zeek's signatures see text",
    ("files", "suricata/decode-teredo-01/input.pcap"): "MIME names: libmagic and Zeek's signatures disagree on JavaScript, JSON, cross-domain policies and some text",
    ("files", "benign/packethunting_Win7-Chrome-browsing.pcap"): "MIME names (see above)",
    ("files", "benign/chrissanders_http_espn.pcapng"): "MIME names (see above)",
    ("files", "attacks/exploit/chrissanders_ek_to_cryptowall4.pcapng"): "MIME names (see above)",
}  # fmt: skip


def chosen() -> list[Path]:
    return sorted(set(harness.captures("http")) | set(harness.captures("files")))


def zeek_rows(rel: str, log: str) -> list[dict[str, Any]]:
    path = ZEEK_LOGS / rel / f"{log}.log"
    rows = harness.zeek_compare().read_log(str(path)) if path.exists() else []
    return [r for r in rows if log != "files" or r.get("source") == "HTTP"]


def read_json(path: Path) -> list[dict[str, Any]]:
    return (
        [json.loads(line) for line in path.read_text().splitlines()]
        if path.exists()
        else []
    )


def tally(records: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Fully equal / expected per log, overall and per capture."""
    out: dict[str, Any] = {"http": [0, 0], "files": [0, 0], "below": {}}
    for rel, logs in records.items():
        for log in ("http", "files"):
            want = zeek_rows(rel, log)
            if not want:
                continue
            if log == "http":
                equal = harness.score_http(want, logs["http"])
            else:
                equal = harness.compare_files(want, logs["files"])[0]
            out[log][0] += equal
            out[log][1] += len(want)
            if equal / len(want) < MIN_EQUAL:
                out["below"][(log, rel)] = f"{equal}/{len(want)}"
    return out


@pytest.fixture(scope="module", params=["compiled", "python"])
def through_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    impl = request.param
    env = dict(os.environ)
    if impl == "python":
        env["SENSOR_NO_EXTENSIONS"] = "1"
    else:
        try:
            import sensor._ext.flow  # noqa: F401
        except ImportError as e:
            pytest.skip(f"compiled extensions not built: {e}")
    root = tmp_path_factory.mktemp(f"http-{impl}")
    rels = [str(c.relative_to(PCAPS)) for c in chosen()]
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "proto" / "http_harness.py"),
            "--engine",
            str(root),
            *rels,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == impl
    records = {
        rel: {log: read_json(root / rel / f"{log}.log") for log in ("http", "files")}
        for rel in rels
    }
    return {"tally": tally(records), "records": records}


def test_engine_records_validate(through_engine: dict[str, Any]) -> None:
    from tests.proto.test_http_analyzer import check

    count = 0
    for logs in through_engine["records"].values():
        for log, rows in logs.items():
            for row in rows:
                check(log, row)
                count += 1
    assert count > 400


def test_http_agrees_through_the_engine(through_engine: dict[str, Any]) -> None:
    equal, total = through_engine["tally"]["http"]
    assert total == 1111
    # Reached: every record (MIN_EQUAL is what the project asks for).
    assert equal == total, f"http: {equal}/{total}"


def test_files_through_the_engine(through_engine: dict[str, Any]) -> None:
    equal, total = through_engine["tally"]["files"]
    assert total == 858
    assert equal / total >= FILES_FLOOR, f"files: {equal}/{total}"


def test_captures_below_are_named(through_engine: dict[str, Any]) -> None:
    below = through_engine["tally"]["below"]
    unexplained = {k: v for k, v in below.items() if k not in KNOWN_BELOW}
    assert not unexplained, (
        f"below {MIN_EQUAL:.0%} with no stated reason: {unexplained}"
    )


def test_http_agrees_with_zeek_test_baselines(through_engine: dict[str, Any]) -> None:
    """The http.log baselines of Zeek's own test suite (zeek-pairs.jsonl)."""
    checked = 0
    below = {}
    for line in (PCAPS / "zeek-pairs.jsonl").read_text().splitlines():
        pair = json.loads(line)
        if pair["log"] != "http":
            continue
        want = harness.zeek_compare().read_log(str(PCAPS / pair["baseline"]))
        got = through_engine["records"][pair["trace"]]["http"]
        equal = harness.score_http(want, got)
        checked += 1
        if equal < MIN_EQUAL * len(want):
            below[("http", pair["baseline"])] = f"{equal}/{len(want)}"
    assert checked >= 8
    unexplained = {k: v for k, v in below.items() if k not in KNOWN_BELOW}
    assert not unexplained, (
        f"below {MIN_EQUAL:.0%} with no stated reason: {unexplained}"
    )


def test_files_agree_with_zeek_test_baselines(through_engine: dict[str, Any]) -> None:
    """files.log baselines of Zeek's test suite for HTTP, hashes included
    (those tests load the MD5/SHA-1/SHA-256 analyzers)."""
    fields = (
        "is_orig",
        "seen_bytes",
        "total_bytes",
        "missing_bytes",
        "md5",
        "sha1",
        "sha256",
    )
    checked = 0
    for line in (PCAPS / "zeek-pairs.jsonl").read_text().splitlines():
        pair = json.loads(line)
        want = harness.zeek_compare().read_log(str(PCAPS / pair["baseline"]))
        if pair["log"] != "files" or not all(r.get("source") == "HTTP" for r in want):
            continue
        got = through_engine["records"][pair["trace"]]["files"]
        assert len(got) == len(want), pair["baseline"]
        for w, g in zip(want, got):
            for f in fields:
                if f in w:
                    assert g.get(f) == w[f], f"{pair['baseline']}: {f}"
                    checked += 1
    assert checked >= 19
