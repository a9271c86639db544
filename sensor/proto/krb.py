"""Kerberos (RFC 4120): ``krb`` over UDP, ``krb_tcp`` over TCP (RFC 4120 7.2.2).

Zeek runs its KRB analyzers on port 88 (and over UDP also on a TGS-REQ
signature) and confirms once a message parses. Kerberos tokens nested in
GSSAPI (SMB session setup, DCE-RPC authentication) are read by
:func:`message` through :mod:`sensor.proto.gssapi`.
"""

from __future__ import annotations

from sensor.proto.flowdata import FlowData

PORTS = frozenset({88})

# APPLICATION tags of the message types (RFC 4120 5.10): AS-REQ 10 to
# AP-REP 15, KRB-SAFE/PRIV/CRED 20-22, KRB-ERROR 30.
MESSAGE_TAGS = frozenset({0x6A, 0x6B, 0x6C, 0x6D, 0x6E, 0x6F, 0x74, 0x75, 0x76, 0x7E})


def _header(buf: bytes, off: int) -> tuple[int, int] | None:
    """(tag, value_start) at ``off``; the value may run past the capture."""
    if off + 2 > len(buf):
        return None
    n = buf[off + 1]
    start = off + 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4:
            return None
        start += k
    return buf[off], start


def message(buf: bytes, off: int = 0) -> bool:
    """True when a Kerberos message starts at ``off``.

    Checked: a message APPLICATION tag, a SEQUENCE, and a first member
    that is ``pvno`` ([0] or [1], INTEGER 5). The rest may be cut off by
    the capture limit.
    """
    h = _header(buf, off)
    if h is None or h[0] not in MESSAGE_TAGS:
        return False
    h = _header(buf, h[1])
    if h is None or h[0] != 0x30:
        return False
    h = _header(buf, h[1])
    if h is None or h[0] not in (0xA0, 0xA1):
        return False
    return buf[h[1] : h[1] + 3] == b"\x02\x01\x05"


def krb_udp(flow: FlowData) -> bool:
    """Kerberos over UDP: one datagram is a whole message."""
    on_port = flow.resp_p in PORTS or flow.orig_p in PORTS
    # Zeek's dpd_krb_udp signature: a TGS-REQ from the originator.
    if not on_port and not any(p[:1] == b"\x6c" and message(p) for p in flow.orig_pkts):
        return False
    return any(message(p) for p in flow.orig_pkts + flow.resp_pkts)


def krb_tcp(flow: FlowData) -> bool:
    """Kerberos over TCP: four-byte length, then the message."""
    if flow.resp_p not in PORTS:
        return False
    for is_orig in (True, False):
        data = flow.stream(is_orig)
        if len(data) > 4 and not data[0] & 0x80 and message(data, 4):
            return True
    return False
