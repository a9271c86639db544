"""Kerberos AP exchanges inside GSS-API/SPNEGO, and NTLM's SPNEGO outcome."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.proto.analyzer import ConnInfo
from sensor.proto.analyzers.kerberos_ap import KerberosAPTracker
from sensor.proto.analyzers.ntlm_carrier import SecurityBlobs, neg_state
from sensor.proto.parsers.kerberos import parse_ap_message, unwrap_gss
from tests.proto.test_ldap import integer, tlv

#: Fuzz examples: SENSOR_FUZZ=deep (make deep-fuzz) for a long run.
EXAMPLES = 5000 if os.environ.get("SENSOR_FUZZ") == "deep" else 300

CONN = ConnInfo("CK1", "tcp", "192.0.2.10", 50000, "192.0.2.1", 445)
OID_SPNEGO = b"\x06\x06\x2b\x06\x01\x05\x05\x02"
OID_KRB5 = b"\x06\x09\x2a\x86\x48\x86\xf7\x12\x01\x02\x02"


def gstr(s: str) -> bytes:
    return tlv(0x1B, s.encode())


def principal(*parts: str) -> bytes:
    return tlv(
        0x30, tlv(0xA0, integer(2)) + tlv(0xA1, tlv(0x30, b"".join(map(gstr, parts))))
    )


def ap_req(realm: str, sname: tuple[str, ...], etype: int) -> bytes:
    ticket = tlv(
        0x61,
        tlv(
            0x30,
            tlv(0xA0, integer(5))
            + tlv(0xA1, gstr(realm))
            + tlv(0xA2, principal(*sname))
            + tlv(
                0xA3, tlv(0x30, tlv(0xA0, integer(etype)) + tlv(0xA2, tlv(0x04, b"x")))
            ),
        ),
    )
    body = (
        tlv(0xA0, integer(5)) + tlv(0xA1, integer(14)) + tlv(0xA2, tlv(0x03, b"\x00\x20\0\0\0"))
        + tlv(0xA3, ticket) + tlv(0xA4, tlv(0x30, tlv(0xA0, integer(etype)) + tlv(0xA2, tlv(0x04, b"y"))))
    )  # fmt: skip
    return tlv(0x6E, tlv(0x30, body))


def gss(inner: bytes, tok_id: bytes) -> bytes:
    return tlv(0x60, OID_KRB5 + tok_id + inner)


def neg_init(mech_token: bytes) -> bytes:
    init = tlv(
        0xA0,
        tlv(0x30, tlv(0xA0, tlv(0x30, OID_KRB5)) + tlv(0xA2, tlv(0x04, mech_token))),
    )
    return tlv(0x60, OID_SPNEGO + init)


def neg_resp(state: int, token: bytes | None = None) -> bytes:
    inner = tlv(0xA0, tlv(0x0A, bytes([state])))
    if token is not None:
        inner += tlv(0xA2, tlv(0x04, token))
    return tlv(0xA1, tlv(0x30, inner))


AP_REP = tlv(0x6F, tlv(0x30, tlv(0xA0, integer(5)) + tlv(0xA1, integer(15))))
SKEW = tlv(
    0x7E,
    tlv(
        0x30,
        tlv(0xA0, integer(5)) + tlv(0xA1, integer(30)) + tlv(0xA6, integer(37))
        + tlv(0xA9, gstr("EXAMPLE.ORG")) + tlv(0xAA, principal("fs1$")),
    ),
)  # fmt: skip


def run(blobs: list[tuple[bool, bytes]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    t = KerberosAPTracker(CONN, lambda n, r: out.append(r))
    for i, (is_orig, b) in enumerate(blobs):
        t.blob(is_orig, 1.0 + i, b)
    t.end(9.0)
    return out


def test_ap_req_in_spnego_then_ap_rep() -> None:
    req = neg_init(
        gss(ap_req("EXAMPLE.ORG", ("cifs", "fs1.example.org"), 18), b"\x01\x00")
    )
    assert unwrap_gss(req) is not None
    out = run([(True, req), (False, neg_resp(0, gss(AP_REP, b"\x02\x00")))])
    assert out == [
        {
            "ts": 1.0, **CONN.id_fields(), "request_type": "AP",
            "client": "/EXAMPLE.ORG", "service": "cifs/fs1.example.org",
            "cipher": "aes256-cts-hmac-sha1-96", "success": True,
        }
    ]  # fmt: skip


def test_krb_error_names_the_error_and_its_service() -> None:
    req = gss(ap_req("EXAMPLE.ORG", ("cifs", "fs1"), 23), b"\x01\x00")
    out = run([(True, req), (False, neg_resp(2, gss(SKEW, b"\x03\x00")))])
    assert [(r["success"], r["error_msg"], r["service"], r["cipher"]) for r in out] == [
        (False, "KRB_AP_ERR_SKEW", "fs1$", "rc4-hmac")
    ]


def test_one_record_per_connection_and_unanswered_at_end() -> None:
    req = gss(ap_req("R", ("host", "a"), 17), b"\x01\x00")
    assert [r.get("success") for r in run([(True, req)])] == [None]
    out = run([(True, req), (False, AP_REP), (True, req), (False, AP_REP)])
    assert len(out) == 1


def test_parse_ap_message_rejects_kdc_messages() -> None:
    assert parse_ap_message(AP_REP).tag == 0x6F
    for bad in (b"", b"\x6a\x00", b"\x30\x00"):
        try:
            parse_ap_message(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_ntlm_success_is_spnego_neg_state() -> None:
    """success from the server's negState after an AUTHENTICATE."""
    assert neg_state(neg_resp(0)) == 0 and neg_state(neg_resp(2)) == 2
    assert neg_state(b"NTLMSSP\x00") is None
    out: list[tuple[str, dict[str, Any]]] = []
    s = SecurityBlobs(CONN, lambda n, r: out.append((n, r)))
    auth = (
        b"NTLMSSP\x00\x03\x00\x00\x00" + b"\x00" * 8 * 6 + b"\x01\x00\x00\x00"
    )  # an anonymous AUTHENTICATE: every field empty, unicode flag
    s.blob(True, 1.0, b"NTLMSSP\x00\x01\x00\x00\x00" + b"\x00" * 24)
    s.blob(True, 2.0, auth)
    s.blob(False, 3.0, neg_resp(0))
    s.blob(True, 4.0, b"NTLMSSP\x00\x01\x00\x00\x00" + b"\x00" * 24)
    s.end(5.0)
    assert [(n, r["ts"], r.get("success")) for n, r in out] == [("ntlm", 1.0, True)]


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_never_raises(data: bytes) -> None:
    run([(True, data), (False, data)])
    neg_state(data)
    s = SecurityBlobs(CONN, lambda n, r: None)
    s.blob(True, 1.0, data)
    s.blob(False, 1.0, b"NTLMSSP\x00" + data)
    s.end(2.0)
