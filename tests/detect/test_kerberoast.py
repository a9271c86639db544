"""credential.kerberoast: the Rubeus capture (LDAP only) and RC4 TGS floods."""

from __future__ import annotations

import pytest

from sensor.detect.kerberoast import Kerberoast
from tests.detect.winreplay import FakeModels, records, run

RUBEUS = "attacks/lateral/elcabezzonn_rubeus_kerberoast.pcap"


def test_rubeus_spn_search_over_ldap() -> None:
    alerts = run(Kerberoast(FakeModels()), RUBEUS)
    assert len(alerts) == 1
    a = alerts[0]
    assert (a.src.ip, a.dst.ip, a.score, a.mitre) == (
        "192.168.1.46",
        "192.168.1.62",
        65,
        "T1558.003",
    )
    feats = {r.feature: r.value for r in a.reasons}
    assert "(servicePrincipalName=*)" in feats["ldap_spn_search"]
    assert feats["spn_search_for_user_accounts"] is True
    assert "user accounts with a service principal name" in a.summary


def test_ldap_search_log_has_zeeks_fields() -> None:
    searches = [r for n, r in records(RUBEUS) if n == "ldap_search"]
    spn = [r for r in searches if "servicePrincipalName=*" in r.get("filter", "")]
    assert len(spn) == 1
    r = spn[0]
    assert (r["scope"], r["deref_aliases"], r["base_object"], r["result"]) == (
        "tree",
        "never",
        "DC=picklesworth,DC=local",
        "success",
    )
    assert r["result_count"] == 1
    assert r["filter"].startswith(
        "(&(samAccountType=805306368)(servicePrincipalName=*)"
    )
    binds = [
        r for n, r in records(RUBEUS) if n == "ldap" and r["opcode"] == "bind SASL"
    ]
    assert [b["argument"] for b in binds] == ["GSS-SPNEGO", "GSS-SPNEGO"]


def _tgs(i: int, service: str, ciphers: list[str]) -> dict[str, object]:
    return {
        "ts": 100.0 + i, "uid": f"CK{i}", "id.orig_h": "192.0.2.10", "id.orig_p": 50000 + i,
        "id.resp_h": "192.0.2.1", "id.resp_p": 88, "request_type": "TGS",
        "service": service, "req_ciphers": ciphers, "cipher": ciphers[0], "success": True,
    }  # fmt: skip


def test_rc4_tickets_for_many_services() -> None:
    det = Kerberoast(FakeModels())
    out = []
    for i, svc in enumerate(
        ["MSSQLSvc/db1:1433", "http/web1", "cifs/fs1", "http/web2"]
    ):
        out += det.observe("kerberos", _tgs(i, svc, ["rc4-hmac"]))
    assert [a.score for a in out] == [55, 60]
    assert "4 services" in out[-1].summary and "cifs/fs1" in out[-1].summary
    assert out[-1].uids == ["CK0", "CK1", "CK2", "CK3"]


@pytest.mark.parametrize("ciphers", [["aes256-cts-hmac-sha1-96", "rc4-hmac"]])
def test_aes_tickets_and_krbtgt_are_normal(ciphers: list[str]) -> None:
    det = Kerberoast(FakeModels())
    out = []
    for i in range(10):
        out += det.observe("kerberos", _tgs(i, f"cifs/fs{i}", ciphers))
        out += det.observe("kerberos", _tgs(i, "krbtgt/EXAMPLE.ORG", ["rc4-hmac"]))
    assert out == []


@pytest.mark.parametrize(
    "capture",
    [
        "benign/winlab_2016-08-15_2009_macgyver.pcapng",
        "benign/winlab_2016-08-16_2044_windows_miscellany.pcapng",
        "benign/winlab_2016-08-16_2104_aug16_part2.pcapng",
    ],
)
def test_no_alert_on_normal_domain_traffic(capture: str) -> None:
    assert run(Kerberoast(FakeModels()), capture) == []
