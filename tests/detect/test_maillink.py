"""email.rare_link on crafted smtp.log records."""

from __future__ import annotations

from typing import Any

from sensor.detect.maillink import RareMailLink, address, shared_host
from tests.detect.netfakes import FakeNet, run


def mail(
    ts: float, sender: str, rcpt: str, urls: list[str], uid: str = "CM"
) -> tuple[str, dict[str, Any]]:
    return "smtp", {
        "ts": ts,
        "uid": uid,
        "id.orig_h": "198.51.100.25",
        "id.orig_p": 40000,
        "id.resp_h": "192.168.1.10",
        "id.resp_p": 25,
        "mailfrom": sender,
        "rcptto": [rcpt],
        "from": f"Someone <{sender}>",
        "urls": urls,
    }


def test_helpers() -> None:
    assert address("Testa <TestA@Lalala.com>") == "testa@lalala.com"
    assert shared_host("codashop-free01.duckdns.org")
    assert not shared_host("www.example.com")


def test_trusted_sender_links_somewhere_new() -> None:
    det = RareMailLink(FakeNet())
    history = [
        mail(
            1.0,
            "boss@partner.example",
            "ann@corp.example",
            ["https://docs.partner.example/q3", "https://www.vendor-example.com/"],
        ),
        mail(
            2.0,
            "boss@partner.example",
            "bob@corp.example",
            ["https://www.vendor-example.com/x"],
        ),
    ]
    # The first mail of a new sender with a new domain: 40, not notable;
    # links to the sender's own domain and to known domains: nothing.
    assert [(a.score, a.dst.domain) for a in run(det, history)] == [
        (40.0, "vendor-example.com")
    ]
    phish = [
        mail(
            3.0,
            "boss@partner.example",
            "ann@corp.example",
            ["http://login-portal.duckdns.org/o365"],
            uid="CP",
        )
    ]
    alerts = run(det, phish)
    assert len(alerts) == 1
    a = alerts[0]
    assert a.score == 65.0  # 40 rare + 15 shared suffix + 10 known sender
    assert a.mitre == "T1566.002" and a.uids == ["CP"] and a.dst.domain == "duckdns.org"
    assert "links to http://login-portal.duckdns.org/o365" in a.summary
    assert "a sender seen before" in a.summary
    # The same link again to the same recipient is no longer new.
    assert (
        run(
            det,
            [
                mail(
                    4.0,
                    "boss@partner.example",
                    "ann@corp.example",
                    ["http://login-portal.duckdns.org/b"],
                )
            ],
        )
        == []
    )


def test_new_sender_and_popular_domains() -> None:
    first = [
        mail(
            1.0,
            "xxx@client.mydomain.com",
            "rcpt@server.domain.com",
            ["http://codashop-free01.duckdns.org/"],
        )
    ]
    assert [a.score for a in run(RareMailLink(FakeNet()), first)] == [55.0]
    # A domain many devices use (a newsletter's CDN) is not rare.
    net = FakeNet(users={("domain", "duckdns.org"): 4})
    assert run(RareMailLink(net), first) == []
    # A plain new domain from a new sender scores 40: reported, not notable.
    plain = [
        mail(
            1.0,
            "news@shop.example",
            "ann@corp.example",
            ["https://track.mailer-example.net/c"],
        )
    ]
    assert [a.score for a in run(RareMailLink(FakeNet()), plain)] == [40.0]


def test_malformed_links_are_skipped() -> None:
    # Links come from the sender's text: broken ones must not stop the mail.
    bad = ["http://[::1", "::::", "", "http://", "mailto:x@y"]
    first = [mail(1.0, "a@b.example", "c@d.example", [*bad, "http://x.duckdns.org/"])]
    alerts = run(RareMailLink(FakeNet()), first)
    assert [(a.score, a.dst.domain) for a in alerts] == [(55.0, "duckdns.org")]
    assert "(6 links in all)" in alerts[0].summary
