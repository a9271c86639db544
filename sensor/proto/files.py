"""The files framework: one files.log record per file a protocol carries.

A protocol analyzer (HTTP bodies, SMTP attachments, ...) opens a file when the
first byte of its content is known, writes the content as it arrives, and
closes it at the end. The framework hashes the content as a stream (MD5,
SHA-1, SHA-256), sniffs its MIME type from the first bytes, counts what was
seen and missed, and emits the files.log record on close::

    files = Files(emit)                       # one per analyzer instance
    f = files.open(conn, ts, "HTTP", is_orig=False, filename="a.exe")
    f.write(chunk, ts)                        # as often as needed
    f.gap(1460, ts)                           # bytes the capture lacks
    f.close(ts)                               # emits files.log, returns it
    f.fuid, f.mime_type                       # for the protocol's own log

Nothing is buffered whole: only the first :attr:`FileLimits.bof_bytes` bytes
are kept, for MIME sniffing, as Zeek keeps its "beginning of file" buffer
(``default_file_bof_buffer_size``, 4096 bytes there; 8192 here, because
libmagic names a Microsoft cabinet only once it reaches the first file entry,
which Windows Update cabinets put past 6 KiB).

MIME types come from libmagic (through python-magic) and are renamed to the
names Zeek's own signatures give where the two disagree on a name (see
:mod:`sensor.proto.filetype`). The ``analyzers`` field lists the file analyzers
Zeek attaches by default for the type (PE, OCSP, X509); hashes are always
computed and logged in ``md5``/``sha1``/``sha256``, as Zeek does with
``policy/frameworks/files/hash-all-files`` loaded.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from sensor.flow.uid import base62
from sensor.proto.analyzer import ConnInfo, Emit
from sensor.proto.filetype import sniff_mime

log = logging.getLogger(__name__)

#: File analyzers Zeek's default scripts attach by MIME type.
_DEFAULT_ANALYZERS = {
    "application/x-dosexec": "PE",
    "application/ocsp-response": "OCSP_REPLY",
    "application/ocsp-request": "OCSP_REQUEST",
    "application/x-x509-user-cert": "X509",
    "application/x-x509-ca-cert": "X509",
    "application/pkix-cert": "X509",
}


@dataclass(frozen=True)
class FileLimits:
    """Bounds of the files framework."""

    #: Bytes kept from the start of each file for MIME sniffing (see the
    #: module docstring for why 8192).
    bof_bytes: int = 8192
    #: Files open at once per :class:`Files` (i.e. per connection); past it,
    #: :meth:`Files.open` still returns a handle but it is not logged
    #: (counted in ``stats["files_too_many"]``).
    max_open: int = 64
    #: Longest filename kept; longer names are cut (``files_name_cut``).
    max_filename: int = 1024


_DEFAULT_LIMITS = FileLimits()


class FileHandle:
    """One file in transfer; see the module docstring for its life cycle.

    Attributes valid at any time: :attr:`fuid`, :attr:`seen_bytes`,
    :attr:`missing_bytes`. :attr:`mime_type` is known once
    :attr:`FileLimits.bof_bytes` bytes were written, or after :meth:`close`.
    """

    def __init__(
        self,
        owner: Files,
        fuid: str,
        conn: ConnInfo,
        ts: float,
        source: str,
        is_orig: bool,
        depth: int,
        filename: str | None,
        mime_hint: str | None,
        logged: bool,
    ) -> None:
        self.fuid = fuid
        self.conn = conn
        self.source = source
        self.is_orig = is_orig
        self.depth = depth
        self.filename = filename
        self.mime_hint = mime_hint
        self.mime_type: str | None = None
        self.ts = ts
        self.last_ts = ts
        self.seen_bytes = 0
        self.missing_bytes = 0
        self.overflow_bytes = 0
        self.total_bytes: int | None = None
        self.closed = False
        self._owner = owner
        self._logged = logged
        self._started = False
        self._emitted = False
        self._sniffed = False
        self._bof = bytearray()
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha1 = hashlib.sha1(usedforsecurity=False)
        self._sha256 = hashlib.sha256()

    def write(self, data: bytes, ts: float) -> None:
        """The next ``data`` of the file, in order, seen at packet time ``ts``."""
        if self.closed or not data:
            return
        if not self._started:
            # Zeek dates a file by its first content, not by its announcement.
            self._started = True
            self.ts = ts
        self.last_ts = ts
        self.seen_bytes += len(data)
        self._md5.update(data)
        self._sha1.update(data)
        self._sha256.update(data)

        room = self._owner.limits.bof_bytes - len(self._bof)
        if room > 0 and not self._sniffed:
            self._bof += data[:room]
            if len(self._bof) >= self._owner.limits.bof_bytes:
                self._sniff()

    def gap(self, length: int, ts: float) -> None:
        """``length`` bytes of the file are missing from the capture."""
        if self.closed or length <= 0:
            return
        # A gap is not activity: the duration ends with the last content, as
        # Zeek's does (a gap is often noticed long after, at the next data).
        self.missing_bytes += length
        # Zeek sniffs what it has once content stops being contiguous.
        if not self._sniffed:
            self._sniff()

    def set_total(self, total: int) -> None:
        """The size the protocol announced (e.g. Content-Length)."""
        if total >= 0:
            self.total_bytes = total

    def close(self, ts: float | None = None, timedout: bool = False) -> dict[str, Any]:
        """End of the file: emit its files.log record and return it.

        Closing twice returns the record again without emitting it twice.
        ``ts`` is not used for the duration, which runs from the first to the
        last content seen, as Zeek measures it.
        """
        if not self._sniffed:
            self._sniff()
        if not self.closed:
            self.closed = True
            self._owner._closed(self)
            self._bof = bytearray()
        record = self.record(timedout)
        if self._logged and not self._emitted:
            self._emitted = True
            self._owner.emit("files", record)
        return record

    def record(self, timedout: bool = False) -> dict[str, Any]:
        """The files.log record as it stands, unset fields left out (files.schema.json)."""
        analyzer = _DEFAULT_ANALYZERS.get(self.mime_type or "")
        record: dict[str, Any] = {"ts": self.ts, "fuid": self.fuid}
        record.update(self.conn.id_fields())
        record.update(
            source=self.source,
            depth=self.depth,
            analyzers=[analyzer] if analyzer else [],
        )
        # Built in the schema's order; only these three may be unset.
        if self.mime_type is not None:
            record["mime_type"] = self.mime_type
        if self.filename is not None:
            record["filename"] = self.filename
        record.update(
            duration=max(0.0, self.last_ts - self.ts),
            is_orig=self.is_orig,
            seen_bytes=self.seen_bytes,
        )
        if self.total_bytes is not None:
            record["total_bytes"] = self.total_bytes
        record.update(
            missing_bytes=self.missing_bytes,
            overflow_bytes=self.overflow_bytes,
            timedout=timedout,
            md5=self._md5.hexdigest(),
            sha1=self._sha1.hexdigest(),
            sha256=self._sha256.hexdigest(),
        )
        return record

    def _sniff(self) -> None:
        self._sniffed = True
        self.mime_type = sniff_mime(bytes(self._bof), self.mime_hint)


class Files:
    """Opens files for one protocol analyzer and emits their files.log records.

    fuids are deterministic: a hash of the connection uid, the source and a
    count of files this instance opened, written as ``F`` and base62 digits
    like connection uids (:mod:`sensor.flow.uid`), so that a replay gives the
    same fuids every time.
    """

    def __init__(self, emit: Emit, limits: FileLimits | None = None) -> None:
        self.emit = emit
        self.limits = limits or _DEFAULT_LIMITS
        self.stats: dict[str, int] = {}
        self._opened = 0
        self._open: dict[str, FileHandle] = {}

    def open(
        self,
        conn: ConnInfo,
        ts: float,
        source: str,
        is_orig: bool,
        filename: str | None = None,
        mime_hint: str | None = None,
        depth: int = 0,
    ) -> FileHandle:
        """Start a file carried by ``conn`` in the direction ``is_orig``.

        ``source`` names the protocol ("HTTP", "SMTP"); ``filename`` is the
        name the protocol gave (Content-Disposition, MIME ``name=``);
        ``mime_hint`` the type it declared, used only when the content itself
        says nothing (libmagic finds no type); ``depth`` is Zeek's: the MIME
        depth of an attachment in SMTP, 0 for HTTP bodies.
        """
        self._opened += 1
        key = f"{conn.uid}/{source}/{self._opened}".encode()
        digest = hashlib.blake2b(key, digest_size=12).digest()
        fuid = "F" + base62(int.from_bytes(digest, "big"))

        logged = len(self._open) < self.limits.max_open
        if not logged:
            self._count("files_too_many")
        if filename is not None and len(filename) > self.limits.max_filename:
            filename = filename[: self.limits.max_filename]
            self._count("files_name_cut")
        handle = FileHandle(
            self, fuid, conn, ts, source, is_orig, depth, filename, mime_hint, logged
        )
        if logged:
            self._open[fuid] = handle
        return handle

    def close_all(self, ts: float) -> None:
        """Close every file still open (the connection ended under them)."""
        for handle in list(self._open.values()):
            handle.close(ts)

    def _closed(self, handle: FileHandle) -> None:
        self._open.pop(handle.fuid, None)

    def _count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1
