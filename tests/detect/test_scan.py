"""scan.port and scan.sweep on crafted records."""

from __future__ import annotations

import math

import pytest

from sensor.detect.alert import Alert
from sensor.detect.runner import Detector
from tests.detect.fakes import FakeDevice, FakeModels, conn


def run(
    only: str,
    records: list[tuple[str, dict]],
    end: float,
    models: FakeModels | None = None,
) -> list[Alert]:  # type: ignore[type-arg]
    d = Detector(models or FakeModels(), only=[only])
    out: list[Alert] = []
    for log, r in records:
        out += d.observe(log, r)
    return out + d.finish(end)


def test_port_scan_of_100_ports_is_one_alert_with_numbers() -> None:
    recs = [
        ("conn", conn(1000.0 + i * 0.01, "10.0.0.5", "10.0.0.9", 1 + i, state="REJ"))
        for i in range(100)
    ]
    recs.append(
        ("conn", conn(1001.5, "10.0.0.5", "10.0.0.9", 22, state="SF", resp_bytes=40,
                      history="ShADadFf"))
    )  # fmt: skip
    models = FakeModels(
        [FakeDevice("aa", "10.0.0.5", mac="aa:bb:cc:dd:ee:ff", name="kali")],
        learning=True,
    )
    (a,) = run("scan.port", recs, 2000.0, models)
    assert a.detection == "scan.port" and a.mitre == "T1046"
    assert a.device.ip == "10.0.0.5" and a.device.name == "kali"
    assert a.dst.ip == "10.0.0.9"
    assert "tried 100 ports of 10.0.0.9" in a.summary
    assert (
        "100 of 101 attempts got no data back (refused, reset or silent); "
        "1 TCP port accepted a connection: 22." in a.summary
    )
    assert ("open_ports", "22") in [(r.feature, r.value) for r in a.reasons]
    # 55 at 25 ports, +30 per tenfold; not lowered while the device learns.
    assert a.score == pytest.approx(55 + 30 * math.log10(100 / 25))
    assert a.reasons[0].feature == "distinct_ports" and a.reasons[0].value == 100
    assert len(a.uids) == 20 and a.ts == 1000.0


def test_busy_client_and_few_ports_are_no_scan() -> None:
    # 40 ports, all answered with data (passive FTP data connections).
    busy = [
        ("conn", conn(i, "10.0.0.5", "10.0.0.9", 50000 + i, state="SF", resp_bytes=900))
        for i in range(40)
    ]
    few = [
        ("conn", conn(i, "10.0.0.6", "10.0.0.9", 1 + i, state="REJ")) for i in range(24)
    ]
    assert run("scan.port", busy + few, 5000.0) == []


def test_scan_window_closes_when_idle() -> None:
    d = Detector(FakeModels(), only=["scan.port"])
    out: list[Alert] = []
    for i in range(30):
        out += d.observe(
            "conn", conn(100.0 + i * 0.1, "10.0.0.5", "10.0.0.9", 1 + i, state="REJ")
        )
    assert out == []
    out += d.observe(
        "conn", conn(200.0, "10.0.0.7", "10.0.0.8", 443, state="SF", resp_bytes=10)
    )
    assert [a.detection for a in out] == ["scan.port"]  # judged on the tick at 200 s


def test_icmp_sweep() -> None:
    recs = [
        (
            "conn",
            conn(
                10.0 + i,
                "192.168.1.109",
                f"192.168.1.{i + 1}",
                0,
                proto="icmp",
                sport=8,
            ),
        )
        for i in range(12)
    ]
    # Echo replies and unreachables from hosts are not probes by them.
    recs += [
        (
            "conn",
            conn(
                10.0 + i,
                f"192.168.1.{i + 1}",
                "192.168.1.109",
                0,
                proto="icmp",
                sport=3,
            ),
        )
        for i in range(12)
    ]
    (a,) = run("scan.sweep", recs, 100.0)
    assert a.device.ip == "192.168.1.109"
    assert (
        "sent ICMP echo requests to 12 hosts (192.168.1.1 .. 192.168.1.12)" in a.summary
    )
    assert a.reasons[0].value == 12 and a.reasons[1].value == "icmp"


def test_arp_sweep_skips_gratuitous() -> None:
    recs = [
        (
            "arp",
            {
                "ts": 1.0 + i,
                "op": "request",
                "src_mac": "50:ed:3c:39:bc:d9",
                "src_ip": "192.168.1.247",
                "dst_mac": "00:00:00:00:00:00",
                "dst_ip": f"192.168.1.{i}",
            },
        )
        for i in range(1, 40)
    ]
    recs += [
        (
            "arp",
            {
                "ts": 50.0 + i,
                "op": "request",
                "src_mac": "02:00:00:00:00:01",
                "src_ip": "192.168.1.2",
                "dst_ip": "192.168.1.2",
            },
        )
        for i in range(40)
    ]
    (a,) = run("scan.sweep", recs, 200.0)
    assert a.device.ip == "192.168.1.247" and a.device.mac == "50:ed:3c:39:bc:d9"
    assert "asked ARP for 39 hosts" in a.summary


