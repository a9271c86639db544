"""The HTTP/1.x stream parser: framing, limits and hostile input."""

from __future__ import annotations

import gzip
import zlib

import pytest

from sensor.proto.parsers.http import (
    Anomaly,
    Body,
    Done,
    Event,
    Headers,
    HTTPLimits,
    HTTPStreamParser,
    Start,
    parse_request_line,
    parse_status_line,
    unescape_uri,
)
from sensor.proto.parsers.httpcoding import ContentDecoder


def requests(data: bytes, limits: HTTPLimits | None = None) -> list[object]:
    parser = HTTPStreamParser(True, limits=limits)
    return parser.feed(data) + parser.eof()


def replies(data: bytes, method: str = "GET", version: str = "1.1") -> list[object]:
    line = Start("request", method, "/", version, 0, "")
    parser = HTTPStreamParser(False, lambda n: line)
    return parser.feed(data) + parser.eof()


def body(events: list[object]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Body))


def names(events: list[object]) -> list[str]:
    return [e.name for e in events if isinstance(e, Anomaly)]


# -- lines ---------------------------------------------------------------------


def test_request_line() -> None:
    assert parse_request_line(b"GET /a%20b?x=%2541 HTTP/1.1") == Start(
        "request", "GET", "/a b?x=%41", "1.1", 0, ""
    )


def test_request_line_without_target_or_version() -> None:
    assert parse_request_line(b"OPTIONS HTTP/1.1") == Start(
        "request", "OPTIONS", "", "1.1", 0, ""
    )
    assert parse_request_line(b"GET /index.html") == Start(
        "request", "GET", "/index.html", "0.9", 0, ""
    )


@pytest.mark.parametrize(
    "line", [b"", b"\x16\x03\x01\x02\x00", b"G(T / HTTP/1.1", b"GET / FOO/1"]
)
def test_not_a_request_line(line: bytes) -> None:
    assert parse_request_line(line) is None


def test_status_line_reason_kinds() -> None:
    assert parse_status_line(b"HTTP/1.1 404 Not Found").reason == "Not Found"  # type: ignore[union-attr]
    assert parse_status_line(b"HTTP/1.1 200 ").reason == ""  # type: ignore[union-attr]
    assert parse_status_line(b"HTTP/1.1 204").reason is None  # type: ignore[union-attr]
    assert parse_status_line(b"HTTP/1.1 OK") is None
    assert parse_status_line(b"SSH-2.0-x") is None


def test_unescape_keeps_broken_escapes() -> None:
    assert unescape_uri(b"/%zz%4") == "/%zz%4"
    assert unescape_uri(b"/%e2%82%ac") == "/\u20ac"
    assert unescape_uri(b"/%ff") == "/\\xff"


# -- framing -------------------------------------------------------------------


def test_pipelined_requests_with_bodies() -> None:
    data = (
        b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
        b"PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n"
    )
    events = requests(data)
    starts = [e.uri for e in events if isinstance(e, Start)]
    assert starts == ["/a", "/b", "/c"]
    assert [e.body_len for e in events if isinstance(e, Done)] == [3, 0, 2]
    assert body(events) == b"abcxy"
    assert names(events) == []


def test_every_split_gives_the_same_events() -> None:
    data = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n"
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"
        b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nabcd"
    )
    whole = replies(data)
    line = Start("request", "GET", "/", "1.1", 0, "")
    for cut in range(1, len(data)):
        parser = HTTPStreamParser(False, lambda n: line)
        events = parser.feed(data[:cut]) + parser.feed(data[cut:]) + parser.eof()
        assert [e for e in events if not isinstance(e, Body)] == [
            e for e in whole if not isinstance(e, Body)
        ]
        assert body(events) == b"hello worldabcd"


class _LineByLine(HTTPStreamParser):
    """The parser without its whole-header-block shortcut."""

    def _header_block(self, data: bytes, pos: int, out: list[Event]) -> int:
        return -1


