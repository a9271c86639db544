"""SMTP line parsing and the address helpers, on byte and string literals."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.proto.parsers.smtp import (
    Command,
    LineSplitter,
    Reply,
    bdat_args,
    email_addresses,
    ip_addresses,
    parse_command,
    parse_reply,
    split_mime_addresses,
)

FUZZ = settings(
    max_examples=3000 if os.environ.get("SENSOR_FUZZ") == "deep" else 200, deadline=None
)


def test_replies() -> None:
    assert parse_reply(b"250-PIPELINING") == Reply(250, True, "PIPELINING")
    assert parse_reply(b"250 OK id=1") == Reply(250, False, "OK id=1")
    assert parse_reply(b"354") == Reply(354, False, "")
    # Zeek's log text: bytes outside printable ASCII as \xNN (parsers/text.py).
    assert parse_reply(b"220 caf\xc3\xa9\t\xff") == Reply(
        220, False, "caf\\xc3\\xa9\\x09\\xff"
    )
    for bad in (b"", b"25", b"2x0 ok", b"2500 ok", b"abc def", b"250=ok"):
        assert parse_reply(bad) is None, bad


def test_commands() -> None:
    assert parse_command(b"MAIL FROM:<a@b> SIZE=10") == Command(
        "MAIL", "FROM:<a@b> SIZE=10"
    )
    assert parse_command(b"  ehlo   host") == Command("EHLO", "host")
    assert parse_command(b"DATA") == Command("DATA", "")
    assert parse_command(b"") == Command("", "")


def test_bdat_arguments() -> None:
    assert bdat_args("100") == (100, False)
    assert bdat_args("0 LAST") == (0, True)
    assert bdat_args("5 last") == (5, True)
    for bad in ("", "x", "-1", "1" * 13, "LAST"):
        assert bdat_args(bad) is None, bad


def test_envelope_addresses_as_zeek_extracts_them() -> None:
    assert email_addresses("FROM:<gurpartap@patriots.in>") == ["gurpartap@patriots.in"]
    assert email_addresses("FROM:<a@b> SIZE=5 BODY=8BITMIME") == ["a@b"]
    assert email_addresses("TO:<a@b> ORCPT=rfc822;c@d") == ["a@b", "c@d"]
    assert email_addresses("TO: a@b") == ["a@b"]
    assert email_addresses("FROM:<>") == []


def test_mime_address_lists() -> None:
    assert split_mime_addresses('"Last, First" <a@b>, c@d, c@d') == [
        '"Last, First" <a@b>',
        "c@d",
    ]
    assert split_mime_addresses(" <x@y> ") == ["<x@y>"]
    assert split_mime_addresses(",,") == []


def test_ip_addresses_and_wrapping() -> None:
    received = (
        "from relay (relay [192.0.2.7]) by mx (2001:db8::1) with ESMTP id 1.2.3.4.5"
    )
    assert ip_addresses(received, check_wrapping=True) == ["192.0.2.7", "2001:db8::1"]
    assert ip_addresses("v1.2.3.4x 10.0.0.1") == ["1.2.3.4", "10.0.0.1"]
    assert ip_addresses("10.0.0.1", check_wrapping=True) == ["10.0.0.1"]
    assert ip_addresses("host10.0.0.1;", check_wrapping=True) == []
    assert ip_addresses("999.1.1.1 [::ffff:1.2.3.4]", check_wrapping=True) == [
        "::ffff:1.2.3.4"
    ]


def test_line_splitter_endings_and_truncation() -> None:
    lines = LineSplitter(max_line=8)
    lines.push(b"a\r\nb\nc\r")
    assert [lines.pop(), lines.pop(), lines.pop()] == [(b"a", True), (b"b", True), None]
    lines.push(b"\n0123456789abcdef")
    assert lines.pop() == (b"c", True)
    assert lines.pop() == (b"01234567", False)
    assert lines.pop() is None and lines.pending == 8 and lines.overlong == 1
    assert lines.take(3) == b"89a" and lines.peek(100) == b"bcdef"


def test_every_cut_gives_the_same_lines() -> None:
    stream = b"EHLO x\r\nMAIL FROM:<a@b>\r\n\r\nDATA\nlast"
    want = [(b"EHLO x", True), (b"MAIL FROM:<a@b>", True), (b"", True), (b"DATA", True)]
    for cut in range(len(stream) + 1):
        lines = LineSplitter()
        got = []
        for piece in (stream[:cut], stream[cut:]):
            lines.push(piece)
            while (popped := lines.pop()) is not None:
                got.append(popped)
        assert got == want, cut


@FUZZ
@given(st.binary(max_size=200), st.integers(min_value=1, max_value=64))
def test_fuzz_parsers_never_raise(data: bytes, max_line: int) -> None:
    lines = LineSplitter(max_line)
    lines.push(data)
    while (popped := lines.pop()) is not None:
        line, _ = popped
        assert len(line) <= max(max_line, len(data))
        parse_reply(line)
        cmd = parse_command(line)
        email_addresses(cmd.arg)
        split_mime_addresses(cmd.arg)
        ip_addresses(cmd.arg, check_wrapping=True)
        bdat_args(cmd.arg)
