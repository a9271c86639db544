"""Datagram protocols: NTP, DHCP, RADIUS, Teredo, RDPEUDP, Kerberos over UDP.

Zeek runs these analyzers on their registered ports and confirms a
protocol once one datagram parses; Teredo and RDPEUDP need both sides.
"""

from __future__ import annotations

from sensor.proto.flowdata import FlowData

NTP_PORTS = frozenset({123})
DHCP_PORTS = frozenset({67, 68})
RADIUS_PORTS = frozenset({1812})
TEREDO_PORTS = frozenset({3544})
RDPEUDP_PORTS = frozenset({3389})

_DHCP_COOKIE = b"\x63\x82\x53\x63"


def _either_port(flow: FlowData, ports: frozenset[int]) -> bool:
    return flow.resp_p in ports or flow.orig_p in ports


def ntp(flow: FlowData) -> bool:
    """NTP (RFC 5905 7.3): version 1-4, any mode; mode 6/7 are control."""
    if not _either_port(flow, NTP_PORTS):
        return False
    for p in flow.orig_pkts + flow.resp_pkts:
        if not p:
            continue
        version, mode = (p[0] >> 3) & 7, p[0] & 7
        if not 1 <= version <= 4:
            continue
        if mode in (6, 7) and len(p) >= 12:
            return True
        if 1 <= mode <= 5 and len(p) >= 48:
            return True
    return False


def dhcp(flow: FlowData) -> bool:
    """DHCP (RFC 2131 3): BOOTP op 1/2 with the magic cookie at offset 236."""
    if not _either_port(flow, DHCP_PORTS):
        return False
    return any(
        len(p) >= 240 and p[0] in (1, 2) and p[236:240] == _DHCP_COOKIE
        for p in flow.orig_pkts + flow.resp_pkts
    )


def radius(flow: FlowData) -> bool:
    """RADIUS (RFC 2865 3): known code, length field agrees with the datagram."""
    if not _either_port(flow, RADIUS_PORTS):
        return False
    for p in flow.orig_pkts + flow.resp_pkts:
        code_ok = len(p) >= 20 and p[0] in (1, 2, 3, 4, 5, 11, 12, 13)
        if code_ok and 20 <= int.from_bytes(p[2:4], "big") <= len(p):
            return True
    return False


def teredo_ipv6(p: bytes) -> bytes | None:
    """The IPv6 packet inside a Teredo datagram, or None.

    RFC 4380 5.1.1: optional authentication and origin indications, then
    an IPv6 header whose payload length matches the datagram. Off the
    Teredo port one of the addresses must be in the Teredo prefix
    2001:0::/32 (RFC 4380 2.6), which keeps random datagrams out.
    """
    if p[:2] == b"\x00\x01" and len(p) >= 13:
        p = p[13 + p[2] + p[3] :]
    if p[:2] == b"\x00\x00" and len(p) >= 8:
        p = p[8:]
    if len(p) < 40 or p[0] >> 4 != 6:
        return None
    if 40 + int.from_bytes(p[4:6], "big") != len(p):
        return None
    return p


def _teredo_prefix(p: bytes) -> bool:
    return p[8:12] == b"\x20\x01\x00\x00" or p[24:28] == b"\x20\x01\x00\x00"


def teredo(flow: FlowData) -> bool:
    """Teredo: Zeek waits for valid encapsulation from both endpoints."""
    orig = [x for x in map(teredo_ipv6, flow.orig_pkts) if x is not None]
    resp = [x for x in map(teredo_ipv6, flow.resp_pkts) if x is not None]
    if not orig or not resp:
        return False
    if _either_port(flow, TEREDO_PORTS):
        return True
    return any(map(_teredo_prefix, orig)) and any(map(_teredo_prefix, resp))


def rdpeudp(flow: FlowData) -> bool:
    """RDP over UDP ([MS-RDPEUDP] 3.1.5.1): SYN, then the server's SYN+ACK.

    The SYN carries snSourceAck -1 and RDPUDP_FLAG_SYN (0x0001) in uFlags
    (bytes 6-7); Zeek confirms at a SYN+ACK (0x0005) from the responder.
    """
    if flow.resp_p not in RDPEUDP_PORTS or flow.partial:
        return False
    syn = any(
        len(p) >= 8 and p[:4] == b"\xff\xff\xff\xff" and p[7] & 0x01
        for p in flow.orig_pkts
    )
    synack = any(len(p) >= 8 and p[7] & 0x05 == 0x05 for p in flow.resp_pkts)
    return syn and synack
