"""smtp.log against Zeek, and what the SMTP analyzer must show on real captures.

Every shared capture that has a Zeek smtp.log is replayed by ``sensord
--replay`` with each implementation (compiled and pure Python) and scored
with zeek-compare; the must-show checks read the logs sensord wrote. The
dev harness (tests/proto/smtp_harness.py, its own dpkt reassembly) checks
the analyzer alone against the same logs and Zeek's test baselines. Ground
truth for the attachments comes from tshark's IMF export and Python's
email parser, not from any code of ours.
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

#: Captures that cannot reach MIN_EQUAL, and why (none since the connection
#: table delivers whole streams).
KNOWN_BELOW: dict[str, str] = {}

CAPTURES = smtp_harness.captures()
URL_CASE = "suricata/smtp-url-base64/smtp-url-b64.pcap"
STARTTLS = "zeek/traces/tls__smtp-starttls.pcap"
EXFIL = [
    "attacks/exfil/forensicscontest_puzzle2_evidence02_ann_smtp.pcap",
    "attacks/exfil/packethunting_SMTP-Emails-SSNs-CreditCards.pcap",
]


def compare(log: str, expected: Path, ours: Path) -> dict[str, Any]:
    """zeek-compare's JSON summary (an absent log of ours counts as empty)."""
    if not ours.exists():
        ours.parent.mkdir(parents=True, exist_ok=True)
        ours.write_text("")
    res = subprocess.run(
        [
            sys.executable,
            str(COMPARE),
            "--log",
            log,
            str(expected),
            str(ours),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(res.stdout.strip().splitlines()[-2]))


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.open()] if path.exists() else []