def test_header_block_shortcut_reads_as_line_by_line() -> None:
    # Header blocks whole and cut, folded, broken, bare-LF, blank-led, over
    # the limits: the shortcut and the line-by-line reading agree.
    import random

    pieces = [
        b"Host: a\r\n", b"X: 1\r\n", b" folded\r\n", b"\tfolded\r\n",
        b"no colon\r\n", b": empty name\r\n", b"Bare: lf\n", b"Cr: x\r\r\n",
        b"Content-Length: 3\r\n", b"Transfer-Encoding: chunked\r\n",
        b"\xff\xfe: \xe9t\xe9\r\n", b"Long: " + b"v" * 40 + b"\r\n",
    ]
    rng = random.Random(7)
    limits = HTTPLimits(max_line=64, max_headers=5, max_header_bytes=120)
    for _ in range(1500):
        block = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 7)))
        data = b"POST / HTTP/1.1\r\n" + block + b"\r\nabc3\r\nabc\r\n0\r\n\r\n"
        data = data + b"GET /x HTTP/1.1\r\n" + block + b"\r\n"
        lim = limits if rng.random() < 0.3 else None
        cut = rng.randrange(1, len(data))
        got = []
        for cls in (HTTPStreamParser, _LineByLine):
            parser = cls(True, limits=lim)
            got.append(parser.feed(data[:cut]) + parser.feed(data[cut:]) + parser.eof())
            got.append((parser._header_bytes, parser._line_crs, parser.messages))
        assert got[0] == got[2] and got[1] == got[3], data


def test_no_body_for_head_204_304_and_interim() -> None:
    head = replies(
        b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", "HEAD"
    )
    assert [e.body_len for e in head if isinstance(e, Done)] == [0, 0]
    interim = replies(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    )
    assert [e.code for e in interim if isinstance(e, Start)] == [100, 200]
    assert body(interim) == b"ok"


def test_connect_turns_into_a_tunnel() -> None:
    line = Start("request", "CONNECT", "host:443", "1.1", 0, "")
    parser = HTTPStreamParser(False, lambda n: line)
    events = parser.feed(
        b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01\x00\x05hello"
    )
    assert parser.tunnel
    assert body(events) == b""
    assert parser.feed(b"HTTP/1.1 200 OK\r\n\r\n") == []


def test_reply_to_end_of_connection_counts_lines_as_zeek() -> None:
    events = replies(b"HTTP/1.0 200 OK\r\n\r\nline1\nline2\r\nlast")
    assert body(events) == b"line1\nline2\r\nlast"
    # 17 bytes; the bare LF counts as CRLF (+1) and the last line gets one (+2).
    assert [e.body_len for e in events if isinstance(e, Done)] == [20]


def test_http09_reply_is_all_body() -> None:
    events = replies(b"<html>hi</html>\nmore", version="0.9")
    assert [e for e in events if isinstance(e, Start)] == [
        Start("reply", "", "", "0.9", 0, None)
    ]
    assert body(events) == b"<html>hi</html>\nmore"
    assert [e.body_len for e in events if isinstance(e, Done)] == [20]  # as sent


def test_header_folding_and_bad_header() -> None:
    events = requests(b"GET / HTTP/1.1\r\nX-A: one\r\n two\r\nno colon here\r\n\r\n")
    headers = next(e for e in events if isinstance(e, Headers))
    assert headers.fields == (("X-A", "one two"),)
    assert names(events) == ["HTTP_BAD_HEADER"]


# -- hostile input -------------------------------------------------------------


def test_content_length_that_lies_long() -> None:
    events = requests(b"POST / HTTP/1.1\r\nContent-Length: 1000\r\n\r\nshort")
    assert body(events) == b"short"
    assert names(events) == ["HTTP_BODY_TRUNCATED"]


