"""MIME messages read as a stream, with a bound on everything an attacker sizes.

Design: the message arrives line by line (the SMTP analyzer has already cut
the DATA stream into lines and undone dot-stuffing). :class:`MIMEReader`
walks the entity tree of RFC 2045/2046 as the lines come: a header block,
then either a body (a leaf entity) or, for ``multipart/*``, a preamble and
parts separated by boundary lines, with nested multiparts on a stack (an
attached ``message/rfc822`` is one more level, holding one message). The
body of a leaf is decoded (base64, quoted-printable, or taken as is) and
handed to a :class:`MIMEHandler` in pieces, so nothing but the current line
and at most 64 KiB of decoded data is held, however large the message.

Python's ``email`` package reads the header values (parameters, RFC 2231
continuations, quoting), one entity at a time; its parser is not used on
whole messages because it holds the whole message and nests without limit.

Limits (:class:`MIMELimits`), each counted in :attr:`MIMEReader.stats` when
hit: header size, count and total per entity (further headers dropped), nesting
depth (a deeper multipart is read as one opaque leaf) and parts per message
(further parts are skipped whole).

The links in a message are found by :class:`sensor.proto.links.LinkCollector`,
a :class:`MIMEHandler` of its own.
"""

from __future__ import annotations

import binascii
import email.header
import email.message
import email.utils
import logging
import re
from dataclasses import dataclass, field

from sensor.proto.parsers.text import zeek_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MIMELimits:
    """Bounds of one message; see the module docstring for the policies."""

    #: Longest header (after unfolding) kept, in bytes; the rest is cut.
    max_header_bytes: int = 16384
    #: Headers kept per entity; later ones are dropped.
    max_headers: int = 256
    #: Header bytes kept per entity, all headers together.
    max_header_total: int = 65536
    #: Deepest multipart nesting followed (the message itself is depth 1).
    max_depth: int = 16
    #: Entities read per message; later parts are skipped.
    max_parts: int = 512


@dataclass
class Entity:
    """One MIME entity: its headers and what they say about the body.

    ``number`` counts the entities of the message from 1 (the message
    itself) in the order they start; ``depth`` is the nesting level.
    """

    number: int
    depth: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "text/plain"
    charset: str | None = None
    encoding: str = "7bit"
    filename: str | None = None
    boundary: bytes | None = None
    #: The body is other entities: ``multipart/*``, or ``message/rfc822``
    #: (one message; it has no boundary of its own).
    multipart: bool = False


class MIMEHandler:
    """What a :class:`MIMEReader` tells its user; override what you need."""

    def begin(self, entity: Entity) -> None:
        """``entity``'s headers are complete (its body, if any, follows)."""

    def data(self, entity: Entity, data: bytes) -> None:
        """The next decoded bytes of leaf ``entity``'s body."""

    def end(self, entity: Entity) -> None:
        """``entity`` is over (for a multipart: all its parts are)."""


_B64_KEEP = re.compile(rb"[^A-Za-z0-9+/]")
_BATCH = 65536  # decoded (or base64) bytes collected before handing them on


class _Base64:
    """Incremental base64 (RFC 2045 6.8): characters outside the alphabet,
    padding included, are skipped, as the RFC asks of decoders. Lines are
    collected and decoded in batches (:meth:`take`), which is what makes
    large attachments cheap."""

    def __init__(self) -> None:
        self.raw = bytearray()
        self.junk = 0

    def take(self) -> bytes:
        """Decode every whole quantum collected so far."""
        clean = _B64_KEEP.sub(b"", self.raw)
        if len(clean) != len(self.raw.translate(None, b" \t=")):
            self.junk += 1
        cut = len(clean) - len(clean) % 4
        self.raw = bytearray(clean[cut:])
        return binascii.a2b_base64(clean[:cut]) if cut else b""

    def final(self) -> bytes:
        """The last 2 or 3 characters, as if padded (a lone one is dropped)."""
        out = self.take()
        tail, self.raw = bytes(self.raw), bytearray()
        if len(tail) < 2:
            return out
        return out + binascii.a2b_base64(tail + b"=" * (4 - len(tail)))


