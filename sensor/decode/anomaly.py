"""Every anomaly name the decoders and the connection table may report.

A malformed packet is data, not an error: the decoder attaches one of these
names to it and the connection table counts it (``stats()``) and, where the
packet belongs to a connection, reports it as a weird. Where Zeek has a weird
for the same problem the name is Zeek's, so that our weird.log lines up with
Zeek's; names Zeek lacks are marked "(ours)".

Both decoders (``sensor/decode/packet.py`` and its compiled twin) use only
the names in :data:`ANOMALIES`.
"""

from __future__ import annotations

#: Name -> meaning. The table is the documentation; keep it complete.
ANOMALIES: dict[str, str] = {
    # Link layer.
    "truncated_link_header": "(ours) the captured bytes end inside the link-layer header (Ethernet, SLL, SLL2, NULL).",
    "unknown_link_type": "(ours) the capture's LINKTYPE is not one the decoder knows.",
    "truncated_vlan_header": "(ours) an 802.1Q/802.1ad tag is cut short.",
    "truncated_mpls_header": "(ours) an MPLS label stack ends before its bottom-of-stack label.",
    "mpls_unknown_payload": "(ours) after the MPLS stack the version nibble is neither 4 nor 6.",
    "truncated_pppoe_header": "(ours) a PPPoE session header or its PPP protocol field is cut short.",
    "non_ip_packet": "(ours) the frame carries something other than IP (e.g. LLC, LLDP); counted, not tracked.",
    "truncated_ARP": "(ours) an ARP packet shorter than its fixed header.",
    "unknown_null_family": "(ours) a BSD loopback header names an address family other than IPv4/IPv6.",
    # IP.
    "truncated_IP": "Fewer captured bytes than a minimal IPv4 (20) or IPv6 (40) header (Zeek: truncated_IP).",
    "unknown_ip_version": "The IP version nibble is neither 4 nor 6 (Zeek: unknown_ip_version).",
    "ip_hdr_len_zero": "The IPv4 total length is 0 (segmentation offload); the captured length is used instead (Zeek: ip_hdr_len_zero).",
    "truncated_IP_len": "The wire length is shorter than the IP total length claims (Zeek: truncated_IP_len).",
    "invalid_IP_header_size": "The IP header length exceeds the total length (Zeek: invalid_IP_header_size).",
    "internally_truncated_header": "The IP header (with IPv6 extension headers) is longer than the captured bytes (Zeek: internally_truncated_header).",
    "IPv4_min_header_size": "IPv4 IHL below 5 words (Zeek: IPv4_min_header_size).",
    "bad_IPv6_ext_header": "(ours) an IPv6 extension header runs past the packet.",
    "incompletely_captured_fragment": "A fragment whose bytes were not all captured; not reassembled (Zeek: incompletely_captured_fragment).",
    "fragment_overlap": "Two fragments of one datagram overlap (Zeek: fragment_overlap).",
    "fragment_size_inconsistency": "Fragments disagree on where the datagram ends; the largest end is kept (Zeek: fragment_size_inconsistency).",
    "excessively_large_fragment": "A fragment reaches past 64 KiB (Zeek: excessively_large_fragment).",
    "fragment_table_full": "(ours) the fragment memory bound was hit; the oldest pending datagram was dropped.",
    "ipv6_no_next": "IPv6 next header is 59, no next header (Zeek: ipv6_no_next).",
    "unknown_protocol": "(ours) an IP protocol the connection table does not track (e.g. GRE, ESP); counted only.",
    # Transport.
    "truncated_header": "The transport header is longer than the IP payload (Zeek: truncated_header).",
    "bad_TCP_header_len": "TCP data offset below 5 words (Zeek: bad_TCP_header_len).",
    "UDP_datagram_length_mismatch": "The UDP length field differs from the IP payload length (Zeek: UDP_datagram_length_mismatch).",
    "truncated_tcp_payload": "TCP payload not fully captured (snap length); its bytes count as missing (Zeek: truncated_tcp_payload).",
    "TCP_seq_underflow_or_misorder": "A segment lies before the endpoint's initial sequence number (Zeek: TCP_seq_underflow_or_misorder).",
    "TCP_ack_underflow_or_misorder": "An acknowledgment lies before the peer's initial sequence number (Zeek: TCP_ack_underflow_or_misorder).",
    "SYN_seq_jump": "A repeated SYN with a different initial sequence number (Zeek: SYN_seq_jump).",
    "above_hole_data_without_any_acks": "More than 16 KiB buffered above a hole with nothing acknowledged; gap accounting stops for that side (Zeek: above_hole_data_without_any_acks).",
    # Connection table.
    "conn_table_full": "(ours) the connection table was full; the least recently active connection was finished early to make room.",
}


def is_known(name: str) -> bool:
    """Whether ``name`` is a documented anomaly name."""
    return name in ANOMALIES
