"""Tiny packet builders for flow tests: Ethernet/IPv4/IPv6 with TCP, UDP, ICMP.

Checksums are left zero: the table, like Zeek run with ``-C``, ignores them.
"""

from __future__ import annotations

import ipaddress
import struct

from sensor.capture.batch import Batch

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
SEC = 1_000_000_000

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def eth(
    payload: bytes, ethertype: int = 0x0800, src: bytes = MAC_A, dst: bytes = MAC_B
) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def ipv4(
    src: str, dst: str, proto: int, payload: bytes, ident: int = 1, frag: int = 0
) -> bytes:
    total = 20 + len(payload)
    hdr = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, total, ident, frag, 64, proto, 0,
        ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed,
    )  # fmt: skip
    return hdr + payload


def ipv6(src: str, dst: str, nxt: int, payload: bytes) -> bytes:
    return (
        struct.pack("!IHBB", 6 << 28, len(payload), nxt, 64)
        + ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + payload
    )


def tcp(
    sport: int,
    dport: int,
    flags: int,
    seq: int = 0,
    ack: int = 0,
    data: bytes = b"",
    win: int = 8192,
) -> bytes:
    return (
        struct.pack(
            "!HHIIBBHHH",
            sport,
            dport,
            seq & 0xFFFFFFFF,
            ack & 0xFFFFFFFF,
            5 << 4,
            flags,
            win,
            0,
            0,
        )
        + data
    )


def udp(sport: int, dport: int, data: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data


def icmp(type_: int, code: int, data: bytes = b"") -> bytes:
    return struct.pack("!BBHHH", type_, code, 0, 1, 1) + data


class Flow:
    """Builds the packets of one TCP conversation between two hosts."""

    def __init__(
        self,
        client: str = "10.0.0.1",
        server: str = "10.0.0.2",
        cport: int = 40000,
        sport: int = 8000,
    ) -> None:
        self.client, self.server, self.cport, self.sport = client, server, cport, sport

    def c(
        self, flags: int, seq: int, ack: int = 0, data: bytes = b"", win: int = 8192
    ) -> bytes:
        """A packet from the client."""
        return eth(
            ipv4(
                self.client,
                self.server,
                6,
                tcp(self.cport, self.sport, flags, seq, ack, data, win),
            )
        )

    def s(
        self, flags: int, seq: int, ack: int = 0, data: bytes = b"", win: int = 8192
    ) -> bytes:
        """A packet from the server."""
        return eth(
            ipv4(
                self.server,
                self.client,
                6,
                tcp(self.sport, self.cport, flags, seq, ack, data, win),
            ),
            src=MAC_B,
            dst=MAC_A,
        )


def batch(packets: list[tuple[float, bytes]], linktype: int = 1) -> Batch:
    """A batch from ``(seconds, frame)`` pairs."""
    return Batch.from_packets([(int(t * SEC), linktype, p) for t, p in packets])
