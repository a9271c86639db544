"""tunnel.icmp on crafted ICMP echo records."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import dpkt

from sensor.capture.merge import merge
from sensor.capture.pcapfile import CaptureFile
from sensor.detect.icmptunnel import ICMPTunnel
from sensor.engine import Engine
from tests.detect.netfakes import FakeNet, conn, run

SRC = "192.168.1.5"
DST = "203.0.113.9"


def echo(ts: float, sent: int, back: int, pkts: int, uid: str = "") -> tuple[str, dict]:
    return conn(
        ts,
        SRC,
        DST,
        0,
        orig_p=8,
        proto="icmp",
        sent=sent,
        back=back,
        pkts=pkts,
        uid=uid,
    )


def test_large_asymmetric_echoes() -> None:
    # 100 echoes of ~1000 bytes out, small replies: a tunnel's upstream.
    alerts = run(ICMPTunnel(FakeNet()), [echo(10.0, 100_000, 6_400, 100, "Cicmp")])
    assert len(alerts) == 1
    a = alerts[0]
    assert a.mitre == "T1095" and a.dst.ip == DST and a.uids == ["Cicmp"]
    assert round(a.score, 1) == 76.8  # 55 + 30 * log10(106.4 kB / 20 kB)
    assert "ICMP echo payload" in a.summary
    reasons = {r.feature: r.value for r in a.reasons}
    assert reasons["mean_payload_per_packet"] == 532.0  # 106.4 kB over 200 packets
    assert reasons["direction_difference"] == 0.94


def test_adds_up_over_records_and_rescores() -> None:
    records = [echo(60.0 * i, 8_000, 8_000, 16) for i in range(40)]  # 1000 B/packet
    alerts = run(ICMPTunnel(FakeNet()), records)
    # 32 kB after two records (55 + 30 * log10(1.6)), then each 15 points up.
    assert [round(a.score) for a in alerts] == [61, 77, 93]


def test_a_long_ping_is_quiet() -> None:
    # ping -t for an hour: 32 bytes each way per second.
    records = [echo(60.0 * i, 32 * 60, 32 * 60, 120) for i in range(60)]
    assert run(ICMPTunnel(FakeNet()), records) == []
    # Unreachables (type 3) carry quoted packets and are not echoes.
    unreach = [conn(1.0, SRC, DST, 3, orig_p=3, proto="icmp", sent=50_000, back=0)]
    assert run(ICMPTunnel(FakeNet()), unreach) == []


def test_through_the_engine(tmp_path: Path) -> None:
    # A crafted capture: 60 echoes carrying 1000 bytes out and 200 back.
    rnd = random.Random(7)

    def frame(src: str, dst: str, kind: int, seq: int, size: int) -> bytes:
        payload = bytes(rnd.getrandbits(8) for _ in range(size))
        echo = dpkt.icmp.ICMP.Echo(id=77, seq=seq, data=payload)
        ip = dpkt.ip.IP(
            src=socket.inet_aton(src),
            dst=socket.inet_aton(dst),
            p=1,
            ttl=64,
            data=dpkt.icmp.ICMP(type=kind, code=0, data=echo),
        )
        ip.len = len(ip)
        eth = dpkt.ethernet.Ethernet(
            src=b"\x02\0\0\0\0\x05", dst=b"\x02\0\0\0\0\x01", type=0x800, data=ip
        )
        return bytes(eth)

    path = tmp_path / "icmp-tunnel.pcap"
    with path.open("wb") as f:
        w = dpkt.pcap.Writer(f)
        for i in range(60):
            w.writepkt(frame(SRC, DST, 8, i, 1000), 1000.0 + i / 2)
            w.writepkt(frame(DST, SRC, 0, i, 200), 1000.05 + i / 2)
    engine = Engine()
    records = []
    for batch in merge([CaptureFile(str(path))]):
        records += engine.process(batch)
    records += engine.flush()
    alerts = run(ICMPTunnel(FakeNet()), records)
    assert len(alerts) == 1
    assert alerts[0].src.ip == SRC and alerts[0].dst.ip == DST
    assert "72 kB of ICMP echo payload" in alerts[0].summary
    assert "60 kB out, 12 kB back, 600 bytes per packet" in alerts[0].summary
