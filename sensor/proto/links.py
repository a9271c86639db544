"""Links in e-mail: URLs in text and HTML bodies and in attached PDF documents.

:class:`LinkCollector` is a :class:`~sensor.proto.mime.MIMEHandler`: fed a
message's entities by :class:`~sensor.proto.mime.MIMEReader` (after the
transfer decoding), it scans text and HTML bodies in their charset as they
arrive (HTML character references decoded first), keeps PDF attachments
(bounded) and reads them at their end with pypdf: link annotations and the
URLs in the page text, under pypdf's own resource limits lowered to ours.
It keeps a bounded amount of text and PDF per entity, of PDF for the whole
process, and a bounded number of URLs per message (:class:`LinkLimits`).
"""

from __future__ import annotations

import codecs
import html
import io
import logging
import re
import time
import warnings
from dataclasses import dataclass

import pypdf

from sensor.proto.mime import Entity, MIMEHandler

log = logging.getLogger(__name__)

# pypdf reports every flaw of a document at WARNING; PDFs here are attacker
# input, so its complaints would flood the sensor's own log.
logging.getLogger("pypdf").setLevel(logging.ERROR)


@dataclass(frozen=True)
class LinkLimits:
    """Bounds of link extraction, per message and per entity."""

    #: Distinct URLs kept per message; later ones are counted, not kept.
    max_urls: int = 256
    #: Longest URL kept; a longer one is cut to this length.
    max_url: int = 2048
    #: Decoded text scanned per text or HTML entity; the rest is not read.
    max_text: int = 1 << 20
    #: Largest PDF attachment read for links; a larger one is only hashed.
    max_pdf: int = 8 << 20
    #: PDF bytes held by all collectors of the process at once; a PDF that
    #: would pass it is not read for links (many large PDFs at a time).
    pdf_total: int = 64 << 20
    #: Pages of a PDF read, and wall time spent on one PDF, at most.
    pdf_pages: int = 64
    pdf_seconds: float = 2.0
    #: Cap on what pypdf may inflate from one stream (PDF bombs); text
    #: extraction parses what it inflates, at about 4 MiB/s.
    pdf_stream_bytes: int = 4 << 20


# RFC 3986 URI characters for the schemes that carry phishing and payloads;
# a URL ends at white space, quotes, angle brackets and the characters that
# RFC 3986 appendix C says delimit URIs in text.
_URL = re.compile(r"(?:https?|ftp)://[^\s<>\"'`{}|\\^\[\]]+", re.IGNORECASE)
_SCHEME_CARRY = 8  # len("https://"): a scheme cut between two chunks
_ENTITY_MAX = (
    32  # longest HTML character reference ("&CounterClockwiseContourIntegral;")
)


def urls_in_text(text: str) -> list[str]:
    """Every http, https and ftp URL in ``text``, in order, as written.

    Sentence punctuation after a URL is not part of it, nor is a closing
    parenthesis that has no opening one inside the URL.
    """
    return [_trim(m.group(0)) for m in _URL.finditer(text)]


def _trim(url: str) -> str:
    url = url.rstrip(".,;:!?")
    while url.endswith(")") and url.count("(") < url.count(")"):
        url = url[:-1].rstrip(".,;:!?")
    return url


class _TextScan:
    """Finds URLs in one text entity as its decoded bytes arrive."""

    def __init__(self, charset: str | None, is_html: bool) -> None:
        try:
            factory = codecs.getincrementaldecoder(charset or "utf-8")
        except LookupError:
            factory = codecs.getincrementaldecoder("utf-8")
        self.decoder = factory(errors="replace")
        self.is_html = is_html
        self.carry = ""
        self.raw_tail = ""
        self.scanned = 0

    def feed(self, data: bytes, final: bool, max_url: int) -> list[str]:
        try:
            new = self.decoder.decode(data, final)
        except Exception:  # noqa: BLE001 - codecs such as UTF-16 raise on odd input
            new = data.decode("latin-1")
        if self.is_html:
            # An entity cut by the chunk boundary ("&am" | "p;") waits for
            # the rest before it is decoded.
            new = self.raw_tail + new
            amp = new.rfind("&", max(0, len(new) - _ENTITY_MAX))
            if not final and amp >= 0 and ";" not in new[amp:]:
                new, self.raw_tail = new[:amp], new[amp:]
            else:
                self.raw_tail = ""
            new = html.unescape(new)
        text = self.carry + new
        self.carry = ""
        out: list[str] = []
        for m in _URL.finditer(text):
            # A URL that runs to the end of what arrived may go on in the
            # next chunk: hold it back unless it is already too long.
            if not final and m.end() == len(text) and len(m.group(0)) < max_url:
                self.carry = m.group(0)
                return out
            out.append(_trim(m.group(0)))
        if not final:
            self.carry = text[-_SCHEME_CARRY:]
        return out


