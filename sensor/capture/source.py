"""Open a capture path as a stream of bytes and identify its format.

Both readers open files through :func:`open_capture`, so they refuse the same
files with the same messages and see the same bytes, also when the capture
is gzip-compressed (RFC 1952) and the compressed data is cut short.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from sensor.capture import formats as f
from sensor.capture.errors import CaptureError

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileHeader:
    """What the start of a capture says about the rest of it."""

    #: "pcap" or "pcapng".
    format: str
    #: True when the file's (first section's) integers are big-endian.
    big_endian: bool
    #: pcap only: timestamps count nanoseconds rather than microseconds.
    nanosecond: bool = False
    #: pcap only: the snapshot length and LINKTYPE_* from the file header.
    snaplen: int = 0
    linktype: int = 0
    #: Bytes of the file already consumed; records or blocks start here.
    start: int = 0


class Source:
    """A byte stream with a position, that never raises while reading.

    A read error or a compressed stream that ends early ends the stream;
    :attr:`error` then says what happened and where, and the reader reports
    it as a problem after the packets it could read.
    """

    def __init__(self, raw: BinaryIO, prefix: bytes, compressed: bool) -> None:
        # ``prefix``: bytes already read from ``raw``, to be used first
        # (as compressed input when ``compressed``).
        self._raw = raw
        self._pending = b"" if compressed else prefix
        self._compressed_prefix = prefix if compressed else b""
        self._pos = 0
        self._inflater = zlib.decompressobj(wbits=31) if compressed else None
        self._ended = False
        self._drained = False
        #: True when the file is gzip-compressed.
        self.compressed = compressed
        #: Bytes delivered so far (of the decompressed data when compressed).
        self.offset = 0
        # Bytes decompressed so far: where the data ends if the stream breaks,
        # whatever the readers' buffer sizes.
        self._inflated = 0
        #: Why the stream ended early, or None.
        self.error: str | None = None

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; fewer only at the end of the stream."""
        parts = []
        while n > 0:
            if self._pos >= len(self._pending) and not self._refill():
                break
            piece = self._pending[self._pos : self._pos + n]
            self._pos += len(piece)
            n -= len(piece)
            parts.append(piece)
        data = b"".join(parts) if len(parts) != 1 else parts[0]
        self.offset += len(data)
        return data

    def readinto(self, buffer: memoryview) -> int:
        """Read what one refill gives into ``buffer``; 0 at the end."""
        if self._pos >= len(self._pending):
            if self._inflater is None and not self._ended:
                # Plain files: straight into the caller's buffer, one copy.
                try:
                    n = self._raw.readinto(buffer) or 0  # type: ignore[attr-defined]
                except OSError as e:
                    self._end(f"read error at offset {self.offset}: {e}")
                    return 0
                self.offset += n
                return int(n)
            if not self._refill():
                return 0
        n = min(len(buffer), len(self._pending) - self._pos)
        buffer[:n] = memoryview(self._pending)[self._pos : self._pos + n]
        self._pos += n
        self.offset += n
        return n

    def unread(self, data: bytes) -> None:
        """Put ``data`` back in front of the stream (the header, once)."""
        self._pending = data + self._pending[self._pos :]
        self._pos = 0
        self.offset -= len(data)
        if data:
            self._ended = False

    def close(self) -> None:
        """Close the underlying file."""
        self._raw.close()

    def _end(self, error: str | None) -> None:
        self._ended = True
        self._pending, self._pos = b"", 0
        if error and self.error is None:
            self.error = error

    def _refill(self) -> bool:
        if self._ended:
            return False
        try:
            if self._inflater is None:
                self._pending = self._raw.read(_CHUNK)
            else:
                self._pending = self._inflate()
        except OSError as e:
            self._end(f"read error at offset {self.offset}: {e}")
        except zlib.error as e:
            self._end(f"bad compressed data after offset {self._inflated}: {e}")
        self._pos = 0
        if not self._pending:
            self._end(None)
        return not self._ended

    def _inflate(self) -> bytes:
        # Members of a multi-member gzip file follow each other (RFC 1952
        # section 2.2); decompress them one after the other.
        assert self._inflater is not None
        while not self._drained:
            data = (
                self._inflater.unconsumed_tail
                or self._compressed_prefix
                or self._raw.read(_CHUNK)
            )
            self._compressed_prefix = b""
            if not data:
                if not self._inflater.eof:
                    self._end(f"compressed data ends early at offset {self._inflated}")
                return b""
            out = self._inflater.decompress(data, _CHUNK)
            self._inflated += len(out)
            rest = self._inflater.unused_data if self._inflater.eof else b""
            if rest and rest[:2] != _GZIP_MAGIC[: len(rest[:2])]:
                # Deliver what came before the garbage, then end.
                self.error = (
                    f"garbage after the compressed data at offset {self._inflated}"
                )
                self._drained = True
                return out
            if rest:
                # The next member starts here; feed it to a fresh inflater.
                self._inflater = zlib.decompressobj(wbits=31)
                self._compressed_prefix = rest
            if out:
                return out
        return b""


