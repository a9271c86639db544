"""SMB1 and SMB2/3 over NetBIOS session service or direct TCP.

Zeek runs its SMB analyzer on ports 139 and 445 or on a signature for the
SMB header (also on partial connections, since that signature is not tied
to a TCP state). When it names ``smb`` is described at :func:`smb`.
Security blobs of negotiate responses and session setups go to its
GSSAPI analyzer (``gssapi``, ``ntlm``, ``krb``, see
:mod:`sensor.proto.gssapi`); reads, writes and transactions on named pipes
go to its DCE-RPC analyzer (``dce_rpc``). The nested analyzers confirm on
their own: ``ntlm`` can stand without ``smb``.

TODO: Zeek takes ``smb`` back (and stops looking inside) after a protocol
violation, such as a malformed TREE_CONNECT_ANDX in the honeynet capture;
that is not modelled, so such connections keep ``smb`` here.

Framing: RFC 1002 4.3.1 (one type byte, a 17-bit length) on both ports,
since SMB over 445 ([MS-SMB2] 2.1) uses the same four-byte header.
"""

from __future__ import annotations

import re

from sensor.proto import dcerpc, gssapi
from sensor.proto.flowdata import FlowData, pdus_in_order

PORTS = frozenset({139, 445})

_SIGNATURE = re.compile(rb"^....[\xfe\xff]SMB", re.DOTALL)
_NBSS_TYPES = frozenset({0x00, 0x81, 0x82, 0x83, 0x84, 0x85})

_SMB1_NEGOTIATE = 0x72
_SMB1_SESSION_SETUP = 0x73
_SMB2_NEGOTIATE = 0
_SMB2_SESSION_SETUP = 1
# Commands whose data can be a named pipe's: SMB1 READ, WRITE, TRANSACTION,
# READ_ANDX, WRITE_ANDX ([MS-CIFS] 2.2.2.1); SMB2 READ, WRITE, IOCTL
# ([MS-SMB2] 2.2.1.2).
_SMB1_PIPE_IO = frozenset({0x0A, 0x0B, 0x25, 0x26, 0x2E, 0x2F})
_SMB2_PIPE_IO = frozenset({8, 9, 11})


def _frame_length(buf: bytes, off: int) -> int:
    if off + 4 > len(buf) or buf[off] not in _NBSS_TYPES or buf[off + 1] & 0xFE:
        return 0
    return 4 + (
        (buf[off + 1] & 1) << 16 | int.from_bytes(buf[off + 2 : off + 4], "big")
    )


def _u16(buf: bytes, off: int) -> int:
    return int.from_bytes(buf[off : off + 2], "little")


def _smb1_blob(msg: bytes) -> bytes:
    """The security blob of an extended-security SMB1 negotiate response or
    session setup; Zeek hands both to its GSSAPI analyzer."""
    if len(msg) < 33:
        return b""
    wc = msg[32]
    words = 33
    if msg[4] == _SMB1_NEGOTIATE:
        # [MS-SMB] 2.2.4.5.2.1: with CAP_EXTENDED_SECURITY the bytes are the
        # server GUID (16) and the blob.
        caps = int.from_bytes(msg[words + 19 : words + 23], "little")
        if wc != 17 or not caps & 0x80000000:
            return b""
        count = _u16(msg, words + 34)
        return msg[words + 36 + 16 : words + 36 + count]
    if msg[4] != _SMB1_SESSION_SETUP:
        return b""
    if wc == 12:  # request ([MS-SMB] 2.2.4.6.1)
        length, data = _u16(msg, words + 14), words + 2 * wc + 2
    elif wc == 4:  # response ([MS-SMB] 2.2.4.6.2)
        length, data = _u16(msg, words + 6), words + 2 * wc + 2
    else:
        return b""
    return msg[data : data + length]


