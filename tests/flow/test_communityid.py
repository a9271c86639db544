"""Community ID v1 against published values from four independent sources."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sensor.flow.communityid import community_id, community_id_packed

HERE = Path(__file__).resolve().parent

# The specification's baseline tables (community-id-spec, baseline/README.md):
# (proto, src, dst, sport, dport, default id, id with seed=1). For ICMP the
# "ports" are type and code; port-less RSVP gets 0/0.
A6 = "fe80:0001:0203:0405:0607:0809:0A0B:0C0D"
B6 = "fe80:1011:1213:1415:1617:1819:1A1B:1C1D"
SPEC_TABLE = [
    (6, "1.2.3.4", "5.6.7.8", 1122, 3344, "wCb3OG7yAFWelaUydu0D+125CLM=", "HhA1B+6CoLbiKPEs5nhNYN4XWfk="),
    (6, "5.6.7.8", "1.2.3.4", 3344, 1122, "wCb3OG7yAFWelaUydu0D+125CLM=", "HhA1B+6CoLbiKPEs5nhNYN4XWfk="),
    (17, "1.2.3.4", "5.6.7.8", 1122, 3344, "0Mu9InQx6z4ZiCZM/7HXi2WMhOg=", "OShq+iKDAMVouh/4bMxB9Sz4amw="),
    (17, "5.6.7.8", "1.2.3.4", 3344, 1122, "0Mu9InQx6z4ZiCZM/7HXi2WMhOg=", "OShq+iKDAMVouh/4bMxB9Sz4amw="),
    (132, "1.2.3.4", "5.6.7.8", 1122, 3344, "EKt4MsxuyaE6mL+hmrEkQ9csDD8=", "uitchpn5MMGAQKBJh7bIr/bAr7s="),
    (132, "5.6.7.8", "1.2.3.4", 3344, 1122, "EKt4MsxuyaE6mL+hmrEkQ9csDD8=", "uitchpn5MMGAQKBJh7bIr/bAr7s="),
    (1, "1.2.3.4", "5.6.7.8", 8, 0, "crodRHL2FEsHjbv3UkRrfbs4bZ0=", "9pr4ZGTICiuZoIh90RRYE2RyXpU="),
    (1, "5.6.7.8", "1.2.3.4", 0, 0, "crodRHL2FEsHjbv3UkRrfbs4bZ0=", "9pr4ZGTICiuZoIh90RRYE2RyXpU="),
    (1, "1.2.3.4", "5.6.7.8", 11, 0, "f/YiSyWqczrTgfUCZlBUnvHRcPk=", "1DD7cWGC/Yg91YGsQeni8du3pIA="),
    (58, A6, B6, 128, 0, "0bf7hyMJUwt3fMED7z8LIfRpBeo=", "IO27GQzPuCtNnwFvjWALMHu5tJE="),
    (58, B6, A6, 129, 0, "0bf7hyMJUwt3fMED7z8LIfRpBeo=", "IO27GQzPuCtNnwFvjWALMHu5tJE="),
    (58, A6, B6, 146, 0, "fYC8+pz24E+EhANP1EZhpX0Dw10=", "Cv4IKJe56BNkF0MBW2YxQ3Nwc3s="),
    (46, "1.2.3.4", "5.6.7.8", 0, 0, "ikv3kmf89luf73WPz1jOs49S768=", "/buhqeOmaRCopOZFy9HnoJd5XW8="),
    (46, "5.6.7.8", "1.2.3.4", 0, 0, "ikv3kmf89luf73WPz1jOs49S768=", "/buhqeOmaRCopOZFy9HnoJd5XW8="),
    (46, A6, B6, 0, 0, "wQ/2mwrnXP4lmJcHdGL5ePjR+e0=", "j6EyyfBzL4vWKHFXgUqb5Az3OxM="),
    (46, B6, A6, 0, 0, "wQ/2mwrnXP4lmJcHdGL5ePjR+e0=", "j6EyyfBzL4vWKHFXgUqb5Az3OxM="),
]  # fmt: skip

# The specification's baseline/baseline_deflt.json (pycommunityid over the
# spec's combined.pcap): (proto, src, dst, sport, dport, id), seed 0. Its
# ICMP "ports" are already mapped (type, counterpart type or code).
SPEC_PCAP = [
    (58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 135, 136, "dGHyGvjMfljg6Bppwm3bg0LO8TY="),
    (58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", 136, 135, "dGHyGvjMfljg6Bppwm3bg0LO8TY="),
    (58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", 135, 136, "zavyT/cezQr1fmImYCwYnMXbgck="),
    (58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 136, 135, "zavyT/cezQr1fmImYCwYnMXbgck="),
    (58, "3ffe:501:1800:2345::2", "3ffe:507:0:1:200:86ff:fe05:80da", 3, 0, "2ObVBgIn28oZvibYZhZMBgh7WdQ="),
    (58, "3ffe:501:410:0:2c0:dfff:fe47:33e", "3ffe:507:0:1:200:86ff:fe05:80da", 1, 4, "hLZd0XGWojozrvxqE0dWB1iM6R0="),
    (58, "3ffe:507:0:1:200:86ff:fe05:80da", "3ffe:501:0:1001::2", 128, 129, "+TW+HtLHvV1xnGhV1lv7XoJrqQg="),
    (58, "3ffe:501:0:1001::2", "3ffe:507:0:1:200:86ff:fe05:80da", 129, 128, "+TW+HtLHvV1xnGhV1lv7XoJrqQg="),
    (58, "fe80::200:86ff:fe05:80da", "ff02::2", 133, 134, "hO+sN4H+MG5MY/8hIrXPqc4ZQz0="),
    (58, "fe80::260:97ff:fe07:69ea", "ff02::1", 134, 133, "pkvHqCL88/tg1k4cPigmZXUtL00="),
    (1, "192.168.0.89", "192.168.0.1", 8, 0, "X0snYXpgwiv9TZtqg64sgzUn6Dk="),
    (1, "192.168.0.1", "192.168.0.89", 0, 8, "X0snYXpgwiv9TZtqg64sgzUn6Dk="),
    (1, "10.0.0.1", "10.0.0.2", 11, 0, "YHxtAirCG//0OzkcVAukqKQN9xM="),
    (6, "2001:470:e5bf:dead:4957:2174:e82c:4887", "2607:f8b0:400c:c03::1a", 63943, 25, "/qFaeAR+gFe1KYjMzVDsMv+wgU4="),
    (6, "2607:f8b0:400c:c03::1a", "2001:470:e5bf:dead:4957:2174:e82c:4887", 25, 63943, "/qFaeAR+gFe1KYjMzVDsMv+wgU4="),
    (132, "192.168.170.8", "192.168.170.56", 7, 7, "MP2EtRCAUIZvTw6MxJHLV7N7JDs="),
    (132, "192.168.170.56", "192.168.170.8", 7, 7, "MP2EtRCAUIZvTw6MxJHLV7N7JDs="),
    (6, "128.232.110.120", "66.35.250.204", 34855, 80, "LQU9qZlK+B5F3KDmev6m5PMibrg="),
    (6, "66.35.250.204", "128.232.110.120", 80, 34855, "LQU9qZlK+B5F3KDmev6m5PMibrg="),
    (17, "192.168.1.52", "8.8.8.8", 54585, 53, "d/FP5EW3wiY1vCndhwleRRKHowQ="),
    (17, "8.8.8.8", "192.168.1.52", 53, 54585, "d/FP5EW3wiY1vCndhwleRRKHowQ="),
    (46, "10.1.12.1", "10.1.12.2", 0, 0, "KHlLkgoJW7ifUTyTSgyVfkFHzKw="),
    (46, "10.1.12.2", "10.1.12.1", 0, 0, "KHlLkgoJW7ifUTyTSgyVfkFHzKw="),
]  # fmt: skip


@pytest.mark.parametrize("proto,src,dst,sport,dport,default,seed1", SPEC_TABLE)
def test_spec_table(
    proto: int, src: str, dst: str, sport: int, dport: int, default: str, seed1: str
) -> None:
    assert community_id(src, sport, dst, dport, proto) == "1:" + default
    assert community_id(src, sport, dst, dport, proto, seed=1) == "1:" + seed1


@pytest.mark.parametrize("proto,src,dst,sport,dport,expected", SPEC_PCAP)
def test_spec_pcap_baseline(
    proto: int, src: str, dst: str, sport: int, dport: int, expected: str
) -> None:
    assert community_id(src, sport, dst, dport, proto) == "1:" + expected


def test_zeek_baseline() -> None:
    # Zeek's btest scripts.policy.protocols.conn.community-id-logging.
    cid = community_id("141.142.228.5", 59856, "192.150.187.43", 80, 6)
    assert cid == "1:yvyB8h+3dnggTZW0UEITWCst97w="


def suricata_checks(test_dir: Path) -> list[tuple[str, int, str, int, int, str]]:
    """(src, sport, dst, dport, seed, id) of every check in a test.yaml.

    A small line parser, so that the tests need no YAML library; the seed
    comes from the test's suricata.yaml.
    """
    config = (test_dir / "suricata.yaml").read_text()
    seed = int(re.search(r"community-id-seed:\s*(\d+)", config).group(1))  # type: ignore[union-attr]
    checks = []
    for block in (test_dir / "test.yaml").read_text().split("- filter:")[1:]:
        f = dict(re.findall(r"^\s+([\w.]+):\s*(\S+)\s*$", block, re.MULTILINE))
        checks.append(
            (f["src_ip"], int(f["src_port"]), f["dest_ip"], int(f["dest_port"]), seed, f["community_id"])
        )  # fmt: skip
    return checks


@pytest.mark.parametrize("test", ["community-id-ipv4", "community-id-ipv6"])
def test_suricata_verify(pcaps: Path, test: str) -> None:
    checks = suricata_checks(pcaps / "suricata" / test)
    assert len(checks) == (2 if test.endswith("ipv4") else 4)
    for src, sport, dst, dport, seed, expected in checks:
        assert seed == 7
        assert community_id(src, sport, dst, dport, 6, seed) == expected


def test_suricata_values_without_shared_captures() -> None:
    # The same expectations written out, seed 7 as in their suricata.yaml.
    assert (
        community_id("172.26.0.39", 35958, "172.217.14.206", 443, 6, 7)
        == "1:IwiTNfuO7aCaamMijl+7/X9uLx0="
    )
    assert (
        community_id("2600:1f13:f8:d400:3a6:303c:e011:18eb", 60202, "2607:f8b0:400a:800::200e", 443, 6, 7)
        == "1:ptJhMvufAbB5nLDNW77cB800wFM="
    )  # fmt: skip


def test_zeek_conn_logs_against_wireshark() -> None:
    # Every ICMP connection in the shared zeek-logs conn.logs, and the first
    # TCP/UDP ones of each, with the id Wireshark computed for their packets
    # (tests/flow/make_communityid_cases.py).
    cases = json.loads((HERE / "communityid_cases.json").read_text())
    icmp = [c for c in cases if c["ip_proto"] in (1, 58)]
    assert len(cases) >= 400 and len(icmp) >= 70
    wrong = [
        c
        for c in cases
        if community_id(
            c["orig_h"], c["orig_p"], c["resp_h"], c["resp_p"], c["ip_proto"]
        )
        != c["community_id"]
    ]
    assert wrong == []


def test_one_way_icmp_keeps_direction() -> None:
    # Destination unreachable (type 3, code 3) is one-way: reversing the
    # endpoints gives another id. An echo request and its reply share one.
    there = community_id("10.0.0.9", 3, "10.0.0.1", 3, 1)
    back = community_id("10.0.0.1", 3, "10.0.0.9", 3, 1)
    assert there != back
    assert community_id("10.0.0.9", 8, "10.0.0.1", 0, 1) == community_id(
        "10.0.0.1", 0, "10.0.0.9", 8, 1
    )


def test_packed_matches_text() -> None:
    assert community_id_packed(
        bytes([1, 2, 3, 4]), 1122, bytes([5, 6, 7, 8]), 3344, 6
    ) == ("1:wCb3OG7yAFWelaUydu0D+125CLM=")


@pytest.mark.parametrize(
    "args,message",
    [
        (("1.2.3.4", 1, "::1", 2, 6), "4 and 16 bytes"),
        (("1.2.3.400", 1, "1.2.3.4", 2, 6), "does not appear to be an IPv4 or IPv6"),
        (("1.2.3.4", 70000, "1.2.3.5", 2, 6), "orig_p 70000 outside 0..65535"),
        (("1.2.3.4", 1, "1.2.3.5", -1, 6), "resp_p -1 outside"),
        (("1.2.3.4", 1, "1.2.3.5", 2, 256), "proto 256 outside 0..255"),
        (("1.2.3.4", 1, "1.2.3.5", 2, 6, 65536), "seed 65536 outside"),
        (("1.2.3.4\x00", 1, "1.2.3.5", 2, 6), "does not appear to be an IPv4 or IPv6"),
        (("01.2.3.4", 1, "1.2.3.5", 2, 6), "does not appear to be an IPv4 or IPv6"),
        (("\udcff", 1, "1.2.3.5", 2, 6), "does not appear to be an IPv4 or IPv6"),
    ],
)
def test_bad_input_is_named(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        community_id(*args)  # type: ignore[arg-type]


@given(
    st.ip_addresses(v=4),
    st.ip_addresses(v=4),
    st.integers(0, 65535),
    st.integers(0, 65535),
    st.sampled_from([6, 17, 132]),
)
def test_direction_does_not_matter(
    a: object, b: object, pa: int, pb: int, proto: int
) -> None:
    there = community_id(str(a), pa, str(b), pb, proto)
    assert there == community_id(str(b), pb, str(a), pa, proto)
    assert re.fullmatch(r"1:[A-Za-z0-9+/]{27}=", there)


@given(st.ip_addresses(), st.ip_addresses())
def test_text_forms_agree_with_ipaddress(a: object, b: object) -> None:
    # The C library parses the text on the hot path; ipaddress is the
    # reference for every form it reads (IPv4-mapped, scoped, objects).
    if a.version != b.version:  # type: ignore[attr-defined]
        return
    want = community_id_packed(a.packed, 1, b.packed, 2, 6)  # type: ignore[attr-defined]
    assert community_id(str(a), 1, str(b), 2, 6) == want
    assert community_id(a, 1, b, 2, 6) == want  # type: ignore[arg-type]
    if a.version == 6:  # type: ignore[attr-defined]
        assert community_id(f"{a}%eth0", 1, str(b), 2, 6) == want
