"""LDAP parser and analyzer: crafted messages, hostile lengths, the Rubeus capture."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.proto.analyzer import ConnInfo
from sensor.proto.analyzers.ldap import LDAPAnalyzer
from sensor.proto.parsers import ldap as p
from tests.detect.winreplay import records

#: Fuzz examples: SENSOR_FUZZ=deep (make deep-fuzz) for a long run.
EXAMPLES = 5000 if os.environ.get("SENSOR_FUZZ") == "deep" else 300

CONN = ConnInfo("CL1", "tcp", "192.0.2.10", 50000, "192.0.2.1", 389)


def tlv(tag: int, value: bytes) -> bytes:
    """One BER element with a definite length."""
    n = len(value)
    if n < 0x80:
        return bytes([tag, n]) + value
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + value


def octets(text: str, tag: int = 0x04) -> bytes:
    return tlv(tag, text.encode())


def integer(v: int, tag: int = 0x02) -> bytes:
    return tlv(tag, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True))


def message(mid: int, op: bytes) -> bytes:
    return tlv(0x30, integer(mid) + op)


def search(mid: int, base: str, flt: bytes, attrs: list[str]) -> bytes:
    body = (
        octets(base) + integer(2, 0x0A) + integer(0, 0x0A) + integer(0) + integer(0)
        + tlv(0x01, b"\x00") + flt + tlv(0x30, b"".join(octets(a) for a in attrs))
    )  # fmt: skip
    return message(mid, tlv(p.SEARCH_REQUEST, body))


def result(mid: int, op: int, code: int, diag: str = "") -> bytes:
    return message(mid, tlv(op, integer(code, 0x0A) + octets("") + octets(diag)))


SPN_FILTER = tlv(
    0xA0,
    tlv(0xA3, octets("samAccountType") + octets("805306368"))
    + octets("servicePrincipalName", 0x87)
    + tlv(0xA2, tlv(0xA3, octets("samAccountName") + octets("krbtgt"))),
)


def feed(chunks: list[tuple[bool, bytes]]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    a = LDAPAnalyzer(CONN, lambda n, r: out.append((n, r)))
    for i, (is_orig, data) in enumerate(chunks):
        a.data(is_orig, 10.0 + i, data)
    a.end(99.0)
    return out


def test_filter_rendering() -> None:
    msg = p.parse_message(search(3, "DC=example,DC=org", SPN_FILTER, ["cn"]))
    assert msg.filter == (
        "(&(samAccountType=805306368)(servicePrincipalName=*)(!(samAccountName=krbtgt)))"
    )
    subs = tlv(0xA4, octets("cn") + tlv(0x30, octets("ad", 0x80) + octets("mi", 0x81)))
    assert p.render_filter(subs, 0xA4, 2, len(subs)) == "(cn=ad*mi*)"
    ext = tlv(
        0xA9,
        octets("1.2.840.113556.1.4.803", 0x81)
        + octets("userAccountControl", 0x82)
        + octets("2", 0x83),
    )
    assert (
        p.render_filter(ext, 0xA9, 2, len(ext))
        == "(userAccountControl:1.2.840.113556.1.4.803:=2)"
    )
    star = tlv(0xA3, octets("cn") + octets("a*(b)"))
    assert p.render_filter(star, 0xA3, 2, len(star)) == "(cn=a\\2a\\28b\\29)"


def test_search_and_bind_records() -> None:
    bind = message(
        1, tlv(p.BIND_REQUEST, integer(3) + octets("cn=admin") + octets("pw", 0x80))
    )
    out = feed(
        [
            (True, bind),
            (False, result(1, p.BIND_RESPONSE, 0)),
            (True, search(2, "DC=example,DC=org", SPN_FILTER, ["cn", "servicePrincipalName"])),
            (False, message(2, tlv(p.SEARCH_ENTRY, octets("CN=svc") + tlv(0x30, b"")))),
            (False, message(2, tlv(p.SEARCH_ENTRY, octets("CN=sql") + tlv(0x30, b"")))),
            (False, result(2, p.SEARCH_DONE, 0)),
            (True, message(3, tlv(p.UNBIND_REQUEST, b""))),
        ]
    )  # fmt: skip
    assert [n for n, _ in out] == ["ldap", "ldap_search", "ldap"]
    b, s, u = (r for _, r in out)
    assert (b["opcode"], b["version"], b["object"], b["argument"], b["result"]) == (
        "bind simple", 3, "cn=admin", "REDACTED", "success"
    )  # fmt: skip
    assert (s["ts"], s["scope"], s["deref_aliases"], s["base_object"]) == (
        12.0, "tree", "never", "DC=example,DC=org"
    )  # fmt: skip
    assert (s["result_count"], s["result"], s["attributes"]) == (
        2, "success", ["cn", "servicePrincipalName"]
    )  # fmt: skip
    assert list(s)[:8] == [
        "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto",
        "message_id",
    ]  # fmt: skip
    assert (u["opcode"], u["message_id"]) == ("unbind", 3) and "result" not in u


def test_split_across_chunks_and_error_result() -> None:
    raw = search(7, "", tlv(0x87, b"objectClass"), [])
    out = feed(
        [(True, raw[:5]), (True, raw[5:]), (False, result(7, p.SEARCH_DONE, 32, "no"))]
    )
    (name, rec), = out  # fmt: skip
    assert name == "ldap_search"
    assert (rec["result"], rec["diagnostic_message"], rec["filter"]) == (
        "no such object", "no", "(objectClass=*)"
    )  # fmt: skip


def test_unanswered_request_written_at_end() -> None:
    out = feed([(True, search(9, "", tlv(0x87, b"cn"), []))])
    assert [(n, r["ts"], "result" in r) for n, r in out] == [
        ("ldap_search", 10.0, False)
    ]


def test_signed_sasl_buffer_is_read_and_sealed_is_counted() -> None:
    inner = search(11, "DC=x", tlv(0x87, b"servicePrincipalName"), [])
    checksum = b"\xcc" * 12
    rotated = checksum + inner  # RRC 12: the checksum moved to the front
    token = b"\x05\x04\x04\xff" + (12).to_bytes(2, "big") + (12).to_bytes(2, "big")
    token += b"\x00" * 8 + rotated
    assert p.sasl_unwrap(token) == inner
    sealed = b"\x05\x04\x06\xff" + token[4:]
    assert p.sasl_unwrap(sealed) is None
    a_out: list[tuple[str, dict[str, Any]]] = []
    a = LDAPAnalyzer(CONN, lambda n, r: a_out.append((n, r)))
    a.data(True, 1.0, len(token).to_bytes(4, "big") + token)
    a.data(True, 2.0, len(sealed).to_bytes(4, "big") + sealed)
    a.end(3.0)
    assert [r["filter"] for _, r in a_out] == ["(servicePrincipalName=*)"]
    assert a.counters == {"LDAP_sealed": 1}


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("length that lies", b"\x30\x84\x7f\xff\xff\xff\x02\x01\x01"),
        ("five length bytes", b"\x30\x85\x00\x00\x00\x00\x10"),
        ("not a sequence", b"\x31\x03\x02\x01\x01"),
        ("no protocolOp", b"\x30\x03\x02\x01\x01"),
        ("filter too deep", search(1, "", tlv(0xA2, b""), [])),
    ],
)
def test_hostile_messages_are_counted_not_raised(name: str, data: bytes) -> None:
    a = LDAPAnalyzer(CONN, lambda n, r: None)
    a.data(True, 1.0, data)
    a.end(2.0)
    assert a.anomalies >= 1, name


def test_nesting_bound() -> None:
    flt = tlv(0x87, b"cn")
    for _ in range(p.MAX_FILTER_DEPTH + 2):
        flt = tlv(0xA2, flt)
    with pytest.raises(p.LDAPError):
        p.parse_message(search(1, "", flt, []))


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=299))
def test_fuzz_never_raises(data: bytes, cut: int) -> None:
    a = LDAPAnalyzer(CONN, lambda n, r: None)
    a.data(True, 1.0, data[:cut])
    a.data(True, 1.0, data[cut:])
    a.data(False, 1.0, data)
    a.end(2.0)
    try:
        p.parse_message(data)
    except p.LDAPError:
        pass
    p.sasl_unwrap(data)


def test_rubeus_capture_against_tshark() -> None:
    """The values tshark reads from elcabezzonn_rubeus_kerberoast.pcap."""
    recs = records("attacks/lateral/elcabezzonn_rubeus_kerberoast.pcap")
    searches = [r for n, r in recs if n == "ldap_search"]
    assert [(r["message_id"], r["base_object"], r["scope"]) for r in searches] == [
        (1, "", "base"),
        (4, "", "base"),
        (9, "DC=picklesworth,DC=local", "base"),
        (10, "", "base"),
        (11, "DC=picklesworth,DC=local", "tree"),
        (12, "", "base"),
        (13, "CN=Aggregate,CN=Schema,CN=Configuration,DC=picklesworth,DC=local", "base"),
    ]  # fmt: skip
    assert searches[4]["filter"] == (
        "(&(samAccountType=805306368)(servicePrincipalName=*)"
        "(!(samAccountName=krbtgt))(!(UserAccountControl:1.2.840.113556.1.4.803:=2)))"
    )
    ops = [(r["message_id"], r["opcode"]) for n, r in recs if n == "ldap"]
    assert ops == [(3, "bind SASL"), (5, "unbind"), (8, "bind SASL")]