class MIMEReader:
    """Reads one message, line by line, calling ``handler`` as entities pass.

    ``first_number`` is the number given to the message entity; an SMTP
    session that numbers entities across its messages (as Zeek's files.log
    ``depth`` does) passes the count so far plus one.
    """

    def __init__(
        self,
        handler: MIMEHandler,
        limits: MIMELimits | None = None,
        first_number: int = 1,
    ) -> None:
        self.handler = handler
        self.limits = limits or MIMELimits()
        self.stats: dict[str, int] = {}
        self.next_number = first_number
        self.parts = 0
        self._stack: list[Entity] = []  # open multiparts, outermost first
        self._entity: Entity | None = None  # entity whose headers/body we are in
        self._in_headers = False
        self._pending_eol = False
        self._b64: _Base64 | None = None
        self._out = bytearray()  # decoded body not handed on yet
        self._raw_headers: list[bytearray] = []
        self._begin_entity(depth=1)

    # Input -----------------------------------------------------------------

    def line(self, raw: bytes, complete: bool = True) -> None:
        """The next line of the message without its line ending.

        ``complete`` is False for a piece of an overlong line: it is body
        data with no line break after it.
        """
        if complete and self._stack and raw.startswith(b"--") and self._boundary(raw):
            return
        if self._in_headers:
            self._header_line(raw, complete)
        elif self._entity is not None and not self._entity.multipart:
            self._body_line(raw, complete)

    def flush(self) -> None:
        """Hand on the body decoded so far (also done every 64 KiB).

        A user that dates the data, like the SMTP analyzer with its packet
        times, calls this after each chunk of input.
        """
        entity = self._entity
        if entity is None or self._in_headers or entity.multipart:
            return
        if self._b64 is not None:
            self._out += self._b64.take()
        if self._out:
            data = bytes(self._out)
            self._out.clear()
            self.handler.data(entity, data)

    def close(self) -> None:
        """End of the message: close every entity still open."""
        if self._in_headers and self._entity is not None:
            self._headers_done()
        # RFC 5321 4.5.2: the line break before the final "." is content.
        if self._pending_eol and self._entity is not None:
            self._out += b"\r\n"
        self._end_leaf()
        while self._stack:
            self.handler.end(self._stack.pop())

    # Headers ---------------------------------------------------------------

    def _begin_entity(self, depth: int) -> None:
        self.parts += 1
        if self.parts > self.limits.max_parts:
            self._count("mime_too_many_parts")
            self._entity = None
            self._in_headers = False
            return
        self._entity = Entity(self.next_number, depth)
        self.next_number += 1
        self._in_headers = True
        self._raw_headers = []

    def _header_line(self, raw: bytes, complete: bool) -> None:
        limits = self.limits
        if complete and not raw:
            self._headers_done()
        elif raw[:1] in (b" ", b"\t") and self._raw_headers:
            # RFC 5322 2.2.3: unfolding removes the line break only.
            last = self._raw_headers[-1]
            room = min(limits.max_header_bytes - len(last), self._header_room())
            if room < len(raw):
                self._count("mime_header_too_long")
            last += raw[: max(room, 0)]
        elif b":" in raw[:1000]:
            if len(self._raw_headers) >= limits.max_headers or not self._header_room():
                self._count("mime_too_many_headers")
                return
            room = min(limits.max_header_bytes, self._header_room())
            if len(raw) > room:
                self._count("mime_header_too_long")
            self._raw_headers.append(bytearray(raw[:room]))
        elif not self._raw_headers:
            # No header at all: the body starts at once (RFC 2045 5.2
            # defaults apply), as Python's email parser also decides.
            self._count("mime_missing_headers")
            self._headers_done()
            self.line(raw, complete)
        else:
            # A line that is neither a header nor a folded one (a broken
            # fold, as mailers write them); Zeek skips it and reads on, so
            # that a Content-Transfer-Encoding after it still counts.
            self._count("mime_bad_header_line")

    def _header_room(self) -> int:
        held = sum(len(h) for h in self._raw_headers)
        return max(self.limits.max_header_total - held, 0)

    def _headers_done(self) -> None:
        entity = self._entity
        assert entity is not None
        self._in_headers = False
        msg = email.message.Message()
        for raw in self._raw_headers:
            raw_name, _, raw_value = bytes(raw).partition(b":")
            raw_value = raw_value.lstrip(b" \t")
            name = raw_name.strip().decode("utf-8", "backslashreplace")
            value = raw_value.decode("utf-8", "backslashreplace")
            # Logged as Zeek writes header values: a folding tab is \x09.
            entity.headers.append((name, zeek_text(raw_value)))
            try:
                msg[name] = value
            except Exception:  # noqa: BLE001 - the email package rejects odd names
                self._count("mime_bad_header")
        self._raw_headers = []
        self._read_headers(entity, msg)

        if entity.multipart and entity.depth >= self.limits.max_depth:
            self._count("mime_too_deep")
            entity.multipart = False
        self.handler.begin(entity)
        if entity.multipart and entity.boundary is None:
            # message/rfc822: the body is one message, read as entities
            # (RFC 2046 5.2.1); the enclosing boundary ends it.
            self._stack.append(entity)
            self._begin_entity(depth=entity.depth + 1)
        elif entity.multipart:
            self._stack.append(entity)
            self._entity = None  # the preamble, ignored (RFC 2046 5.1.1)
        else:
            self._pending_eol = False
            self._b64 = _Base64() if entity.encoding == "base64" else None

    def _read_headers(self, entity: Entity, msg: email.message.Message) -> None:
        try:
            entity.content_type = msg.get_content_type()
            entity.charset = msg.get_content_charset()
            entity.encoding = (
                str(msg.get("content-transfer-encoding", "7bit")).strip().lower()
            )
            # Zeek takes the filename from whichever of the two headers that
            # name it came last; Content-Disposition is the usual one.
            for name, value in entity.headers:
                lower = name.lower()
                if lower == "content-disposition" and "filename" in value.lower():
                    entity.filename = msg.get_filename() or entity.filename
                elif lower == "content-type" and "name" in value.lower():
                    entity.filename = _param(msg, "name") or entity.filename
            if entity.filename and "=?" in entity.filename:
                # RFC 2047 words in a filename: not allowed (RFC 2047 5)
                # but what many mailers write.
                decoded = email.header.decode_header(entity.filename)
                entity.filename = str(email.header.make_header(decoded))
            boundary = msg.get_boundary()
        except Exception:  # noqa: BLE001 - header values are attacker text
            self._count("mime_bad_header")
            return
        if entity.content_type.startswith("multipart/"):
            if boundary:
                entity.boundary = boundary.encode("utf-8", "surrogateescape")[:200]
                entity.multipart = True
            else:
                self._count("mime_multipart_without_boundary")
        elif entity.content_type == "message/rfc822":
            # Only an identity encoding is allowed here (RFC 2046 5.2.1);
            # an encoded message stays an opaque leaf.
            entity.multipart = entity.encoding in ("7bit", "8bit", "binary")

    # Bodies ----------------------------------------------------------------

    def _boundary(self, raw: bytes) -> bool:
        line = raw.rstrip(b" \t")
        # Innermost first; an outer boundary also ends the inner parts
        # (RFC 2046 5.1.2: a missing close delimiter is recovered from).
        for level in range(len(self._stack) - 1, -1, -1):
            bnd = self._stack[level].boundary
            if bnd is None or line[2 : 2 + len(bnd)] != bnd:
                continue
            rest = line[2 + len(bnd) :]
            if rest not in (b"", b"--"):
                continue
            while self._in_headers and self._entity is not None:
                # The part ends inside its headers: it has no body.
                self._count("mime_part_without_body")
                self._headers_done()
            self._end_leaf()
            while len(self._stack) > level + 1:
                inner = self._stack.pop()
                if inner.boundary is not None:
                    self._count("mime_unclosed_part")
                self.handler.end(inner)
            if rest == b"--":
                self.handler.end(self._stack.pop())
                self._entity = None  # the epilogue, ignored
            else:
                self._begin_entity(depth=len(self._stack) + 1)
            return True
        return False

    def _body_line(self, raw: bytes, complete: bool) -> None:
        entity = self._entity
        assert entity is not None
        if self._b64 is not None:
            self._b64.raw += raw
            pending = len(self._b64.raw)
        else:
            if entity.encoding == "quoted-printable":
                self._out += self._qp_line(raw, complete)
            else:
                # The line break before a boundary belongs to the boundary
                # (RFC 2046 5.1.1), so a break is emitted only once the next
                # line shows it was content.
                if self._pending_eol:
                    self._out += b"\r\n"
                self._out += raw
                self._pending_eol = complete
            pending = len(self._out)
        if pending >= _BATCH:
            self.flush()

    @staticmethod
    def _qp_line(raw: bytes, complete: bool) -> bytes:
        # RFC 2045 6.7: trailing white space is dropped; "=" at the end is a
        # soft line break. A hard break is content at once, even the last
        # one before a boundary: Zeek counts it so (files.log seen_bytes).
        line = raw.rstrip(b" \t") if complete else raw
        if line.endswith(b"="):
            return binascii.a2b_qp(line[:-1])
        return binascii.a2b_qp(line) + (b"\r\n" if complete else b"")

    def _end_leaf(self) -> None:
        entity = self._entity
        if entity is None or entity.multipart or self._in_headers:
            self._entity = None
            return
        if self._b64 is not None:
            self._out += self._b64.final()
            if self._b64.junk:
                self._count("mime_base64_junk")
            self._b64 = None
        if self._out:
            self.handler.data(entity, bytes(self._out))
            self._out.clear()
        self._pending_eol = False
        self._entity = None
        self.handler.end(entity)

    def _count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1


def _param(msg: email.message.Message, name: str) -> str | None:
    value = msg.get_param(name)
    if value is None:
        return None
    return str(email.utils.collapse_rfc2231_value(value)).strip()
