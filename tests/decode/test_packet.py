"""The pure-Python decoder: every link type, tags and labels, hostile input."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.decode.anomaly import ANOMALIES
from sensor.decode.packet import decode
from tests.flow.craft import ACK, SYN, eth, icmp, ipv4, ipv6, tcp, udp

LINKTYPES = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 9999]
EXAMPLES = 20000 if os.environ.get("SENSOR_FUZZ") == "deep" else 400

SEG = tcp(1234, 80, SYN | ACK, seq=7, ack=9, data=b"hello")
IP4 = ipv4("192.0.2.1", "198.51.100.2", 6, SEG)


def test_ethernet_tcp_fields() -> None:
    d = decode(1, eth(IP4))
    assert d["anomaly"] == ""
    assert d["l2_src"] == "02:00:00:00:00:01" and d["l2_dst"] == "02:00:00:00:00:02"
    assert (d["src"], d["dst"], d["ip_proto"]) == ("192.0.2.1", "198.51.100.2", 6)
    assert (d["sport"], d["dport"], d["seq"], d["ack"]) == (1234, 80, 7, 9)
    assert d["tcp_flags"] == SYN | ACK and d["tcp_hdr_len"] == 20
    assert (d["payload_len"], d["payload_caplen"]) == (5, 5)
    assert d["ip_total_len"] == 45 and d["ip_hdr_len"] == 20


@pytest.mark.parametrize(
    ("linktype", "header"),
    [
        (0, struct.pack("<I", 2)),  # BSD NULL, little-endian host
        (0, struct.pack(">I", 2)),  # BSD NULL, big-endian host
        (108, struct.pack(">I", 2)),  # OpenBSD LOOP
        (101, b""),
        (12, b""),
        (14, b""),
        (228, b""),
        (113, struct.pack("!HHH", 0, 1, 6) + bytes(range(6)) + b"\0\0" + b"\x08\x00"),
        (
            276,
            b"\x08\x00\0\0"
            + b"\0\0\0\1"
            + b"\0\1"
            + b"\0\6"
            + bytes(range(6))
            + b"\0\0",
        ),
    ],
)
def test_other_link_types(linktype: int, header: bytes) -> None:
    d = decode(linktype, header + IP4)
    assert d["anomaly"] == ""
    assert (d["src"], d["sport"], d["payload_len"]) == ("192.0.2.1", 1234, 5)
    if linktype in (113, 276):
        assert d["l2_src"] == "00:01:02:03:04:05"


def test_qinq_and_vlan() -> None:
    tags = b"\x00\x0a\x81\x00" + b"\x20\x14\x08\x00"  # outer 10, inner 20 (PCP 1)
    d = decode(1, eth(tags + IP4, ethertype=0x88A8))
    assert (d["vlan"], d["inner_vlan"], d["sport"]) == (10, 20, 1234)


def test_mpls_stack_guesses_ip_version() -> None:
    labels = struct.pack("!I", (100 << 12)) + struct.pack("!I", (200 << 12) | 0x100)
    d = decode(1, eth(labels + IP4, ethertype=0x8847))
    assert d["mpls"] == [100, 200] and d["ip_version"] == 4 and d["dport"] == 80
    v6 = ipv6("2001:db8::1", "2001:db8::2", 17, udp(5, 6, b"x"))
    d = decode(1, eth(struct.pack("!I", (3 << 12) | 0x100) + v6, ethertype=0x8847))
    assert d["ip_version"] == 6 and d["sport"] == 5


def test_pppoe_session() -> None:
    pppoe = b"\x11\x00\x00\x01" + struct.pack("!H", len(IP4) + 2) + b"\x00\x21"
    d = decode(1, eth(pppoe + IP4, ethertype=0x8864))
    assert d["src"] == "192.0.2.1" and d["sport"] == 1234


def test_ipv6_extension_headers() -> None:
    hop = bytes([60, 0]) + b"\0" * 6  # hop-by-hop -> destination options
    dst = bytes([17, 0]) + b"\0" * 6  # destination options -> UDP
    pkt = ipv6("2001:db8::1", "2001:db8::2", 0, hop + dst + udp(53, 999, b"abc"))
    d = decode(1, eth(pkt, ethertype=0x86DD))
    assert d["ip_proto"] == 17 and d["ip_hdr_len"] == 56 and d["payload_len"] == 3


def test_ipv6_fragment_header() -> None:
    frag = bytes([58, 0]) + struct.pack("!HI", (1 << 3) | 1, 99)
    pkt = ipv6("2001:db8::1", "2001:db8::2", 44, frag + b"\0" * 16)
    d = decode(229, pkt)
    assert (d["frag_id"], d["frag_offset"], d["frag_more"]) == (99, 8, 1)
    assert "sport" not in d and "icmp_type" not in d


def test_ipv4_fragment_fields() -> None:
    d = decode(
        101, ipv4("192.0.2.1", "192.0.2.2", 17, b"\0" * 16, ident=5, frag=0x2000 | 3)
    )
    assert (d["frag_id"], d["frag_offset"], d["frag_more"]) == (5, 24, 1)


def test_arp() -> None:
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + b"\0" * 20
    d = decode(1, eth(arp, ethertype=0x0806))
    assert d["arp_op"] == 2 and "ip_version" not in d
    assert (d["arp_sha"], d["arp_spa"], d["arp_tpa"]) == (
        "00:00:00:00:00:00",
        "0.0.0.0",
        "0.0.0.0",
    )
    # Another hardware type, or cut before the target address: op only.
    other = struct.pack("!HHBBH", 6, 0x0800, 6, 4, 1) + b"\0" * 20
    for data in (other, arp[:27]):
        d = decode(1, eth(data, ethertype=0x0806))
        assert d["arp_op"] in (1, 2) and "arp_sha" not in d


def test_icmp_and_udp() -> None:
    d = decode(101, ipv4("192.0.2.1", "192.0.2.2", 1, icmp(3, 1, b"\0" * 28)))
    assert (d["icmp_type"], d["icmp_code"], d["payload_len"]) == (3, 1, 28)
    d = decode(101, ipv4("192.0.2.1", "192.0.2.2", 17, udp(1, 2, b"xyz")))
    assert (d["udp_len"], d["payload_len"]) == (11, 3)


@pytest.mark.parametrize(
    ("frame", "name"),
    [
        (b"\x45" + b"\0" * 10, "truncated_IP"),
        (IP4[:0] + b"\x75" + IP4[1:], "unknown_ip_version"),
        (b"\x44" + IP4[1:], "IPv4_min_header_size"),
        (IP4[:32] + bytes([0x20]) + IP4[33:], "bad_TCP_header_len"),
        (IP4[:32] + bytes([0xF0]) + IP4[33:], "truncated_header"),
        (ipv4("192.0.2.1", "192.0.2.2", 6, b"\0" * 8), "truncated_header"),
    ],
)
def test_named_anomalies(frame: bytes, name: str) -> None:
    assert decode(101, frame)["anomaly"] == name


def test_lying_total_length_is_truncated_ip_len() -> None:
    frame = IP4[:2] + struct.pack("!H", 1500) + IP4[4:]
    assert decode(101, frame)["anomaly"] == "truncated_IP_len"


def test_snap_length_cut_keeps_wire_lengths() -> None:
    # A packet cut by the snap length is decoded with the lengths on the wire.
    from sensor.decode.packet import parse

    frame = eth(IP4)
    p = parse(frame, 0, len(frame) - 3, len(frame), 1)
    assert p.anomaly == "" and p.payload_len == 5 and p.payload_caplen == 2


def test_truncation_at_every_length_never_raises() -> None:
    frames = [
        (1, eth(IP4)),
        (1, eth(ipv6("2001:db8::1", "2001:db8::2", 6, SEG), ethertype=0x86DD)),
        (1, eth(b"\x00\x0a\x81\x00\x00\x14\x08\x00" + IP4, ethertype=0x88A8)),
        (113, b"\0" * 14 + b"\x08\x00" + IP4),
    ]
    for linktype, frame in frames:
        for cut in range(len(frame)):
            d = decode(linktype, frame[:cut])
            assert d["anomaly"] in ANOMALIES or d["anomaly"] == ""
            if cut < len(frame) - len(SEG):
                assert d["anomaly"], (linktype, cut)


@settings(max_examples=EXAMPLES, deadline=None)
@given(linktype=st.sampled_from(LINKTYPES), data=st.binary(max_size=200))
def test_decode_never_raises(linktype: int, data: bytes) -> None:
    d = decode(linktype, data)
    assert d["anomaly"] == "" or d["anomaly"] in ANOMALIES


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    linktype=st.sampled_from([1, 101]),
    prefix=st.sampled_from(
        [eth(IP4), IP4, eth(ipv6("::1", "::2", 17, udp(1, 2, b"x")), ethertype=0x86DD)]
    ),
    pos=st.integers(min_value=0, max_value=80),
    junk=st.binary(min_size=1, max_size=8),
)
def test_mutated_packets_never_raise(
    linktype: int, prefix: bytes, pos: int, junk: bytes
) -> None:
    frame = prefix[:pos] + junk + prefix[pos + len(junk) :]
    d = decode(linktype, frame)
    assert d["anomaly"] == "" or d["anomaly"] in ANOMALIES
