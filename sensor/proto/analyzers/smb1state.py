"""SMB1 requests and responses applied to the connection's SMB state.

The SMB1 half of :class:`sensor.proto.analyzers.smbstate.SMBState`: tree
connects, NT_CREATE_ANDX opens, and the pipe payload of WRITE_ANDX,
READ_ANDX and TransactNmPipe ([MS-CIFS] 2.2.4, 2.2.5.6), and the file
content of WRITE_ANDX and READ_ANDX on disk shares (files.log). A request returns
what its response needs, a list of (command, argument) per AndX block.

Three SMB1 messages no Windows client sends are reported to weird.log, as
the MS17-010 exploits (EternalBlue, EternalRomance) and the DoublePulsar
implant use them: ``SMB1_trans2_session_setup`` (TRANSACTION2 subcommand
0x000e, reserved and not implemented, [MS-CIFS] 2.2.6.13: the implant's
ping), ``SMB1_trans2_secondary_for_nt_transact`` (a TRANSACTION2_SECONDARY
continuing an NT_TRANSACT of the same MultiplexID: the mix-up of
CVE-2017-0144) and ``SMB1_doublepulsar_reply`` (an answer to the ping whose
MultiplexID is the ping's plus 0x10: an implanted server).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from sensor.proto.parsers import smb1, smb2

if TYPE_CHECKING:
    from sensor.proto.analyzers.smbstate import SMBState

Pending = list[tuple[int, Any]]
#: Opens remembered per connection to log each identical one once.
MAX_LOGGED = 1000
#: NT_TRANSACT MultiplexIDs remembered per connection (64 transactions in
#: flight is far above what a client keeps; the oldest goes first).
MAX_NT_TRANSACTS = 64

#: Pipes whose opens Zeek leaves out of smb_files (SMB::pipe_filenames).
PIPE_FILENAMES = frozenset(
    {"spoolss", "winreg", "samr", "srvsvc", "netdfs", "lsarpc", "wkssvc", "MsFteWds"}
)

#: The commands :func:`request` applies; a request whose blocks hold none
#: of them changes nothing.
REQUESTS = frozenset(
    {
        smb1.TREE_CONNECT_ANDX, smb1.NT_CREATE_ANDX, smb1.WRITE_ANDX,
        smb1.READ_ANDX, smb1.TRANSACTION, smb1.TRANSACTION2, smb1.NT_TRANSACT,
        smb1.TRANSACTION2_SECONDARY, smb1.CLOSE,
    }
)  # fmt: skip


def request(st: SMBState, ts: float, hdr: smb1.Header, msg: bytes) -> Pending:
    """Apply one client message; what its response will need."""
    out: Pending = []
    for b in smb1.blocks(msg, hdr):
        w = b.words
        if b.command == smb1.TREE_CONNECT_ANDX and len(w) >= 8:
            pwlen = struct.unpack_from("<H", w, 6)[0]
            path, _ = smb1.string(msg, b.data_off + pwlen, hdr.unicode)
            out.append((b.command, path))
        elif b.command == smb1.NT_CREATE_ANDX:
            name, _ = smb1.string(msg, b.data_off, hdr.unicode)
            out.append((b.command, (name, st.trees.get((1, hdr.tid)))))
        elif b.command == smb1.WRITE_ANDX and len(w) >= 24:
            fid, length, off = w[4:6], smb1.u16(w, 20) or 0, smb1.u16(w, 22) or 0
            f = st.files.get((1, fid))
            data = smb1.data_at(msg, off, length)
            st.pipe_data(f, True, ts, data)
            st.content_data(f, True, ts, _offset(w, 6, 24), data)
        elif b.command == smb1.READ_ANDX and len(w) >= 10:
            out.append((b.command, (w[4:6], _offset(w, 6, 20))))
        elif b.command == smb1.TRANSACTION and len(w) >= 32:
            if smb1.u16(w, 28) != smb1.TRANS_TRANSACT_NMPIPE:
                continue
            fid = w[30:32]
            count, off = smb1.u16(w, 22) or 0, smb1.u16(w, 24) or 0
            f = st.files.get((1, fid))
            st.pipe_data(f, True, ts, smb1.data_at(msg, off, count))
            out.append((b.command, fid))
        elif b.command == smb1.TRANSACTION2 and len(w) >= 30:
            if smb1.u16(w, 28) == smb1.TRANS2_SESSION_SETUP:
                st.weirds.report(ts, "SMB1_trans2_session_setup", "subcommand 0x000e")
                out.append((b.command, smb1.TRANS2_SESSION_SETUP))
        elif b.command == smb1.NT_TRANSACT:
            table = st.nt_transacts
            if hdr.mid not in table and len(table) >= MAX_NT_TRANSACTS:
                del table[next(iter(table))]  # the oldest
                st.weirds.report(ts, "SMB_table_full")
            table[hdr.mid] = ts
        elif b.command == smb1.TRANSACTION2_SECONDARY and hdr.mid in st.nt_transacts:
            st.weirds.report(
                ts, "SMB1_trans2_secondary_for_nt_transact", f"mid {hdr.mid}"
            )
        elif b.command == smb1.CLOSE and len(w) >= 2:
            closed = st.files.pop((1, w[0:2]), None)
            if closed is not None and "pipe" not in closed:
                st.content.closed(closed, ts)
    return out


def response(
    st: SMBState, req_ts: float, ts: float, infos: Pending, hdr: smb1.Header, msg: bytes
) -> None:
    """Apply one server message to what its request left pending."""
    if hdr.status != 0 and hdr.status != smb2.STATUS_BUFFER_OVERFLOW:
        return
    wanted = dict(infos)
    for b in smb1.blocks(msg, hdr):
        if b.command not in wanted:
            continue
        arg, w = wanted[b.command], b.words
        if b.command == smb1.TREE_CONNECT_ANDX:
            _tree(st, req_ts, hdr, msg, b, arg)
        elif b.command == smb1.NT_CREATE_ANDX and len(w) >= 68:
            _created(st, req_ts, w, arg)
        elif b.command == smb1.READ_ANDX and len(w) >= 14:
            length, off = smb1.u16(w, 10) or 0, smb1.u16(w, 12) or 0
            f = st.files.get((1, arg[0]))
            data = smb1.data_at(msg, off, length)
            st.pipe_data(f, False, ts, data)
            st.content_data(f, False, ts, arg[1], data)
        elif b.command == smb1.TRANSACTION and len(w) >= 16:
            count, off = smb1.u16(w, 12) or 0, smb1.u16(w, 14) or 0
            st.pipe_data(
                st.files.get((1, arg)), False, ts, smb1.data_at(msg, off, count)
            )


def shifted_reply(st: SMBState, ts: float, hdr: smb1.Header) -> None:
    """A TRANSACTION2 answer that no request waits for: DoublePulsar's
    answer to its ping carries the ping's MultiplexID plus 0x10."""
    key = (1, (hdr.mid - smb1.DOUBLEPULSAR_MID_SHIFT) & 0xFFFF)
    ping = st.pending.get(key)
    if ping is None or (smb1.TRANSACTION2, smb1.TRANS2_SESSION_SETUP) not in ping[1]:
        return
    del st.pending[key]
    st.weirds.report(
        ts, "SMB1_doublepulsar_reply", f"mid {hdr.mid} answers the ping's mid {key[1]}"
    )


