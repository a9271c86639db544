"""HTTP/1.x messages from one direction of a byte stream (RFC 9112).

:class:`HTTPStreamParser` takes the bytes of one direction in arbitrary
pieces and hands back events, in stream order:

- :class:`Start`: a request line or a status line (``kind`` tells which),
- :class:`Headers`: the header fields of that message, once all are in,
- :class:`Body`: a piece of the message body, chunked framing removed but
  content coding (gzip, deflate) left alone,
- :class:`Done`: the message is complete,
- :class:`Anomaly`: a named problem; parsing carries on where it can.

Body framing follows RFC 9112 section 6.3: no body for replies to HEAD, for
1xx, 204 and 304 replies, and for requests without Content-Length or chunked
coding; chunked coding beats Content-Length; a reply with neither runs to the
end of the connection. A 2xx reply to CONNECT turns the connection into a
tunnel, after which nothing more is parsed.

Every size is bounded (:class:`HTTPLimits`): a line longer than the limit is
cut (and counted), headers past the limit are dropped (and counted); body
bytes are never held, only passed on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class HTTPLimits:
    """Bounds of the HTTP parser; each hit is an anomaly of the same name."""

    #: Longest request, status, header or chunk-size line kept
    #: (``HTTP_LINE_TOO_LONG``); the rest of the line is skipped.
    max_line: int = 16384
    #: Most header fields kept per message (``HTTP_TOO_MANY_HEADERS``).
    max_headers: int = 256
    #: Most header bytes per message (``HTTP_HEADERS_TOO_LONG``); past it the
    #: header block ends as if an empty line had come, and the message body
    #: is not parsed further (the stream can no longer be trusted).
    max_header_bytes: int = 262144


_DEFAULT_LIMITS = HTTPLimits()


def _no_request(n: int) -> None:
    return None


@dataclass(slots=True)
class Start:
    """A request line (``kind`` "request") or status line ("reply")."""

    kind: str
    method: str  # request: method; reply: ""
    uri: str  # request: target as sent; reply: ""
    version: str  # "1.1", "1.0", "0.9" (request without version), "" unknown
    code: int  # reply: status code; request: 0
    reason: str | None  # reply: reason phrase, None if the line has none


@dataclass(slots=True)
class Headers:
    """The header fields of the message just started, in order."""

    fields: tuple[tuple[str, str], ...]


@dataclass(slots=True)
class Body:
    """A piece of the body, chunked framing removed."""

    data: bytes


@dataclass(slots=True)
class Done:
    """The message just started is complete."""

    body_len: int


@dataclass(slots=True)
class Anomaly:
    """A named problem (``HTTP_*``) with what was expected and what came."""

    name: str
    detail: str


Event = Start | Headers | Body | Done | Anomaly

#: Given the index of a reply in the stream (0, 1, ...), the request line it
#: answers, or None when the request was not seen.
RequestOf = Callable[[int], "Start | None"]

# Parser states.
_START, _HEADERS, _BODY_LEN, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END = range(6)
_TRAILER, _BODY_EOF, _TUNNEL, _LOST = range(6, 10)
_BODY_STATES = frozenset({_BODY_LEN, _CHUNK_DATA, _BODY_EOF})
_COUNTED = frozenset({_BODY_LEN, _CHUNK_DATA})  # bodies of a known length

#: The characters of an RFC 9110 token (a method name, a header name).
TOKEN = frozenset(
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

#: The same, as the bytes that ``bytes.translate`` deletes: a name is all
#: token characters when nothing is left of it.
_TOKEN_CHARS = bytes(sorted(TOKEN))

_HEX = frozenset(b"0123456789abcdefABCDEF")

#: Each ``%XX`` escape's two hex digits (either case) -> the byte they name.
_HEX_BYTE = {
    bytes((hi, lo)): bytes((int(bytes((hi, lo)), 16),)) for hi in _HEX for lo in _HEX
}

#: What ``bytes.strip()`` strips, for the same strip of decoded text.
_SPACE = " \t\n\r\x0b\x0c"


def _text(raw: bytes) -> str:
    # Header bytes are ISO-8859-1 by RFC 9110 section 5.5; Zeek writes UTF-8
    # and escapes the rest, which decoding with surrogates keeps recoverable.
    return raw.decode("utf-8", "backslashreplace")


def unescape_uri(raw: bytes) -> str:
    """``raw`` with each ``%XX`` escape decoded once (RFC 3986 section 2.1).

    Zeek logs request targets decoded this way, so ``%2520`` becomes ``%20``;
    a ``%`` not followed by two hex digits stays as it is.
    """
    if b"%" not in raw:
        return _text(raw)
    pieces = raw.split(b"%")
    out = [pieces[0]]
    for piece in pieces[1:]:
        byte = _HEX_BYTE.get(piece[:2])
        if byte is None:
            out += (b"%", piece)
        else:
            out += (byte, piece[2:])
    return _text(b"".join(out))


def parse_request_line(line: bytes) -> Start | None:
    """``METHOD SP target [SP HTTP/x.y]``, or None if it is not one."""
    parts = line.split()
    if not parts or parts[0].translate(None, _TOKEN_CHARS):
        return None
    if len(parts) == 2 and parts[1][:5].upper() == b"HTTP/":
        # "OPTIONS HTTP/1.1": no target; Zeek logs an empty URI.
        return Start("request", _text(parts[0]), "", _text(parts[1][5:]), 0, "")
    if len(parts) == 2:
        # RFC 1945 section 4.1: a Simple-Request (HTTP/0.9) has no version.
        return Start("request", _text(parts[0]), unescape_uri(parts[1]), "0.9", 0, "")
    if len(parts) < 3 or not parts[-1].upper().startswith(b"HTTP/"):
        return None
    if len(parts) == 3:
        target = parts[1]
    else:
        # A target with spaces in it (seen from broken clients) is kept whole.
        target = line.strip().split(None, 1)[1].rsplit(None, 1)[0]
    return Start(
        "request", _text(parts[0]), unescape_uri(target), _text(parts[-1][5:]), 0, ""
    )


def parse_status_line(line: bytes) -> Start | None:
    """``HTTP/x.y SP code [SP reason]``, or None if it is not one."""
    if line[:5].upper() != b"HTTP/":
        return None
    parts = line.lstrip().split(None, 1)
    if len(parts) < 2 or not parts[1][:3].isdigit():
        return None
    code, sep, rest = parts[1].partition(b" ")
    # No separator after the code at all is told apart from an empty phrase:
    # Zeek logs the first as "<empty>" and the second as "".
    reason = _text(rest.strip()) if sep else None
    return Start("reply", "", "", _text(parts[0][5:]), int(code[:3]), reason)


#: Request header blocks read lately -> their fields. A client sends the
#: same block again and again (a browser to one site, a poller, a bot): of
#: the first 1,851 request header blocks of the benchmark capture, 1,117
#: are found here. Replies are not kept: their Date field changes every
#: second. At most this many blocks, the oldest forgotten first, each of
#: at most BLOCK_CACHE_BYTES and BLOCK_CACHE_FIELDS (a larger one is read
#: every time): under 4 MB at worst, about 0.4 MB for blocks of the usual size.
BLOCK_CACHE_SIZE = 256
BLOCK_CACHE_BYTES = 2048
BLOCK_CACHE_FIELDS = 32
_blocks: dict[bytes, tuple[tuple[str, str], ...]] = {}


def _split_block(block: bytes) -> tuple[tuple[str, str], ...] | None:
    """The fields of a header block of CRLF lines, or None when a line is
    folded, ends otherwise or is not ``name: value`` (left to the lines)."""
    breaks = block.count(b"\r\n")
    if (
        block.count(b"\n") != breaks
        or block.count(b"\r") != breaks
        or block[0] in (32, 9)
        or b"\n " in block
        or b"\n\t" in block
    ):
        return None
    # The block is decoded at once: UTF-8 never hides an ASCII byte (a
    # colon, a space, CR or LF) inside a character, so decoding its lines,
    # names and values apart gives the same text.
    fields: list[tuple[str, str]] = []
    for line in block.decode("utf-8", "backslashreplace").split("\r\n"):
        name, colon, value = line.partition(":")
        name = name.strip(_SPACE)
        if not colon or not name:
            return None
        fields.append((name, value.strip(_SPACE)))
    return tuple(fields)


class HTTPStreamParser:
    """Parses one direction of an HTTP/1.x connection (see module docstring).

    ``is_request`` picks requests or replies; replies need ``request_of`` to
    frame their bodies (HEAD, CONNECT, HTTP/0.9).
    """

    def __init__(
        self,
        is_request: bool,
        request_of: RequestOf | None = None,
        limits: HTTPLimits | None = None,
    ) -> None:
        self.is_request = is_request
        self.request_of = request_of or _no_request
        self.limits = limits or _DEFAULT_LIMITS
        self.messages = 0
        self._state = _START
        self._buf = bytearray()
        self._skipping = False  # inside an over-long line
        self._remaining = 0
        self._body_len = 0
        self._fields: list[tuple[str, str]] = []
        self._header_bytes = 0
        self._start: Start | None = None
        self._line_extra = 0  # see _count_lines
        self._plain = False  # body counted as sent (HTTP/0.9 reply)
        self._line_crs = 0  # CRs before the LF that ended the last line
        self._last_cr = self._last_lf = False

    @property
    def tunnel(self) -> bool:
        """Whether the stream became opaque (CONNECT tunnel or lost framing)."""
        return self._state in (_TUNNEL, _LOST)

    def feed(self, data: bytes) -> list[Event]:
        """The next bytes of the stream; returns the events they complete."""
        size = len(data)
        if 0 < size < self._remaining and self._state in _COUNTED:
            # Most pieces of a long body: all body, and not its end.
            self._remaining -= size
            self._body_len += size
            return [Body(data)]
        out: list[Event] = []
        pos = 0
        max_line = self.limits.max_line
        while pos < size:
            state = self._state
            if state in _BODY_STATES:
                pos = self._body(data, pos, out)
                continue
            if state >= _TUNNEL:
                break
            if state == _HEADERS and not self._buf and not self._skipping:
                stop = self._header_block(data, pos, out)
                if stop >= 0:
                    pos = stop
                    continue
            end = data.find(b"\n", pos)
            if end < 0:
                self._keep(memoryview(data)[pos:], out)
                break
            if not self._buf and not self._skipping and end - pos <= max_line:
                # The common case: a whole line in this piece, not copied.
                raw = data[pos:end]
                pos = end + 1
                line = raw.rstrip(b"\r")
                self._line_crs = len(raw) - len(line)
                if state == _HEADERS:
                    self._header_line(line, out)
                else:
                    self._line(line, out)
                continue
            self._keep(memoryview(data)[pos:end], out)
            pos = end + 1
            line = bytes(self._buf).rstrip(b"\r")
            self._line_crs = len(self._buf) - len(line)
            self._buf.clear()
            self._skipping = False
            self._line(line, out)
        return out

    def eof(self) -> list[Event]:
        """The stream ended: finish a body that runs to the end.

        A partial line left over is dropped: a reply shorter than one line is
        not taken for HTTP/0.9 (Zeek waits for a line end too).
        """
        if self._state == _BODY_EOF:
            if self._plain:
                pass
            elif self._last_cr:
                self._line_extra += 1  # a final bare CR (see _count_lines)
            elif self._body_len and not self._last_lf:
                self._line_extra += 2
            self._body_len += self._line_extra
            return self._done()
        if self._state == _HEADERS:
            fields = tuple(f for f in self._fields if f[0])
            return [
                Anomaly("HTTP_HEADERS_TRUNCATED", "stream ended in the headers"),
                Headers(fields),
                *self._done(),
            ]
        if self._state in (_BODY_LEN, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER):
            missing = (
                f"{self._remaining} body bytes"
                if self._state == _BODY_LEN
                else "chunks"
            )
            return [
                Anomaly("HTTP_BODY_TRUNCATED", f"stream ended with {missing} to come"),
                *self._done(),
            ]
        return []

    def gap(self, length: int) -> list[Event]:
        """``length`` bytes are missing: skip them inside a body, else give up."""
        if self._state in (_BODY_LEN,) and length <= self._remaining:
            self._remaining -= length
            self._body_len += length
            return self._done() if self._remaining == 0 else []
        if self._state == _BODY_EOF:
            self._body_len += length
            return []
        if self._state == _CHUNK_DATA and length <= self._remaining:
            self._remaining -= length
            self._body_len += length
            if self._remaining == 0:
                self._state = _CHUNK_END
            return []
        if self._state in (_TUNNEL, _LOST):
            return []
        out: list[Event] = []
        if self._state == _BODY_LEN:
            # The gap runs past the end of this body: the body is complete
            # (its missing end counted), what follows cannot be framed.
            self._body_len += self._remaining
            out.extend(self._done())
        self._state = _LOST
        out.append(
            Anomaly("HTTP_CONTENT_GAP", f"{length} bytes missing outside a body")
        )
        return out

    # -- lines ---------------------------------------------------------------

    def _keep(self, piece: memoryview, out: list[Event]) -> None:
        if self._skipping:
            return
        room = self.limits.max_line - len(self._buf)
        if len(piece) > room:
            self._buf += piece[:room]
            self._skipping = True
            out.append(
                Anomaly(
                    "HTTP_LINE_TOO_LONG",
                    f"line longer than {self.limits.max_line} bytes",
                )
            )
        else:
            self._buf += piece

    def _line(self, line: bytes, out: list[Event]) -> None:
        state = self._state
        if state == _START:
            self._start_line(line, out)
        elif state == _HEADERS:
            self._header_line(line, out)
        elif state == _CHUNK_SIZE:
            self._chunk_size(line, out)
        elif state == _CHUNK_END:
            if line:
                out.append(
                    Anomaly(
                        "HTTP_BAD_CHUNK_END",
                        f"expected CRLF after chunk, got {line[:20]!r}",
                    )
                )
            self._state = _CHUNK_SIZE
        elif state == _TRAILER and not line:
            out.extend(self._done())

    def _start_line(self, line: bytes, out: list[Event]) -> None:
        if not line:
            return  # RFC 9112 section 2.2: ignore empty lines before a message
        request = None if self.is_request else self.request_of(self.messages)
        if request is not None and request.version == "0.9":
            # RFC 1945 section 6: the reply to a Simple-Request is the bare
            # entity, read to the end of the connection, status line or not.
            self._simple_reply(line, out)
            return
        start = parse_request_line(line) if self.is_request else parse_status_line(line)
        if start is None:
            kind = "request" if self.is_request else "status"
            out.append(
                Anomaly(
                    f"HTTP_BAD_{kind.upper()}_LINE",
                    f"expected a {kind} line, got {line[:40]!r}",
                )
            )
            if request is not None:
                self._simple_reply(line, out)
            return
        out.append(start)
        self._start = start
        self._fields = []
        self._header_bytes = 0
        self._state = _HEADERS

    def _simple_reply(self, line: bytes, out: list[Event]) -> None:
        start = Start("reply", "", "", "0.9", 0, None)
        out.append(start)
        self._start = start
        self._state = _BODY_EOF
        # Zeek counts a bare reply as it was sent, not line by line.
        self._plain = True
        self._line_extra = 0
        body = line + b"\r" * self._line_crs + b"\n"
        out.append(Body(body))
        self._body_len = len(body)

    def _header_block(self, data: bytes, pos: int, out: list[Event]) -> int:
        """Read a whole header block at ``pos`` at once; where it ended, or -1.

        The common case, a block of CRLF lines ending in an empty one, all
        in this piece, within the limits, with no folded or broken line,
        is read as :meth:`_header_line` would read it line by line, at a
        fraction of the cost; anything else is left to the lines (-1).
        """
        limits = self.limits
        if data.startswith(b"\r\n", pos):
            return -1
        stop = data.find(b"\r\n\r\n", pos, pos + limits.max_line + 4)
        if stop < 0:
            return -1
        block = data[pos:stop]
        found = _blocks.get(block) if self.is_request else None
        if found is None:
            found = _split_block(block)
            if found is None:
                return -1
            if (
                self.is_request
                and len(block) <= BLOCK_CACHE_BYTES
                and len(found) <= BLOCK_CACHE_FIELDS
            ):
                if len(_blocks) >= BLOCK_CACHE_SIZE:
                    del _blocks[next(iter(_blocks))]
                _blocks[block] = found
        fields = self._fields
        kept = len(fields)
        if (
            kept + len(found) > limits.max_headers
            or self._header_bytes + len(block) + 2 > limits.max_header_bytes
        ):
            return -1
        fields.extend(found)
        self._header_bytes += len(block) + 2
        self._line_crs = 1
        out.append(Headers(tuple(fields) if kept else found))
        self._frame(out)
        return stop + 4

    def _header_line(self, line: bytes, out: list[Event]) -> None:
        if not line:
            out.append(Headers(tuple(self._fields)))
            self._frame(out)
            return
        self._header_bytes += len(line) + 2
        if self._header_bytes > self.limits.max_header_bytes:
            out.append(
                Anomaly(
                    "HTTP_HEADERS_TOO_LONG",
                    f"header block over {self.limits.max_header_bytes} bytes",
                )
            )
            out.append(Headers(tuple(self._fields)))
            out.extend(self._done())
            self._state = _LOST
            return
        if line[0] in (32, 9) and self._fields:
            # obs-fold (RFC 9112 section 5.2): a continuation of the last field.
            last, text = self._fields[-1]
            self._fields[-1] = (last, f"{text} {_text(line.strip())}")
            return
        name, colon, value = line.partition(b":")
        name = name.strip()
        if not colon or not name:
            out.append(
                Anomaly("HTTP_BAD_HEADER", f"expected 'name: value', got {line[:40]!r}")
            )
            return
        if len(self._fields) >= self.limits.max_headers:
            if len(self._fields) == self.limits.max_headers:
                out.append(
                    Anomaly(
                        "HTTP_TOO_MANY_HEADERS",
                        f"more than {self.limits.max_headers} header fields",
                    )
                )
                self._fields.append(("", ""))  # marks the limit as reported
            return
        # _text() inlined: this runs for every header field.
        self._fields.append(
            (
                name.decode("utf-8", "backslashreplace"),
                value.strip().decode("utf-8", "backslashreplace"),
            )
        )

    # -- bodies --------------------------------------------------------------

    def _frame(self, out: list[Event]) -> None:
        """Pick the body framing once the headers are in (RFC 9112 6.3)."""
        start = self._start
        assert start is not None
        self._body_len = self._line_extra = 0
        self._plain = False
        # The two fields framing needs (the last of each wins, as in a dict).
        coding = length = None
        for n, v in self._fields:
            if len(n) == 17 and n.lower() == "transfer-encoding":
                coding = v
            elif len(n) == 14 and n.lower() == "content-length":
                length = v
        if not self.is_request:
            request = self.request_of(self.messages)
            method = request.method.upper() if request is not None else ""
            if 100 <= start.code < 200:
                # An interim reply: the final one follows for the same request.
                self._state = _START
                out.append(Done(0))
                return
            if method == "CONNECT" and 200 <= start.code < 300:
                out.extend(self._done())
                self._state = _TUNNEL
                return
            if method == "HEAD" or start.code in (204, 304):
                out.extend(self._done())
                return
        if coding is not None and "chunked" in coding.lower():
            self._state = _CHUNK_SIZE
            return
        if length is not None:
            try:
                self._remaining = int(length.split(",")[0].strip())
                if self._remaining < 0:
                    raise ValueError
            except ValueError:
                out.append(
                    Anomaly(
                        "HTTP_BAD_CONTENT_LENGTH",
                        f"expected a length, got {length[:40]!r}",
                    )
                )
                self._remaining = 0
            if self._remaining == 0:
                out.extend(self._done())
            else:
                self._state = _BODY_LEN
            return
        if self.is_request:
            out.extend(self._done())
        else:
            self._state = _BODY_EOF

    def _body(self, data: bytes, pos: int, out: list[Event]) -> int:
        # A slice of all of ``data`` is ``data`` itself, not a copy.
        if self._state == _BODY_EOF:
            piece = data[pos:]
            if not self._plain:
                self._count_lines(piece)
        else:
            piece = data[pos : pos + self._remaining]
            self._remaining -= len(piece)
        self._body_len += len(piece)
        out.append(Body(piece))
        if self._state != _BODY_EOF and self._remaining == 0:
            if self._state == _CHUNK_DATA:
                self._state = _CHUNK_END
            else:
                out.extend(self._done())
        return pos + len(piece)

    def _count_lines(self, piece: bytes) -> None:
        # Zeek reads a body that runs to the end of the connection as lines
        # that end in LF, CRLF or a CR alone, and counts every line end as two
        # bytes, the last, unterminated line's too (see eof()); so each bare
        # LF or CR counts one byte more than it is. A CR that ends a piece is
        # decided by the next piece's first byte.
        crlf = piece.count(b"\r\n")
        bare = piece.count(b"\n") - crlf + piece.count(b"\r") - crlf
        if self._last_cr:
            # The previous piece's final CR: one CRLF with this LF, else bare.
            bare += -1 if piece[:1] == b"\n" else 1
        self._last_cr = piece[-1:] == b"\r"
        self._last_lf = piece[-1:] == b"\n"
        self._line_extra += bare - self._last_cr

    def _chunk_size(self, line: bytes, out: list[Event]) -> None:
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            if not size_text:
                return  # tolerate a stray empty line between chunks
            out.append(
                Anomaly(
                    "HTTP_BAD_CHUNK_SIZE",
                    f"expected a hex chunk size, got {line[:40]!r}",
                )
            )
            out.extend(self._done())
            self._state = _LOST
            return
        if size == 0:
            self._state = _TRAILER
        else:
            self._remaining = size
            self._state = _CHUNK_DATA

    def _done(self) -> list[Event]:
        self.messages += 1
        self._state = _START
        return [Done(self._body_len)]
