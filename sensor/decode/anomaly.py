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
    "too_many_fragments": "(ours) a datagram came in more than 64 fragments; it was dropped to bound the work per fragment.",
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
    "repeated_SYN_with_ack": "The originator repeated its SYN, now with ACK set (Zeek: repeated_SYN_with_ack).",
    "repeated_SYN_reply_wo_ack": "The responder repeated a SYN reply without ACK (Zeek: repeated_SYN_reply_wo_ack).",
    "inappropriate_FIN": "A FIN before the handshake completed (Zeek: inappropriate_FIN).",
    "data_before_established": "Payload before the handshake completed (Zeek: data_before_established).",
    "SYN_after_partial": "A SYN from a side first seen mid-stream (Zeek: SYN_after_partial).",
    "SYN_after_close": "A SYN from a side that already sent FIN (Zeek: SYN_after_close).",
    "FIN_advanced_last_seq": "A second FIN further along the sequence space (Zeek: FIN_advanced_last_seq).",
    "SYN_after_reset": "A SYN from a side that already sent RST (Zeek: SYN_after_reset).",
    "FIN_after_reset": "A FIN from a side that already sent RST (Zeek: FIN_after_reset).",
    "data_after_reset": "Payload from a side that already sent RST (Zeek: data_after_reset).",
    "connection_originator_SYN_ack": "The originator's first packet is a SYN-ACK (Zeek: connection_originator_SYN_ack).",
    "simultaneous_open": "Both sides sent a SYN without ACK (Zeek: simultaneous_open).",
    "unsolicited_SYN_response": "A SYN-ACK with no SYN seen (Zeek: unsolicited_SYN_response).",
    "spontaneous_FIN": "A connection's first packet from this side is a FIN (Zeek: spontaneous_FIN).",
    "spontaneous_RST": "A connection's first packet from this side is a RST that rejects nothing (Zeek: spontaneous_RST).",
    "TCP_christmas": "SYN and RST set together (Zeek: TCP_christmas).",
    "baroque_SYN": "SYN with URG set (Zeek: baroque_SYN).",
    "SYN_with_data": "A SYN that carries payload (Zeek: SYN_with_data).",
    "possible_split_routing": "One side acknowledges data never seen from the other: the capture sees one direction (Zeek: possible_split_routing).",
    "SYN_inside_connection": "A SYN after data was sent on an established connection (Zeek: SYN_inside_connection).",
    "DNS_unknown_opcode": "A message on a DNS port with an opcode DNS does not use; Zeek drops its DNS analyzer (Zeek: DNS_unknown_opcode).",
    "DNS_Conn_count_too_large": "A message on a DNS port claiming more than 25 questions; Zeek drops its DNS analyzer (Zeek: DNS_Conn_count_too_large).",
    # Connection table.
    "conn_table_full": "(ours) the connection table was full; the least recently active connection was finished early to make room.",
}


def is_known(name: str) -> bool:
    """Whether ``name`` is a documented anomaly name."""
    return name in ANOMALIES
