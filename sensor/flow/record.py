"""Build conn.log records and ICMP pseudo-ports, as Zeek's conn scripts do."""

from __future__ import annotations

import ipaddress
from typing import Any

from sensor.flow.conn import (
    CLOSED,
    ESTABLISHED,
    INACTIVE,
    PARTIAL,
    RESET,
    SYN_ACK_SENT,
    SYN_SENT,
    Conn,
)

SEC = 1_000_000_000
_PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp"}

# ICMP request/reply pairs share a connection (Zeek's ICMP4_counterpart and
# ICMP6_counterpart): echo, timestamp, information, router and mask for
# ICMPv4 (RFC 792, RFC 1256, RFC 950); echo, router, neighbour, MLD, node
# information and home agent discovery for ICMPv6.
_ICMP4_PAIRS = {
    8: 0,
    0: 8,
    13: 14,
    14: 13,
    15: 16,
    16: 15,
    10: 9,
    9: 10,
    17: 18,
    18: 17,
}
_ICMP6_PAIRS = {
    128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135,
    130: 131, 131: 130, 139: 140, 140: 139, 144: 145, 145: 144,
}  # fmt: skip


def icmp_ports(ip_proto: int, icmp_type: int, code: int) -> tuple[int, int, bool]:
    """(orig_p, resp_p, one_way) for an ICMP message, Zeek-style.

    The type is the source "port"; the destination is the counterpart type
    when the message has one, else the code, and such messages are one-way.
    """
    pairs = _ICMP4_PAIRS if ip_proto == 1 else _ICMP6_PAIRS
    other = pairs.get(icmp_type, -1)
    if other >= 0:
        return icmp_type, other, False
    return icmp_type, code, True


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def conn_state(conn: Conn) -> str:
    """Zeek's conn_state(), from the two endpoint states and the history."""
    if conn.proto == 17:
        o, r = conn.orig.size >= 0, conn.resp.size >= 0
        if o:
            return "SF" if r else "S0"
        return "SHR" if r else "OTH"
    if conn.proto != 6:
        return "OTH"
    os_, rs = conn.orig.state, conn.resp.state
    o_inactive = os_ in (INACTIVE, PARTIAL)
    r_inactive = rs in (INACTIVE, PARTIAL)
    if rs == RESET:
        if os_ in (SYN_SENT, SYN_ACK_SENT) or (
            os_ == RESET
            and conn.orig.size_tcp(conn.resp) == 0
            and conn.resp.size_tcp(conn.orig) == 0
        ):
            return "REJ"
        return "RSTRH" if o_inactive else "RSTR"
    if os_ == RESET:
        if r_inactive:
            return "RSTOS0" if _rstos0(conn.history) else "OTH"
        return "RSTO"
    if rs == CLOSED and os_ == CLOSED:
        return "SF"
    if os_ == CLOSED:
        return "SH" if r_inactive else "S2"
    if rs == CLOSED:
        return "SHR" if o_inactive else "S3"
    if os_ == SYN_SENT and rs == INACTIVE:
        return "S0"
    if os_ == ESTABLISHED and rs == ESTABLISHED:
        return "S1"
    return "OTH"


def _rstos0(history: str) -> bool:
    # Zeek: /\^?S[^HAFGIQ]*R.*/ matched against the whole history.
    h = history.removeprefix("^")
    if not h.startswith("S"):
        return False
    for ch in h[1:]:
        if ch == "R":
            return True
        if ch in "HAFGIQ":
            return False
    return False


def conn_record(conn: Conn) -> dict[str, Any]:
    """The conn.log record of a finished connection (Zeek's field names)."""
    rec: dict[str, Any] = {
        "ts": (conn.start_ns // 1000) / 1e6,
        "uid": conn.uid,
        "id.orig_h": str(ipaddress.ip_address(conn.orig_h)),
        "id.orig_p": conn.orig_p,
        "id.resp_h": str(ipaddress.ip_address(conn.resp_h)),
        "id.resp_p": conn.resp_p,
        "proto": _PROTO_NAMES.get(conn.proto, "unknown_transport"),
    }
    # Zeek reads captures at microsecond precision and subtracts doubles;
    # doing the same keeps durations equal to the last printed digit.
    start_s = (conn.start_ns // 1000) / 1e6
    duration = (conn.last_ns // 1000) / 1e6 - start_s
    if duration > 0:
        rec["duration"] = duration
        if conn.proto == 6:
            rec["orig_bytes"] = conn.orig.size_tcp(conn.resp)
            rec["resp_bytes"] = conn.resp.size_tcp(conn.orig)
        else:
            rec["orig_bytes"] = max(conn.orig.size, 0)
            rec["resp_bytes"] = max(conn.resp.size, 0)
    rec["conn_state"] = conn_state(conn)
    rec["missed_bytes"] = conn.missed_bytes
    if conn.history:
        rec["history"] = conn.history
    rec["orig_pkts"] = conn.orig.pkts
    rec["orig_ip_bytes"] = conn.orig.ip_bytes
    rec["resp_pkts"] = conn.resp.pkts
    rec["resp_ip_bytes"] = conn.resp.ip_bytes
    if conn.orig.l2:
        rec["orig_l2_addr"] = _mac(conn.orig.l2)
    if conn.resp.l2:
        rec["resp_l2_addr"] = _mac(conn.resp.l2)
    if conn.vlan >= 0:
        rec["vlan"] = conn.vlan
    if conn.inner_vlan >= 0:
        rec["inner_vlan"] = conn.inner_vlan
    rec["ip_proto"] = conn.ip_proto
    return rec
