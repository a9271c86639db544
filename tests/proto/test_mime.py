"""The streaming MIME reader and the link collector: byte literals, bombs, PDFs."""

from __future__ import annotations

import hashlib
import io
import os
import time
import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfWriter
from pypdf.annotations import Link
from pypdf.generic import DictionaryObject, NameObject, StreamObject

from sensor.proto.mime import (
    Entity,
    LinkCollector,
    LinkLimits,
    MIMEHandler,
    MIMELimits,
    MIMEReader,
    urls_in_pdf,
    urls_in_text,
)

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


# Links ---------------------------------------------------------------------


def test_urls_in_text_trim_punctuation_and_parentheses() -> None:
    text = (
        "See http://a.example/x. Also (https://b.example/y_(z)) and ftp://c.example/f,"
    )
    assert urls_in_text(text) == [
        "http://a.example/x",
        "https://b.example/y_(z)",
        "ftp://c.example/f",
    ]


def collect(
    entity: Entity, chunks: list[bytes], limits: LinkLimits | None = None
) -> LinkCollector:
    links = LinkCollector(limits)
    links.begin(entity)
    for chunk in chunks:
        links.data(entity, chunk)
    links.end(entity)
    return links


def test_html_entities_and_chunk_boundaries() -> None:
    body = b'<p>x</p><a href="https://evil.example/login?a=1&amp;b=2">here</a> http://plain.example/p'
    whole = collect(Entity(1, 1, content_type="text/html"), [body])
    bytewise = collect(
        Entity(1, 1, content_type="text/html"),
        [body[i : i + 1] for i in range(len(body))],
    )
    assert whole.urls == [
        "https://evil.example/login?a=1&b=2",
        "http://plain.example/p",
    ]
    assert bytewise.urls == whole.urls


def test_charset_is_honoured() -> None:
    body = "http://ü.example/ä".encode("utf-16")
    links = collect(Entity(1, 1, content_type="text/plain", charset="utf-16"), [body])
    assert links.urls == ["http://ü.example/ä"]


def test_url_limits() -> None:
    body = (
        b" ".join(b"http://h%d.example/" % i for i in range(100))
        + b" http://"
        + b"x" * 5000
    )
    links = collect(Entity(1, 1), [body], LinkLimits(max_urls=10, max_url=64))
    assert len(links.urls) == 10 and links.stats["links_too_many"] == 1
    long = collect(Entity(1, 1), [b"http://" + b"x" * 5000], LinkLimits(max_url=64))
    assert long.urls == ["http://" + "x" * 57]


def test_text_scan_limit() -> None:
    body = b"a" * 100 + b" http://late.example/"
    links = collect(Entity(1, 1), [body], LinkLimits(max_text=50))
    assert links.urls == [] and links.stats == {"links_text_cut": 1}


def make_pdf(text_url: str, link_url: str, extra: bytes = b"") -> bytes:
    """A one-page PDF with ``text_url`` in its text and ``link_url`` as a link."""
    writer = PdfWriter()
    page = writer.add_blank_page(width=300, height=200)
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    fonts = DictionaryObject({NameObject("/F1"): writer._add_object(font)})
    page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): fonts})
    content = StreamObject()
    content.set_data(
        f"BT /F1 12 Tf 10 100 Td (see {text_url} now) Tj ET".encode() + extra
    )
    page[NameObject("/Contents")] = writer._add_object(content)
    writer.add_annotation(0, Link(rect=(0, 0, 100, 100), url=link_url))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pdf_links_from_annotations_and_text() -> None:
    pdf = make_pdf("http://text.example/a", "https://annot.example/b?x=1")
    entity = Entity(1, 1, content_type="application/octet-stream", filename="invoice")
    links = collect(entity, [pdf[:500], pdf[500:]])  # found by its %PDF- header
    assert links.urls == ["https://annot.example/b?x=1", "http://text.example/a"]
    assert links.stats == {}


def test_broken_pdfs_never_raise() -> None:
    pdf = make_pdf("http://text.example/a", "https://annot.example/b")
    stats: dict[str, int] = {}
    for cut in range(0, len(pdf), 7):
        urls_in_pdf(pdf[:cut], LinkLimits(), stats)
    assert stats["links_pdf_broken"] > 50
    garbage = urls_in_pdf(b"%PDF-1.7\n" + os.urandom(4000), LinkLimits(), stats)
    assert garbage == []


def test_pdf_flate_bomb_is_bounded() -> None:
    # A page whose text stream inflates to 64 MiB from 64 KiB; unbounded,
    # pypdf takes about 16 s on it.
    bomb = zlib.compress(
        b"BT /F1 12 Tf (http://x.example/) Tj ET\n" + b" " * (64 << 20), 9
    )
    writer = PdfWriter()
    page = writer.add_blank_page(width=10, height=10)
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    fonts = DictionaryObject({NameObject("/F1"): writer._add_object(font)})
    page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): fonts})
    stream = StreamObject()
    stream.set_data(bomb)
    stream[NameObject("/Filter")] = NameObject("/FlateDecode")
    page[NameObject("/Contents")] = writer._add_object(stream)
    out = io.BytesIO()
    writer.write(out)

    stats: dict[str, int] = {}
    start = time.monotonic()
    assert urls_in_pdf(out.getvalue(), LinkLimits(), stats) == []
    assert time.monotonic() - start < 2
    assert stats == {"links_pdf_broken": 1}


def test_pdf_too_large_is_only_counted() -> None:
    pdf = make_pdf("http://text.example/a", "https://annot.example/b")
    links = collect(
        Entity(1, 1, content_type="application/pdf"), [pdf], LinkLimits(max_pdf=100)
    )
    assert links.urls == [] and links.stats == {"links_pdf_too_large": 1}
    assert hashlib.sha256(
        pdf
    ).hexdigest()  # the file itself is still hashed by files.py


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


def test_pdf_budget_is_shared_and_given_back() -> None:
    from sensor.proto import mime

    pdf = make_pdf("http://text.example/a", "https://annot.example/b")
    before = mime._PDF_HELD[0]  # other collectors alive in this process
    limits = LinkLimits(pdf_total=before + len(pdf) + 10)
    first, second = LinkCollector(limits), LinkCollector(limits)
    a, b = (
        Entity(1, 1, content_type="application/pdf"),
        Entity(1, 1, content_type="application/pdf"),
    )
    first.begin(a)
    second.begin(b)
    first.data(a, pdf)
    second.data(b, pdf)  # would pass the budget while the first is held
    assert second.stats == {"links_pdf_budget": 1}
    assert mime._PDF_HELD[0] == before + len(pdf)
    first.end(a)
    assert first.urls == ["https://annot.example/b", "http://text.example/a"]
    assert mime._PDF_HELD[0] == before

    third = LinkCollector(limits)
    third.begin(a)
    third.data(a, pdf[:100])
    assert mime._PDF_HELD[0] == before + 100
    del third  # never ended: its share comes back
    assert mime._PDF_HELD[0] == before
