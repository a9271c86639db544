"""c2.beacon: RITA-style scoring of check-in series, and the detection."""

from __future__ import annotations

import random

from sensor.detect.beacon import Beacon, judge
from tests.detect.netfakes import FakeNet, conn, run, ssl

SRC = "192.168.1.5"
C2 = "203.0.113.7"


def series(starts: list[float], sizes: list[int]) -> list[tuple[float, int]]:
    return list(zip(starts, sizes, strict=True))


def test_judge_strict_schedule_scores_one() -> None:
    j = judge(series([60.0 * i for i in range(30)], [300] * 30), 1.0, 1.0, 0.5)
    assert j is not None
    assert j.checkins == 30 and j.interval == 60.0 and j.jitter == 0.0
    assert j.score > 0.99


def test_judge_tolerates_jitter() -> None:
    # 30% uniform jitter around 60 s, request sizes within a few bytes.
    rnd = random.Random(1)
    t, starts = 0.0, []
    for _ in range(40):
        starts.append(t)
        t += 60 * (1 + rnd.uniform(-0.3, 0.3))
    j = judge(series(starts, [300 + rnd.randint(-4, 4) for _ in starts]), 1.0, 1.0, 0.5)
    assert j is not None
    assert 0.75 < j.score < 0.97
    assert 5 < j.jitter < 14  # about half the 18 s jitter half-width, give or take


def test_judge_browsing_is_not_a_beacon() -> None:
    # Random (Poisson) visits with sizes spread over two orders of magnitude.
    rnd = random.Random(2)
    t, starts = 0.0, []
    for _ in range(60):
        starts.append(t)
        t += rnd.expovariate(1 / 40)
    sizes = [int(rnd.lognormvariate(7, 1.2)) for _ in starts]
    j = judge(series(starts, sizes), 1.0, 1.0, 0.5)
    assert j is not None and j.score < 0.6


def test_judge_merges_bursts() -> None:
    # Each check-in opens two connections 50 ms apart.
    starts = sorted(
        [30.0 * i for i in range(20)] + [30.0 * i + 0.05 for i in range(20)]
    )
    j = judge(series(starts, [200] * 40), 1.0, 1.0, 0.5)
    assert j is not None and j.checkins == 20 and j.conns == 40 and j.interval == 30.0


def test_alert_names_device_destination_and_numbers() -> None:
    # Judged at the end only, so that the alert covers the whole series.
    records = [conn(1000.0 + 60 * i, SRC, C2, 443, uid=f"C{i}") for i in range(40)]
    alerts = run(Beacon(FakeNet(), {"judge_every": 1e9}), records)
    assert len(alerts) == 1
    a = alerts[0]
    assert a.detection == "c2.beacon" and a.mitre == "T1071"
    assert a.score > 95
    assert a.device.ip == SRC and a.device.name == f"host-{SRC}"
    assert (a.dst.ip, a.dst.port, a.dst.domain) == (C2, 443, None)
    assert "40 times" in a.summary and "60.0 s interval" in a.summary
    assert "jitter 0.0 s" in a.summary
    assert len(a.uids) == 20 and a.uids[0] == "C0" and a.uids[-1] == "C39"
    reasons = {r.feature: r.value for r in a.reasons}
    assert reasons["checkins"] == 40 and reasons["interval_s"] == 60.0


def test_series_per_domain_spans_addresses() -> None:
    # One C2 domain behind two addresses, alternating: one series.
    records = []
    for i in range(30):
        ip = "203.0.113.7" if i % 2 else "203.0.113.8"
        records.append(
            ssl(500.0 + 45 * i + 0.1, SRC, ip, uid=f"C{i}", sni="cdn.evil-example.com")
        )
        records.append(conn(500.0 + 45 * i, SRC, ip, 443, uid=f"C{i}"))
    alerts = run(Beacon(FakeNet(), {"judge_every": 1e9}), records)
    assert len(alerts) == 1
    assert alerts[0].dst.domain == "evil-example.com"
    assert "evil-example.com" in alerts[0].summary and "30 times" in alerts[0].summary


