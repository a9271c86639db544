"""tunnel.icmp on crafted ICMP echo records."""

from __future__ import annotations

from sensor.detect.icmptunnel import ICMPTunnel
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