def _offset(w: bytes, low: int, high: int) -> int:
    """A 64-bit file offset: 32 low bits at ``low``, 32 high bits at ``high``
    when the block has them ([MS-CIFS] 2.2.4.42.1, 2.2.4.43.1)."""
    value = int(struct.unpack_from("<I", w, low)[0])
    if len(w) >= high + 4:
        value |= int(struct.unpack_from("<I", w, high)[0]) << 32
    return value


def _tree(
    st: SMBState, ts: float, hdr: smb1.Header, msg: bytes, b: smb1.Block, path: str
) -> None:
    # [MS-CIFS] 2.2.4.55.2: Service is always OEM; NativeFileSystem follows
    # in the connection's string encoding.
    service, after = smb1.string(msg, b.data_off, False)
    native, _ = smb1.string(msg, after, hdr.unicode) if after < len(msg) else ("", 0)
    tree = {
        "path": path,
        "service": service,
        "native_file_system": native,
        "share_type": smb1.SHARE_TYPES.get(service, "UNKNOWN"),
    }
    st.trees[(1, hdr.tid)] = tree
    st._map(ts, tree)


def _created(st: SMBState, ts: float, w: bytes, arg: Any) -> None:
    name, tree = arg
    fid = w[5:7]
    times = [smb2.filetime(t) for t in struct.unpack_from("<QQQQ", w, 11)]
    size = struct.unpack_from("<Q", w, 55)[0]
    tree = tree or {}
    f = {
        "ts": ts, "name": name, "path": tree.get("path"), "size": size,
        "created": times[0], "accessed": times[1],
        "modified": times[2], "changed": times[3],
    }  # fmt: skip
    st.files[(1, fid)] = f
    if tree.get("share_type") == "PIPE":
        st._open_pipe(ts, f)
    if name not in PIPE_FILENAMES:
        # Zeek's SMB1 scripts leave the share path out of smb_files (its
        # file record there never learns the tree); the same is done here.
        # Like Zeek's SMB::write_file_log, an open identical to one already
        # logged on the connection (name, size and all four times) is not
        # logged again: a scanner that opens a share's root twice writes one.
        # Opens without times (pipes such as \\samr) are all logged, as
        # Zeek's captures show.
        ident = ("smb1", name, size, *times)
        if ident in st.logged and any(t is not None for t in times):
            return
        if len(st.logged) >= MAX_LOGGED:
            del st.logged[next(iter(st.logged))]
        st.logged[ident] = True
        st.emit("smb_files", st._file_rec(ts, "SMB::FILE_OPEN", {**f, "path": None}))
