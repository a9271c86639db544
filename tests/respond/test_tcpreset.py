"""RST frames built with struct, checked with scapy: addresses, ports,
sequence numbers from the latest packet, checksums (IPv4 and IPv6)."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether

from sensor.respond.backends.tcpreset import parse, resets_for

OWN = bytes.fromhex("020000000001")
A_MAC, B_MAC = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


def check(frame: bytes, version: int) -> Ether:
    pkt = Ether(frame)
    ip = pkt[IP] if version == 4 else pkt[IPv6]
    tcp = pkt[TCP]
    want_tcp = tcp.chksum
    del tcp.chksum
    if version == 4:
        want_ip = ip.chksum
        del ip.chksum
        assert IP(bytes(ip)).chksum == want_ip
    rebuilt = Ether(bytes(pkt))
    assert rebuilt[TCP].chksum == want_tcp
    return pkt


def test_resets_from_a_data_packet_ipv4_with_vlan() -> None:
    seen = (
        Ether(src=A_MAC, dst=B_MAC) / Dot1Q(vlan=7)
        / IP(src="192.0.2.30", dst="192.0.2.40")
        / TCP(sport=40000, dport=8080, flags="PA", seq=1000, ack=5000) / b"hello"
    )  # fmt: skip
    p = parse(bytes(seen))
    assert p is not None and p["len"] == 5
    to_b, to_a = resets_for(p, OWN)
    b = check(to_b, 4)
    assert (b.src, b.dst) == ("02:00:00:00:00:01", B_MAC)
    assert (b[IP].src, b[IP].dst, b[TCP].sport, b[TCP].dport) == (
        "192.0.2.30",
        "192.0.2.40",
        40000,
        8080,
    )
    assert (b[TCP].seq, b[TCP].ack, str(b[TCP].flags)) == (1005, 5000, "RA")
    a = check(to_a, 4)
    assert a.dst == A_MAC
    assert (a[IP].src, a[IP].dst, a[TCP].sport, a[TCP].dport) == (
        "192.0.2.40",
        "192.0.2.30",
        8080,
        40000,
    )
    assert (a[TCP].seq, a[TCP].ack) == (5000, 1005)


def test_resets_ipv6_and_fin_counts_one() -> None:
    seen = (
        Ether(src=A_MAC, dst=B_MAC) / IPv6(src="2001:db8::30", dst="2001:db8::40")
        / TCP(sport=40000, dport=22, flags="FA", seq=0xFFFFFFFF, ack=7)
    )  # fmt: skip
    p = parse(bytes(seen))
    assert p is not None
    to_b, to_a = resets_for(p, OWN)
    b = check(to_b, 6)
    assert b[TCP].seq == 0  # wraps: FIN takes one sequence number
    assert b[IPv6].dst == "2001:db8::40" and b[IPv6].hlim == 64
    assert check(to_a, 6)[TCP].seq == 7


def test_parse_refuses_what_is_not_tcp() -> None:
    assert parse(b"") is None
    assert parse(bytes(Ether() / IP(proto=17) / (b"x" * 30))) is None
    truncated = bytes(Ether() / IP(src="192.0.2.1", dst="192.0.2.2") / TCP())[:40]
    assert parse(truncated) is None