@pytest.fixture(scope="module", params=["compiled", "python"])
def sensord_logs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Every SMTP capture replayed by sensord; the log folder per capture under it."""
    env = dict(os.environ)
    if request.param == "python":
        env["SENSOR_NO_EXTENSIONS"] = "1"
    else:
        pytest.importorskip("sensor._ext.flow")
    root = tmp_path_factory.mktemp(f"smtp-{request.param}")
    # The six replays run side by side: most of each is start-up.
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sensor.cli.sensord",
                "--replay",
                str(PCAPS / rel),
                "--logdir",
                str(root / rel),
                "--progress",
                "never",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )
        for rel in CAPTURES
    ]
    for rel, run in zip(CAPTURES, runs, strict=True):
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, (rel, err.decode(errors="replace"))
    return root


def test_every_smtp_capture_is_scored() -> None:
    assert len(CAPTURES) == 6  # every zeek-logs/**/smtp.log


def test_agreement_through_sensord(sensord_logs: Path) -> None:
    total = equal = 0
    for rel in CAPTURES:
        s = compare(
            "smtp", ZEEK_LOGS / rel / "smtp.log", sensord_logs / rel / "smtp.log"
        )
        assert s["paired"] == s["expected"] and s["extra"] == 0, (rel, s)
        if rel not in KNOWN_BELOW:
            assert s["equal"] >= MIN_EQUAL * s["expected"], (rel, s)
        total += s["expected"]
        equal += s["equal"]
    assert (equal, total) == (9, 9)


def test_agreement_of_the_analyzer_alone(tmp_path: Path) -> None:
    # Zeek's logs of the shared captures, then the baselines of Zeek's own
    # test suite that zeek-pairs.jsonl names for smtp.log.
    cases = [(PCAPS / rel, ZEEK_LOGS / rel / "smtp.log") for rel in CAPTURES]
    pairs = [json.loads(line) for line in (PCAPS / "zeek-pairs.jsonl").open()]
    cases += [
        (PCAPS / p["trace"], PCAPS / p["baseline"]) for p in pairs if p["log"] == "smtp"
    ]
    assert len(cases) == 6 + 3
    for n, (capture, expected) in enumerate(cases):
        ours = tmp_path / str(n) / "smtp.log"
        ours.parent.mkdir()
        records = smtp_harness.run(capture)
        ours.write_text(
            "".join(json.dumps(r) + "\n" for name, r in records if name == "smtp")
        )
        s = compare("smtp", expected, ours)
        assert (s["equal"], s["extra"]) == (s["expected"], 0), (expected, s)


def test_records_validate(sensord_logs: Path) -> None:
    seen: dict[str, int] = {}
    for name in ("smtp", "files", "ssl", "x509"):
        schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
        check = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.FormatChecker()
        )
        for rel in CAPTURES:
            for record in read(sensord_logs / rel / f"{name}.log"):
                if name == "files" and record["source"] != "SMTP":
                    continue
                errors = [e.message for e in check.iter_errors(record)]
                assert not errors, (name, record, errors)
                seen[name] = seen.get(name, 0) + 1
    # ssl and x509 also come from other TLS connections of the captures.
    assert (seen["smtp"], seen["files"]) == (9, 14)
    assert seen["ssl"] >= 1 and seen["x509"] >= 3


def test_suricata_url_in_base64_body(sensord_logs: Path) -> None:
    test_yaml = (PCAPS / URL_CASE).parent / "test.yaml"
    want = re.search(r'email\.url\[0\]: "([^"]+)"', test_yaml.read_text())
    assert want is not None and want.group(1) == "http://codashop-free01.duckdns.org/"
    smtp = read(sensord_logs / URL_CASE / "smtp.log")
    assert [r["urls"] for r in smtp] == [[want.group(1)]]


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
def test_exfil_attachments_and_hashes(
    rel: str, sensord_logs: Path, tmp_path: Path
) -> None:
    truth = _imf_parts(PCAPS / rel, tmp_path)
    files = [f for f in read(sensord_logs / rel / "files.log") if f["source"] == "SMTP"]
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
        assert f.get("filename") == filename

    # The smtp.log records name their files, in order.
    fuids = [fuid for r in read(sensord_logs / rel / "smtp.log") for fuid in r["fuids"]]
    assert fuids == [f["fuid"] for f in files]


def test_exfil_files_as_zeek_logs_them(sensord_logs: Path) -> None:
    for rel in EXFIL:
        zeek = read(ZEEK_LOGS / rel / "files.log")
        ours = [
            f for f in read(sensord_logs / rel / "files.log") if f["source"] == "SMTP"
        ]
        fields = ("ts", "depth", "seen_bytes", "mime_type", "filename", "is_orig")
        assert [tuple(f.get(k) for k in fields) for f in ours] == [
            tuple(z.get(k) for k in fields) for z in zeek
        ]
    docx = [
        f
        for f in read(sensord_logs / EXFIL[0] / "files.log")
        if f.get("filename") == "secretrendezvous.docx"
    ]
    assert len(docx) == 1 and docx[0]["seen_bytes"] == 207438


def test_starttls_hands_the_stream_to_tls(sensord_logs: Path) -> None:
    assert len(read(sensord_logs / STARTTLS / "x509.log")) == 3
    ours = sensord_logs / STARTTLS / "ssl.log"
    baseline = PCAPS / "zeek/baselines/scripts.base.protocols.smtp.starttls/ssl.log"
    for expected in (ZEEK_LOGS / STARTTLS / "ssl.log", baseline):
        s = compare("ssl", expected, ours)
        assert (s["expected"], s["equal"], s["extra"]) == (1, 1, 0), (expected, s)


def test_suricata_attachment_case(sensord_logs: Path) -> None:
    # suricata/smtp-file-data-01/test.yaml: one smtp transaction (no
    # trailing QUIT one), attachment J.txt of 16384 bytes without gaps.
    rel = "suricata/smtp-file-data-01/input.pcap"
    smtp = read(sensord_logs / rel / "smtp.log")
    assert [
        (r["helo"], r["mailfrom"], r["rcptto"], r["from"], r["to"]) for r in smtp
    ] == [
        (
            "client-1016363.example.int",
            "sender@example.com",
            ["recipient@example.com"],
            "<sender@example.com>",
            ["<recipient@example.com>"],
        )
    ]
    files = [
        f
        for f in read(sensord_logs / rel / "files.log")
        if f.get("filename") == "J.txt"
    ]
    assert [(f["seen_bytes"], f["missing_bytes"]) for f in files] == [(16384, 0)]
