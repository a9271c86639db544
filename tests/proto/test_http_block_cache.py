"""The HTTP parser's cache of request header blocks changes no event."""

from __future__ import annotations

from sensor.proto.parsers import http
from sensor.proto.parsers.http import Anomaly, Headers, HTTPLimits, HTTPStreamParser

BLOCK = b"Host: example.com\r\nUser-Agent: curl/8.0\r\nAccept: */*"
REQUEST = b"GET / HTTP/1.1\r\n" + BLOCK + b"\r\n\r\n"


def events(data: bytes, limits: HTTPLimits | None = None) -> list[object]:
    parser = HTTPStreamParser(True, limits=limits)
    return parser.feed(data) + parser.eof()


def test_a_block_seen_again_gives_the_same_events() -> None:
    http._blocks.clear()
    first = events(REQUEST)
    assert BLOCK in http._blocks
    assert events(REQUEST) == first
    headers = [e for e in first if isinstance(e, Headers)]
    assert headers[0].fields == (
        ("Host", "example.com"),
        ("User-Agent", "curl/8.0"),
        ("Accept", "*/*"),
    )


def test_a_cached_block_still_meets_each_parsers_limits() -> None:
    http._blocks.clear()
    events(REQUEST)
    limited = events(REQUEST, HTTPLimits(max_headers=2))
    http._blocks.clear()
    assert limited == events(REQUEST, HTTPLimits(max_headers=2))
    assert Anomaly("HTTP_TOO_MANY_HEADERS", "more than 2 header fields") in limited


def test_a_cached_block_after_fields_read_line_by_line() -> None:
    # The first field ends in a bare LF, so it is read alone; the rest of
    # the block comes from the cache and is added to it.
    http._blocks.clear()
    events(REQUEST)
    data = b"GET / HTTP/1.1\r\nX-First: 1\n" + BLOCK + b"\r\n\r\n"
    cached = events(data)
    http._blocks.clear()
    assert cached == events(data)
    headers = [e for e in cached if isinstance(e, Headers)]
    assert headers[0].fields[0] == ("X-First", "1")
    assert len(headers[0].fields) == 4


def test_replies_and_long_blocks_are_not_kept() -> None:
    http._blocks.clear()
    parser = HTTPStreamParser(False)
    parser.feed(b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n")
    long_block = b"Cookie: " + b"a" * http.BLOCK_CACHE_BYTES
    events(b"GET / HTTP/1.1\r\n" + long_block + b"\r\n\r\n")
    assert not http._blocks


def test_a_block_of_many_fields_is_not_kept() -> None:
    http._blocks.clear()
    many = b"\r\n".join(b"a: b" for _ in range(http.BLOCK_CACHE_FIELDS + 1))
    events(b"GET / HTTP/1.1\r\n" + many + b"\r\n\r\n")
    assert not http._blocks
