"""The streaming MIME reader: byte literals, bombs, broken structure, fuzzing."""

from __future__ import annotations

import os
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor.proto.links import LinkCollector
from sensor.proto.mime import Entity, MIMEHandler, MIMELimits, MIMEReader

DEEP = os.environ.get("SENSOR_FUZZ") == "deep"
FUZZ = settings(
    max_examples=3000 if DEEP else 150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class Recorder(MIMEHandler):
    """Keeps every event: the entities begun and the bytes of each body."""

    def __init__(self) -> None:
        self.entities: list[Entity] = []
        self.bodies: dict[int, bytearray] = {}
        self.ended: list[int] = []

    def begin(self, entity: Entity) -> None:
        self.entities.append(entity)

    def data(self, entity: Entity, data: bytes) -> None:
        self.bodies.setdefault(entity.number, bytearray()).extend(data)

    def end(self, entity: Entity) -> None:
        self.ended.append(entity.number)


def read(
    message: bytes, limits: MIMELimits | None = None
) -> tuple[Recorder, MIMEReader]:
    rec = Recorder()
    reader = MIMEReader(rec, limits)
    lines = message.split(b"\r\n")
    if message.endswith(b"\r\n"):
        lines.pop()  # as the SMTP analyzer cuts them: no empty piece after the last
    for line in lines:
        reader.line(line)
    reader.close()
    return rec, reader


MULTI = (
    b"From: a@b\r\n"
    b'Content-Type: multipart/mixed; boundary="OUT"\r\n'
    b"\r\n"
    b"preamble is ignored\r\n"
    b"--OUT\r\n"
    b"Content-Type: multipart/alternative;\r\n"
    b"\tboundary=IN\r\n"
    b"\r\n"
    b"--IN\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"line one\r\n"
    b"line two\r\n"
    b"--IN\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b'<a href=3D"http://x.example/a?b=3D1&amp;c=3D2">soft =\r\n'
    b"break</a>\r\n"
    b"--IN--\r\n"
    b"--OUT\r\n"
    b'Content-Type: application/octet-stream; name="old.bin"\r\n'
    b"Content-Disposition: attachment;\r\n"
    b" filename*=UTF-8''r%C3%A9sum%C3%A9.bin\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"AAEC\r\n"
    b"A!!w Q=\r\n"
    b"--OUT--\r\n"
    b"epilogue is ignored\r\n"
)


def test_nested_multipart_numbers_types_and_bodies() -> None:
    rec, reader = read(MULTI)
    got = [(e.number, e.depth, e.content_type, e.multipart) for e in rec.entities]
    assert got == [
        (1, 1, "multipart/mixed", True),
        (2, 2, "multipart/alternative", True),
        (3, 3, "text/plain", False),
        (4, 3, "text/html", False),
        (5, 2, "application/octet-stream", False),
    ]
    # 7bit: the break before a boundary belongs to the boundary (RFC 2046).
    assert bytes(rec.bodies[3]) == b"line one\r\nline two"
    # Quoted-printable: soft break joined, =3D decoded, hard break kept.
    assert (
        bytes(rec.bodies[4])
        == b'<a href="http://x.example/a?b=1&amp;c=2">soft break</a>\r\n'
    )
    # base64 with junk characters skipped (RFC 2045 6.8): AAECAwQ -> 5 bytes.
    assert bytes(rec.bodies[5]) == b"\x00\x01\x02\x03\x04"
    assert rec.entities[4].filename == "résumé.bin"
    assert rec.ended == [3, 4, 2, 5, 1]
    assert reader.stats == {"mime_base64_junk": 1}


def test_single_part_keeps_the_break_before_the_final_dot() -> None:
    rec, _ = read(b"Subject: x\r\n\r\nhello\r\nworld\r\n")
    # The split of the trailing CRLF gives a last empty line: content too.
    assert bytes(rec.bodies[1]) == b"hello\r\nworld\r\n"


def test_outer_boundary_closes_an_unclosed_inner_part() -> None:
    msg = (
        b"Content-Type: multipart/mixed; boundary=A\r\n\r\n"
        b"--A\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\n\r\ninner\r\n"
        b"--A\r\n\r\nsecond\r\n--A--"
    )
    rec, reader = read(msg)
    assert [e.number for e in rec.entities] == [1, 2, 3, 4]
    assert bytes(rec.bodies[3]) == b"inner" and bytes(rec.bodies[4]) == b"second"
    assert reader.stats["mime_unclosed_part"] == 1


def test_broken_fold_is_skipped_as_zeek_does() -> None:
    # The Suricata capture's header: a parameter line without leading space.
    msg = b"Content-Type: text/html;\r\ncharset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n"
    rec, reader = read(msg)
    assert bytes(rec.bodies[1]) == b"hi"
    assert reader.stats == {"mime_bad_header_line": 1}


def test_message_without_headers_is_all_body() -> None:
    rec, reader = read(b"just text\r\nmore\r\n")
    assert bytes(rec.bodies[1]) == b"just text\r\nmore\r\n"
    assert reader.stats == {"mime_missing_headers": 1}


def test_header_count_and_size_limits() -> None:
    limits = MIMELimits(max_header_bytes=100, max_headers=10)
    msg = b"".join(b"X-%d: v\r\n" % i for i in range(50_000))
    msg += (
        b"Subject: " + b"s" * 10_000 + b"\r\n\t" + b"f" * 10_000 + b"\r\n\r\nbody\r\n"
    )
    rec, reader = read(msg, limits)
    assert len(rec.entities[0].headers) == 10
    assert reader.stats["mime_too_many_headers"] == 50_000 - 10 + 1
    assert bytes(rec.bodies[1]) == b"body\r\n"


def test_nesting_bomb_stops_at_the_depth_limit() -> None:
    depth = 5000
    msg = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(depth)
    )
    msg += b"\r\nleaf\r\n"
    start = time.monotonic()
    rec, reader = read(msg)
    assert time.monotonic() - start < 5
    assert max(e.depth for e in rec.entities) == 16
    assert sum(e.multipart for e in rec.entities) == 15
    assert reader.stats["mime_too_deep"] == 1


