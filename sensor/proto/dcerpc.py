"""DCE-RPC connection-oriented PDUs (C706 chapter 12, [MS-RPCE] 2.2.2).

Zeek runs its DCE_RPC analyzer on port 135, on a signature matching the
first bytes of a PDU (so also on the dynamic ports the endpoint mapper
hands out), and over SMB named pipes. The authentication verifier at the
end of a bind or request carries NTLMSSP (auth type 10) or SPNEGO (9),
which Zeek passes to its NTLM and GSSAPI analyzers.
"""

from __future__ import annotations

import re
from typing import Literal

from sensor.proto import gssapi
from sensor.proto.flowdata import FlowData, pdus

PORTS = frozenset({135})

# Zeek's dpd_dce_rpc: version 5, minor 0 or 1, a known PDU type, any flags.
_SIGNATURE = re.compile(rb"^\x05[\x00\x01][\x00-\x13]", re.DOTALL)
# A PDU header as it appears inside SMB pipe reads and writes: version
# 5.0, a known type, any flags, little-endian ASCII data representation.
PDU_IN_PIPE = re.compile(rb"\x05\x00[\x00-\x13][\x00-\xff]\x10\x00\x00\x00", re.DOTALL)

_AUTH_SPNEGO = 9
_AUTH_NTLMSSP = 10
_AUTH_KERBEROS = 16


def pdu_length(buf: bytes, off: int) -> int:
    """Length of the PDU at ``off`` (its frag_length), or 0 if not a PDU."""
    if off + 16 > len(buf):
        return 0
    if buf[off] != 5 or buf[off + 1] > 1 or buf[off + 2] > 0x13:
        return 0
    if buf[off + 4] & 0xEE:  # integer/character representation bits only
        return 0
    order: Literal["little", "big"] = "little" if buf[off + 4] & 0x10 else "big"
    n = int.from_bytes(buf[off + 8 : off + 10], order)
    return n if n >= 16 else 0


def pdu_names(pdu: bytes) -> list[str]:
    """``dce_rpc`` plus what its authentication verifier carries, inner first."""
    order: Literal["little", "big"] = "little" if pdu[4] & 0x10 else "big"
    frag = int.from_bytes(pdu[8:10], order)
    auth_len = int.from_bytes(pdu[10:12], order)
    names: list[str] = []
    if auth_len and frag - auth_len - 8 >= 16:
        # sec_trailer: type, level, pad length, reserved, context id.
        at = frag - auth_len - 8
        if at + 8 <= len(pdu):
            kind = pdu[at]
            value = pdu[at + 8 : at + 8 + auth_len]
            if kind == _AUTH_SPNEGO:
                # Zeek's GSSAPI analyzer also confirms on the per-message
                # Kerberos tokens (RFC 4121 4.2.6: MIC 0x0404, Wrap 0x0504)
                # of an established context, but not on an NTLM signature.
                names = gssapi.names(value)
                if not names and value[:2] in (b"\x04\x04", b"\x05\x04"):
                    names = ["gssapi"]
            elif kind == _AUTH_NTLMSSP and gssapi.ntlm(value):
                names = ["ntlm"]
            elif kind == _AUTH_KERBEROS and gssapi.krb_token(value):
                names = ["krb"]
    return names + ["dce_rpc"]


def names_in(msgs: list[bytes]) -> list[str]:
    """Names from every PDU in a list of already framed messages."""
    out: list[str] = []
    for m in msgs:
        for n in pdu_names(m):
            if n not in out:
                out.append(n)
    return out


def dce_rpc_tcp(flow: FlowData) -> list[str]:
    """DCE-RPC straight over TCP."""
    if not flow.on_port(PORTS):
        first = [p[0] for p in (flow.orig_pkts, flow.resp_pkts) if p]
        if not any(_SIGNATURE.match(p) for p in first):
            return []
    msgs = pdus(flow.orig_pkts, pdu_length) + pdus(flow.resp_pkts, pdu_length)
    return names_in(msgs)
