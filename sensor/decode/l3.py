"""IPv4, IPv6 (with extension headers) and the TCP/UDP/ICMP headers.

The length checks follow Zeek's IP and transport analyzers so that a packet
Zeek drops is dropped here with the same weird name, and a packet Zeek keeps
(snap-length truncated payload, Ethernet padding) is kept with the same byte
counts: ``ip_total_len`` comes from the header, never from the capture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sensor.decode.packet import Packet

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMP6 = 58

# IPv6 extension headers that Zeek walks (RFC 8200 section 4): hop-by-hop,
# routing, fragment, destination options, authentication, mobility.
_EXT_HOPOPTS = 0
_EXT_ROUTING = 43
_EXT_FRAGMENT = 44
_EXT_AH = 51
_EXT_DSTOPTS = 60
_EXT_MOBILITY = 135

# Protocols that are not tracked as connections: tunnels that Zeek would
# decapsulate (IP-in-IP, IPv6-in-IP, GRE) and ESP, whose payload is opaque.
# TODO: decapsulate tunnels (Zeek logs the inner connections too).
_NOT_TRACKED = (4, 41, 47, 50)


def parse_ip(pkt: Packet, off: int, link_len: int) -> None:
    """Decode the IP header at ``off`` and the transport header after it.

    ``link_len`` is the number of link-layer bytes before ``off`` (Zeek
    compares the wire length with IP total length plus this).
    """
    data = pkt.data
    end = pkt.cap_end
    caplen = end - off
    pkt.ip_off = off
    if caplen < 20:
        pkt.anomaly = "truncated_IP"
        return
    version = data[off] >> 4

    if version == 4:
        pkt.ip_version = 4
        hdr_len = (data[off] & 0x0F) * 4
        total = int.from_bytes(data[off + 2 : off + 4], "big")
        pkt.ttl = data[off + 8]
        proto = data[off + 9]
        pkt.src = data[off + 12 : off + 16]
        pkt.dst = data[off + 16 : off + 20]
        frag = int.from_bytes(data[off + 6 : off + 8], "big")
        pkt.frag_id = int.from_bytes(data[off + 4 : off + 6], "big")
        pkt.frag_offset = (frag & 0x1FFF) * 8
        pkt.frag_more = (frag >> 13) & 1
        pkt.is_fragment = pkt.frag_offset != 0 or pkt.frag_more != 0
    elif version == 6:
        pkt.ip_version = 6
        if caplen < 40:
            pkt.anomaly = "truncated_IP"
            return
        plen = int.from_bytes(data[off + 4 : off + 6], "big")
        # Zeek takes an IPv6 payload length of 0 (jumbogram, offload) at
        # face value: the packet is then too short for its transport header.
        total = plen + 40
        pkt.ttl = data[off + 7]
        pkt.src = data[off + 8 : off + 24]
        pkt.dst = data[off + 24 : off + 40]
        hdr_len, proto = _ipv6_chain(pkt, off, data[off + 6])
        if hdr_len < 0:
            return
    else:
        pkt.anomaly = "unknown_ip_version"
        return

    # Length checks, in Zeek's order (packet_analysis/protocol/ip/IP.cc).
    if total == 0:
        pkt.anomaly = "ip_hdr_len_zero"  # reported, then the capture is trusted
        total = caplen
    if pkt.wirelen < total + link_len:
        pkt.anomaly = "truncated_IP_len"
        return
    if hdr_len > total:
        pkt.anomaly = "invalid_IP_header_size"
        return
    if hdr_len > caplen:
        pkt.anomaly = "internally_truncated_header"
        return
    if version == 4 and hdr_len < 20:
        pkt.anomaly = "IPv4_min_header_size"
        return
    pkt.ip_total_len = total
    pkt.ip_hdr_len = hdr_len
    pkt.ip_proto = proto
    if pkt.is_fragment:
        if caplen < total:
            pkt.anomaly = "incompletely_captured_fragment"
            if pkt.frag_offset != 0:
                return
            # Zeek keeps a first fragment for header-only analysis.
            pkt.is_fragment = False
        else:
            return  # the table reassembles, then calls parse_l4
    parse_l4(pkt)


def _ipv6_chain(pkt: Packet, off: int, nxt: int) -> tuple[int, int]:
    """Walk the IPv6 extension headers; returns (header length, protocol)."""
    data = pkt.data
    end = pkt.cap_end
    pos = off + 40
    while nxt in (
        _EXT_HOPOPTS,
        _EXT_ROUTING,
        _EXT_FRAGMENT,
        _EXT_AH,
        _EXT_DSTOPTS,
        _EXT_MOBILITY,
    ):
        if end - pos < 8:
            pkt.anomaly = "bad_IPv6_ext_header"
            return -1, -1
        if nxt == _EXT_FRAGMENT:
            word = int.from_bytes(data[pos + 2 : pos + 4], "big")
            pkt.frag_offset = word & 0xFFF8
            pkt.frag_more = word & 1
            pkt.frag_id = int.from_bytes(data[pos + 4 : pos + 8], "big")
            pkt.is_fragment = pkt.frag_offset != 0 or pkt.frag_more != 0
            size = 8
        elif nxt == _EXT_AH:
            size = (data[pos + 1] + 2) * 4  # RFC 4302: length in 4-octet units, minus 2
        else:
            size = (data[pos + 1] + 1) * 8
        nxt = data[pos]
        pos += size
        if pos > end:
            pkt.anomaly = "bad_IPv6_ext_header"
            return -1, -1
        if pkt.is_fragment:
            break  # what follows belongs to the reassembled datagram
    return pos - off, nxt


def parse_l4(pkt: Packet) -> None:
    """Decode the transport header after a complete IP header."""
    data = pkt.data
    off = pkt.ip_off + pkt.ip_hdr_len
    length = pkt.ip_total_len - pkt.ip_hdr_len  # by the IP header
    remaining = pkt.cap_end - off  # by the capture (may include padding)
    pkt.l4_off = off
    pkt.l4_len = length
    proto = pkt.ip_proto

    if proto == PROTO_TCP:
        if not _header_fits(pkt, 20, length, remaining):
            return
        pkt.sport = int.from_bytes(data[off : off + 2], "big")
        pkt.dport = int.from_bytes(data[off + 2 : off + 4], "big")
        pkt.seq = int.from_bytes(data[off + 4 : off + 8], "big")
        pkt.ack = int.from_bytes(data[off + 8 : off + 12], "big")
        hlen = (data[off + 12] >> 4) * 4
        pkt.tcp_flags = data[off + 13]
        pkt.window = int.from_bytes(data[off + 14 : off + 16], "big")
        if hlen < 20:
            pkt.anomaly = "bad_TCP_header_len"
            return
        if hlen > length or hlen > remaining:
            pkt.anomaly = "truncated_header"
            return
        pkt.tcp_hdr_len = hlen
        if pkt.tcp_flags & 0x02:
            pkt.wscale = _tcp_wscale(data, off + 20, off + hlen)
        _set_payload(pkt, off + hlen, length - hlen, remaining - hlen)
    elif proto == PROTO_UDP:
        if not _header_fits(pkt, 8, length, remaining):
            return
        pkt.sport = int.from_bytes(data[off : off + 2], "big")
        pkt.dport = int.from_bytes(data[off + 2 : off + 4], "big")
        pkt.udp_len = int.from_bytes(data[off + 4 : off + 6], "big")
        if pkt.udp_len != length:
            pkt.anomaly = "UDP_datagram_length_mismatch"
        _set_payload(pkt, off + 8, length - 8, remaining - 8)
    elif proto in (PROTO_ICMP, PROTO_ICMP6):
        if not _header_fits(pkt, 8, length, remaining):
            return
        pkt.icmp_type = data[off]
        pkt.icmp_code = data[off + 1]
        _set_payload(pkt, off + 8, length - 8, remaining - 8)
    elif proto == 59:
        pkt.anomaly = "ipv6_no_next"
    elif proto in _NOT_TRACKED:
        pkt.anomaly = "unknown_protocol"
    # Other protocols (IGMP, PIM, ...) are tracked without ports, as Zeek's
    # "unknown_transport" connections.


def _header_fits(pkt: Packet, need: int, length: int, remaining: int) -> bool:
    # Zeek's CheckHeaderTrunc: a zero IP payload length (offload) is ignored.
    if length and length < need:
        pkt.anomaly = "truncated_header"
        return False
    if remaining < need:
        pkt.anomaly = "internally_truncated_header"
        return False
    return True


def _set_payload(pkt: Packet, off: int, length: int, remaining: int) -> None:
    pkt.payload_off = off
    pkt.payload_len = length
    pkt.payload_caplen = max(0, min(length, remaining))


def _tcp_wscale(data: bytes, pos: int, end: int) -> int:
    """The window-scale option of a SYN (RFC 7323 section 2), or -1."""
    while pos < end:
        kind = data[pos]
        if kind == 0:
            break
        if kind == 1:
            pos += 1
            continue
        if pos + 1 >= end:
            break
        olen = data[pos + 1]
        if olen < 2 or pos + olen > end:
            break
        if kind == 3 and olen >= 3:
            return data[pos + 2]
        pos += olen
    return -1
