"""Links in e-mail bodies and PDF attachments: limits, chunking, hostile PDFs."""

from __future__ import annotations

import hashlib
import io
import os
import time
import zlib

from pypdf import PdfWriter
from pypdf.annotations import Link
from pypdf.generic import DictionaryObject, NameObject, StreamObject

from sensor.proto import links
from sensor.proto.links import LinkCollector, LinkLimits, urls_in_pdf, urls_in_text
from sensor.proto.mime import Entity


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


def test_pdf_budget_is_shared_and_given_back() -> None:
    pdf = make_pdf("http://text.example/a", "https://annot.example/b")
    before = links._PDF_HELD[0]  # other collectors alive in this process
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
    assert links._PDF_HELD[0] == before + len(pdf)
    first.end(a)
    assert first.urls == ["https://annot.example/b", "http://text.example/a"]
    assert links._PDF_HELD[0] == before

    third = LinkCollector(limits)
    third.begin(a)
    third.data(a, pdf[:100])
    assert links._PDF_HELD[0] == before + 100
    del third  # never ended: its share comes back
    assert links._PDF_HELD[0] == before