def _smb2_blobs(msg: bytes) -> list[bytes]:
    """Security blobs of the SMB2 messages (compounded ones too) in ``msg``."""
    out = []
    off = 0
    for _ in range(16):
        hdr = msg[off:]
        if len(hdr) < 64 or hdr[:4] != b"\xfeSMB":
            break
        cmd, response = _u16(hdr, 12), hdr[16] & 1
        body = 64
        pos = 0
        if cmd == _SMB2_NEGOTIATE and response:
            pos = body + 56  # [MS-SMB2] 2.2.4
        elif cmd == _SMB2_SESSION_SETUP:
            # [MS-SMB2] 2.2.5 / 2.2.6: offsets count from the header.
            pos = body + (4 if response else 12)
        if pos:
            start, length = _u16(hdr, pos), _u16(hdr, pos + 2)
            if start >= 64:
                out.append(hdr[start : start + length])
        nxt = int.from_bytes(hdr[20:24], "little")
        if nxt < 64:
            break
        off += nxt
    return out


def _command(msg: bytes) -> int:
    """The command of an SMB1/SMB2 message, -1 for an encrypted one."""
    if msg[0] == 0xFF:
        return msg[4]
    return _u16(msg, 12) if msg[0] == 0xFE else -1


def nested_names(msg: bytes) -> list[str]:
    """Names from what one SMB message carries (NetBIOS header removed).

    Security blobs of negotiate responses and session setups go to
    :mod:`sensor.proto.gssapi`; reads, writes and transactions that can
    carry a named pipe's data are searched for DCE-RPC PDUs (the data
    offset differs per command and is often padded, so the PDU header is
    found where it starts).
    """
    found: list[str] = []
    blobs = [_smb1_blob(msg)] if msg[0] == 0xFF else _smb2_blobs(msg)
    for blob in blobs:
        found.extend(gssapi.names(blob))
    pipe_io = _SMB1_PIPE_IO if msg[0] == 0xFF else _SMB2_PIPE_IO
    if _command(msg) in pipe_io:
        for m in dcerpc.PDU_IN_PIPE.finditer(msg):
            n = dcerpc.pdu_length(msg, m.start())
            if n:
                found.extend(dcerpc.pdu_names(msg[m.start() : m.start() + n]))
    return found


def pipe_pending(flow: FlowData) -> bool:
    """An SMB connection that connected to IPC$ but showed no DCE-RPC yet.

    The named pipes that carry DCE-RPC live on the IPC$ share; the tree
    connect names it (UTF-16 in SMB2 and Unicode SMB1, ASCII otherwise).
    """
    if flow.proto != "tcp" or flow.resp_p not in PORTS:
        return False
    orig = flow.stream(True)
    if b"I\x00P\x00C\x00$\x00" not in orig and b"IPC$" not in orig:
        return False
    return not (
        dcerpc.PDU_IN_PIPE.search(orig) or dcerpc.PDU_IN_PIPE.search(flow.stream(False))
    )


def _is_smb(msg: bytes) -> bool:
    return len(msg) >= 32 and msg[1:4] == b"SMB" and msg[0] in (0xFF, 0xFE, 0xFD)


def smb(flow: FlowData) -> list[str]:
    """SMB over TCP with everything nested in it, in Zeek's order.

    ``smb`` itself is named at the server's first answer to something
    other than NEGOTIATE, or at its second NEGOTIATE answer (the SMB2
    negotiate that follows a multi-protocol SMB1 one). On the shared
    captures this is when Zeek names it: a connection that only
    negotiated (scanners, exploits that got no answer) stays without it,
    and the order of ``gssapi``/``ntlm``/``krb`` against ``smb`` matches.
    """
    if not flow.on_port(PORTS):
        first = [p[0] for p in (flow.orig_pkts, flow.resp_pkts) if p]
        if not any(_SIGNATURE.match(p) for p in first):
            return []
    out: list[str] = []
    negotiated = 0
    for is_orig, frame in pdus_in_order(flow, _frame_length):
        msg = frame[4:]
        if frame[0] != 0 or not _is_smb(msg):
            continue
        negotiate = _command(msg) == (
            _SMB1_NEGOTIATE if msg[0] == 0xFF else _SMB2_NEGOTIATE
        )
        if not is_orig and "smb" not in out and (negotiated or not negotiate):
            out.append("smb")
        negotiated += not is_orig and negotiate
        for n in nested_names(msg):
            # Kerberos in a session setup is named at the server's AP-REP,
            # after ``smb``; the client's AP-REQ did not name it for Zeek.
            if n not in out and not (n == "krb" and is_orig):
                out.append(n)
    return out
