"""Send one UDP query and its answer as raw Ethernet frames on an interface.

    python3 frames.py IFACE

Addresses are from the documentation ranges (RFC 5737); the frames stay in
the test container's own network namespace.
"""

import socket
import struct
import sys


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def frame(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))  # fmt: skip
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    macs = {"192.0.2.10": b"\x02\0\0\0\0\x0a", "192.0.2.53": b"\x02\0\0\0\0\x35"}
    return macs[dst] + macs[src] + b"\x08\x00" + ip + udp


s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
s.send(frame("192.0.2.10", "192.0.2.53", 40000, 5353, b"query"))
s.send(frame("192.0.2.53", "192.0.2.10", 5353, 40000, b"answer"))