def test_too_few_or_quiet_ports_are_not_judged() -> None:
    few = [conn(60.0 * i, SRC, C2, 443) for i in range(8)]
    assert run(Beacon(FakeNet()), few) == []
    dns = [conn(60.0 * i, SRC, "192.168.1.1", 53, proto="udp") for i in range(50)]
    ntp = [conn(64.0 * i, SRC, "198.51.100.1", 123, proto="udp") for i in range(50)]
    assert run(Beacon(FakeNet()), sorted(dns + ntp, key=lambda r: r[1]["ts"])) == []


def test_popular_destination_is_below_notable() -> None:
    net = FakeNet(users={("ip", C2): 12})
    alerts = run(Beacon(net), [conn(60.0 * i, SRC, C2, 443) for i in range(40)])
    assert len(alerts) == 1 and 38 < alerts[0].score <= 40  # times 0.4
    assert any(
        r.feature == "devices_using_destination" and r.value == 12
        for r in alerts[0].reasons
    )


def test_thresholds_override_and_state_is_bounded() -> None:
    det = Beacon(FakeNet(), {"min_score": 0.99, "max_series": 10})
    records = [conn(10.0 * i, f"192.168.2.{i}", C2, 443) for i in range(50)]
    run(det, records)
    assert len(det.series) == 10 and det.series.evicted == 40
    jittery = [conn(60.0 * i + (7 if i % 3 else 0), SRC, C2, 443) for i in range(40)]
    assert run(Beacon(FakeNet(), {"min_score": 0.99}), jittery) == []


def test_reported_while_it_runs() -> None:
    # Judged every 300 s of packet time: the alert comes before the series
    # ends, once it has enough check-ins, and is not repeated at the end.
    records = [conn(60.0 * i, SRC, C2, 443) for i in range(60)]
    alerts = run(Beacon(FakeNet()), records)
    assert len(alerts) == 1
    assert alerts[0].ts < records[-1][1]["ts"]
    assert any(
        r.feature == "checkins" and 10 <= r.value < 60 for r in alerts[0].reasons
    )


def test_long_series_is_trimmed_and_keeps_its_uid_sample() -> None:
    det = Beacon(FakeNet(), {"max_conns": 100, "judge_every": 1e9})
    records = [conn(30.0 * i, SRC, C2, 443, uid=f"C{i}") for i in range(1000)]
    alerts = run(det, records)
    (series,) = [s for _, s in det.series.items()]
    assert 100 <= len(series.ts) < 125 and len(series.sent) == len(series.ts)
    assert len(alerts) == 1
    assert alerts[0].uids[:2] == ["C0", "C1"] and alerts[0].uids[-1] == "C999"
    # Judged on the connections kept: the latest ones.
    assert any(
        r.feature == "checkins" and 100 <= r.value < 125 for r in alerts[0].reasons
    )


def test_unanswered_datagrams_and_internal_names() -> None:
    # A router's discovery datagrams every 6 min, never answered: no series.
    quiet = [
        conn(
            360.0 * i, "192.168.1.1", "192.168.1.46", 9999, proto="udp", back=0, pkts=3
        )
        for i in range(20)
    ]
    for _, r in quiet:
        r["resp_pkts"] = 0
    assert run(Beacon(FakeNet()), quiet) == []
    # Two internal servers named under one AD domain stay two series.
    records = []
    for i in range(24):
        ip = "192.168.1.10" if i % 2 else "192.168.1.11"
        records.append(
            ssl(60.0 * i, SRC, ip, uid=f"C{i}", sni=f"srv{i % 2}.corp.example")
        )
        records.append(conn(60.0 * i, SRC, ip, 443, uid=f"C{i}"))
    alerts = run(Beacon(FakeNet(), {"judge_every": 1e9}), records)
    assert sorted((a.dst.ip, a.dst.domain) for a in alerts) == [
        ("192.168.1.10", None),
        ("192.168.1.11", None),
    ]


def test_a_minute_of_a_script_is_not_a_schedule() -> None:
    # 30 requests 2 s apart (a script's loop, a login brute force): 58 s.
    loop = [conn(2.0 * i, SRC, C2, 80, sent=38) for i in range(30)]
    assert run(Beacon(FakeNet()), loop) == []
    alerts = run(Beacon(FakeNet(), {"min_span": 30.0}), loop)
    assert len(alerts) == 1 and alerts[0].score > 95
