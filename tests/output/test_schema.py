"""Every record the pipeline writes validates against its log's JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from sensor.capture.merge import merge
from sensor.capture.pcapfile import CaptureFile
from sensor.engine import Engine
from sensor.output.zeeklog import LogWriter

SCHEMAS = Path(__file__).resolve().parents[2] / "sensor" / "output" / "schemas"

# Captures chosen to exercise every field: VLAN and MPLS tags, QinQ, IPv6,
# ICMP, fragments, truncated headers (weird.log).
CAPTURES = [
    "zeek/traces/wikipedia.pcap",
    "zeek/traces/mixed-vlan-mpls.pcap",
    "zeek/traces/http-qinq-0.pcap",
    "zeek/traces/ftp__ipv6.pcap",
    "zeek/traces/icmp__icmp-destunreach-udp.pcap",
    "zeek/traces/trunc__trunc-hdr.pcap",
    "zeek/traces/tcp__truncated-header.pcap",
    "zeek/traces/ipv4__fragmented-1.pcap",
]


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize("capture", CAPTURES)
def test_records_validate(pcaps: Path, tmp_path: Path, capture: str) -> None:
    engine = Engine()
    with LogWriter(tmp_path) as out:
        for batch in merge([CaptureFile(str(pcaps / capture))]):
            for name, record in engine.process(batch):
                out.write(name, record)
        for name, record in engine.flush():
            out.write(name, record)

    written = 0
    for log in sorted(tmp_path.glob("*.log")):
        check = validator(log.stem)
        for line in log.read_text().splitlines():
            errors = [e.message for e in check.iter_errors(json.loads(line))]
            assert not errors, f"{log.name}: {line}: {errors}"
            written += 1
    assert written > 0


def test_schema_rejects_a_bad_record() -> None:
    check = validator("conn")
    bad = {"ts": 1.0, "uid": "X1", "id.orig_h": "300.1.1.1", "proto": "sctp"}
    assert len(list(check.iter_errors(bad))) >= 3
