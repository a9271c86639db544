"""Tunnel decapsulation: the inner packet of IP-in-IP, GRE, VXLAN, Geneve, GTP.

Zeek decapsulates these by default and tracks the inner connections as
ordinary ones; for UDP-based tunnels the outer UDP connection is logged too.
Each function returns ``(linktype, inner bytes)`` for the table to decode
again, or ``(0, b"")`` when the packet is not a well-formed tunnel packet.
Teredo lives in :mod:`sensor.flow.udp` because it is detected by content.

TODO: AYIYA (UDP 5072), which no shared capture has and few networks use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sensor.decode.packet import Packet

LINK_ETHERNET = 1
LINK_IPV4 = 228
LINK_IPV6 = 229
VXLAN_PORT = 4789
GENEVE_PORT = 6081
GTP_U_PORT = 2152

_NONE = (0, b"")


def ip_in_ip(pkt: Packet) -> tuple[int, bytes]:
    """IPv4 or IPv6 carried directly in IP (protocols 4 and 41, RFC 2003/4213)."""
    start = pkt.l4_off
    end = min(pkt.ip_off + pkt.ip_total_len, pkt.cap_end)
    if start < 0 or end - start < 20:
        return _NONE
    return (LINK_IPV4 if pkt.ip_proto == 4 else LINK_IPV6), pkt.data[start:end]


def gre(pkt: Packet) -> tuple[int, bytes]:
    """The payload of a GRE packet (RFC 2784/2890; version 1 is PPTP, RFC 2637)."""
    data = pkt.data
    off = pkt.l4_off
    end = min(pkt.ip_off + pkt.ip_total_len, pkt.cap_end)
    if off < 0 or end - off < 4:
        return _NONE
    flags = data[off]
    version = data[off + 1] & 0x07
    proto = int.from_bytes(data[off + 2 : off + 4], "big")
    size = 4
    if version == 0:
        size += 4 * (bool(flags & 0x80) + bool(flags & 0x20) + bool(flags & 0x10))
    elif version == 1:
        size += 4 + 4 * bool(flags & 0x10) + 4 * bool(data[off + 1] & 0x80)
        if proto == 0x880B:  # PPP inside PPTP: address/control, then protocol
            inner = data[off + size : end]
            if len(inner) >= 4 and inner[:2] == b"\xff\x03":
                proto = (
                    0x0800
                    if inner[2:4] == b"\x00\x21"
                    else 0x86DD
                    if inner[2:4] == b"\x00\x57"
                    else 0
                )
                size += 4
    else:
        return _NONE
    payload = data[off + size : end]
    if proto == 0x0800:
        return LINK_IPV4, payload
    if proto == 0x86DD:
        return LINK_IPV6, payload
    if proto == 0x6558:  # transparent Ethernet bridging
        return LINK_ETHERNET, payload
    return _NONE


def udp_tunnel(pkt: Packet, resp_port: int) -> tuple[int, bytes]:
    """The frame inside VXLAN (RFC 7348), Geneve (RFC 8926) or GTP-U."""
    data = pkt.data
    off = pkt.payload_off
    end = off + pkt.payload_caplen
    if resp_port == GTP_U_PORT:
        return _gtp_u(data, off, end)
    if off < 0 or end - off < 8 + 14:
        return _NONE
    if resp_port == VXLAN_PORT and data[off] & 0x08:
        return LINK_ETHERNET, data[off + 8 : end]
    if resp_port == GENEVE_PORT and data[off] >> 6 == 0:
        size = 8 + (data[off] & 0x3F) * 4
        proto = int.from_bytes(data[off + 2 : off + 4], "big")
        if proto == 0x6558 and end - off >= size + 14:
            return LINK_ETHERNET, data[off + size : end]
    return _NONE


def _gtp_u(data: bytes, off: int, end: int) -> tuple[int, bytes]:
    """The IP packet of a GTPv1-U G-PDU (3GPP TS 29.281 section 5)."""
    if off < 0 or end - off < 8:
        return _NONE
    flags = data[off]
    if flags >> 5 != 1 or not flags & 0x10 or data[off + 1] != 0xFF:
        return _NONE  # not version 1, not GTP (PT), or not a G-PDU
    pos = off + 8
    if flags & 0x07:  # E, S or PN: sequence, N-PDU and next-extension type
        if end - pos < 4:
            return _NONE
        nxt = data[pos + 3] if flags & 0x04 else 0
        pos += 4
        while nxt:  # extension headers, each a length in 4-byte units
            if pos >= end or data[pos] == 0:
                return _NONE
            size = data[pos] * 4
            if pos + size > end:
                return _NONE
            nxt = data[pos + size - 1]
            pos += size
    if end - pos < 20:
        return _NONE
    version = data[pos] >> 4
    if version == 4:
        return LINK_IPV4, data[pos:end]
    if version == 6:
        return LINK_IPV6, data[pos:end]
    return _NONE
