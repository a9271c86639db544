"""TLS wire parsing and X.509 records: byte literals, hostile cases, fuzzing."""

from __future__ import annotations

import hashlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.proto.parsers import tls as wire
from sensor.proto.parsers import x509
from sensor.proto.parsers.tlsnames import CIPHERS, named, version_name
from tests.proto import tls_bytes as b

FUZZ = settings(
    max_examples=2000 if os.environ.get("SENSOR_FUZZ") == "deep" else 150, deadline=None
)

CH = b.client_hello(
    [0x1301, 0xC02F],
    [
        b.sni("example.com"),
        b.alpn(b"h2", b"http/1.1"),
        b.versions_client(0x0304, 0x0303),
    ],
    session_id=b"\x11" * 32,
)


def test_client_hello_fields() -> None:
    hello = wire.parse_client_hello(CH)
    assert hello.version == 0x0303
    assert hello.session_id == b"\x11" * 32
    assert hello.ciphers == [0x1301, 0xC02F]
    assert hello.compressions == b"\x00"
    assert [code for code, _ in hello.extensions] == [0, 16, 43]
    assert wire.server_names(hello.extension(0) or b"") == ["example.com"]
    assert wire.alpn_protocols(hello.extension(16) or b"") == [b"h2", b"http/1.1"]
    assert wire.supported_versions(hello.extension(43) or b"", True) == [0x0304, 0x0303]


def test_client_hello_without_extensions() -> None:
    hello = wire.parse_client_hello(b.client_hello([0x002F]))
    assert hello.extensions == [] and hello.extension(0) is None


def test_server_hello_fields() -> None:
    body = b.server_hello(
        0x1302,
        [b.version_server(0x0304), b.key_share_server(29)],
        session_id=b"\x22" * 32,
    )
    hello = wire.parse_server_hello(body)
    assert (hello.version, hello.ciphers, hello.session_id) == (
        0x0303,
        [0x1302],
        b"\x22" * 32,
    )
    assert wire.supported_versions(hello.extension(43) or b"", False) == [0x0304]
    assert wire.key_share_groups(hello.extension(51) or b"", False) == [29]


def test_client_key_share_groups() -> None:
    raw = b.key_share_client(0x0A0A, 29, 23)[4:]
    assert wire.key_share_groups(raw, True) == [0x0A0A, 29, 23]


@pytest.mark.parametrize("cut", range(len(CH)))
def test_truncation_at_every_byte(cut: int) -> None:
    # Cut right after the compression methods it is a valid hello without
    # extensions (RFC 5246 7.4.1.2); cut anywhere else a length lies.
    if cut == 75:
        assert wire.parse_client_hello(CH[:cut]).extensions == []
        return
    with pytest.raises(wire.TLSDecodeError) as err:
        wire.parse_client_hello(CH[:cut])
    assert err.value.name == "SSL_TRUNCATED"


def test_lengths_that_lie() -> None:
    lying_sid = bytearray(CH)
    lying_sid[34] = 0xFF  # session id length far past the end
    with pytest.raises(wire.TLSDecodeError, match="need 255 bytes"):
        wire.parse_client_hello(bytes(lying_sid))
    odd = b.client_hello([0x002F])[:35] + b"\x00\x03\x00\x2f\x00" + b"\x01\x00"
    with pytest.raises(wire.TLSDecodeError) as err:
        wire.parse_client_hello(odd)
    assert err.value.name == "SSL_BAD_CIPHER_LIST"
    with pytest.raises(wire.TLSDecodeError):
        wire.server_names(b"\x00\x10\x00\x00\x05ab")


def test_certificate_list() -> None:
    ders = [b"\x30\x03\x02\x01\x01", b"\x30\x00"]
    assert wire.parse_certificates(b.certificate_msg(ders)) == ders
    tls13 = b"\x00" + b.u24v(b"".join(b.u24v(d) + b"\x00\x00" for d in ders))
    assert wire.parse_certificates(tls13, tls13=True) == ders
    with pytest.raises(wire.TLSDecodeError):
        wire.parse_certificates(b"\x00\x00\x09\x00\x00\x20abc")


def test_sslv2_client_hello() -> None:
    rec = b.sslv2_client_hello([0x010080, 0x00002F])
    hello = wire.parse_sslv2_client_hello(rec[2:])
    assert hello.sslv2 and hello.version == 0x0301
    assert hello.ciphers == [0x010080, 0x00002F]
    assert hello.random == bytes(16)
    with pytest.raises(wire.TLSDecodeError):
        wire.parse_sslv2_client_hello(rec[2:-1])


def test_ecdh_server_curve() -> None:
    assert wire.ecdh_server_curve(b"\x03\x00\x17\x41") == 23
    assert wire.ecdh_server_curve(b"\x01\x00\x80") is None
    assert wire.ecdh_server_curve(b"\x03") is None


