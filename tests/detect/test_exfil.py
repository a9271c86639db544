"""exfil.volume on crafted conn records and device baselines."""

from __future__ import annotations

from sensor.detect.exfil import ExfilVolume
from tests.detect.netfakes import FakeNet, conn, dns, run

SRC = "192.168.1.46"
DROP = "203.0.113.50"
MB = 1_000_000


def test_upload_far_above_history_to_a_new_domain() -> None:
    # The device's own lookup taught the models the name: it counts as one
    # user and as known, yet the address is new.
    net = FakeNet(
        baselines={(SRC, "max_upload_bytes"): 2 * MB},
        known={SRC: {("domain", "drop-example.net")}},
        users={("domain", "drop-example.net"): 1},
    )
    records = [
        dns(99.0, SRC, "upload.drop-example.net", answers=[DROP]),
        *(conn(100.0 + i, SRC, DROP, 443, sent=12 * MB, uid=f"C{i}") for i in range(4)),
    ]
    alerts = run(ExfilVolume(net), records)
    # 24 MB is 12x the 2 MB history (55), 48 MB is 24x (66), not 15 up.
    assert [round(a.score, 1) for a in alerts] == [57.4]
    a = alerts[0]
    assert (
        a.mitre == "T1048" and a.dst.domain == "drop-example.net" and a.dst.ip == DROP
    )
    assert "sent 24 MB to drop-example.net, a destination only 1 device" in a.summary
    assert "its largest upload to one peer in 30 days was 2.0 MB" in a.summary
    assert a.uids == ["C0", "C1"]
    reasons = {r.feature: (r.value, r.baseline) for r in a.reasons}
    assert reasons["bytes_sent"] == (24 * MB, 2 * MB)
    assert reasons["times_largest_upload"][0] == 12.0


def test_usual_or_popular_destinations_are_quiet() -> None:
    net = FakeNet(
        baselines={(SRC, "max_upload_bytes"): 2 * MB},
        users={("ip", DROP): 6},
        known={SRC: {("ip", "198.51.100.9")}},
    )
    popular = [conn(100.0 + i, SRC, DROP, 443, sent=40 * MB) for i in range(3)]
    usual = [conn(200.0 + i, SRC, "198.51.100.9", 443, sent=40 * MB) for i in range(3)]
    internal = [
        conn(300.0 + i, SRC, "192.168.1.10", 445, sent=400 * MB) for i in range(3)
    ]
    assert run(ExfilVolume(net), popular + usual + internal) == []


def test_no_history_and_learning() -> None:
    # No baseline: 5 MB is assumed, so 100 MB is 20x (64); learning halves it.
    net = FakeNet(learning_devices={SRC})
    alerts = run(ExfilVolume(net), [conn(100.0, SRC, DROP, 443, sent=100 * MB)])
    assert len(alerts) == 1
    assert round(alerts[0].score, 1) == 32.0
    assert "no upload history yet" in alerts[0].summary
    assert "score halved" in alerts[0].summary
    # Below min_bytes nothing is judged at all.
    assert run(ExfilVolume(FakeNet()), [conn(100.0, SRC, DROP, 443, sent=9 * MB)]) == []
