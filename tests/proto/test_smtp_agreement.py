"""smtp.log against Zeek, and what the SMTP analyzer must show on real captures.

Two ways in: the dev harness (tests/proto/smtp_harness.py), which feeds the
analyzer whole reassembled streams as the connection table will once it
delivers them, and ``sensord --replay`` (both implementations), which today
delivers only the first packets of each direction. Ground truth for the
attachments comes from tshark's own IMF export and Python's email parser,
not from any code of ours.
"""

from __future__ import annotations

import email
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import PCAPS, ROOT, SHARED
from tests.proto import smtp_harness

ZEEK_LOGS = PCAPS / "zeek-logs"
COMPARE = SHARED / "tools" / "zeek-compare"
SCHEMAS = ROOT / "sensor" / "output" / "schemas"
MIN_EQUAL = 0.95

#: Captures that cannot reach MIN_EQUAL through sensord yet, and why.
ENGINE_BELOW = {
    "attacks/exfil/forensicscontest_puzzle2_evidence02_ann_smtp.pcap": "the table delivers the first 8 packets / 4 KiB per direction: the end of DATA and its 250 are never seen (last_reply stays 354)",
    "suricata/smtp-file-data-01/input.pcap": "same limit: the message's end is cut, last_reply is the 221 to QUIT",
    "zeek/traces/smtp.pcap": "same limit on the first of its two connections (a 10 KiB attachment)",
    # TODO: empty this once the connection table delivers whole streams.
}

EXFIL = [
    "attacks/exfil/forensicscontest_puzzle2_evidence02_ann_smtp.pcap",
    "attacks/exfil/packethunting_SMTP-Emails-SSNs-CreditCards.pcap",
]


def compare(expected: Path, ours: Path) -> dict[str, Any]:
    res = subprocess.run(
        [
            sys.executable,
            str(COMPARE),
            "--log",
            "smtp",
            str(expected),
            str(ours),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(res.stdout.strip().splitlines()[-2]))


def write(records: list[smtp_harness.Record], logdir: Path) -> Path:
    logdir.mkdir(parents=True, exist_ok=True)
    path = logdir / "smtp.log"
    with path.open("w") as f:
        for name, record in records:
            if name == "smtp":
                f.write(json.dumps(record) + "\n")
    return path


@pytest.fixture(scope="module")
def harness_records() -> dict[str, list[smtp_harness.Record]]:
    return {rel: smtp_harness.run(PCAPS / rel) for rel in smtp_harness.captures()}


def test_every_smtp_capture_is_scored(harness_records: dict[str, Any]) -> None:
    assert len(harness_records) == 6  # every zeek-logs/**/smtp.log


def test_agreement_on_whole_streams(
    harness_records: dict[str, Any], tmp_path: Path
) -> None:
    total = equal = 0
    for rel, records in harness_records.items():
        s = compare(ZEEK_LOGS / rel / "smtp.log", write(records, tmp_path / rel))
        assert s["extra"] == 0, rel
        assert s["equal"] >= MIN_EQUAL * s["expected"], (rel, s)
        total += s["expected"]
        equal += s["equal"]
    assert (equal, total) == (9, 9)


def test_agreement_with_zeek_test_baselines(tmp_path: Path) -> None:
    pairs = [json.loads(line) for line in (PCAPS / "zeek-pairs.jsonl").open()]
    pairs = [p for p in pairs if p["log"] == "smtp"]
    assert len(pairs) == 3
    for pair in pairs:
        ours = write(
            smtp_harness.run(PCAPS / pair["trace"]), tmp_path / pair["baseline"]
        )
        s = compare(PCAPS / pair["baseline"], ours)
        assert (s["equal"], s["extra"]) == (s["expected"], 0), (pair["baseline"], s)


@pytest.mark.parametrize("impl", ["compiled", "python"])
def test_agreement_through_sensord(impl: str, tmp_path: Path) -> None:
    env = dict(os.environ)
    if impl == "python":
        env["SENSOR_NO_EXTENSIONS"] = "1"
    else:
        pytest.importorskip("sensor._ext.flow")
    equal = 0
    for rel in smtp_harness.captures():
        logdir = tmp_path / rel
        subprocess.run(
            [
                sys.executable,
                "-m",
                "sensor.cli.sensord",
                "--replay",
                str(PCAPS / rel),
                "--logdir",
                str(logdir),
                "--progress",
                "never",
            ],
            capture_output=True,
            env=env,
            check=True,
            cwd=ROOT,
        )
        s = compare(ZEEK_LOGS / rel / "smtp.log", logdir / "smtp.log")
        assert s["paired"] == s["expected"] and s["extra"] == 0, (rel, s)
        if rel not in ENGINE_BELOW:
            assert s["equal"] >= MIN_EQUAL * s["expected"], (rel, s)
        equal += s["equal"]
    assert equal >= 5  # of 9; the other four are in ENGINE_BELOW


def test_records_validate(harness_records: dict[str, Any]) -> None:
    checks = {}
    for name in ("smtp", "files", "ssl", "x509"):
        schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
        checks[name] = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.FormatChecker()
        )
    seen = {"smtp": 0, "files": 0, "ssl": 0, "x509": 0}
    for records in harness_records.values():
        for name, record in records:
            if "uid" in record:  # the harness names connections C1, C2, ...
                record = {**record, "uid": "CHarness" + record["uid"][1:]}
            errors = [e.message for e in checks[name].iter_errors(record)]
            assert not errors, (name, record, errors)
            seen[name] += 1
    assert seen == {"smtp": 9, "files": 14, "ssl": 1, "x509": 3}


