"""Byte builders for TLS tests: records, handshake messages, hellos, a certificate.

Each follows the cited RFC section closely enough for the parser; fields the
parser does not read are zero.
"""

from __future__ import annotations

import datetime
import ipaddress
import struct
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def u8v(body: bytes) -> bytes:
    return bytes([len(body)]) + body


def u16v(body: bytes) -> bytes:
    return struct.pack("!H", len(body)) + body


def u24v(body: bytes) -> bytes:
    return len(body).to_bytes(3, "big") + body


def ext(code: int, body: bytes) -> bytes:
    """One extension (RFC 8446 4.2)."""
    return struct.pack("!H", code) + u16v(body)


def u16s(values: list[int]) -> bytes:
    return b"".join(struct.pack("!H", v) for v in values)


def sni(name: str) -> bytes:
    """server_name with one host name (RFC 6066 3)."""
    return ext(0, u16v(b"\x00" + u16v(name.encode())))


def alpn(*protos: bytes) -> bytes:
    """application_layer_protocol_negotiation (RFC 7301 3.1)."""
    return ext(16, u16v(b"".join(u8v(p) for p in protos)))


def groups(*ids: int) -> bytes:
    return ext(10, u16v(u16s(list(ids))))


def point_formats(*ids: int) -> bytes:
    return ext(11, u8v(bytes(ids)))


def sig_algs(*ids: int) -> bytes:
    return ext(13, u16v(u16s(list(ids))))


def versions_client(*ids: int) -> bytes:
    return ext(43, u8v(u16s(list(ids))))


def version_server(v: int) -> bytes:
    return ext(43, struct.pack("!H", v))


def key_share_client(*ids: int) -> bytes:
    return ext(51, u16v(b"".join(struct.pack("!H", g) + u16v(bytes(32)) for g in ids)))


def key_share_server(group: int) -> bytes:
    return ext(51, struct.pack("!H", group) + u16v(bytes(32)))


def client_hello(
    ciphers: list[int],
    exts: list[bytes] = (),  # type: ignore[assignment]
    version: int = 0x0303,
    session_id: bytes = b"",
) -> bytes:
    """A ClientHello handshake body (RFC 8446 4.1.2)."""
    body = struct.pack("!H", version) + bytes(32) + u8v(session_id)
    body += u16v(u16s(ciphers)) + u8v(b"\x00")
    if exts:
        body += u16v(b"".join(exts))
    return body


def server_hello(
    cipher: int,
    exts: list[bytes] = (),  # type: ignore[assignment]
    version: int = 0x0303,
    session_id: bytes = b"",
    random: bytes = bytes(32),
) -> bytes:
    """A ServerHello handshake body (RFC 8446 4.1.3)."""
    body = struct.pack("!H", version) + random + u8v(session_id)
    body += struct.pack("!H", cipher) + b"\x00"
    if exts:
        body += u16v(b"".join(exts))
    return body


def handshake(msg_type: int, body: bytes) -> bytes:
    """One handshake message: type, 24-bit length, body (RFC 8446 4)."""
    return bytes([msg_type]) + u24v(body)


def record(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    """One TLS record (RFC 5246 6.2.1)."""
    return struct.pack("!BHH", ctype, version, len(body)) + body


def certificate_msg(ders: list[bytes]) -> bytes:
    """A TLS 1.2 Certificate message body (RFC 5246 7.4.2)."""
    return u24v(b"".join(u24v(d) for d in ders))


def sslv2_client_hello(ciphers: list[int], version: int = 0x0301) -> bytes:
    """An SSLv2-format CLIENT-HELLO record (RFC 6101 E.1), 16-byte challenge."""
    specs = b"".join(c.to_bytes(3, "big") for c in ciphers)
    body = (
        b"\x01" + struct.pack("!HHHH", version, len(specs), 0, 16) + specs + bytes(16)
    )
    return struct.pack("!H", 0x8000 | len(body)) + body


@cache
def certificate(
    cn: str = "www.example.com",
    san: tuple[str, ...] = ("www.example.com", "*.example.org"),
) -> bytes:
    """A self-signed P-256 certificate, DER (deterministic names and dates)."""
    key = ec.derive_private_key(12345, ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example, Inc."),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in san]
    alt.append(x509.IPAddress(ipaddress.ip_address("192.0.2.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x0ABC)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)
