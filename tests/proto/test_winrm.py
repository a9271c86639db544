"""WinRM: the sniff, and conn.log's service through the real Engine."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from sensor.capture.merge import merge
from sensor.capture.pcapfile import CaptureFile
from sensor.engine import Engine
from sensor.proto.analyzer import ConnInfo
from sensor.proto.analyzers.winrm import WinRMAnalyzer
from tests.capture.builders import pcap_header, pcap_record

CONN = ConnInfo("Cw", "tcp", "10.0.0.5", 50000, "10.0.0.1", 5985)
REQUEST = b"POST /wsman HTTP/1.1\r\nHost: dc01:5985\r\nContent-Length: 0\r\n\r\n"
REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


def test_sniff() -> None:
    assert WinRMAnalyzer.sniff(CONN, True, REQUEST)
    assert WinRMAnalyzer.sniff(CONN, True, b"POST /WSMAN?PSVersion=5 HTTP/1.1\r\n")
    assert not WinRMAnalyzer.sniff(CONN, True, b"POST /index HTTP/1.1\r\n\r\n")
    assert not WinRMAnalyzer.sniff(CONN, False, REQUEST)
    assert not WinRMAnalyzer.sniff(CONN, True, b"\x16\x03\x01\x00\x05hello")


def _sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frame(
    src: int,
    dst: int,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes,
) -> bytes:
    """Ethernet + IPv4 + TCP (RFC 791, RFC 9293) with correct checksums."""
    s, d = bytes([10, 0, 0, src]), bytes([10, 0, 0, dst])
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    pseudo = s + d + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
    tcp = tcp[:16] + struct.pack("!H", _sum(pseudo + tcp + payload)) + tcp[18:]
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 1, 0, 64, 6, 0, s, d
    )
    ip = ip[:10] + struct.pack("!H", _sum(ip)) + ip[12:]
    return (
        b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00" + ip + tcp + payload
    )


def replay(path: Path, request: bytes) -> list[dict[str, Any]]:
    c, s = (5, 50000, 1000), (1, 5985, 9000)
    pkts = [
        frame(c[0], s[0], c[1], s[1], c[2], 0, 0x02, b""),
        frame(s[0], c[0], s[1], c[1], s[2], c[2] + 1, 0x12, b""),
        frame(c[0], s[0], c[1], s[1], c[2] + 1, s[2] + 1, 0x10, b""),
        frame(c[0], s[0], c[1], s[1], c[2] + 1, s[2] + 1, 0x18, request),
        frame(s[0], c[0], s[1], c[1], s[2] + 1, c[2] + 1 + len(request), 0x18, REPLY),
        frame(
            c[0],
            s[0],
            c[1],
            s[1],
            c[2] + 1 + len(request),
            s[2] + 1 + len(REPLY),
            0x11,
            b"",
        ),
        frame(
            s[0],
            c[0],
            s[1],
            c[1],
            s[2] + 1 + len(REPLY),
            c[2] + 2 + len(request),
            0x11,
            b"",
        ),
        frame(
            c[0],
            s[0],
            c[1],
            s[1],
            c[2] + 2 + len(request),
            s[2] + 2 + len(REPLY),
            0x10,
            b"",
        ),
    ]
    path.write_bytes(
        pcap_header() + b"".join(pcap_record(100 + i, 0, p) for i, p in enumerate(pkts))
    )
    engine = Engine()
    out = []
    for batch in merge([CaptureFile(str(path))]):
        out += engine.process(batch)
    out += engine.flush()
    return [r for n, r in out if n == "conn"]


def test_conn_log_names_winrm(tmp_path: Path) -> None:
    (conn,) = replay(tmp_path / "winrm.pcap", REQUEST)
    assert conn["id.resp_p"] == 5985
    assert conn["service"] == "http,winrm"


def test_plain_http_is_not_winrm(tmp_path: Path) -> None:
    (conn,) = replay(tmp_path / "web.pcap", REQUEST.replace(b"/wsman", b"/index"))
    assert conn["service"] == "http"
