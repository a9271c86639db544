"""Where an HTTP message body goes: decoded, split into parts, into files.

One :class:`BodyFiles` per non-empty message body. It undoes the content
coding (gzip, deflate) and, for ``multipart/*`` bodies (form uploads,
byte ranges), reads the MIME parts (RFC 2046 section 5.1) and makes a file
of each leaf part, as Zeek's HTTP analyzer does; any other body is one file.
Nothing is held but one line of a multipart body (bounded by
:data:`MAX_PART_LINE`) and the decoder's state.
"""

from __future__ import annotations

from sensor.proto.analyzer import ConnInfo
from sensor.proto.files import FileHandle, Files
from sensor.proto.mime import Entity, MIMEHandler, MIMEReader
from sensor.proto.parsers.httpcoding import CODINGS, ContentDecoder

#: Most decoded bytes per body (``HTTP_DECODED_TOO_LARGE`` past it).
MAX_DECODED = 64 << 20
#: Longest line of a multipart body kept whole; longer ones are passed on
#: in pieces (body data with no line break in it).
MAX_PART_LINE = 16384


class BodyFiles(MIMEHandler):
    """The files of one message body; see the module docstring."""

    def __init__(
        self,
        files: Files,
        conn: ConnInfo,
        is_orig: bool,
        coding: str = "",
        content_type: str | None = None,
        filename: str | None = None,
        length: int | None = None,
    ) -> None:
        self.files = files
        self.conn = conn
        self.is_orig = is_orig
        self.filename = filename
        self.content_type = content_type
        self.handles: list[FileHandle] = []
        self.decoded_len = 0
        self._length = length
        self._ts = 0.0
        self._file: FileHandle | None = None
        coding = coding.strip().lower()
        self.decoder = (
            ContentDecoder(coding, MAX_DECODED) if coding in CODINGS else None
        )
        self._reader: MIMEReader | None = None
        self._line = bytearray()
        self._cut = False  # a hole in coded content: nothing more decodes
        if (content_type or "").strip().lower().startswith("multipart/"):
            # The reader wants a whole message: give it the header that
            # names the boundary, then the body.
            self._reader = MIMEReader(self)
            self._reader.line(
                b"Content-Type: " + (content_type or "").encode("utf-8", "replace")
            )
            self._reader.line(b"")

    @property
    def anomaly(self) -> str | None:
        """The decoder's anomaly name, if decoding failed or was cut."""
        return (
            self.decoder.anomaly.name if self.decoder and self.decoder.anomaly else None
        )

    def write(self, data: bytes, ts: float) -> None:
        """The next bytes of the body as sent (chunked framing removed)."""
        self._ts = ts
        if self._cut:
            return
        if self.decoder is not None:
            self.decoder.feed(data, self._decoded)
        elif self._reader is None:
            # The common case, one file of the bytes as sent: _decoded inlined.
            self.decoded_len += len(data)
            (self.handles[0] if self.handles else self._single()).write(data, ts)
        else:
            self._decoded(data)

    def gap(self, length: int, ts: float) -> None:
        """``length`` bytes of the body are missing.

        They count as missing in the file being written. Compressed content
        cannot be decoded past a hole, so a coded body ends there; Zeek
        still counts the hole in the body's length, and so do we.
        """
        self._ts = ts
        if self._cut:
            return
        handle = self._file if self._reader is not None else self._single()
        if handle is not None:
            handle.gap(length, ts)
        if self.decoder is not None:
            self.decoded_len += length
            self._cut = True

    def close(self, ts: float) -> None:
        """End of the body: close every file."""
        self._ts = ts
        if self._reader is not None:
            if self._line:
                self._reader.line(bytes(self._line))
                self._line.clear()
            self._reader.close()
            # The reader calls back into this object: undo that cycle.
            self._reader.handler = MIMEHandler()
        for handle in self.handles:
            handle.close(ts)

    # -- content -----------------------------------------------------------------

    def _decoded(self, data: bytes) -> None:
        self.decoded_len += len(data)
        if self._reader is None:
            self._single().write(data, self._ts)
            return
        self._line += data
        *lines, rest = self._line.split(b"\n")
        for line in lines:
            self._reader.line(bytes(line[:-1] if line.endswith(b"\r") else line))
        self._line = bytearray(rest)
        if len(self._line) > MAX_PART_LINE:
            self._reader.line(bytes(self._line), complete=False)
            self._line.clear()
        self._reader.flush()

    def _single(self) -> FileHandle:
        if not self.handles:
            handle = self._open(self.filename, self.content_type)
            if self.decoder is None and self._length is not None:
                handle.set_total(self._length)
        return self.handles[0]

    def _open(self, filename: str | None, content_type: str | None) -> FileHandle:
        handle = self.files.open(
            self.conn,
            self._ts,
            "HTTP",
            self.is_orig,
            filename=filename,
            mime_hint=content_type,
        )
        self.handles.append(handle)
        return handle

    # -- MIMEHandler: the parts of a multipart body ----------------------------------

    def begin(self, entity: Entity) -> None:
        """A part starts; its file opens with its first byte."""
        self._file = None

    def data(self, entity: Entity, data: bytes) -> None:
        """Bytes of a leaf part (transfer encoding undone by the reader)."""
        if self._file is None:
            self._file = self._open(entity.filename, entity.content_type)
        self._file.write(data, self._ts)

    def end(self, entity: Entity) -> None:
        """A part ends."""
        if self._file is not None and not entity.multipart:
            self._file.close(self._ts)
            self._file = None