def test_tcp_sweep_counts_only_unanswered() -> None:
    refused = [
        ("conn", conn(i, "10.0.0.5", f"10.0.1.{i}", 445, state="S0", history="S"))
        for i in range(1, 20)
    ]
    browsing = [
        ("conn", conn(i, "10.0.0.6", f"93.184.{i}.1", 443, state="SF", resp_bytes=5000))
        for i in range(1, 60)
    ]
    # Data without a handshake: a capture that started mid-stream.
    midstream = [
        ("conn", conn(i, "10.0.0.7", f"93.184.{i}.1", 443, state="S0", history="D"))
        for i in range(1, 60)
    ]
    (a,) = run("scan.sweep", refused + browsing + midstream, 1000.0)
    assert a.device.ip == "10.0.0.5" and a.dst.port == 445
    assert "tried TCP/445 without an answer on 19 hosts" in a.summary


def test_a_subnet_scan_is_one_alert() -> None:
    recs = [
        (
            "conn",
            conn(1000.0 + h + i * 0.001, "10.0.0.5", f"10.0.2.{h}", 1 + i, state="S0"),
        )
        for h in range(1, 41)
        for i in range(30)
    ]
    (a,) = run("scan.port", recs, 5000.0)
    assert a.dst.ip is None
    assert a.summary.startswith(
        "10.0.0.5 tried 30 to 30 ports on each of 40 hosts (10.0.2.1 .. 10.0.2.40)"
    )
    assert a.reasons[0].value == 40 and len(a.uids) == 20


Records = list[tuple[str, dict]]  # type: ignore[type-arg]


def early_and_final(recs: Records) -> Records:
    """Each record first as its early notice, then (later) as its conn record."""
    return [("conn_early", dict(r)) for _, r in recs] + recs


def test_port_scan_from_early_notices_counts_each_attempt_once() -> None:
    recs = [
        ("conn", conn(100.0 + i * 0.01, "10.0.0.5", "10.0.0.9", 1 + i, state="REJ"))
        for i in range(30)
    ]
    (a,) = run("scan.port", early_and_final(recs), 500.0)
    assert "tried 30 ports of 10.0.0.9" in a.summary
    assert (
        "30 of 30 attempts got no data back "
        "(refused, reset or silent; no port accepted a connection)." in a.summary
    )


def test_port_scan_is_judged_from_early_notices_alone() -> None:
    d = Detector(FakeModels(), {"scan.port": {"idle_seconds": 1.0}}, only=["scan.port"])
    recs = [
        conn(100.0 + i * 0.01, "10.0.0.5", "10.0.0.9", 1 + i, state="REJ")
        for i in range(30)
    ]
    out: list[Alert] = []
    for r in recs:
        out += d.observe("conn_early", dict(r))
    # Packet time moves on (another connection), before any conn record.
    out += d.observe("tick", {"ts": 102.0})
    assert [a.detection for a in out] == ["scan.port"]
    # The conn records that follow open no new window.
    for r in recs:
        assert d.observe("conn", r) == []
    assert d.finish(200.0) == []
    assert len(d.detections[0].early) == 0  # type: ignore[attr-defined]


def test_a_conn_record_corrects_the_answer_of_its_early_notice() -> None:
    # Notices read as refused; most conn records show that the host answered.
    recs = [
        ("conn", conn(100.0 + i * 0.01, "10.0.0.5", "10.0.0.9", 1 + i, state="REJ"))
        for i in range(30)
    ]
    early = [("conn_early", dict(r)) for _, r in recs]
    for _, r in recs[:20]:
        r.update(conn_state="RSTR", resp_bytes=40)
    assert run("scan.port", early + recs, 500.0) == []  # 10 of 30 unanswered


def test_tcp_sweep_from_early_notices_counts_each_attempt_once() -> None:
    recs = [
        ("conn", conn(i, "10.0.0.5", f"10.0.1.{i}", 445, state="REJ", history="Sr"))
        for i in range(1, 18)
    ]
    d = Detector(FakeModels(), only=["scan.sweep"])
    out: list[Alert] = []
    for log, r in early_and_final(recs):
        out += d.observe(log, r)
    (a,) = out + d.finish(1000.0)
    assert "tried TCP/445 without an answer on 17 hosts" in a.summary
    assert len(a.uids) == 17 and len(set(a.uids)) == 17
    assert len(d.detections[0].early) == 0  # type: ignore[attr-defined]


def test_port_scan_names_the_ports_that_accepted_a_connection() -> None:
    # nmap's SYN scan: most ports refuse, a few answer SYN-ACK and the
    # scanner resets them (ShR); seen first as early notices at the reset.
    recs = [
        ("conn", conn(100.0 + i * 0.01, "10.0.0.5", "10.0.0.9", 1000 + i,
                      state="REJ", history="Sr"))
        for i in range(40)
    ] + [
        ("conn", conn(101.0, "10.0.0.5", "10.0.0.9", port, state="RSTO",
                      history="ShR"))
        for port in (443, 22, 80)
    ]  # fmt: skip
    (a,) = run("scan.port", early_and_final(recs), 500.0)
    assert "43 of 43 attempts got no data back" in a.summary
    assert "3 TCP ports accepted a connection: 22, 80, 443." in a.summary
    assert ("open_ports", "22, 80, 443") in [(r.feature, r.value) for r in a.reasons]
