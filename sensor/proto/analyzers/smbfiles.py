"""files.log records for what SMB clients read from and write to files.

As Zeek's base/protocols/smb/files.zeek does, a file's content is what the
client writes to it (``is_orig`` true) or reads from it (false) on a disk
share; named pipes are not files. One files.log record per file per
connection, keyed as Zeek keys its file handle: the share path, the name
and the last-modified time the open returned, so the same file opened
again unchanged continues the same record. ``filename`` is the name as
opened; ``total_bytes`` is the size the open returned when it was not
zero (a file being written starts empty, and its record has none).

Data arrive with their file offsets; they are hashed in offset order.
Bytes past the next expected offset are a gap (``missing_bytes``), bytes
before it (a region read twice) are skipped. A file ends when all its
``total_bytes`` were seen, at the CLOSE of its last handle, or when the
connection ends.

SMB1 READ_ANDX and WRITE_ANDX content is followed the same way; no shared
capture with a Zeek files.log has SMB1 file transfers to compare with.
"""

from __future__ import annotations

from typing import Any

from sensor.proto.analyzer import ConnInfo, Emit
from sensor.proto.files import FileHandle, Files

#: Files followed at once per connection; past it new ones are not logged.
MAX_FILES = 64


class SMBFiles:
    """The files of one SMB connection."""

    def __init__(self, conn: ConnInfo, emit: Emit) -> None:
        self.conn = conn
        self.emit = emit
        #: Made at the first file: most SMB connections carry none.
        self.files: Files | None = None
        # key -> [handle, next offset, open handles]
        self.open: dict[Any, list[Any]] = {}

    @staticmethod
    def key(f: dict[str, Any]) -> tuple[Any, ...]:
        """Zeek's file handle: share path, name, last-modified time."""
        return (f.get("path"), f["name"], f.get("modified"))

    def data(
        self, f: dict[str, Any], is_orig: bool, ts: float, offset: int, data: bytes
    ) -> None:
        """``data`` read or written at ``offset`` of the file ``f``."""
        if not data:
            return
        key = self.key(f)
        entry = self.open.get(key)
        if entry is None:
            if len(self.open) >= MAX_FILES:
                return
            if self.files is None:
                self.files = Files(self.emit)
            handle = self.files.open(self.conn, ts, "SMB", is_orig, filename=f["name"])
            if f.get("size"):
                handle.set_total(int(f["size"]))
            entry = self.open[key] = [handle, 0, set()]
        handle, expected = entry[0], entry[1]
        entry[2].add(id(f))

        if offset > expected:
            handle.gap(offset - expected, ts)
            expected = offset
        if offset + len(data) <= expected:
            return  # read or written before
        handle.write(data[expected - offset :], ts)
        entry[1] = offset + len(data)
        if handle.total_bytes is not None and entry[1] >= handle.total_bytes:
            self._close(key, ts)

    def closed(self, f: dict[str, Any], ts: float) -> None:
        """The client closed a handle of ``f``: the file ends with its last."""
        key = self.key(f)
        entry = self.open.get(key)
        if entry is None:
            return
        entry[2].discard(id(f))
        if not entry[2]:
            self._close(key, ts)

    def end(self, ts: float) -> None:
        """The connection is over: every file still open ends."""
        for key in list(self.open):
            self._close(key, ts)

    def _close(self, key: Any, ts: float) -> None:
        handle: FileHandle = self.open.pop(key)[0]
        handle.close(ts)
