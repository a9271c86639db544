"""Connection-oriented DCE/RPC v5 PDUs: bytes to records.

The layout is The Open Group's C706 chapter 12 ("Connection-oriented RPC
PDU formats") with Microsoft's extensions in [MS-RPCE] 2.2.2. Every PDU
starts with the same 16-byte header; ``frag_length`` covers the whole PDU,
including the authentication verifier whose ``auth_length`` bytes (plus the
8-byte ``sec_trailer``) end it. The verifier is cut out as it is
(``PDU.auth_type``, ``PDU.auth``): NTLM and Kerberos inside it belong to
their own analyzers.

:class:`PDUSplitter` cuts a byte stream into PDUs; :func:`parse_pdu` turns
one PDU into a :class:`PDU`. Neither raises on bad input: the splitter
reports a named anomaly and the parser returns one in ``PDU.anomaly``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Literal

HEADER_LEN = 16
#: Longest PDU accepted; Windows negotiates 5840 bytes, C706 allows 65535.
MAX_FRAG = 65535
#: Most bytes a splitter buffers before giving up on a direction.
MAX_BUFFER = 2 * MAX_FRAG

# PDU types (C706 12.6.4.1 / [MS-RPCE] 2.2.2.1).
REQUEST = 0
RESPONSE = 2
FAULT = 3
BIND = 11
BIND_ACK = 12
BIND_NAK = 13
ALTER_CONTEXT = 14
ALTER_CONTEXT_RESP = 15
AUTH3 = 16
SHUTDOWN = 17
CO_CANCEL = 18
ORPHANED = 19

# pfc_flags (C706 12.6.3.1).
PFC_FIRST_FRAG = 0x01
PFC_LAST_FRAG = 0x02
PFC_OBJECT_UUID = 0x80


@dataclass(slots=True)
class PDU:
    """One decoded PDU; fields that its type lacks keep their defaults.

    ``contexts`` (bind, alter_context) maps presentation context ids to
    abstract syntax UUIDs; ``sec_addr`` is the bind_ack secondary address
    (the pipe or port the server listens on); ``anomaly`` names what was
    wrong with a PDU that could not be decoded in full.
    """

    ptype: int
    flags: int
    call_id: int
    frag_length: int
    ctx_id: int = 0
    opnum: int = 0
    stub: bytes = b""
    contexts: dict[int, str] = field(default_factory=dict)
    sec_addr: str = ""
    anomaly: str = ""
    auth_type: int = 0
    auth: bytes = b""


#: frag_length, auth_length, call_id at 8; then alloc_hint, p_cont_id and
#: opnum at 16 (C706 12.6.3.1, 12.6.4.9); by the drep's integer order.
_FIXED = {"little": struct.Struct("<HHI"), "big": struct.Struct(">HHI")}
_U16 = {"little": struct.Struct("<H"), "big": struct.Struct(">H")}
_CTX_OPNUM = {"little": struct.Struct("<HH"), "big": struct.Struct(">HH")}
# A request's or response's header fields at 8 in one read: frag_length,
# auth_length, call_id, (alloc_hint), p_cont_id, opnum (or cancel_count).
_CALL = {"little": struct.Struct("<HHI4xHH"), "big": struct.Struct(">HHI4xHH")}
# frag_length alone, by packed_drep[0] & 0x10 (the splitter's read).
_FRAG = (_U16["big"], _U16["little"])


def _order(drep0: int) -> Literal["little", "big"]:
    # packed_drep[0] bit 4 set: little-endian integers (C706 14.2.5).
    return "little" if drep0 & 0x10 else "big"


def format_uuid(raw: bytes, order: Literal["little", "big"]) -> str:
    """The text form of an NDR-encoded UUID (first three fields in ``order``).

    As ``str(uuid.UUID(...))`` writes it (RFC 4122 3), without building
    the object: a bind names one to a few per context.
    """
    if len(raw) != 16:
        raise ValueError(f"uuid: {len(raw)} bytes, expected 16")
    if order == "little":
        raw = raw[3::-1] + raw[5:3:-1] + raw[7:5:-1] + raw[8:]
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def header_length(buf: bytes) -> int | str:
    """``frag_length`` of the PDU that ``buf`` starts with, or an anomaly name.

    ``buf`` must hold at least the 16 header bytes.
    """
    if buf[0] != 5 or buf[1] > 1:
        return "DCE_RPC_BAD_VERSION"
    n: int = _U16[_order(buf[4])].unpack_from(buf, 8)[0]
    if n < HEADER_LEN:
        return "DCE_RPC_FRAG_LENGTH_TOO_SHORT"
    return n


def parse_pdu(pdu: bytes) -> PDU:
    """Decode one whole PDU (exactly ``frag_length`` bytes)."""
    order: Literal["little", "big"] = "little" if pdu[4] & 0x10 else "big"
    ptype, size = pdu[2], len(pdu)
    if (ptype == REQUEST or ptype == RESPONSE) and size >= 24:
        # Most PDUs: a whole call header, read at once; anything short
        # takes the general path below for its anomaly.
        frag, auth_len, call_id, ctx_id, opnum = _CALL[order].unpack_from(pdu, 8)
        end = frag - auth_len - 8 if auth_len else frag
        if end >= 24:
            flags = pdu[3]
            if ptype == REQUEST:
                stub = pdu[40 if flags & PFC_OBJECT_UUID else 24 : end]
            else:
                opnum, stub = 0, pdu[24:end]
            if not auth_len or end >= size:
                return PDU(ptype, flags, call_id, frag, ctx_id, opnum, stub)
            out = PDU(ptype, flags, call_id, frag, ctx_id, opnum, stub)
            out.auth_type, out.auth = pdu[end], pdu[end + 8 : frag]
            return out

    frag, auth_len, call_id = _FIXED[order].unpack_from(pdu, 8)
    out = PDU(ptype, pdu[3], call_id, frag)

    # The body ends where the verifier's sec_trailer starts ([MS-RPCE] 2.2.2.11).
    end = frag - auth_len - 8 if auth_len else frag
    if end < HEADER_LEN:
        out.anomaly = "DCE_RPC_AUTH_LENGTH_TOO_LONG"
        return out
    if auth_len and end < size:
        # sec_trailer: auth_type, auth_level, pad, reserved, context id.
        out.auth_type = pdu[end]
        out.auth = pdu[end + 8 : frag]

    # Requests and responses take their stub straight from the PDU; the
    # body is cut out only for the types that read it.
    body_len = min(end, size) - HEADER_LEN
    if ptype == REQUEST:
        if body_len < 8:
            out.anomaly = "DCE_RPC_REQUEST_TOO_SHORT"
            return out
        out.ctx_id, out.opnum = _CTX_OPNUM[order].unpack_from(pdu, 20)
        out.stub = pdu[40 if out.flags & PFC_OBJECT_UUID else 24 : end]
    elif ptype == RESPONSE or ptype == FAULT:
        if body_len < 8:
            out.anomaly = "DCE_RPC_RESPONSE_TOO_SHORT"
            return out
        out.ctx_id = _U16[order].unpack_from(pdu, 20)[0]
        out.stub = pdu[24:end]
    elif ptype == BIND or ptype == ALTER_CONTEXT:
        out.anomaly = _contexts(pdu[HEADER_LEN:end], order, out.contexts)
    elif ptype == BIND_ACK or ptype == ALTER_CONTEXT_RESP:
        body = pdu[HEADER_LEN:end]
        if len(body) < 10:
            out.anomaly = "DCE_RPC_BIND_ACK_TOO_SHORT"
            return out
        n = int.from_bytes(body[8:10], order)
        if 10 + n > len(body):
            out.anomaly = "DCE_RPC_SEC_ADDR_TOO_LONG"
            return out
        out.sec_addr = body[10 : 10 + n].split(b"\0", 1)[0].decode("latin-1")
    return out


def _contexts(body: bytes, order: Literal["little", "big"], out: dict[int, str]) -> str:
    """Fill ``out`` from a bind's p_context_list (C706 12.6.3.1); anomaly or ""."""
    if len(body) < 12:
        return "DCE_RPC_BIND_TOO_SHORT"
    count, off = body[8], 12
    for _ in range(count):
        if off + 24 > len(body):
            return "DCE_RPC_BIND_CONTEXT_TRUNCATED"
        ctx_id = int.from_bytes(body[off : off + 2], order)
        n_syntaxes = body[off + 2]
        out[ctx_id] = format_uuid(body[off + 4 : off + 20], order)
        # abstract syntax (uuid + version) then n transfer syntaxes of 20 bytes.
        off += 24 + 20 * n_syntaxes
    return ""


