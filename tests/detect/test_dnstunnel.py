"""tunnel.dns and dns.dga on crafted DNS records."""

from __future__ import annotations

import random
import string
from itertools import pairwise

from sensor.detect.dga import DGA
from sensor.detect.dnstunnel import DNSTunnel
from tests.detect.netfakes import FakeNet, dns, run

SRC = "192.168.1.5"


def encoded(rnd: random.Random, n: int) -> str:
    return "".join(rnd.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def test_encoded_names_under_one_domain() -> None:
    # iodine-like: NULL queries of long encoded names under t.example.net.
    rnd = random.Random(3)
    records = [
        dns(
            100.0 + i,
            SRC,
            f"{encoded(rnd, 40)}.t.example.net",
            qtype="NULL",
            uid=f"C{i}",
        )
        for i in range(100)
    ]
    alerts = run(DNSTunnel(FakeNet()), records)
    assert alerts, "no alert"
    best = max(alerts, key=lambda a: a.score)
    assert best.score >= 90
    assert best.mitre == "T1071.004"
    assert (best.dst.ip, best.dst.port, best.dst.domain) == (
        "192.168.1.1",
        53,
        "example.net",
    )
    assert best.device.ip == SRC
    reasons = {r.feature: r.value for r in best.reasons}
    assert reasons["encoded_name_share"] == 1.0
    assert reasons["distinct_names"] >= 20
    # First reported at 40+, then again only after rising 20 points.
    scores = [a.score for a in alerts]
    assert scores[0] >= 40 and all(b >= a + 20 for a, b in pairwise(scores))


def test_commands_in_txt_answers() -> None:
    # A stager polling short names for TXT records full of base64.
    records = [
        dns(
            200.0 + 5 * i,
            SRC,
            f"l.{i % 4}.ns.example.org",
            qtype="TXT",
            answers=["TXT 255 " + "QUJD" * 60],
        )
        for i in range(20)
    ]
    alerts = run(DNSTunnel(FakeNet()), records)
    assert alerts and max(a.score for a in alerts) >= 75
    best = max(alerts, key=lambda a: a.score)
    assert "example.org" in best.summary and "(TXT 1" in best.summary
    assert {r.feature: r.value for r in best.reasons}["distinct_names"] == 4


def test_ordinary_lookups_are_quiet() -> None:
    records = []
    for i in range(40):
        name = ["www", "mail", "cdn", "static"][i % 4] + ".example.com"
        records.append(dns(10.0 * i, SRC, name, answers=["198.51.100.10"]))
    # Reverse lookups, mDNS-style names and single labels are not judged.
    records += [
        dns(500.0 + i, SRC, f"{i}.1.168.192.in-addr.arpa", qtype="PTR")
        for i in range(60)
    ]
    records += [
        dns(600.0 + i, SRC, f"{encoded(random.Random(i), 30)}.printer.local")
        for i in range(60)
    ]
    records += [dns(700.0 + i, SRC, "isatap") for i in range(20)]
    assert run(DNSTunnel(FakeNet()), records) == []


def test_popular_domain_is_below_notable_and_window_restarts() -> None:
    rnd = random.Random(4)
    records = [
        dns(100.0 + i, SRC, f"{encoded(rnd, 40)}.av-lookup.example", qtype="TXT")
        for i in range(60)
    ]
    alerts = run(
        DNSTunnel(FakeNet(users={("domain", "av-lookup.example"): 30})), records
    )
    # 90 (2.4 kB in names) times 0.4 is 36, under the report score of 40.
    assert alerts == []
    # A second burst more than an hour later is a new window, reported anew.
    later = [
        dns(4000.0 + i, SRC, f"{encoded(rnd, 40)}.av-lookup.example", qtype="TXT")
        for i in range(60)
    ]
    again = run(DNSTunnel(FakeNet()), records + later)
    assert again[0].ts < 200 and again[-1].ts >= 4000.0 and again[-1].score >= 75


def test_dga_burst_of_generated_failures() -> None:
    rnd = random.Random(5)
    records = [
        dns(50.0 + i, SRC, f"{encoded(rnd, 14)}.com", rcode="NXDOMAIN", uid=f"C{i}")
        for i in range(40)
    ]
    alerts = run(DGA(FakeNet()), records)
    assert alerts
    first = alerts[0]
    assert first.detection == "dns.dga" and first.mitre == "T1568.002"
    assert 55 <= first.score < 60
    assert max(a.score for a in alerts) >= 70  # 55 + 30 * log10(26 / 8) and up
    reasons = {r.feature: r.value for r in first.reasons}
    assert reasons["generated_looking_failed_domains"] == 8


def test_dga_ignores_typos_and_search_suffixes() -> None:
    words = ["wikipedia", "facebook", "goggle", "amazom", "netflx", "microsfot", "twiter", "yahooo",
             "linkedn", "instagarm", "redit", "githbu"]  # fmt: skip
    typos = [
        dns(10.0 + i, SRC, f"www.{w}.com", rcode="NXDOMAIN")
        for i, w in enumerate(words)
    ]
    # A stale search suffix: many failed names, all under one domain.
    suffix = [
        dns(
            100.0 + i,
            SRC,
            f"{encoded(random.Random(i), 12)}.corp.example.edu",
            rcode="NXDOMAIN",
        )
        for i in range(40)
    ]
    assert run(DGA(FakeNet()), typos + suffix) == []
