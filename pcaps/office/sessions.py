"""Building blocks for make_office.py: hosts, a pcap writer and TCP sessions.

Every conversation is generated on its own clock and handed to
:class:`Capture`, which sorts all packets by time at the end, numbers the IP
identification field per sending host in that order (as a host's stack
would), and writes a classic microsecond pcap (LINKTYPE_ETHERNET). Nothing
here draws randomness of its own: the scenario passes a seeded generator.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field
from pathlib import Path

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet, Raw

LINKTYPE_ETHERNET = 1
US = 1_000_000  # microseconds per second


@dataclass
class Host:
    """A device as the capture sees it.

    ``mac`` is the address its frames carry on this LAN: for a host on the
    internet that is the gateway's. ``ttl`` is the IP TTL its packets arrive
    with at the mirror port (64 Linux/macOS/iOS, 128 Windows, less from afar).
    """

    name: str
    ip: str
    mac: str
    ttl: int = 64
    window: int = 64240
    ip_id: int = 0


@dataclass
class Capture:
    """Packets of every conversation, sorted and written at the end."""

    packets: list[tuple[int, int, Host | None, Packet]] = field(default_factory=list)

    def add(self, t_us: int, sender: Host | None, pkt: Packet) -> None:
        """Queue ``pkt`` sent by ``sender`` at ``t_us`` (None: keep its IP id)."""
        self.packets.append((t_us, len(self.packets), sender, pkt))

    def write(self, path: Path, start_us: int) -> int:
        """Write the pcap; returns the number of packets."""
        self.packets.sort(key=lambda p: (p[0], p[1]))
        with path.open("wb") as f:
            # Classic pcap header: magic, v2.4, tz 0, sigfigs 0, snaplen, link.
            f.write(
                struct.pack(
                    "<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET
                )
            )
            for t_us, _, sender, pkt in self.packets:
                if sender is not None and IP in pkt:
                    sender.ip_id = (sender.ip_id + 1) & 0xFFFF
                    pkt[IP].id = sender.ip_id
                data = bytes(pkt)
                ts = start_us + t_us
                f.write(struct.pack("<IIII", ts // US, ts % US, len(data), len(data)))
                f.write(data)
        return len(self.packets)


def ether(src: Host, dst: Host) -> Ether:
    """The Ethernet header of a frame from ``src`` to ``dst`` on this LAN."""
    return Ether(src=src.mac, dst=dst.mac)


def udp(
    cap: Capture,
    t: int,
    src: Host,
    dst: Host,
    sport: int,
    dport: int,
    payload: Packet | bytes,
) -> None:
    """Queue one UDP datagram."""
    pkt = (
        ether(src, dst)
        / IP(src=src.ip, dst=dst.ip, ttl=src.ttl)
        / UDP(sport=sport, dport=dport)
        / payload
    )
    cap.add(t, src, pkt)


def arp_exchange(
    cap: Capture, t: int, asker: Host, target: Host, rtt: int = 300
) -> int:
    """Who-has from ``asker`` (broadcast) and ``target``'s reply; returns the end."""
    request = Ether(src=asker.mac, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=asker.mac, psrc=asker.ip, hwdst="00:00:00:00:00:00", pdst=target.ip
    )
    reply = Ether(src=target.mac, dst=asker.mac) / ARP(
        op=2, hwsrc=target.mac, psrc=target.ip, hwdst=asker.mac, pdst=asker.ip
    )
    cap.add(t, None, request)
    cap.add(t + rtt, None, reply)
    return t + rtt


def ping(
    cap: Capture, t: int, src: Host, dst: Host, ident: int, count: int, rtt: int
) -> int:
    """``count`` echo requests a second apart, each answered; returns the end."""
    for seq in range(1, count + 1):
        data = bytes(range(0x10, 0x10 + 48))
        cap.add(
            t,
            src,
            ether(src, dst)
            / IP(src=src.ip, dst=dst.ip, ttl=src.ttl)
            / ICMP(type=8, id=ident, seq=seq)
            / data,
        )
        cap.add(
            t + rtt,
            dst,
            ether(dst, src)
            / IP(src=dst.ip, dst=src.ip, ttl=dst.ttl)
            / ICMP(type=0, id=ident, seq=seq)
            / data,
        )
        t += US
    return t


