"""protocol.mismatch, dos.flood and device.new on crafted records."""

from __future__ import annotations

from typing import Any

from sensor.detect.alert import Alert
from sensor.detect.runner import Detector
from tests.detect.fakes import FakeDevice, FakeModels, conn


def run(
    only: str,
    records: list[dict[str, Any]],
    end: float,
    models: FakeModels | None = None,
    log: str = "conn",
) -> list[Alert]:
    d = Detector(models or FakeModels(), only=[only])
    out: list[Alert] = []
    for r in records:
        out += d.observe(log, r)
    return out + d.finish(end)


def test_http_on_an_odd_port_of_a_rare_external_server() -> None:
    c2 = conn(
        1.0,
        "10.12.29.101",
        "82.118.225.196",
        7080,
        state="SF",
        service="http",
        orig_bytes=1277,
        resp_bytes=56713,
    )
    again = dict(c2, uid="CAGAIN", ts=2.0)
    (a,) = run("protocol.mismatch", [c2, again], 10.0)
    assert a.mitre == "T1571" and a.score == 55.0
    assert (
        a.summary
        == "10.12.29.101 spoke HTTP to port 7080, a port not used for HTTP at 82.118.225.196, an external address; no other device had used it."
    )
    assert a.reasons[0].value == "HTTP on tcp/7080"
    assert a.uids == [c2["uid"]]


def test_mismatch_scores_low_inside_or_when_common() -> None:
    inside = conn(1.0, "10.0.0.1", "10.0.0.2", 7080, state="SF", service="http")
    popular = conn(1.0, "10.0.0.1", "93.184.216.34", 7080, state="SF", service="http")
    models = FakeModels()
    models.users[("ip", "93.184.216.34")] = 40
    scores = sorted(
        a.score for a in run("protocol.mismatch", [inside, popular], 10.0, models)
    )
    assert scores == [35.0, 35.0]


def test_unknown_protocol_on_443() -> None:
    tunnel = conn(
        1.0,
        "10.0.0.1",
        "198.51.100.7",
        443,
        state="SF",
        history="ShADadFf",
        orig_bytes=5000,
        resp_bytes=9000,
    )
    tls = conn(
        1.0,
        "10.0.0.1",
        "198.51.100.8",
        443,
        state="SF",
        history="ShADadFf",
        orig_bytes=5000,
        resp_bytes=9000,
        service="ssl",
    )
    midstream = conn(
        1.0,
        "10.0.0.1",
        "198.51.100.9",
        443,
        state="OTH",
        history="DdA",
        orig_bytes=5000,
        resp_bytes=9000,
    )
    refused = conn(
        1.0,
        "10.0.0.1",
        "198.51.100.10",
        443,
        state="RSTO",
        history="ShR",
        orig_bytes=0,
        resp_bytes=0,
    )
    (a,) = run("protocol.mismatch", [tunnel, tls, midstream, refused], 10.0)
    assert a.dst.ip == "198.51.100.7"
    assert "in a protocol that is not TLS" in a.summary


def test_syn_flood_from_spoofed_sources() -> None:
    recs = [
        conn(
            100.0 + i * 0.001,
            f"203.0.113.{i % 250}",
            "192.0.2.10",
            80,
            state="S0",
            orig_pkts=2,
            sport=1024 + i,
        )
        for i in range(30000)
    ]
    (a,) = run("dos.flood", recs, 500.0)
    assert a.detection == "dos.flood" and a.mitre == "T1499"
    assert a.src.ip is None and a.dst.ip == "192.0.2.10" and a.dst.port == 80
    assert a.reasons[0].value == 60000 and a.reasons[2].value == 250
    assert (
        "250 sources sent 60000 unanswered packets to 192.0.2.10 TCP port 80"
        in a.summary
    )


def test_udp_flood_and_what_is_no_flood() -> None:
    flood = conn(
        10.0,
        "10.0.0.66",
        "192.0.2.20",
        53,
        proto="udp",
        state="S0",
        orig_pkts=90000,
        resp_pkts=0,
        duration=30.0,
    )
    stream = conn(
        10.0,
        "10.0.0.67",
        "192.0.2.21",
        443,
        proto="udp",
        state="SF",
        orig_pkts=90000,
        resp_pkts=80000,
        duration=30.0,
    )
    slow = conn(
        10.0,
        "10.0.0.68",
        "192.0.2.22",
        514,
        proto="udp",
        state="S0",
        orig_pkts=90000,
        resp_pkts=0,
        duration=86400.0,
    )
    scan = [
        conn(10.0 + i * 0.001, "10.0.0.69", "192.0.2.23", 1 + i, state="REJ")
        for i in range(5000)
    ]
    (a,) = run("dos.flood", [flood, stream, slow, *scan], 100000.0)
    assert a.src.ip == "10.0.0.66" and a.mitre == "T1498"
    assert "3000 per second" in a.summary


def test_new_device_once_and_known_ones_never() -> None:
    models = FakeModels([FakeDevice("known", "192.168.1.10")])
    recs = [
        conn(1.0, "192.168.1.10", "8.8.8.8", 53, proto="udp"),
        conn(
            2.0,
            "192.168.1.77",
            "8.8.8.8",
            53,
            proto="udp",
            orig_l2_addr="02:00:00:00:00:77",
        ),
        conn(
            3.0,
            "192.168.1.77",
            "8.8.4.4",
            53,
            proto="udp",
            orig_l2_addr="02:00:00:00:00:77",
        ),
        conn(4.0, "8.8.8.8", "192.168.1.10", 53, proto="udp"),  # external
    ]
    (a,) = run("device.new", recs, 10.0, models)
    assert a.device.ip == "192.168.1.77" and a.device.mac == "02:00:00:00:00:77"
    assert a.score == 20.0 and a.mitre == "T1200"
    assert "appeared at 1970-01-01 00:00:02 UTC" in a.summary


def test_new_device_after_the_network_settled() -> None:
    recs = [
        conn(0.0, "192.168.1.10", "8.8.8.8", 53, proto="udp"),
        conn(8 * 86400.0, "192.168.1.99", "8.8.8.8", 53, proto="udp"),
    ]
    alerts = run("device.new", recs, 9 * 86400.0)
    assert [a.score for a in alerts] == [20.0, 40.0]
