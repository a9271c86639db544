# cython: language_level=3
"""Compiled packet decoder; twin of sensor.decode.packet.

The decoder itself lives in decode.pxd as inline C functions, so that
ext/flow.pyx compiles it into its own loop. This module gives it the twin's
Python interface: :func:`decode` returns the same dict as
``sensor.decode.packet.decode`` (for differential tests and tools; the
packet path never makes that dict).
"""

from libc.stdint cimport uint8_t, uint32_t

from decode cimport A_COUNT, Packet, decode_packet

import ipaddress


#: Anomaly names by A_* code (decode.pxd); index 0 is "no anomaly".
ANOMALY_NAMES = (
    "",
    "truncated_link_header",
    "unknown_link_type",
    "truncated_vlan_header",
    "truncated_mpls_header",
    "mpls_unknown_payload",
    "truncated_pppoe_header",
    "non_ip_packet",
    "truncated_ARP",
    "unknown_null_family",
    "truncated_IP",
    "unknown_ip_version",
    "ip_hdr_len_zero",
    "truncated_IP_len",
    "invalid_IP_header_size",
    "internally_truncated_header",
    "incompletely_captured_fragment",
    "IPv4_min_header_size",
    "bad_IPv6_ext_header",
    "ipv6_no_next",
    "unknown_protocol",
    "truncated_header",
    "bad_TCP_header_len",
    "UDP_datagram_length_mismatch",
    "truncated_tcp_payload",
    "conn_table_full",
)
assert len(ANOMALY_NAMES) == A_COUNT, "ANOMALY_NAMES out of step with decode.pxd"


cdef str mac(const uint8_t *b):
    return "%02x:%02x:%02x:%02x:%02x:%02x" % (b[0], b[1], b[2], b[3], b[4], b[5])


cdef str address(const uint8_t *b, int n):
    return str(ipaddress.ip_address(bytes(b[:n])))


def decode(int linktype, const uint8_t[:] data not None):
    """A plain dict of the layers of one packet.

    Same keys and values as ``sensor.decode.packet.decode``; see its module
    docstring for their meaning.
    """
    cdef Packet p
    cdef uint32_t n = data.shape[0]
    cdef const uint8_t *buf = &data[0] if n else <const uint8_t *>b""
    cdef uint32_t i
    with nogil:
        decode_packet(buf, n, n, linktype, &p)

    out = {"linktype": linktype, "anomaly": ANOMALY_NAMES[p.anomaly]}
    if p.has_l2_src:
        out["l2_src"] = mac(p.l2_src)
    if p.has_l2_dst:
        out["l2_dst"] = mac(p.l2_dst)
    if p.ethertype >= 0:
        out["ethertype"] = p.ethertype
    if p.vlan >= 0:
        out["vlan"] = p.vlan
    if p.inner_vlan >= 0:
        out["inner_vlan"] = p.inner_vlan
    if p.arp_op >= 0:
        out["arp_op"] = p.arp_op
    if p.has_arp:
        out["arp_sha"] = mac(p.arp_sha)
        out["arp_spa"] = address(p.arp_spa, 4)
        out["arp_tha"] = mac(p.arp_tha)
        out["arp_tpa"] = address(p.arp_tpa, 4)
    if p.mpls_count:
        out["mpls"] = [
            ((buf[p.mpls_off + 4 * i] << 12) | (buf[p.mpls_off + 4 * i + 1] << 4)
             | (buf[p.mpls_off + 4 * i + 2] >> 4))
            for i in range(p.mpls_count)
        ]

    if p.ip_version:
        out["ip_version"] = p.ip_version
        if p.addr_len:
            out["src"] = address(p.src, p.addr_len)
            out["dst"] = address(p.dst, p.addr_len)
        if p.ip_proto >= 0:
            out["ip_proto"] = p.ip_proto
        if p.ttl >= 0:
            out["ttl"] = p.ttl
        out["ip_total_len"] = p.ip_total_len
        out["ip_hdr_len"] = p.ip_hdr_len
        if p.is_fragment:
            out["frag_id"] = p.frag_id
            out["frag_offset"] = p.frag_offset
            out["frag_more"] = p.frag_more

    for name, value in (
        ("sport", p.sport), ("dport", p.dport), ("tcp_flags", p.tcp_flags),
        ("seq", p.seq), ("ack", p.ack), ("window", p.window),
        ("tcp_hdr_len", p.tcp_hdr_len), ("icmp_type", p.icmp_type),
        ("icmp_code", p.icmp_code), ("udp_len", p.udp_len),
    ):
        if value >= 0:
            out[name] = value
    if p.tcp_flags >= 0:
        out["wscale"] = p.wscale
    if p.payload_off >= 0:
        out["payload_len"] = p.payload_len
        out["payload_caplen"] = p.payload_caplen
    return out