def test_suricata_url_in_base64_body() -> None:
    case = PCAPS / "suricata" / "smtp-url-base64"
    want = re.search(r'email\.url\[0\]: "([^"]+)"', (case / "test.yaml").read_text())
    assert want is not None
    records = smtp_harness.run(case / "smtp-url-b64.pcap")
    smtp = [r for n, r in records if n == "smtp"]
    assert [r["urls"] for r in smtp] == [[want.group(1)]]
    assert want.group(1) == "http://codashop-free01.duckdns.org/"


def _imf_parts(capture: Path, tmp: Path) -> list[tuple[str | None, str, bytes]]:
    """(filename, content type, decoded bytes) of every leaf part tshark exports."""
    out = tmp / capture.name
    out.mkdir()
    subprocess.run(
        ["tshark", "-r", str(capture), "-q", "--export-objects", f"imf,{out}"],
        capture_output=True,
        check=True,
    )
    parts = []
    for eml in sorted(out.iterdir()):
        for part in email.message_from_bytes(eml.read_bytes()).walk():
            if not part.is_multipart():
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes)
                parts.append((part.get_filename(), part.get_content_type(), payload))
    return parts


@pytest.mark.skipif(
    shutil.which("tshark") is None,
    reason="tshark not installed (scripts/install-system installs it)",
)
@pytest.mark.parametrize("rel", EXFIL)
def test_exfil_attachments_and_hashes(rel: str, tmp_path: Path) -> None:
    truth = _imf_parts(PCAPS / rel, tmp_path)
    files = [r for n, r in smtp_harness.run(PCAPS / rel) if n == "files"]
    assert len(files) == len(truth) and truth

    ours = {f["sha256"]: f for f in files}
    for filename, ctype, payload in truth:
        if filename is None and ctype.startswith("text/"):
            # Zeek's convention for body text (and ours, so that seen_bytes
            # agree with its files.log): the last line break is content.
            payload += b"\r\n"
        f = ours.get(hashlib.sha256(payload).hexdigest())
        assert f is not None, (rel, filename, ctype, len(payload))
        assert f["md5"] == hashlib.md5(payload).hexdigest()
        assert f["sha1"] == hashlib.sha1(payload).hexdigest()
        assert f["seen_bytes"] == len(payload)
        assert f["source"] == "SMTP" and f.get("filename") == filename


def test_exfil_docx_is_named_and_typed() -> None:
    rel = EXFIL[0]
    files = [r for n, r in smtp_harness.run(PCAPS / rel) if n == "files"]
    docx = [f for f in files if f.get("filename") == "secretrendezvous.docx"]
    assert len(docx) == 1
    assert docx[0]["seen_bytes"] == 207438
    assert (
        docx[0]["mime_type"]
        == "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    )
    assert docx[0]["depth"] == 5  # Zeek's mime_depth counts entities across the session
    zeek = [json.loads(line) for line in (ZEEK_LOGS / rel / "files.log").open()]
    assert [(z["depth"], z["seen_bytes"], z["mime_type"]) for z in zeek] == [
        (f["depth"], f["seen_bytes"], f["mime_type"]) for f in files
    ]


def test_starttls_hands_the_stream_to_tls(tmp_path: Path) -> None:
    rel = "zeek/traces/tls__smtp-starttls.pcap"
    records = smtp_harness.run(PCAPS / rel)
    assert [n for n, _ in records].count("x509") == 3
    ssl = tmp_path / "ssl.log"
    ssl.write_text("".join(json.dumps(r) + "\n" for n, r in records if n == "ssl"))
    for expected in (
        ZEEK_LOGS / rel / "ssl.log",
        PCAPS / "zeek/baselines/scripts.base.protocols.smtp.starttls/ssl.log",
    ):
        res = subprocess.run(
            [
                sys.executable,
                str(COMPARE),
                "--log",
                "ssl",
                str(expected),
                str(ssl),
                "--json",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        s = json.loads(res.stdout.strip().splitlines()[-2])
        assert (s["expected"], s["equal"], s["extra"]) == (1, 1, 0), (expected, s)
