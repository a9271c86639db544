"""Content codings of HTTP bodies (RFC 9110 section 8.4.1), undone as a stream.

gzip and x-gzip (RFC 1952), deflate as RFC 9110 defines it (zlib, RFC 1950)
and as some servers send it (raw deflate, RFC 1951). The output is bounded,
so that a decompression bomb costs bounded memory and time.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from sensor.proto.parsers.http import Anomaly

#: Content codings :class:`ContentDecoder` undoes.
CODINGS = frozenset({"gzip", "x-gzip", "deflate"})


class ContentDecoder:
    """Undoes a Content-Encoding (gzip, x-gzip, deflate) as a stream.

    Output is handed to ``sink`` in pieces of at most ``piece`` bytes, and at
    most ``max_out`` bytes in all (``HTTP_DECODED_TOO_LARGE``), so that a
    small body that inflates enormously (a decompression bomb) costs bounded
    memory and time. Broken data stops decoding (``HTTP_BAD_ENCODING``); what
    came out until then stays delivered.
    """

    def __init__(self, coding: str, max_out: int, piece: int = 1 << 20) -> None:
        coding = coding.strip().lower()
        # wbits 32+15 accepts both gzip and zlib headers. "deflate" is zlib
        # by RFC 9110 section 8.4.1.2, but some servers send raw deflate; the
        # first bytes tell (see _start).
        self.coding = coding
        self.max_out = max_out
        self.piece = piece
        self.out_len = 0
        self.anomaly: Anomaly | None = None
        self._z: zlib._Decompress | None = None
        self._raw_tried = False

    def feed(self, data: bytes, sink: Callable[[bytes], None]) -> None:
        """Decode the next body bytes into ``sink``."""
        if self.anomaly is not None or not data:
            return
        if self._z is None:
            self._z = zlib.decompressobj(32 + 15 if self.coding != "deflate" else 15)
        buf = data
        while buf:
            room = self.max_out - self.out_len
            if room <= 0:
                self.anomaly = Anomaly(
                    "HTTP_DECODED_TOO_LARGE", f"decoded body over {self.max_out} bytes"
                )
                return
            try:
                out = self._z.decompress(buf, min(room, self.piece))
            except zlib.error as e:
                if (
                    self.coding == "deflate"
                    and not self._raw_tried
                    and self.out_len == 0
                ):
                    self._raw_tried = True
                    self._z = zlib.decompressobj(-15)
                    continue
                self.anomaly = Anomaly("HTTP_BAD_ENCODING", f"{self.coding}: {e}")
                return
            self.out_len += len(out)
            if out:
                sink(out)
            if self._z.eof:
                return
            buf = self._z.unconsumed_tail