# SYN options as Windows 10/11 and Linux send them (no timestamps, to keep
# the capture free of clocks other than the packet times).
SYN_OPTIONS = [
    ("MSS", 1460),
    ("NOP", None),
    ("WScale", 8),
    ("NOP", None),
    ("NOP", None),
    ("SAckOK", b""),
]
MSS = 1460


class TCPSession:
    """One TCP connection with consistent sequence numbers (RFC 9293).

    ``rtt`` is the round trip between the two ends as seen from the mirror
    port, in microseconds; every packet the other side answers arrives one
    ``rtt`` later. Data is cut into MSS-sized segments and the receiver
    acknowledges every second segment and the last one, as delayed ACK
    (RFC 1122 4.2.3.2) does.
    """

    def __init__(
        self,
        cap: Capture,
        rng: random.Random,
        client: Host,
        server: Host,
        cport: int,
        sport: int,
        rtt: int,
    ) -> None:
        self.cap, self.client, self.server = cap, client, server
        self.cport, self.sport, self.rtt = cport, sport, rtt
        self.seq = {
            True: rng.getrandbits(32),
            False: rng.getrandbits(32),
        }  # by is_client

    def _pkt(
        self,
        t: int,
        from_client: bool,
        flags: str,
        payload: bytes = b"",
        options: list | None = None,
    ) -> None:  # type: ignore[type-arg]
        src, dst = (
            (self.client, self.server) if from_client else (self.server, self.client)
        )
        sp, dp = (self.cport, self.sport) if from_client else (self.sport, self.cport)
        ack = self.seq[not from_client] if "A" in flags else 0
        tcp = TCP(
            sport=sp,
            dport=dp,
            seq=self.seq[from_client],
            ack=ack,
            flags=flags,
            window=src.window,
            options=options or [],
        )
        pkt = (
            ether(src, dst) / IP(src=src.ip, dst=dst.ip, ttl=src.ttl, flags="DF") / tcp
        )
        if payload:
            pkt = pkt / Raw(payload)
        self.cap.add(t, src, pkt)
        self.seq[from_client] = (
            self.seq[from_client] + len(payload) + ("S" in flags) + ("F" in flags)
        ) & 0xFFFFFFFF

    def handshake(self, t: int) -> int:
        """SYN, SYN-ACK, ACK; returns the time of the ACK."""
        self._pkt(t, True, "S", options=SYN_OPTIONS)
        self._pkt(t + self.rtt, False, "SA", options=SYN_OPTIONS)
        self._pkt(t + self.rtt + 40, True, "A")
        return t + self.rtt + 40

    def send(self, t: int, from_client: bool, data: bytes, gap: int = 30) -> int:
        """Send ``data`` from one side, acknowledged by the other; returns the end."""
        segments = [data[i : i + MSS] for i in range(0, len(data), MSS)]
        for i, seg in enumerate(segments):
            last = i == len(segments) - 1
            self._pkt(t, from_client, "PA" if last else "A", seg)
            if i % 2 == 1 or last:
                self._pkt(t + self.rtt // 2, not from_client, "A")
            t += gap
        return t + self.rtt // 2

    def close(self, t: int, client_first: bool = True) -> int:
        """FIN from one side, FIN-ACK back, last ACK (RFC 9293 3.6)."""
        self._pkt(t, client_first, "FA")
        self._pkt(t + self.rtt, not client_first, "FA")
        self._pkt(t + self.rtt + 40, client_first, "A")
        return t + self.rtt + 40

    def syn_probe(self, t: int, answer: str, options: list | None = None) -> int:  # type: ignore[type-arg]
        """A scanner's half-open probe: SYN answered by RST-ACK, SYN-ACK or nothing.

        ``answer`` is "closed" (RST-ACK, RFC 9293 3.10.7.1), "open" (SYN-ACK,
        then the scanner's kernel resets the connection it never opened) or
        "filtered" (no answer; the probe is sent twice, as nmap retries).
        """
        self._pkt(t, True, "S", options=options)
        if answer == "closed":
            self.seq[False] = 0  # a reset to a segment without ACK has seq 0
            self._pkt(t + self.rtt, False, "RA")
        elif answer == "open":
            self._pkt(t + self.rtt, False, "SA", options=SYN_OPTIONS)
            self._pkt(t + self.rtt + 20, True, "R")
        else:
            self.seq[True] = (self.seq[True] - 1) & 0xFFFFFFFF  # the retry reuses it
            self._pkt(t + US, True, "S", options=options)
        return t + self.rtt
