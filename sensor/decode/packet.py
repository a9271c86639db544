"""Decode one captured packet: link layer, IP, and the transport header.

:func:`parse` fills a :class:`Packet` (plain integer fields, offsets into the
captured buffer, no copies) and never raises: malformed input sets
``Packet.anomaly`` to a name from :mod:`sensor.decode.anomaly` and decoding
stops at that layer. The compiled twin (``ext/decode.pyx``) follows this file
line by line.

:func:`decode` gives a plain dict view for tests and differential checks.
Its keys (a key is absent when its layer is absent):

``linktype``, ``anomaly`` (``""`` when clean), ``l2_src``, ``l2_dst``
(``aa:bb:..`` strings), ``ethertype``, ``vlan``, ``inner_vlan``,
``mpls`` (list of labels), ``arp_op``, and for Ethernet/IPv4 ARP the
sender's and target's hardware and protocol addresses ``arp_sha``,
``arp_spa``, ``arp_tha``, ``arp_tpa`` (text), ``ip_version``, ``src``, ``dst``
(text addresses), ``ip_proto`` (after IPv6 extension headers), ``ttl``,
``ip_total_len`` (bytes of IP as Zeek counts them), ``ip_hdr_len`` (with
extension headers), ``frag_id``, ``frag_offset`` (bytes), ``frag_more``,
``sport``, ``dport``, ``tcp_flags``, ``seq``, ``ack``, ``window``,
``tcp_hdr_len``, ``wscale`` (-1 when absent), ``icmp_type``, ``icmp_code``,
``udp_len``, ``payload_len`` (by the IP lengths), ``payload_caplen``
(captured, at most ``payload_len``).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sensor.decode.l3 import parse_ip

# LINKTYPE_* values (https://www.tcpdump.org/linktypes.html).
LINK_NULL = 0
LINK_ETHERNET = 1
LINK_RAW_12 = 12
LINK_RAW_14 = 14
LINK_RAW = 101
LINK_LOOP = 108
LINK_SLL = 113
LINK_IPV4 = 228
LINK_IPV6 = 229
LINK_SLL2 = 276

#: The link types both decoders read (this one and ext/decode.pyx); a
#: packet of another is counted and logged as ``unknown_link_type``.
LINK_TYPES = frozenset(
    {
        LINK_NULL,
        LINK_ETHERNET,
        LINK_RAW_12,
        LINK_RAW_14,
        LINK_RAW,
        LINK_LOOP,
        LINK_SLL,
        LINK_IPV4,
        LINK_IPV6,
        LINK_SLL2,
    }
)

ETH_IPV4 = 0x0800
ETH_ARP = 0x0806
ETH_VLAN = 0x8100
ETH_QINQ = 0x88A8
ETH_QINQ_OLD = 0x9100
ETH_IPV6 = 0x86DD
ETH_MPLS = 0x8847
ETH_MPLS_MC = 0x8848
ETH_PPPOE = 0x8864

#: The first six bytes of an Ethernet/IPv4 ARP packet (RFC 826).
ARP_ETH_IPV4 = b"\x00\x01\x08\x00\x06\x04"


class Packet:
    """The decoded layers of one packet, as integers and buffer offsets.

    Offsets index ``data`` (the captured bytes); ``cap_end`` is where the
    captured bytes of this packet end. ``-1`` marks an absent integer field.
    """

    __slots__ = (
        "ack",
        "anomaly",
        "arp_op",
        "arp_sha",
        "arp_spa",
        "arp_tha",
        "arp_tpa",
        "cap_end",
        "data",
        "dport",
        "dst",
        "ethertype",
        "frag_id",
        "frag_more",
        "frag_offset",
        "icmp_code",
        "icmp_type",
        "inner_vlan",
        "ip_hdr_len",
        "ip_off",
        "ip_proto",
        "ip_total_len",
        "ip_version",
        "is_fragment",
        "l2_dst",
        "l2_src",
        "l4_len",
        "l4_off",
        "linktype",
        "mpls",
        "payload_caplen",
        "payload_len",
        "payload_off",
        "seq",
        "sport",
        "src",
        "tcp_flags",
        "tcp_hdr_len",
        "ttl",
        "udp_len",
        "vlan",
        "window",
        "wirelen",
        "wscale",
    )  # fmt: skip

    def __init__(
        self, data: bytes, start: int, caplen: int, wirelen: int, linktype: int
    ) -> None:
        self.data = data
        self.cap_end = start + caplen
        self.wirelen = wirelen
        self.linktype = linktype
        self.anomaly = ""
        self.l2_src = b""
        self.l2_dst = b""
        self.ethertype = -1
        self.vlan = -1
        self.inner_vlan = -1
        self.mpls: list[int] = []
        self.arp_op = -1
        self.arp_sha = b""  # Ethernet/IPv4 ARP addresses, else empty
        self.arp_spa = b""
        self.arp_tha = b""
        self.arp_tpa = b""
        self.ip_version = 0
        self.ip_off = -1
        self.src = b""
        self.dst = b""
        self.ip_proto = -1
        self.ttl = -1
        self.ip_total_len = 0
        self.ip_hdr_len = 0
        self.frag_id = -1
        self.frag_offset = 0
        self.frag_more = 0
        self.is_fragment = False
        self.l4_off = -1
        self.l4_len = 0
        self.sport = -1
        self.dport = -1
        self.tcp_flags = -1
        self.seq = -1
        self.ack = -1
        self.window = -1
        self.tcp_hdr_len = -1
        self.wscale = -1
        self.icmp_type = -1
        self.icmp_code = -1
        self.udp_len = -1
        self.payload_off = -1
        self.payload_len = 0
        self.payload_caplen = 0

    def payload(self) -> bytes:
        """The captured transport payload (a copy)."""
        if self.payload_off < 0:
            return b""
        return self.data[self.payload_off : self.payload_off + self.payload_caplen]


def parse(data: bytes, start: int, caplen: int, wirelen: int, linktype: int) -> Packet:
    """Decode the packet at ``data[start:start+caplen]``; never raises."""
    pkt = Packet(data, start, caplen, wirelen, linktype)
    end = start + caplen
    off = start
    ethertype = -1

    # Link layer: find the network-layer protocol and where it starts.
    if linktype == LINK_ETHERNET:
        if caplen < 14:
            pkt.anomaly = "truncated_link_header"
            return pkt
        pkt.l2_dst = data[off : off + 6]
        pkt.l2_src = data[off + 6 : off + 12]
        ethertype = int.from_bytes(data[off + 12 : off + 14], "big")
        off += 14
    elif linktype == LINK_SLL:
        # Linux cooked v1: type, ARPHRD, address length, 8 address bytes, protocol.
        if caplen < 16:
            pkt.anomaly = "truncated_link_header"
            return pkt
        alen = int.from_bytes(data[off + 4 : off + 6], "big")
        if alen == 6:
            pkt.l2_src = data[off + 6 : off + 12]
        ethertype = int.from_bytes(data[off + 14 : off + 16], "big")
        off += 16
    elif linktype == LINK_SLL2:
        # Linux cooked v2: protocol first, then ifindex, ARPHRD, type, address.
        if caplen < 20:
            pkt.anomaly = "truncated_link_header"
            return pkt
        ethertype = int.from_bytes(data[off : off + 2], "big")
        alen = data[off + 11]
        if alen == 6:
            pkt.l2_src = data[off + 12 : off + 18]
        off += 20
    elif linktype in (LINK_NULL, LINK_LOOP):
        if caplen < 4:
            pkt.anomaly = "truncated_link_header"
            return pkt
        # NULL is in the capturing host's byte order; LOOP is big-endian.
        fam = int.from_bytes(data[off : off + 4], "big")
        if linktype == LINK_NULL and fam > 0xFFFF:
            fam = int.from_bytes(data[off : off + 4], "little")
        off += 4
        if fam == 2:
            ethertype = ETH_IPV4
        elif fam in (10, 24, 28, 30):
            ethertype = ETH_IPV6
        else:
            pkt.anomaly = "unknown_null_family"
            return pkt
    elif linktype in (LINK_RAW, LINK_RAW_12, LINK_RAW_14, LINK_IPV4, LINK_IPV6):
        if caplen < 1:
            pkt.anomaly = "truncated_IP"
            return pkt
        ethertype = ETH_IPV6 if data[off] >> 4 == 6 else ETH_IPV4
    else:
        pkt.anomaly = "unknown_link_type"
        return pkt

    # Tags and label stacks between the link header and IP.
    while True:
        if ethertype in (ETH_VLAN, ETH_QINQ, ETH_QINQ_OLD):
            if end - off < 4:
                pkt.anomaly = "truncated_vlan_header"
                return pkt
            vid = int.from_bytes(data[off : off + 2], "big") & 0x0FFF
            # Zeek records the outermost tag as vlan and the next as inner_vlan.
            if pkt.vlan < 0:
                pkt.vlan = vid
            elif pkt.inner_vlan < 0:
                pkt.inner_vlan = vid
            ethertype = int.from_bytes(data[off + 2 : off + 4], "big")
            off += 4
        elif ethertype in (ETH_MPLS, ETH_MPLS_MC):
            while True:
                if end - off < 4:
                    pkt.anomaly = "truncated_mpls_header"
                    return pkt
                word = int.from_bytes(data[off : off + 4], "big")
                pkt.mpls.append(word >> 12)
                off += 4
                if word & 0x100:  # bottom of stack (RFC 3032 section 2.1)
                    break
            if off >= end:
                pkt.anomaly = "truncated_mpls_header"
                return pkt
            nib = data[off] >> 4
            if nib == 4:
                ethertype = ETH_IPV4
            elif nib == 6:
                ethertype = ETH_IPV6
            else:
                pkt.anomaly = "mpls_unknown_payload"
                return pkt
        elif ethertype == ETH_PPPOE:
            # RFC 2516 session header (6 bytes) then the PPP protocol.
            if end - off < 8:
                pkt.anomaly = "truncated_pppoe_header"
                return pkt
            ppp = int.from_bytes(data[off + 6 : off + 8], "big")
            off += 8
            if ppp == 0x0021:
                ethertype = ETH_IPV4
            elif ppp == 0x0057:
                ethertype = ETH_IPV6
            else:
                pkt.ethertype = ETH_PPPOE
                pkt.anomaly = "non_ip_packet"
                return pkt
        else:
            break
    pkt.ethertype = ethertype

    if ethertype == ETH_ARP:
        if end - off < 8:
            pkt.anomaly = "truncated_ARP"
        else:
            pkt.arp_op = int.from_bytes(data[off + 6 : off + 8], "big")
            # RFC 826 over Ethernet for IPv4: hardware type 1, protocol
            # 0x0800, address lengths 6 and 4; 28 bytes in all.
            if end - off >= 28 and data[off : off + 6] == ARP_ETH_IPV4:
                pkt.arp_sha = data[off + 8 : off + 14]
                pkt.arp_spa = data[off + 14 : off + 18]
                pkt.arp_tha = data[off + 18 : off + 24]
                pkt.arp_tpa = data[off + 24 : off + 28]
        return pkt
    if ethertype not in (ETH_IPV4, ETH_IPV6):
        pkt.anomaly = "non_ip_packet"
        return pkt

    parse_ip(pkt, off, off - start)
    return pkt


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def decode(linktype: int, data: bytes) -> dict[str, Any]:
    """A plain dict of the layers of one packet (see the module docstring)."""
    p = parse(data, 0, len(data), len(data), linktype)
    out: dict[str, Any] = {"linktype": linktype, "anomaly": p.anomaly}
    if p.l2_src:
        out["l2_src"] = _mac(p.l2_src)
    if p.l2_dst:
        out["l2_dst"] = _mac(p.l2_dst)
    for name in ("ethertype", "vlan", "inner_vlan", "arp_op"):
        value = getattr(p, name)
        if value >= 0:
            out[name] = value
    if p.arp_sha:
        out["arp_sha"] = _mac(p.arp_sha)
        out["arp_spa"] = str(ipaddress.ip_address(p.arp_spa))
        out["arp_tha"] = _mac(p.arp_tha)
        out["arp_tpa"] = str(ipaddress.ip_address(p.arp_tpa))
    if p.mpls:
        out["mpls"] = list(p.mpls)
    if p.ip_version:
        out["ip_version"] = p.ip_version
        if p.src:
            out["src"] = str(ipaddress.ip_address(p.src))
            out["dst"] = str(ipaddress.ip_address(p.dst))
        for name in ("ip_proto", "ttl", "ip_total_len", "ip_hdr_len"):
            value = getattr(p, name)
            if value >= 0:
                out[name] = value
        if p.is_fragment:
            out["frag_id"] = p.frag_id
            out["frag_offset"] = p.frag_offset
            out["frag_more"] = p.frag_more
    for name in (
        "sport", "dport", "tcp_flags", "seq", "ack", "window", "tcp_hdr_len",
        "icmp_type", "icmp_code", "udp_len",
    ):  # fmt: skip
        value = getattr(p, name)
        if value >= 0:
            out[name] = value
    if p.tcp_flags >= 0:
        out["wscale"] = p.wscale
    if p.payload_off >= 0:
        out["payload_len"] = p.payload_len
        out["payload_caplen"] = p.payload_caplen
    return out