def test_content_length_that_lies_short() -> None:
    events = requests(b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nabcdef\r\n")
    assert body(events) == b"ab"
    assert names(events) == ["HTTP_BAD_REQUEST_LINE"]


@pytest.mark.parametrize("value", [b"-5", b"abc", b"99999999999999999999x"])
def test_bad_content_length(value: bytes) -> None:
    events = requests(b"POST / HTTP/1.1\r\nContent-Length: " + value + b"\r\n\r\n")
    assert names(events) == ["HTTP_BAD_CONTENT_LENGTH"]
    assert [e.body_len for e in events if isinstance(e, Done)] == [0]


def test_bad_chunk_size_gives_up() -> None:
    parser = HTTPStreamParser(
        False, lambda n: Start("request", "GET", "/", "1.1", 0, "")
    )
    events = parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert names(events) == ["HTTP_BAD_CHUNK_SIZE"]
    assert parser.tunnel


def test_endless_header_line_is_cut() -> None:
    limits = HTTPLimits(max_line=64)
    events = requests(b"GET / HTTP/1.1\r\nX: " + b"a" * 10_000 + b"\r\n\r\n", limits)
    assert names(events) == ["HTTP_LINE_TOO_LONG"]
    headers = next(e for e in events if isinstance(e, Headers))
    assert len(headers.fields[0][1]) < 64


def test_endless_headers_are_bounded() -> None:
    limits = HTTPLimits(max_headers=10, max_header_bytes=1000)
    many = b"".join(b"X-%d: v\r\n" % i for i in range(50))
    events = requests(b"GET / HTTP/1.1\r\n" + many + b"\r\n", limits)
    assert names(events)[0] == "HTTP_TOO_MANY_HEADERS"
    headers = next(e for e in events if isinstance(e, Headers))
    assert len([f for f in headers.fields if f[0]]) == 10

    parser = HTTPStreamParser(True, limits=limits)
    events = parser.feed(b"GET / HTTP/1.1\r\n" + b"X: " + b"v" * 50 + b"\r\n" * 1)
    for _ in range(40):
        events += parser.feed(b"X: " + b"v" * 50 + b"\r\n")
    assert "HTTP_HEADERS_TOO_LONG" in names(events)
    assert parser.tunnel  # the stream is given up, not buffered


def test_gap_inside_a_body_is_skipped() -> None:
    parser = HTTPStreamParser(True)
    events = parser.feed(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nab")
    events += parser.gap(5)
    events += parser.feed(b"cde")
    assert [e.body_len for e in events if isinstance(e, Done)] == [10]
    assert parser.gap(3) == [
        Anomaly("HTTP_CONTENT_GAP", "3 bytes missing outside a body")
    ]


# -- content coding ------------------------------------------------------------


@pytest.mark.parametrize(
    "coding,packed",
    [
        ("gzip", gzip.compress(b"hello " * 100)),
        ("deflate", zlib.compress(b"hello " * 100)),
        ("deflate", zlib.compress(b"hello " * 100)[2:-4]),  # raw deflate, as IIS sends
    ],
)
def test_decoder(coding: str, packed: bytes) -> None:
    out: list[bytes] = []
    decoder = ContentDecoder(coding, 1 << 20)
    for i in range(0, len(packed), 7):
        decoder.feed(packed[i : i + 7], out.append)
    assert b"".join(out) == b"hello " * 100
    assert decoder.anomaly is None


def test_decoder_bounds_a_bomb() -> None:
    bomb = gzip.compress(b"\0" * (20 << 20))
    out: list[int] = []
    decoder = ContentDecoder("gzip", 1 << 20, piece=1 << 16)
    decoder.feed(bomb, lambda b: out.append(len(b)))
    assert sum(out) == 1 << 20
    assert max(out) <= 1 << 16
    assert (
        decoder.anomaly is not None and decoder.anomaly.name == "HTTP_DECODED_TOO_LARGE"
    )


def test_decoder_broken_data() -> None:
    decoder = ContentDecoder("gzip", 1 << 20)
    decoder.feed(b"\x1f\x8b\x08\x00garbage-garbage", lambda b: None)
    assert decoder.anomaly is not None and decoder.anomaly.name == "HTTP_BAD_ENCODING"


def test_gap_past_the_end_of_a_body() -> None:
    parser = HTTPStreamParser(True)
    events = parser.feed(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nab")
    events += parser.gap(500)
    assert [e.body_len for e in events if isinstance(e, Done)] == [10]
    assert names(events) == ["HTTP_CONTENT_GAP"]
    assert parser.tunnel and parser.feed(b"GET / HTTP/1.1\r\n\r\n") == []


@pytest.mark.parametrize(
    "pieces,count",
    [
        ([b"ab\rcd"], 8),  # a bare CR ends a line too
        ([b"ab\r", b"\ncd"], 8),  # CRLF split between pieces
        ([b"ab\r", b"cd"], 8),
        ([b"ab\r"], 4),
        ([b"a\r\r\nb"], 8),
    ],
)
def test_line_ends_of_a_body_to_the_end(pieces: list[bytes], count: int) -> None:
    line = Start("request", "GET", "/", "1.1", 0, "")
    parser = HTTPStreamParser(False, lambda n: line)
    events = parser.feed(b"HTTP/1.0 200 OK\r\n\r\n")
    for piece in pieces:
        events += parser.feed(piece)
    events += parser.eof()
    assert [e.body_len for e in events if isinstance(e, Done)] == [count]
    assert body(events) == b"".join(pieces)