class PDUSplitter:
    """Cuts one direction's byte stream into whole PDUs.

    After a header that is not DCE/RPC the direction is given up
    (``broken`` names why): without a length there is no way to resync.
    """

    def __init__(self) -> None:
        self.buf = b""
        self.broken = ""

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data``; return the PDUs it completes, in order."""
        if self.broken:
            return []
        # PDUs are cut from the joined bytes by offset: a delivery that is
        # one whole PDU, the common case, is handed on as it is.
        buf = self.buf + data if self.buf else bytes(data)
        size = len(buf)
        if (
            size >= HEADER_LEN
            and buf[0] == 5
            and buf[1] <= 1
            and _FRAG[buf[4] >> 4 & 1].unpack_from(buf, 8)[0] == size
        ):
            self.buf = b""
            return [buf]
        out: list[bytes] = []
        pos = 0
        while size - pos >= HEADER_LEN:
            if buf[pos] != 5 or buf[pos + 1] > 1:
                self.broken, self.buf = "DCE_RPC_BAD_VERSION", b""
                return out
            n: int = _FRAG[buf[pos + 4] >> 4 & 1].unpack_from(buf, pos + 8)[0]
            if n < HEADER_LEN:
                self.broken, self.buf = "DCE_RPC_FRAG_LENGTH_TOO_SHORT", b""
                return out
            if size - pos < n:
                break
            out.append(buf if n == size else buf[pos : pos + n])
            pos += n
        self.buf = buf[pos:] if pos else buf
        if len(self.buf) > MAX_BUFFER:
            self.broken, self.buf = "DCE_RPC_BUFFER_LIMIT", b""
        return out