def test_names() -> None:
    assert version_name(0x0303) == "TLSv12"
    assert version_name(0x7F1C) == "TLSv13-draft28"
    assert version_name(0x1234) == "unknown-4660"
    assert named(CIPHERS, 0xC02F) == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert named(CIPHERS, 0x0018) == "TLS_DH_ANON_WITH_RC4_128_MD5"
    assert named(CIPHERS, 0xFFFF) == "unknown-65535"


# -- X.509 ---------------------------------------------------------------------


def test_certificate_record() -> None:
    der = b.certificate()
    rec = x509.certificate_record(der)
    assert rec["fingerprint"] == hashlib.sha256(der).hexdigest()
    assert rec["certificate.version"] == 3
    assert rec["certificate.serial"] == "0ABC"
    assert rec["certificate.subject"] == "CN=www.example.com,O=Example\\, Inc.,C=US"
    assert rec["certificate.issuer"] == rec["certificate.subject"]
    assert rec["certificate.not_valid_before"] == 1577836800.0
    assert rec["certificate.not_valid_after"] == 1577836800.0 + 365 * 86400
    assert rec["certificate.key_alg"] == "id-ecPublicKey"
    assert rec["certificate.sig_alg"] == "ecdsa-with-SHA256"
    assert rec["certificate.key_type"] == "ecdsa"
    assert rec["certificate.key_length"] == 256
    assert rec["certificate.curve"] == "prime256v1"
    assert rec["san.dns"] == ["www.example.com", "*.example.org"]
    assert rec["san.ip"] == ["192.0.2.1"]
    assert rec["basic_constraints.ca"] is False
    assert "basic_constraints.path_len" not in rec
    # JA4X by hand: C, O, CN (55 04 06, 55 04 0a, 55 04 03); SAN, basicConstraints.
    names = sha12("550406,55040a,550403")
    assert rec["ja4x"] == f"{names}_{names}_{sha12('551d11,551d13')}"


def sha12(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def test_oid_encoding() -> None:
    assert x509._oid_hex("2.5.4.3") == "550403"
    assert x509._oid_hex("1.2.840.113549.1.1.11") == "2a864886f70d01010b"


def test_host_matching() -> None:
    rec = x509.certificate_record(b.certificate())
    assert x509.matches_host(rec, "WWW.example.com")
    assert x509.matches_host(rec, "a.example.org")
    assert not x509.matches_host(rec, "example.org")
    assert not x509.matches_host(rec, "a.b.example.org")
    assert not x509.matches_host(rec, "example.com")


@pytest.mark.parametrize(
    "der, name",
    [
        (b"", "X509_UNPARSEABLE"),
        (b"\x30\x82\xff\xff", "X509_UNPARSEABLE"),
        (b"\x30" + b"\x84\x7f\xff\xff\xff", "X509_UNPARSEABLE"),
        (b"\x30\x80" * 2000, "X509_UNPARSEABLE"),
        (b"\x30" * (x509.MAX_CERT_BYTES + 1), "X509_TOO_LARGE"),
    ],
)
def test_hostile_der(der: bytes, name: str) -> None:
    with pytest.raises(x509.X509DecodeError) as err:
        x509.certificate_record(der)
    assert err.value.name == name


def test_serial_and_escaping() -> None:
    assert x509._serial(0) == "00"
    assert x509._serial(0x1234567) == "01234567"
    assert x509._serial(-5) == "-05"
    assert x509._escape(" a,b+c;#") == "\\ a\\,b\\+c\\;#"
    assert x509._escape("#x ") == "\\#x\\ "
    assert x509._escape("a\nb") == "a\\0Ab"


@FUZZ
@given(st.binary(max_size=300))
def test_parsers_raise_only_decode_errors(data: bytes) -> None:
    for parse in (
        wire.parse_client_hello,
        wire.parse_server_hello,
        wire.parse_sslv2_client_hello,
        wire.parse_certificates,
    ):
        try:
            parse(data)
        except wire.TLSDecodeError:
            pass
    for ext_parse in (
        wire.server_names,
        wire.alpn_protocols,
        wire.u16_vector,
        wire.u8_vector,
    ):
        try:
            ext_parse(data)
        except wire.TLSDecodeError:
            pass


@FUZZ
@given(st.integers(0, len(b.certificate()) - 1), st.integers(0, 255))
def test_mutated_certificate_never_escapes(pos: int, value: int) -> None:
    der = bytearray(b.certificate())
    der[pos] = value
    try:
        rec = x509.certificate_record(bytes(der))
    except x509.X509DecodeError:
        return
    assert rec["fingerprint"] == hashlib.sha256(der).hexdigest()