def urls_in_pdf(data: bytes, limits: LinkLimits, stats: dict[str, int]) -> list[str]:
    """The link annotations and the URLs in the page text of a PDF document.

    A broken document gives what could be read before the break (counted
    as ``links_pdf_broken``); nothing raises. pypdf runs with its resource
    limits lowered to ours and without external decoders.
    """
    found: list[str] = []
    deadline = time.monotonic() + limits.pdf_seconds
    cap = limits.pdf_stream_bytes
    try:
        with (
            warnings.catch_warnings(),
            pypdf.apply_configuration(
                zlib_maximum_output_length=cap,
                lzw_maximum_output_length=cap,
                run_length_maximum_output_length=cap,
                array_based_stream_maximum_output_length=cap,
                brotli_maximum_output_length=cap,
                stream_decoding_work_maximum_length=4 * cap,
                stream_parsing_work_maximum_count=cap // 8,
                image_maximum_buffer_size=cap,
                jbig2dec_binary=None,
            ),
        ):
            warnings.simplefilter("ignore")
            reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
            for number, page in enumerate(reader.pages):
                if number >= limits.pdf_pages or time.monotonic() > deadline:
                    _bump(stats, "links_pdf_cut")
                    break
                found.extend(_pdf_annotation_urls(page))
                found.extend(urls_in_text(page.extract_text() or ""))
    except Exception:  # noqa: BLE001 - pypdf raises many kinds on hostile files
        _bump(stats, "links_pdf_broken")
    return found


def _pdf_annotation_urls(page: pypdf.PageObject) -> list[str]:
    # ISO 32000-1 12.5.6.5 (link annotations) and 12.6.4.7 (URI actions).
    out: list[str] = []
    annots = page.get("/Annots")
    if annots is None:
        return out
    for annot in annots.get_object():
        action = annot.get_object().get("/A")
        if action is None:
            continue
        uri = action.get_object().get("/URI")
        if uri is not None:
            raw = uri.get_object()
            out.append(raw.decode("latin-1") if isinstance(raw, bytes) else str(raw))
    return out


#: PDF bytes held by every LinkCollector of the process (LinkLimits.pdf_total).
_PDF_HELD = [0]


def _bump(stats: dict[str, int], key: str) -> None:
    stats[key] = stats.get(key, 0) + 1


class LinkCollector(MIMEHandler):
    """Collects the URLs of one message from its text, HTML and PDF entities.

    Feed it the :class:`MIMEReader` events (directly, or from another
    handler); read :attr:`urls` (distinct, in order of appearance) after the
    message ends.
    """

    def __init__(self, limits: LinkLimits | None = None) -> None:
        self.limits = limits or LinkLimits()
        self.urls: list[str] = []
        self.stats: dict[str, int] = {}
        self._seen: set[str] = set()
        self._text: dict[int, _TextScan] = {}
        self._pdf: dict[int, bytearray] = {}
        self._maybe_pdf: set[int] = set()

    def begin(self, entity: Entity) -> None:
        """Decide from the headers whether the entity is text, HTML or PDF."""
        if entity.multipart:
            return
        kind = entity.content_type
        name = (entity.filename or "").lower()
        if kind == "application/pdf" or name.endswith(".pdf"):
            self._pdf[entity.number] = bytearray()
        elif kind.startswith("text/"):
            self._text[entity.number] = _TextScan(entity.charset, kind == "text/html")
        else:
            # Attachments are often typed application/octet-stream: look
            # at the content (ISO 32000-1 7.5.2: the header comes first).
            self._maybe_pdf.add(entity.number)

    def data(self, entity: Entity, data: bytes) -> None:
        """Scan text as it comes; keep PDF bytes (bounded) for the end."""
        number = entity.number
        if number in self._maybe_pdf:
            self._maybe_pdf.discard(number)
            if b"%PDF-" in data[:1024]:
                self._pdf[number] = bytearray()
        scan = self._text.get(number)
        if scan is not None:
            room = self.limits.max_text - scan.scanned
            if room <= 0:
                return
            if room < len(data):
                _bump(self.stats, "links_text_cut")
            scan.scanned += min(room, len(data))
            self._add(scan.feed(data[:room], False, self.limits.max_url))
            return
        buf = self._pdf.get(number)
        if buf is not None:
            if len(buf) + len(data) > self.limits.max_pdf:
                _bump(self.stats, "links_pdf_too_large")
                self._drop_pdf(number)
            elif _PDF_HELD[0] + len(data) > self.limits.pdf_total:
                _bump(self.stats, "links_pdf_budget")
                self._drop_pdf(number)
            else:
                buf += data
                _PDF_HELD[0] += len(data)

    def end(self, entity: Entity) -> None:
        """Finish the entity: the last text, or the whole PDF, is read."""
        number = entity.number
        self._maybe_pdf.discard(number)
        scan = self._text.pop(number, None)
        if scan is not None:
            self._add(scan.feed(b"", True, self.limits.max_url))
        buf = self._pdf.get(number)
        self._drop_pdf(number)
        if buf:
            self._add(urls_in_pdf(bytes(buf), self.limits, self.stats))

    def __del__(self) -> None:
        # A collector dropped mid-message (its connection's analyzer was
        # detached) gives its share of the process-wide PDF budget back.
        for number in list(self._pdf):
            self._drop_pdf(number)

    def _drop_pdf(self, number: int) -> None:
        buf = self._pdf.pop(number, None)
        if buf:
            _PDF_HELD[0] -= len(buf)

    def _add(self, urls: list[str]) -> None:
        for url in urls:
            url = url[: self.limits.max_url]
            if not url or url in self._seen:
                continue
            if len(self.urls) >= self.limits.max_urls:
                _bump(self.stats, "links_too_many")
                return
            self._seen.add(url)
            self.urls.append(url)
