"""The HTTP analyzer: the exact http.log and files.log records it writes."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.proto.analyzer import ConnInfo
from sensor.proto.analyzers.http import HTTPAnalyzer

SCHEMAS = Path(__file__).resolve().parents[2] / "sensor" / "output" / "schemas"
CONN = ConnInfo("CabcDEF123", "tcp", "10.0.0.1", 50000, "10.0.0.2", 80)
FUZZ = settings(
    max_examples=2000 if os.environ.get("SENSOR_FUZZ") == "deep" else 150, deadline=None
)


def check(name: str, record: dict[str, Any]) -> None:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.FormatChecker()
    )
    errors = [e.message for e in validator.iter_errors(record)]
    assert not errors, f"{name}: {record}: {errors}"


def replay(
    *steps: tuple[bool, float, bytes], conn: ConnInfo = CONN
) -> list[tuple[str, dict[str, Any]]]:
    """Feed (is_orig, ts, data) steps, end the connection; every record validated."""
    out: list[tuple[str, dict[str, Any]]] = []
    analyzer = HTTPAnalyzer(conn, lambda n, r: out.append((n, r)))
    for is_orig, ts, data in steps:
        analyzer.data(is_orig, ts, data)
    analyzer.end(100.0)
    for name, record in out:
        check(name, record)
    return out


def logs(out: list[tuple[str, dict[str, Any]]], name: str) -> list[dict[str, Any]]:
    return [r for n, r in out if n == name]


def test_get_with_gzip_body() -> None:
    page = b"<html><body>" + b"hello " * 500 + b"</body></html>"
    packed = gzip.compress(page)
    out = replay(
        (
            True,
            1.0,
            b"GET /a%20b HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: t/1\r\nReferer: http://r/\r\n\r\n",
        ),
        (
            False,
            2.0,
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
            % len(packed),
        ),
        (False, 2.5, packed),
    )
    (http,) = logs(out, "http")
    (file,) = logs(out, "files")
    assert http == {
        "ts": 1.0,
        **CONN.id_fields(),
        "trans_depth": 1,
        "method": "GET",
        "host": "example.com:8080",
        "uri": "/a b",
        "referrer": "http://r/",
        "version": "1.1",
        "user_agent": "t/1",
        "request_body_len": 0,
        "response_body_len": len(page),
        "status_code": 200,
        "status_msg": "OK",
        "tags": [],
        "resp_fuids": [file["fuid"]],
        "resp_mime_types": ["text/html"],
    }
    assert file["seen_bytes"] == len(page)
    assert "total_bytes" not in file  # Content-Length is of the packed body
    assert file["sha256"] == hashlib.sha256(page).hexdigest()
    assert file["md5"] == hashlib.md5(page).hexdigest()
    assert (file["ts"], file["duration"], file["is_orig"], file["source"]) == (
        2.5,
        0.0,
        False,
        "HTTP",
    )


def test_pipelined_requests_pair_in_order() -> None:
    out = replay(
        (
            True,
            1.0,
            b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\n\r\n",
        ),
        (
            False,
            2.0,
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabHTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
        ),
        (
            False,
            3.0,
            b"HTTP/1.1 404 Nope\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n",
        ),
    )
    rows = [
        (r["trans_depth"], r["uri"], r["status_code"], r["response_body_len"])
        for r in logs(out, "http")
    ]
    assert rows == [(1, "/1", 200, 2), (2, "/2", 200, 0), (3, "/3", 404, 3)]
    assert [f["seen_bytes"] for f in logs(out, "files")] == [2, 3]


def test_post_with_continue_and_basic_auth() -> None:
    creds = base64.b64encode(b"alice:secret").decode()
    out = replay(
        (
            True,
            1.0,
            f"POST /up HTTP/1.1\r\nAuthorization: Basic {creds}\r\nExpect: 100-continue\r\n".encode(),
        ),
        (True, 1.0, b"Content-Length: 5\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n"),
        (False, 1.5, b"HTTP/1.1 100 Continue\r\n\r\n"),
        (True, 2.0, b"MZ\x90\x00\x03"),
        (False, 3.0, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
    )
    (http,) = logs(out, "http")
    assert (http["info_code"], http["info_msg"], http["status_code"]) == (
        100,
        "Continue",
        201,
    )
    assert http["username"] == "alice"
    assert "password" not in http
    assert http["proxied"] == ["X-FORWARDED-FOR -> 1.2.3.4"]
    assert http["request_body_len"] == 5
    (file,) = logs(out, "files")
    assert (file["is_orig"], file["total_bytes"], http["orig_fuids"]) == (
        True,
        5,
        [file["fuid"]],
    )


def test_multipart_upload_makes_a_file_per_part() -> None:
    body = (
        b"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nfirst part\r\n"
        b'--XyZ\r\nContent-Disposition: form-data; name=f; filename="up.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\nMZ\x90\x00\x03\x00\r\n--XyZ--\r\n"
    )
    out = replay(
        (
            True,
            1.0,
            b"POST /u HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n",
        ),
        (True, 1.0, b"Content-Length: %d\r\n\r\n" % len(body) + body[:50]),
        (True, 1.5, body[50:]),
        (False, 2.0, b"HTTP/1.1 204 No Content\r\n\r\n"),
    )
    (http,) = logs(out, "http")
    files = logs(out, "files")
    assert [(f["seen_bytes"], f.get("filename")) for f in files] == [
        (10, None),
        (6, "up.bin"),
    ]
    assert "total_bytes" not in files[0]
    assert http["request_body_len"] == len(body)
    assert http["orig_fuids"] == [f["fuid"] for f in files]
    assert http["orig_filenames"] == ["up.bin"]
    assert files[1]["sha1"] == hashlib.sha1(b"MZ\x90\x00\x03\x00").hexdigest()


def test_unanswered_request_and_filename() -> None:
    out = replay(
        (True, 1.0, b"GET /x HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\n\r\n"),
        (
            False,
            2.0,
            b'HTTP/1.1 200 OK\r\nContent-Disposition: attachment; filename="r.txt"\r\n',
        ),
        (False, 2.0, b"Content-Length: 4\r\n\r\ntext"),
    )
    first, second = logs(out, "http")
    assert first["resp_filenames"] == ["r.txt"]
    assert (second["uri"], "status_code" in second) == ("/y", False)
    assert logs(out, "files")[0]["filename"] == "r.txt"


def test_reply_without_request_and_http09() -> None:
    out = replay((False, 1.0, b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
    (http,) = logs(out, "http")
    assert (http["trans_depth"], "method" in http, http["status_code"]) == (
        1,
        False,
        400,
    )

    out = replay((True, 1.0, b"GET /old\r\n\r\n"), (False, 2.0, b"<html>\r\nhi</html>"))
    (http,) = logs(out, "http")
    assert (http["version"], http["status_code"], http["status_msg"]) == (
        "0.9",
        0,
        "<empty>",
    )
    assert http["response_body_len"] == 17  # as sent: Zeek counts no lines here


def test_connect_tunnel_stops_analysis() -> None:
    out: list[tuple[str, dict[str, Any]]] = []
    analyzer = HTTPAnalyzer(CONN, lambda n, r: out.append((n, r)))
    analyzer.data(
        True, 1.0, b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n\x16\x03\x01"
    )
    analyzer.data(
        False, 2.0, b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03"
    )
    assert analyzer.done
    (http,) = logs(out, "http")
    assert (http["method"], http["uri"], http["status_code"]) == (
        "CONNECT",
        "h:443",
        200,
    )


def test_gap_in_body_counts_missing_bytes() -> None:
    out: list[tuple[str, dict[str, Any]]] = []
    analyzer = HTTPAnalyzer(CONN, lambda n, r: out.append((n, r)))
    analyzer.data(True, 1.0, b"GET / HTTP/1.1\r\n\r\n")
    analyzer.data(
        False, 2.0, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"a" * 30
    )
    analyzer.gap(False, 3.0, 50)
    analyzer.data(False, 4.0, b"b" * 20)
    analyzer.end(5.0)
    (file,) = logs(out, "files")
    assert (file["seen_bytes"], file["missing_bytes"], file["total_bytes"]) == (
        50,
        50,
        100,
    )
    assert logs(out, "http")[0]["response_body_len"] == 100


def test_sniff() -> None:
    odd = ConnInfo("C1", "tcp", "10.0.0.1", 1, "10.0.0.2", 4444)
    assert HTTPAnalyzer.sniff(odd, True, b"GET / HTTP/1.1\r\n")
    assert HTTPAnalyzer.sniff(odd, False, b"HTTP/1.1 200 OK\r\n")
    assert not HTTPAnalyzer.sniff(odd, True, b"\x16\x03\x01\x02\x00\x01")
    assert not HTTPAnalyzer.sniff(odd, True, b"SSH-2.0-OpenSSH_8.9\r\n")
    assert not HTTPAnalyzer.sniff(odd, True, b"EHLO mail.example.com\r\n")
    assert not HTTPAnalyzer.sniff(odd, True, b"USER anonymous\r\n")
    assert HTTPAnalyzer.sniff(odd, True, b"GET /\r\n")
    assert HTTPAnalyzer.sniff(CONN, True, b"\x16\x03\x01")  # port 80: Zeek's ports


@FUZZ
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=300)), max_size=12))
def test_fuzz_never_raises(steps: list[tuple[bool, bytes]]) -> None:
    replay(*[(is_orig, float(i), data) for i, (is_orig, data) in enumerate(steps)])


_PIECES = [
    b"GET / HTTP/1.1\r\n", b"HTTP/1.1 200 OK\r\n", b"Content-Length: 5\r\n", b"Content-Length: -1\r\n",
    b"Transfer-Encoding: chunked\r\n", b"Content-Encoding: gzip\r\n", b"Content-Encoding: deflate\r\n",
    b"\r\n", b"5\r\nhello\r\n", b"0\r\n\r\n", b"ffffffff\r\n", b"HEAD / HTTP/1.0\r\n",
    b"CONNECT a:1 HTTP/1.1\r\n", b"HTTP/1.1 100 Continue\r\n", gzip.compress(b"x" * 50), b"\x1f\x8b\x08\x00",
    b"Content-Type: multipart/form-data; boundary=b\r\n", b"--b--\r\n",
    b"--b\r\nContent-Disposition: form-data; filename=x\r\n\r\ndata\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"GET /\r\n",
]  # fmt: skip


@FUZZ
@given(
    st.lists(
        st.tuples(st.booleans(), st.lists(st.sampled_from(_PIECES), max_size=8)),
        max_size=10,
    )
)
def test_fuzz_structured_never_raises(steps: list[tuple[bool, list[bytes]]]) -> None:
    out = replay(*[(o, float(i), b"".join(p)) for i, (o, p) in enumerate(steps)])
    assert all(r["trans_depth"] >= 1 for r in logs(out, "http"))


def test_basic_auth_usernames() -> None:
    from sensor.proto.analyzers.http import _basic_user

    assert _basic_user("Basic " + base64.b64encode(b"bob:pw:x").decode()) == "bob"
    assert (
        _basic_user("basic " + base64.b64encode(b"bob").decode())
        == f"<problem-decoding> (basic {base64.b64encode(b'bob').decode()})"
    )
    assert _basic_user("Basic !!!") == "<problem-decoding> (Basic !!!)"
    assert _basic_user("Bearer abc") is None


def test_anomalies_are_counted_and_written_once_as_weirds() -> None:
    out = replay(
        (
            True,
            1.0,
            b"\x01\x02 garbage\r\n\x03 more garbage\r\nOPTIONS HTTP/1.1\r\n\r\n",
        ),
        (False, 2.0, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
    )
    weirds = [(r["name"], r["source"], r["ts"]) for r in logs(out, "weird")]
    assert weirds == [
        ("bad_HTTP_request", "HTTP", 1.0),
        ("missing_HTTP_uri", "HTTP", 1.0),
        ("HTTP_bad_chunk_size", "HTTP", 2.0),
    ]
    analyzer = HTTPAnalyzer(CONN, lambda n, r: None)
    analyzer.data(True, 1.0, b"\x01 x\r\n" * 5)
    assert analyzer.counts == {"bad_HTTP_request": 5}
    assert analyzer.anomalies == 5


def test_pending_requests_are_bounded() -> None:
    from sensor.proto.analyzers.http import MAX_PENDING

    out: list[tuple[str, dict[str, Any]]] = []
    analyzer = HTTPAnalyzer(CONN, lambda n, r: out.append((n, r)))
    analyzer.data(True, 1.0, b"GET /x HTTP/1.1\r\n\r\n" * (MAX_PENDING + 36))
    assert len(analyzer._pending) == MAX_PENDING
    assert len(analyzer._lines) == MAX_PENDING
    assert len(logs(out, "http")) == 36  # the oldest, written unanswered
    assert analyzer.counts == {"HTTP_TOO_MANY_PENDING": 36}
    analyzer.end(2.0)
    assert len(logs(out, "http")) == MAX_PENDING + 36


def test_lying_chunk_sizes_and_endless_headers_through_the_analyzer() -> None:
    out = replay(
        (True, 1.0, b"GET / HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 100_000 + b"\r\n\r\n"),
        (
            False,
            2.0,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\n"
            + b"z" * 5000,
        ),
    )
    (http,) = logs(out, "http")
    (file,) = logs(out, "files")
    assert (http["status_code"], file["seen_bytes"]) == (200, 5000)
    assert {w["name"] for w in logs(out, "weird")} == {
        "HTTP_LINE_TOO_LONG",
        "HTTP_BODY_TRUNCATED",
    }


def test_files_limits_reach_weird_log() -> None:
    from sensor.proto.files import FileLimits

    out: list[tuple[str, dict[str, Any]]] = []
    analyzer = HTTPAnalyzer(CONN, lambda n, r: out.append((n, r)))
    analyzer.files.limits = FileLimits(max_filename=4)
    name = b'Content-Disposition: attachment; filename="longname"\r\n'
    analyzer.data(
        True, 1.0, b"POST / HTTP/1.1\r\nContent-Length: 3\r\n" + name + b"\r\nabc"
    )
    analyzer.end(2.0)
    assert logs(out, "files")[0]["filename"] == "long"
    assert [w["name"] for w in logs(out, "weird")] == ["files_name_cut"]
    assert analyzer.counts == {"files_name_cut": 1}


def test_gap_in_a_gzip_body_ends_decoding() -> None:
    page = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(500))
    packed = gzip.compress(page, compresslevel=1)
    assert len(packed) > 3000
    out: list[tuple[str, dict[str, Any]]] = []
    analyzer = HTTPAnalyzer(CONN, lambda n, r: out.append((n, r)))
    analyzer.data(True, 1.0, b"GET / HTTP/1.1\r\n\r\n")
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
    analyzer.data(False, 2.0, head % len(packed) + packed[:1000])
    analyzer.gap(False, 3.0, 500)
    analyzer.data(False, 4.0, packed[1500:])
    analyzer.end(5.0)
    (file,) = logs(out, "files")
    (http,) = logs(out, "http")
    assert file["missing_bytes"] == 500
    assert 0 < file["seen_bytes"] < len(page)
    # Zeek counts the decoded bytes and the hole.
    assert http["response_body_len"] == file["seen_bytes"] + 500