def test_parts_bomb_stops_at_the_parts_limit() -> None:
    msg = (
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n"
        + b"--x\r\n\r\np\r\n" * 20_000
        + b"--x--\r\n"
    )
    rec, reader = read(msg, MIMELimits(max_parts=100))
    assert len(rec.entities) == 100
    assert reader.stats["mime_too_many_parts"] == 20_000 + 1 - 100


def test_overlong_line_pieces_are_content() -> None:
    rec = Recorder()
    reader = MIMEReader(rec)
    for line in (b"Subject: x", b""):
        reader.line(line)
    reader.line(b"a" * 10, complete=False)
    reader.line(b"b" * 10, complete=False)
    reader.line(b"c")
    reader.close()
    assert bytes(rec.bodies[1]) == b"a" * 10 + b"b" * 10 + b"c\r\n"


@FUZZ
@given(
    st.lists(
        st.binary(max_size=80)
        | st.sampled_from(
            [
                b"",
                b"--b",
                b"--b--",
                b"Content-Type: multipart/x; boundary=b",
                b"Content-Transfer-Encoding: base64",
                b"=",
                b" x",
            ]
        ),
        max_size=60,
    )
)
def test_fuzz_reader_never_raises(lines: list[bytes]) -> None:
    rec = Recorder()
    reader = MIMEReader(rec, MIMELimits(max_depth=4, max_parts=20))
    links = LinkCollector()
    for line in lines:
        reader.line(line, complete=len(line) % 7 != 0)
    reader.close()
    for entity in rec.entities:
        links.begin(entity)
        links.data(entity, bytes(rec.bodies.get(entity.number, b"")))
        links.end(entity)
    assert len(rec.entities) <= 20


def test_attached_message_is_read_as_entities() -> None:
    inner = (
        b"Subject: forwarded\r\n"
        b"Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"PGEgaHJlZj0iaHR0cDovL2lubmVyLmV4YW1wbGUvIj48L2E+\r\n"
    )
    msg = (
        b"Content-Type: multipart/mixed; boundary=O\r\n\r\n"
        b"--O\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"--O\r\n"
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n"
        b"--O--\r\n"
    )
    rec, reader = read(msg)
    got = [(e.number, e.depth, e.content_type, e.multipart) for e in rec.entities]
    assert got == [
        (1, 1, "multipart/mixed", True),
        (2, 2, "message/rfc822", True),
        (3, 3, "text/html", False),
        (4, 2, "message/rfc822", False),  # encoded: an opaque leaf
    ]
    assert bytes(rec.bodies[3]) == b'<a href="http://inner.example/"></a>'
    assert rec.ended == [3, 2, 4, 1] and reader.stats == {}

    links = LinkCollector()
    for entity in rec.entities:
        links.begin(entity)
        links.data(entity, bytes(rec.bodies.get(entity.number, b"")))
        links.end(entity)
    assert links.urls == ["http://inner.example/"]


def test_part_ending_inside_its_headers() -> None:
    msg = b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n--B\r\n\r\nx\r\n--B--\r\n"
    rec, reader = read(msg)
    assert [e.number for e in rec.entities] == [1, 2, 3]
    assert rec.ended == [2, 3, 1] and bytes(rec.bodies[3]) == b"x"
    assert reader.stats == {"mime_part_without_body": 1}


def test_encoded_words_in_filenames() -> None:
    msg = b'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="=?UTF-8?B?0YHRh9C10YIucGRm?="\r\n\r\nx\r\n'
    rec, _ = read(msg)
    assert rec.entities[0].filename == "счет.pdf"


def test_header_bytes_per_entity_are_bounded() -> None:
    msg = (
        b"".join(b"X-%d: " % i + b"v" * 1000 + b"\r\n" for i in range(200))
        + b"\r\nbody\r\n"
    )
    rec, reader = read(msg, MIMELimits(max_header_total=10_000))
    assert sum(len(v) + len(n) + 1 for n, v in rec.entities[0].headers) <= 10_000
    assert reader.stats["mime_too_many_headers"] > 180
    assert bytes(rec.bodies[1]) == b"body\r\n"
