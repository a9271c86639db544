"""Kerberos: the DER reader on crafted messages, hostile input, the analyzer."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.proto.analyzer import ConnInfo
from sensor.proto.analyzers.kerberos import KerberosAnalyzer
from sensor.proto.parsers.kerberos import (
    AS_REQ,
    KerberosError,
    parse_kdc_message,
)

#: Fuzz examples: SENSOR_FUZZ=deep (make deep-fuzz) for a long run.
EXAMPLES = 5000 if os.environ.get("SENSOR_FUZZ") == "deep" else 300


def der(tag: int, *parts: bytes) -> bytes:
    """One DER TLV whose value is ``parts`` concatenated."""
    value = b"".join(parts)
    n = len(value)
    if n < 0x80:
        return bytes([tag, n]) + value
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + value


def integer(v: int) -> bytes:
    return der(0x02, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True))


def kstr(s: str) -> bytes:
    return der(0x1B, s.encode())


def principal(*names: str) -> bytes:
    return der(0x30, der(0xA0, integer(1)), der(0xA1, der(0x30, *map(kstr, names))))


def request(tag: int, cname: tuple[str, ...] | None, etypes: list[int]) -> bytes:
    """An AS-REQ or TGS-REQ (RFC 4120 5.4.1): forwardable, renewable."""
    body = [der(0xA0, der(0x03, b"\x00\x40\x81\x00\x10"))]
    if cname is not None:
        body.append(der(0xA1, principal(*cname)))
    body += [
        der(0xA2, kstr("CORP.EXAMPLE")),
        der(0xA3, principal("MSSQLSvc", "db.corp.example:1433")),
        der(0xA5, der(0x18, b"20370913024805Z")),
        der(0xA7, integer(12345)),
        der(0xA8, der(0x30, *map(integer, etypes))),
    ]
    seq = der(
        0x30,
        der(0xA1, integer(5)),
        der(0xA2, integer(tag & 0x1F)),
        der(0xA4, der(0x30, *body)),
    )
    return der(tag, seq)


def reply(tag: int, etype: int) -> bytes:
    """An AS-REP or TGS-REP (RFC 4120 5.4.2) whose ticket has ``etype``."""
    enc = der(0x30, der(0xA0, integer(etype)), der(0xA2, der(0x04, b"\x00" * 40)))
    ticket = der(
        0x61,
        der(
            0x30,
            der(0xA0, integer(5)),
            der(0xA1, kstr("CORP.EXAMPLE")),
            der(0xA2, principal("MSSQLSvc", "db.corp.example:1433")),
            der(0xA3, enc),
        ),
    )
    seq = der(
        0x30,
        der(0xA0, integer(5)),
        der(0xA1, integer(tag & 0x1F)),
        der(0xA3, kstr("CORP.EXAMPLE")),
        der(0xA4, principal("alice")),
        der(0xA5, ticket),
        der(0xA6, enc),
    )
    return der(tag, seq)


def error(code: int) -> bytes:
    """A KRB-ERROR (RFC 4120 5.9.1) with ``code``."""
    seq = der(
        0x30,
        der(0xA0, integer(5)),
        der(0xA1, integer(30)),
        der(0xA4, der(0x18, b"20260101000000Z")),
        der(0xA5, integer(0)),
        der(0xA6, integer(code)),
        der(0xA9, kstr("CORP.EXAMPLE")),
        der(0xAA, principal("krbtgt", "CORP.EXAMPLE")),
    )
    return der(0x7E, seq)


TGS_REQ_RC4 = request(0x6C, None, [23])
TGS_REP_RC4 = reply(0x6D, 23)


def run(proto: str, chunks: list[tuple[bool, bytes]]) -> tuple[list[Any], Any]:
    out: list[tuple[str, dict[str, Any]]] = []
    conn = ConnInfo("Cabc", proto, "10.0.0.5", 50000, "10.0.0.1", 88)
    a = KerberosAnalyzer(conn, lambda n, r: out.append((n, r)))
    for i, (is_orig, data) in enumerate(chunks):
        a.data(is_orig, 100.0 + i, data)
    a.end(200.0)
    return out, a


def test_as_req_fields() -> None:
    m = parse_kdc_message(request(AS_REQ, ("alice",), [18, 17, 23, -133]))
    assert m.client == "alice" and m.realm == "CORP.EXAMPLE"
    assert m.service == "MSSQLSvc/db.corp.example:1433"
    assert m.till == 2136422885.0
    assert m.forwardable is True and m.renewable is True
    assert m.etypes == [18, 17, 23, -133]


def test_kerberoast_tgs_over_udp() -> None:
    out, a = run("udp", [(True, TGS_REQ_RC4), (False, TGS_REP_RC4)])
    assert out == [
        (
            "kerberos",
            {
                "ts": 100.0,
                "uid": "Cabc",
                "id.orig_h": "10.0.0.5",
                "id.orig_p": 50000,
                "id.resp_h": "10.0.0.1",
                "id.resp_p": 88,
                "request_type": "TGS",
                "service": "MSSQLSvc/db.corp.example:1433",
                "till": 2136422885.0,
                "forwardable": True,
                "renewable": True,
                "req_ciphers": ["rc4-hmac"],
                "client": "alice/CORP.EXAMPLE",
                "cipher": "rc4-hmac",
                "success": True,
            },
        )
    ]
    assert a.anomalies == 0


def test_tcp_record_marking_split_anywhere() -> None:
    req = request(AS_REQ, ("bob",), [18])
    stream = len(req).to_bytes(4, "big") + req
    rep = error(25)
    out, _ = run(
        "tcp",
        [(True, stream[i : i + 1]) for i in range(len(stream))]
        + [(False, len(rep).to_bytes(4, "big") + rep)],
    )
    assert len(out) == 1
    rec = out[0][1]
    assert rec["request_type"] == "AS" and rec["client"] == "bob/CORP.EXAMPLE"
    assert rec["success"] is False and rec["error_msg"] == "KDC_ERR_PREAUTH_REQUIRED"
    assert rec["service"] == "krbtgt/CORP.EXAMPLE"


def test_tcp_reserved_bit_and_oversize_are_counted() -> None:
    out, a = run("tcp", [(True, b"\x80\x00\x00\x10" + b"\x00" * 16)])
    assert out == [] and a.counters == {"KRB_TCP_BAD_LENGTH": 1}


def test_unanswered_request_written_at_end() -> None:
    out, _ = run("udp", [(True, TGS_REQ_RC4)])
    assert len(out) == 1 and "success" not in out[0][1]
    assert out[0][1]["request_type"] == "TGS"


def test_one_record_per_connection_as_zeek() -> None:
    out, _ = run("udp", [(True, TGS_REQ_RC4), (False, TGS_REP_RC4)] * 2)
    assert len(out) == 1


@pytest.mark.parametrize("msg", [TGS_REQ_RC4, TGS_REP_RC4, error(7)])
def test_truncation_at_every_byte_is_an_error(msg: bytes) -> None:
    for cut in range(len(msg)):
        with pytest.raises(KerberosError):
            parse_kdc_message(msg[:cut])


def test_length_that_lies_is_counted() -> None:
    bad = bytearray(TGS_REP_RC4)
    bad[1] = 0x7F  # the outer length now claims more than there is
    out, a = run("udp", [(True, TGS_REQ_RC4), (False, bytes(bad))])
    assert a.counters == {"KRB_MALFORMED": 1}
    assert len(out) == 1 and "success" not in out[0][1]


def test_name_components_capped() -> None:
    many = principal(*["x"] * 100)
    body = der(0x30, der(0xA0, der(0x03, b"\x00\x00\x00\x00\x00")), der(0xA3, many))
    msg = der(0x6C, der(0x30, der(0xA4, body)))
    assert parse_kdc_message(msg).service == "/".join(["x"] * 16)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 400), st.binary(max_size=8))
def test_fuzz_never_raises_out(prefix: bytes, pos: int, junk: bytes) -> None:
    base = TGS_REP_RC4 if prefix[:1] == b"\x00" else TGS_REQ_RC4
    mutated = base[:pos] + junk + base[pos + len(junk) :]
    for data in (prefix, mutated):
        try:
            parse_kdc_message(data)
        except KerberosError:
            pass
        run("udp", [(True, data)])
        run("tcp", [(True, len(data).to_bytes(4, "big") + data)])
