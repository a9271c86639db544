"""The files framework: fuids, hashes, MIME types, counts and bounds."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from sensor.proto.analyzer import ConnInfo
from sensor.proto.files import FileLimits, Files
from sensor.proto.filetype import sniff_mime

SCHEMAS = Path(__file__).resolve().parents[2] / "sensor" / "output" / "schemas"
CONN = ConnInfo("CabcDEF123", "tcp", "10.0.0.1", 50000, "10.0.0.2", 25)
VALIDATOR = jsonschema.Draft202012Validator(
    json.loads((SCHEMAS / "files.schema.json").read_text()),
    format_checker=jsonschema.FormatChecker(),
)


def collect() -> tuple[Files, list[dict[str, Any]]]:
    out: list[dict[str, Any]] = []

    def emit(name: str, record: dict[str, Any]) -> None:
        assert name == "files"
        errors = [e.message for e in VALIDATOR.iter_errors(record)]
        assert not errors, errors
        out.append(record)

    return Files(emit), out


def test_record_of_a_streamed_file() -> None:
    files, out = collect()
    content = b"%PDF-1.4\n" + bytes(range(256)) * 100
    handle = files.open(CONN, 5.0, "SMTP", True, filename="a.pdf", depth=3)
    for i in range(0, len(content), 1000):
        handle.write(content[i : i + 1000], 10.0 + i / 1000)
    handle.set_total(len(content))
    record = handle.close(99.0)
    assert out == [record]
    assert record == {
        "ts": 10.0,
        "fuid": handle.fuid,
        **CONN.id_fields(),
        "source": "SMTP",
        "depth": 3,
        "analyzers": [],
        "mime_type": "application/pdf",
        "filename": "a.pdf",
        "duration": pytest.approx(25.0),
        "is_orig": True,
        "seen_bytes": len(content),
        "total_bytes": len(content),
        "missing_bytes": 0,
        "overflow_bytes": 0,
        "timedout": False,
        "md5": hashlib.md5(content).hexdigest(),
        "sha1": hashlib.sha1(content).hexdigest(),
        "sha256": hashlib.sha256(content).hexdigest(),
    }
    assert handle.close(100.0) == record and len(out) == 1  # closing twice emits once


def test_fuids_are_deterministic_and_distinct() -> None:
    first = [
        Files(lambda n, r: None).open(CONN, 1.0, "HTTP", False).fuid for _ in range(2)
    ]
    assert first[0] == first[1]
    files = Files(lambda n, r: None)
    fuids = {files.open(CONN, 1.0, "HTTP", False).fuid for _ in range(100)}
    assert len(fuids) == 100
    assert all(f.startswith("F") and f[1:].isalnum() for f in fuids)


def test_only_the_beginning_is_kept() -> None:
    files, _ = collect()
    handle = files.open(CONN, 1.0, "HTTP", False)
    for _ in range(1000):
        handle.write(b"\0" * 10_000, 2.0)
    assert len(handle._bof) <= FileLimits().bof_bytes
    assert handle.close(3.0)["seen_bytes"] == 10_000_000


def test_gap_counts_missing_and_sniffs_what_it_has() -> None:
    files, out = collect()
    handle = files.open(CONN, 1.0, "HTTP", False)
    handle.write(b"GIF89a\x01\x00\x01\x00", 1.0)
    handle.gap(500, 2.0)
    assert handle.mime_type == "image/gif"
    handle.write(b"tail", 3.0)
    handle.gap(7, 9.0)  # noticed late: not activity
    record = handle.close(10.0)
    assert out == [record]
    assert (record["seen_bytes"], record["missing_bytes"], record["duration"]) == (
        14,
        507,
        2.0,
    )


def test_empty_file_has_no_type() -> None:
    files, out = collect()
    record = files.open(CONN, 1.0, "HTTP", False).close(2.0)
    assert "mime_type" not in record and record["seen_bytes"] == 0
    assert out == [record]


def test_bounds_open_files_and_names() -> None:
    files, out = collect()
    limits = FileLimits(max_open=2, max_filename=8)
    files.limits = limits
    handles = [
        files.open(CONN, 1.0, "SMTP", True, filename="x" * 100) for _ in range(3)
    ]
    assert handles[0].filename == "x" * 8
    for handle in handles:
        handle.write(b"data", 2.0)
        handle.close(3.0)
    assert len(out) == 2
    assert files.stats == {"files_name_cut": 3, "files_too_many": 1}


def test_close_all() -> None:
    files, out = collect()
    for _ in range(3):
        files.open(CONN, 1.0, "HTTP", False).write(b"abc", 1.0)
    files.close_all(9.0)
    assert len(out) == 3


@pytest.mark.parametrize(
    "head,hint,want",
    [
        (b"MZ\x90\x00" + b"\0" * 60, None, "application/x-dosexec"),
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + b"\0" * 20, None, "image/png"),
        (b'{"a": [1, 2]}', None, "text/json"),  # libmagic says application/json
        (b'<?xml version="1.0"?><a/>', None, "application/xml"),
        (b"plain words here\n", "image/jpeg", "text/plain"),  # content beats the label
        (
            b"\x30\x82\x01\x0a\x0a\x01\x00\xa0\x82",
            "application/ocsp-response",
            "application/ocsp-response",
        ),
        (b"\x30\x82\x01\x0a\x0a\x01\x00\xa0\x82", "application/x-foo", None),
        (b"", "text/html", None),
        (b"ok\r\n", None, None),  # Zeek calls text only from ten characters on
        (b"0123456789", None, "text/plain"),
    ],
)
def test_sniff_mime(head: bytes, hint: str | None, want: str | None) -> None:
    assert sniff_mime(head, hint) == want


def test_default_analyzers_follow_the_type() -> None:
    files, out = collect()
    handle = files.open(CONN, 1.0, "HTTP", False)
    handle.write(b"MZ\x90\x00" + b"\0" * 60, 1.0)
    assert handle.close(2.0)["analyzers"] == ["PE"]
    assert out[0]["mime_type"] == "application/x-dosexec"