def open_capture(path: str) -> tuple[Source, FileHeader]:
    """Open ``path``, check its header, and return the stream past it.

    Raises :class:`CaptureError` when nothing can be read: the file is
    missing, unreadable, a directory, empty, or not a capture at all.
    """
    try:
        raw: BinaryIO = open(path, "rb")  # noqa: SIM115 -- the Source owns it
    except OSError as e:
        raise CaptureError(path, _why(e)) from None

    try:
        head = raw.read(2)
        compressed = head == _GZIP_MAGIC
        source = Source(raw, head, compressed)
        head = source.read(f.PCAPNG_SHB_MIN_LEN)
        header = identify(path, head, source.error)
    except OSError as e:
        raw.close()
        raise CaptureError(path, _why(e)) from None
    except BaseException:
        raw.close()
        raise

    # Hand the bytes past the file header back to the readers.
    source.unread(head[header.start :])
    return source, header


def identify(path: str, head: bytes, error: str | None = None) -> FileHeader:
    """Identify the format from the first 28 bytes (fewer if the file is shorter)."""
    if not head:
        raise CaptureError(path, error or "empty file")
    if len(head) < 4:
        raise CaptureError(path, f"not a capture file (only {len(head)} bytes)")

    magic_le = struct.unpack_from("<I", head)[0]
    magic_be = struct.unpack_from(">I", head)[0]
    if magic_le == f.PCAPNG_SHB:
        return _pcapng_header(path, head)
    for magic, big_endian in ((magic_le, False), (magic_be, True)):
        if magic in (f.PCAP_MAGIC_USEC, f.PCAP_MAGIC_NSEC):
            return _pcap_header(path, head, big_endian, magic == f.PCAP_MAGIC_NSEC)
        if magic == f.PCAP_MAGIC_MODIFIED:
            raise CaptureError(
                path, f"unsupported capture format (modified pcap, magic 0x{magic:08x})"
            )
    raise CaptureError(path, f"not a capture file (magic 0x{magic_be:08x})")


def _pcap_header(path: str, head: bytes, big_endian: bool, nsec: bool) -> FileHeader:
    if len(head) < f.PCAP_FILE_HEADER_LEN:
        raise CaptureError(
            path,
            f"truncated pcap file header ({len(head)} of {f.PCAP_FILE_HEADER_LEN} bytes)",
        )
    order = ">" if big_endian else "<"
    major, minor, _, _, snaplen, linktype = struct.unpack_from(
        order + "HHiIII", head, 4
    )
    if major != 2:
        raise CaptureError(path, f"unsupported pcap version {major}.{minor}")
    # The upper bits of the link type field carry FCS information
    # (draft-ietf-opsawg-pcap section 4, "LinkType and additional information").
    return FileHeader(
        format="pcap",
        big_endian=big_endian,
        nanosecond=nsec,
        snaplen=snaplen,
        linktype=linktype & 0xFFFF,
        start=f.PCAP_FILE_HEADER_LEN,
    )


def _pcapng_header(path: str, head: bytes) -> FileHeader:
    if len(head) < 16:
        raise CaptureError(
            path,
            f"truncated pcapng section header ({len(head)} of {f.PCAPNG_SHB_MIN_LEN} bytes)",
        )
    bom_le = struct.unpack_from("<I", head, 8)[0]
    if bom_le == f.PCAPNG_BOM:
        order = "<"
    elif struct.unpack_from(">I", head, 8)[0] == f.PCAPNG_BOM:
        order = ">"
    else:
        raise CaptureError(path, f"bad pcapng byte-order magic 0x{bom_le:08x}")
    major, minor = struct.unpack_from(order + "HH", head, 12)
    if major != 1:
        raise CaptureError(path, f"unsupported pcapng version {major}.{minor}")
    return FileHeader(format="pcapng", big_endian=order == ">")


def _why(e: OSError) -> str:
    if isinstance(e, IsADirectoryError):
        return "is a directory"
    if isinstance(e, FileNotFoundError):
        return "no such file"
    if isinstance(e, PermissionError):
        return "permission denied"
    return (e.strerror or str(e)).lower()
