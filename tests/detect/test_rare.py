"""endpoint.rare and tls.rare_fingerprint on crafted records."""

from __future__ import annotations

from sensor.detect.rare import RareEndpoint, RareFingerprint
from tests.detect.netfakes import FakeNet, conn, run, ssl

SRC = "10.12.29.101"
C2 = "82.118.225.196"


def test_new_rare_address_on_an_odd_port() -> None:
    # Trickbot's shape: HTTP by address to port 7080, never seen here.
    records = [
        conn(100.0, SRC, C2, 7080, uid="CT", service="http", sent=1277, back=56713)
    ]
    alerts = run(RareEndpoint(FakeNet()), records)
    assert len(alerts) == 1
    a = alerts[0]
    assert a.score == 65.0  # 25 + 10 never seen + 10 by address + 20 odd port
    assert (a.dst.ip, a.dst.port, a.dst.domain, a.uids) == (C2, 7080, None, ["CT"])
    assert (
        "never seen on the network" in a.summary and "uncommon port 7080" in a.summary
    )
    features = [r.feature for r in a.reasons]
    assert features == [
        "new_for_device",
        "devices_using_destination",
        "never_seen_on_network",
        "reached_by_address",
        "uncommon_port",
    ]
    # Judged once per device and destination.
    again = run(
        RareEndpoint(FakeNet()), records + [conn(200.0, SRC, C2, 7080, uid="CU")]
    )
    assert len(again) == 1


def test_learning_halves_and_known_or_popular_is_quiet() -> None:
    records = [conn(100.0, SRC, C2, 7080)]
    learning = run(RareEndpoint(FakeNet(learning_devices={SRC})), records)
    assert learning == []  # 32.5 while learning: under the report score of 45
    overridden = RareEndpoint(FakeNet(learning_devices={SRC}), {"report_score": 30.0})
    assert [a.score for a in run(overridden, records)] == [32.5]
    assert run(RareEndpoint(FakeNet(known={SRC: {("ip", C2)}})), records) == []
    assert run(RareEndpoint(FakeNet(users={("ip", C2): 3})), records) == []
    # A named web site seen before on the network scores 25: not reported.
    named = [
        ssl(99.0, SRC, "198.51.100.7", uid="CS", sni="www.example.com"),
        conn(99.0, SRC, "198.51.100.7", 443, uid="CS"),
    ]
    net = FakeNet(
        first_seen={("domain", "example.com"): 1.0},
        users={("domain", "example.com"): 1},
    )
    assert run(RareEndpoint(net), named) == []
    # Unanswered attempts, DNS and internal peers are not judged.
    quiet = [
        conn(1.0, SRC, C2, 7080, state="S0", back=0),
        conn(2.0, SRC, "8.8.8.8", 53, proto="udp"),
        conn(3.0, SRC, "10.12.29.1", 8080),
    ]
    assert run(RareEndpoint(FakeNet()), quiet) == []


def test_rare_tls_fingerprint() -> None:
    hello = [ssl(100.0, SRC, C2, uid="CJ", sni="odd.example.net", ja3="a" * 32)]
    alerts = run(RareFingerprint(FakeNet()), hello)
    assert len(alerts) == 1
    a = alerts[0]
    assert a.score == 65.0 and a.mitre == "T1573"
    assert a.dst.domain == "example.net" and a.uids == ["CJ"]
    assert "JA3 " + "a" * 32 in a.summary
    learning = FakeNet(learning_devices={SRC})
    assert run(RareFingerprint(learning), hello) == []  # 32.5, under 40
    low = RareFingerprint(learning, {"report_score": 30.0})
    assert [a.score for a in run(low, hello)] == [32.5]
    # A browser's fingerprint that many devices use, or one the device has.
    assert run(RareFingerprint(FakeNet(users={("ja3", "a" * 32): 8})), hello) == []
    assert run(RareFingerprint(FakeNet(known={SRC: {("ja3", "a" * 32)}})), hello) == []


def test_ja4_first() -> None:
    # Chrome shuffles its extensions: a new JA3 each time, one JA4.
    ja4 = "t13d1516h2_8daaf6152771_e5627efa2ab1"
    known = FakeNet(known={SRC: {("ja4", ja4)}})
    hellos = []
    for i in range(5):
        name, rec = ssl(100.0 + i, SRC, C2, uid=f"C{i}", ja3=f"{i:032d}")
        rec["ja4"] = ja4
        hellos.append((name, rec))
    assert run(RareFingerprint(known), hellos) == []
    alerts = run(RareFingerprint(FakeNet()), hellos)
    assert len(alerts) == 1 and f"JA4 {ja4}" in alerts[0].summary
