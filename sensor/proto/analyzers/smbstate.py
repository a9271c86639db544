"""Per-connection SMB state: trees, open files, pipes and pending requests.

Kept apart from the framing in :mod:`sensor.proto.analyzers.smb`. Requests
wait by message id (SMB2 MessageId, SMB1 MID) for their responses, trees by
tree id, files by handle (SMB2 FileId, SMB1 FID). Every table is bounded;
at the bound the oldest entry is dropped and ``SMB_table_full`` counted.

What is logged follows Zeek's smb scripts: smb_mapping at an accepted tree
connect; smb_files ``SMB::FILE_OPEN`` at an accepted open, but not for the
well-known RPC pipes (Zeek's ``SMB::pipe_filenames``) nor, over SMB2, for
any file of a pipe tree; ``SMB::FILE_DELETE`` and ``SMB::FILE_RENAME`` at
the SMB2 SET_INFO that asks for them.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

from sensor.proto.analyzer import ConnInfo, Emit
from sensor.proto.analyzers import smb1state
from sensor.proto.analyzers.ntlm_carrier import SecurityBlobs
from sensor.proto.analyzers.smbfiles import SMBFiles
from sensor.proto.analyzers.weird import WeirdReporter
from sensor.proto.parsers import smb1, smb2

log = logging.getLogger(__name__)

#: Pending requests, trees and files held per connection at most.
MAX_ENTRIES = 1000


def _put(table: dict[Any, Any], key: Any, value: Any) -> bool:
    """Insert, dropping the oldest entry at the bound; whether one was dropped."""
    full = key not in table and len(table) >= MAX_ENTRIES
    if full:
        del table[next(iter(table))]
    table[key] = value
    return full


class SMBState:
    """What one connection has opened, and what it is waiting for."""

    def __init__(
        self, conn: ConnInfo, emit: Emit, weirds: WeirdReporter, factory: Any
    ) -> None:
        self.conn = conn
        self.emit = emit
        self.weirds = weirds
        self.factory = factory
        self.encrypted = False
        self.pending: dict[tuple[int, int], tuple[float, Any]] = {}
        self.trees: dict[tuple[int, int], dict[str, Any]] = {}
        self.files: dict[tuple[int, Any], dict[str, Any]] = {}
        #: Files whose opens were logged (see :meth:`opened`).
        self.logged: dict[Any, bool] = {}
        #: Named pipes seen, by name, with their DCE-RPC session if any.
        self.pipes: dict[Any, Any] = {}
        #: NTLM and Kerberos of the session setups (and of pipe binds).
        self.auth = SecurityBlobs(conn, emit)
        #: Content read from and written to files on disk shares (files.log).
        self.content = SMBFiles(conn, emit)
        #: SMB1 NT_TRANSACT requests by MultiplexID (bounded as ``pending``),
        #: to tell a TRANSACTION2_SECONDARY that continues one.
        self.nt_transacts: dict[int, float] = {}

    # -- common ----------------------------------------------------------

    def _wait(self, key: tuple[int, int], ts: float, info: Any) -> None:
        if _put(self.pending, key, (ts, info)):
            self.weirds.report(ts, "SMB_table_full")

    def _map(self, ts: float, tree: dict[str, Any]) -> None:
        rec: dict[str, Any] = {"ts": ts, **self.conn.id_fields(), "path": tree["path"]}
        for key in ("service", "native_file_system", "share_type"):
            if tree.get(key):
                rec[key] = tree[key]
        self.emit("smb_mapping", rec)

    def _file_rec(self, ts: float, action: str, f: dict[str, Any]) -> dict[str, Any]:
        rec: dict[str, Any] = {"ts": ts, **self.conn.id_fields(), "action": action}
        if f.get("path"):
            rec["path"] = f["path"]
        rec["name"] = f["name"]
        rec["size"] = f["size"]
        for key in ("modified", "accessed", "created", "changed"):
            if f.get(key) is not None:
                rec["times." + key] = f[key]
        return rec

    def _open_pipe(self, ts: float, f: dict[str, Any]) -> None:
        f["pipe"] = None
        if self.factory is None:
            return
        try:
            f["pipe"] = self.factory(
                self.conn, self.emit, f["name"].lstrip("\\"), auth=self.auth
            )
        except Exception:  # the DCE-RPC side must not break SMB
            log.debug("%s: pipe_session failed", self.conn.uid, exc_info=True)
            self.weirds.report(ts, "SMB_pipe_session_failed")

    def pipe_data(
        self, f: dict[str, Any] | None, is_orig: bool, ts: float, data: bytes | None
    ) -> None:
        """Hand pipe payload to the file's DCE-RPC session, if it has one."""
        if f is None or data is None or not data or f.get("pipe") is None:
            return
        try:
            f["pipe"].data(is_orig, ts, data)
        except Exception:  # the DCE-RPC side must not break SMB
            log.debug("%s: pipe data failed", self.conn.uid, exc_info=True)
            self.weirds.report(ts, "SMB_pipe_session_failed")
            f["pipe"] = None

    # -- SMB2 ------------------------------------------------------------

    def on_smb2(self, is_orig: bool, ts: float, msg: bytes) -> None:
        """One SMB2 message of a compound chain."""
        hdr = smb2.parse_header(msg)
        if isinstance(hdr, str):
            self.weirds.report(ts, hdr)
            return
        if hdr.command == smb2.SESSION_SETUP:
            blob = smb2.session_setup_blob(msg, hdr.is_response)
            if blob is not None:
                self.auth.blob(not hdr.is_response, ts, blob)
        if not hdr.is_response:
            self._smb2_request(ts, hdr, msg)
            return
        if hdr.status == smb2.STATUS_PENDING:
            return  # an interim response; the final one follows
        got = self.pending.pop((2, hdr.message_id), None)
        if got is not None:
            self._smb2_response(got[0], ts, got[1], hdr, msg)

    def _smb2_request(self, ts: float, hdr: smb2.Header, msg: bytes) -> None:
        cmd, tree = hdr.command, self.trees.get((2, hdr.tree_id))
        if cmd == smb2.TREE_CONNECT:
            path = smb2.tree_connect_path(msg)
            if path is not None:
                self._wait((2, hdr.message_id), ts, (cmd, path))
        elif cmd == smb2.CREATE:
            name = smb2.create_name(msg)
            doomed = bool(smb2.create_options(msg) & smb2.FILE_DELETE_ON_CLOSE)
            if name is not None:
                self._wait((2, hdr.message_id), ts, (cmd, (name, tree, doomed)))
        elif cmd == smb2.WRITE:
            f = self.files.get((2, smb2.file_id_at(msg, 16)))
            data = smb2.write_data(msg)
            self.pipe_data(f, True, ts, data)
            self.content_data(f, True, ts, smb2.io_offset(msg), data)
        elif cmd in (smb2.READ, smb2.IOCTL):
            fid = smb2.file_id_at(msg, 16 if cmd == smb2.READ else 8)
            io = smb2.ioctl(msg, False) if cmd == smb2.IOCTL else None
            if io is not None and io[0] == smb2.FSCTL_PIPE_TRANSCEIVE:
                self.pipe_data(self.files.get((2, fid)), True, ts, io[2])
            offset = smb2.io_offset(msg) if cmd == smb2.READ else None
            self._wait((2, hdr.message_id), ts, (cmd, (fid, offset)))
        elif cmd == smb2.CLOSE:
            f = self.files.pop((2, smb2.file_id_at(msg, 8)), None)
            if f is not None and "pipe" not in f:
                self.content.closed(f, ts)
        elif cmd == smb2.SET_INFO:
            self._set_info(ts, msg)

    def _smb2_response(
        self, req_ts: float, ts: float, info: Any, hdr: smb2.Header, msg: bytes
    ) -> None:
        cmd, arg = info
        ok = hdr.status == smb2.STATUS_SUCCESS
        if cmd == smb2.TREE_CONNECT and ok:
            tree = {"path": arg, "share_type": smb2.tree_connect_share_type(msg)}
            _put(self.trees, (2, hdr.tree_id), tree)
            self._map(req_ts, tree)
        elif cmd == smb2.CREATE and ok:
            self._smb2_created(req_ts, arg, msg)
        elif cmd in (smb2.READ, smb2.IOCTL):
            if hdr.status not in (smb2.STATUS_SUCCESS, smb2.STATUS_BUFFER_OVERFLOW):
                return
            fid, offset = arg
            f = self.files.get((2, fid))
            if cmd == smb2.READ:
                data = smb2.read_data(msg)
                self.pipe_data(f, False, ts, data)
                self.content_data(f, False, ts, offset, data)
            else:
                io = smb2.ioctl(msg, True)
                if io is not None and io[0] == smb2.FSCTL_PIPE_TRANSCEIVE:
                    self.pipe_data(f, False, ts, io[2])

    def content_data(
        self,
        f: dict[str, Any] | None,
        is_orig: bool,
        ts: float,
        offset: int | None,
        data: bytes | None,
    ) -> None:
        """File content read or written at ``offset``, for files.log; files
        on disk shares only (a pipe's file has the "pipe" key)."""
        if f is None or "pipe" in f or offset is None or not data:
            return
        self.content.data(f, is_orig, ts, offset, data)

    def _smb2_created(self, ts: float, arg: Any, msg: bytes) -> None:
        name, tree, doomed = arg
        got = smb2.create_response(msg)
        if got is None:
            self.weirds.report(ts, "SMB2_create_response_truncated")
            return
        tree = tree or {}
        f = {
            "ts": ts, "name": name, "path": tree.get("path"), "size": got.size,
            "created": got.created, "accessed": got.accessed,
            "modified": got.modified, "changed": got.changed,
        }  # fmt: skip
        _put(self.files, (2, got.file_id), f)
        if tree.get("share_type") == "PIPE":
            self._open_pipe(ts, f)
            return
        self.opened(ts, f)
        if doomed:
            self.emit("smb_files", self._file_rec(ts, "SMB::FILE_DELETE", f))

    def opened(self, ts: float, f: dict[str, Any]) -> None:
        """Log a FILE_OPEN unless the same file, unchanged, was just logged.

        Over SMB2 Zeek logs a file open once while its path, name, size
        and times stay the same (a client opens a file many times to query
        it); over SMB1 it logs every open, which is what the captures show.
        """
        key = (f.get("path"), f["name"], f["size"], f.get("modified"))
        if key in self.logged:
            return
        _put(self.logged, key, True)
        self.emit("smb_files", self._file_rec(ts, "SMB::FILE_OPEN", f))

    def _set_info(self, ts: float, msg: bytes) -> None:
        got = smb2.set_info(msg)
        if got is None or got[0] != 1 or got[3] is None:  # 1: SMB2_0_INFO_FILE
            return
        _type, info_class, fid, buf = got
        f = self.files.get((2, fid))
        if buf is None or f is None or f.get("pipe", False) is not False:
            return
        if info_class == smb2.FILE_DISPOSITION_INFORMATION and buf[:1] == b"\x01":
            # Zeek writes the time of the open, that of its file record.
            self.emit("smb_files", self._file_rec(f["ts"], "SMB::FILE_DELETE", f))
        elif info_class == smb2.FILE_RENAME_INFORMATION:
            new = smb2.rename_target(buf)
            if new is not None:
                rec = self._file_rec(f["ts"], "SMB::FILE_RENAME", {**f, "name": new})
                rec["prev_name"] = f["name"]
                f["name"] = new
                self.emit("smb_files", rec)

    # -- SMB1 ------------------------------------------------------------

    def on_smb1(self, is_orig: bool, ts: float, msg: bytes) -> None:
        """One SMB1 message, with its AndX chain."""
        if len(msg) <= smb1.HEADER_LEN or msg[:4] != smb1.MAGIC:
            self.weirds.report(ts, str(smb1.parse_header(msg)))
            return
        # Most SMB1 messages need nothing more than their command, status,
        # flags and MID (a brute force's failed session setups, requests
        # that nothing answers to): those are read in place, and the
        # header record is built only for a message that is applied.
        command, status, flags = _SMB1_HEAD.unpack_from(msg, 4)
        response = bool(flags & smb1.FLAGS_REPLY)
        # Only the extended-security forms carry a blob: 12 words in the
        # request, 4 in the response (see smb1.session_setup_blob).
        if command == smb1.SESSION_SETUP_ANDX and msg[smb1.HEADER_LEN] == (
            4 if response else 12
        ):
            b = smb1.first_block(msg, _smb1_header(msg))
            if b is not None:
                blob = smb1.session_setup_blob(msg, b, response)
                if blob is not None:
                    self.auth.blob(not response, ts, blob)
        mid = msg[30] | msg[31] << 8
        if response:
            got = self.pending.pop((1, mid), None)
            if got is not None:
                # smb1state.response applies nothing to a failed answer.
                if status == 0 or status == smb2.STATUS_BUFFER_OVERFLOW:
                    hdr = _smb1_header(msg)
                    smb1state.response(self, got[0], ts, got[1], hdr, msg)
            elif command == smb1.TRANSACTION2:
                smb1state.shifted_reply(self, ts, _smb1_header(msg))
        elif command in smb1state.REQUESTS or (
            # An AndX chain may hold a command that is applied.
            command in smb1.ANDX
            and len(msg) > smb1.HEADER_LEN + 1
            and msg[smb1.HEADER_LEN] >= 2
            and msg[smb1.HEADER_LEN + 1] != smb1.NO_ANDX
        ):
            info = smb1state.request(self, ts, _smb1_header(msg), msg)
            if info:
                self._wait((1, mid), ts, info)


#: Command (1), Status (4) and Flags (1) at offset 4 of an SMB1 header.
_SMB1_HEAD = struct.Struct("<BIB")


def _smb1_header(msg: bytes) -> smb1.Header:
    # on_smb1 checked the length and magic first.
    hdr = smb1.parse_header(msg)
    assert not isinstance(hdr, str)
    return hdr
