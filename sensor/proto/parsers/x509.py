"""X.509 certificates to x509.log records, with Zeek's field names.

Certificates come off the wire from anyone, so parsing is defensive: a size
limit before the parser sees the bytes, the ``cryptography`` package's
memory-safe DER parser, and every field read on its own so that one odd
extension loses that field, not the certificate. A certificate that does
not parse at all raises :class:`X509DecodeError` (anomaly
``X509_UNPARSEABLE``); nothing else escapes.

The same certificates come back all the time (every visit to a site sends
its chain again), so :func:`certificate_record` keeps the records of the
last :data:`CACHE_SIZE` certificates by SHA-256, and the parser runs once
per certificate rather than once per connection.

Names are written as OpenSSL's ``X509_NAME_print_ex`` with RFC 2253 flags
(minus the escaping of bytes above 0x7F) writes them, which is what Zeek
logs: the last RDN first, short attribute names, ``,+"\\<>;`` escaped.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
import warnings
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.x509.oid import ExtensionOID

#: Largest certificate parsed; TLS limits a certificate to 2^24-1 bytes,
#: real ones are a few KiB (RFC 8446 4.4.2).
MAX_CERT_BYTES = 64 * 1024

#: Certificates whose records are kept (by SHA-256); the oldest goes first.
CACHE_SIZE = 4096

# fingerprint -> the record, or the X509DecodeError that parsing raised.
_cache: dict[str, dict[str, Any] | X509DecodeError] = {}

# OpenSSL's short names for attribute types (crypto/objects/objects.txt).
_ATTR_NAMES = {
    "2.5.4.3": "CN", "2.5.4.4": "SN", "2.5.4.5": "serialNumber", "2.5.4.6": "C",
    "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.9": "street", "2.5.4.10": "O",
    "2.5.4.11": "OU", "2.5.4.12": "title", "2.5.4.13": "description",
    "2.5.4.15": "businessCategory", "2.5.4.17": "postalCode",
    "2.5.4.18": "postOfficeBox", "2.5.4.41": "name", "2.5.4.42": "GN",
    "2.5.4.43": "initials", "2.5.4.44": "generationQualifier",
    "2.5.4.46": "dnQualifier", "2.5.4.65": "pseudonym",
    "2.5.4.97": "organizationIdentifier",
    "1.2.840.113549.1.9.1": "emailAddress",
    "1.2.840.113549.1.9.2": "unstructuredName",
    "0.9.2342.19200300.100.1.1": "UID", "0.9.2342.19200300.100.1.25": "DC",
    "1.3.6.1.4.1.311.60.2.1.1": "jurisdictionL",
    "1.3.6.1.4.1.311.60.2.1.2": "jurisdictionST",
    "1.3.6.1.4.1.311.60.2.1.3": "jurisdictionC",
}  # fmt: skip

# OpenSSL's long names for key and signature algorithms.
_ALG_NAMES = {
    "1.2.840.113549.1.1.1": "rsaEncryption",
    "1.2.840.113549.1.1.2": "md2WithRSAEncryption",
    "1.2.840.113549.1.1.4": "md5WithRSAEncryption",
    "1.2.840.113549.1.1.5": "sha1WithRSAEncryption",
    "1.2.840.113549.1.1.10": "rsassaPss",
    "1.2.840.113549.1.1.11": "sha256WithRSAEncryption",
    "1.2.840.113549.1.1.12": "sha384WithRSAEncryption",
    "1.2.840.113549.1.1.13": "sha512WithRSAEncryption",
    "1.2.840.113549.1.1.14": "sha224WithRSAEncryption",
    "1.2.840.10045.2.1": "id-ecPublicKey",
    "1.2.840.10045.4.1": "ecdsa-with-SHA1",
    "1.2.840.10045.4.3.1": "ecdsa-with-SHA224",
    "1.2.840.10045.4.3.2": "ecdsa-with-SHA256",
    "1.2.840.10045.4.3.3": "ecdsa-with-SHA384",
    "1.2.840.10045.4.3.4": "ecdsa-with-SHA512",
    "1.2.840.10040.4.1": "dsaEncryption",
    "1.2.840.10040.4.3": "dsaWithSHA1",
    "2.16.840.1.101.3.4.3.2": "dsa_with_SHA256",
    "1.3.101.112": "ED25519",
    "1.3.101.113": "ED448",
}

# The subjectAltName kinds that x509.log has a field for, in its order.
_SAN_FIELDS: dict[type[x509.GeneralName], str] = {
    x509.DNSName: "san.dns",
    x509.UniformResourceIdentifier: "san.uri",
    x509.RFC822Name: "san.email",
    x509.IPAddress: "san.ip",
}

# OpenSSL's names for the named curves cryptography knows.
_CURVE_NAMES = {"secp256r1": "prime256v1", "secp192r1": "prime192v1"}


class X509DecodeError(ValueError):
    """The bytes are not a certificate we can read; ``name`` is the anomaly."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


# Whether a value may need escaping at all; most need none.
_SPECIAL = re.compile(r'[,+"\\<>;\x00-\x1f\x7f]|\A[# ]| \Z')


def _escape(value: str) -> str:
    # RFC 2253 2.4 plus OpenSSL's ESC_CTRL (control characters as \XX).
    if not _SPECIAL.search(value):
        return value
    out = []
    for i, ch in enumerate(value):
        if ch in ',+"\\<>;' or (ch == "#" and i == 0):
            out.append("\\" + ch)
        elif ch == " " and (i == 0 or i == len(value) - 1):
            out.append("\\ ")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):02X}")
        else:
            out.append(ch)
    return "".join(out)


def format_name(name: x509.Name) -> str:
    """A distinguished name as Zeek logs it (``CN=...,O=...,C=...``)."""
    rdns = []
    for rdn in reversed(list(name.rdns)):
        parts = []
        for attr in rdn:
            oid = attr.oid.dotted_string
            value = attr.value
            text = value if isinstance(value, str) else value.hex()
            key = _ATTR_NAMES.get(oid)
            if key is None:
                # Unknown types print as the dotted OID and a hex dump.
                parts.append(f"{oid}=#{text.encode().hex().upper()}")
            else:
                parts.append(f"{key}={_escape(text)}")
        rdns.append("+".join(parts))
    return ",".join(rdns)


def _serial(n: int) -> str:
    # OpenSSL's i2a_ASN1_INTEGER: upper-case hex, whole bytes.
    sign = "-" if n < 0 else ""
    digits = f"{abs(n):X}"
    if len(digits) % 2:
        digits = "0" + digits
    return sign + digits


def _key_fields(cert: x509.Certificate, out: dict[str, Any]) -> None:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        out["certificate.key_type"] = "rsa"
        out["certificate.key_length"] = key.key_size
        out["certificate.exponent"] = str(key.public_numbers().e)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        out["certificate.key_type"] = "ecdsa"
        out["certificate.key_length"] = key.curve.key_size
        out["certificate.curve"] = _CURVE_NAMES.get(key.curve.name, key.curve.name)
    elif isinstance(key, dsa.DSAPublicKey):
        out["certificate.key_type"] = "dsa"
        out["certificate.key_length"] = key.key_size


def _extension_fields(cert: x509.Certificate, out: dict[str, Any]) -> None:
    exts = cert.extensions
    try:
        bc = exts.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value
        out["basic_constraints.ca"] = bc.ca  # type: ignore[attr-defined]
        if bc.path_length is not None:  # type: ignore[attr-defined]
            out["basic_constraints.path_len"] = bc.path_length  # type: ignore[attr-defined]
    except x509.ExtensionNotFound:
        pass
    try:
        san = exts.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return
    # One pass over the names (a CDN's certificate has hundreds), fields
    # added in the order of _SAN_FIELDS.
    found: dict[str, list[str]] = {}
    for name in san:  # type: ignore[attr-defined]
        field = _SAN_FIELDS.get(type(name))
        if field is None:  # a subclass, or a kind without a field
            kinds = _SAN_FIELDS.items()
            field = next((f for k, f in kinds if isinstance(name, k)), "")
        if field:
            found.setdefault(field, []).append(str(name.value))
    for field in _SAN_FIELDS.values():
        if field in found:
            out[field] = found[field]


@functools.lru_cache(maxsize=1024)
def _oid_hex(dotted: str) -> str:
    # The DER contents of an OBJECT IDENTIFIER (X.690 8.19): the first two
    # arcs as 40*a+b, every arc in base 128, high bit on all but the last byte.
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return out.hex()


def _sha12(oids: list[str]) -> str:
    if not oids:
        return "000000000000"
    return hashlib.sha256(",".join(_oid_hex(o) for o in oids).encode()).hexdigest()[:12]


def _ja4x(cert: x509.Certificate, out: dict[str, Any]) -> None:
    # JA4X (FoxIO, https://github.com/FoxIO-LLC/ja4): truncated SHA-256 of
    # the issuer's and subject's attribute type OIDs and of the extension
    # OIDs, each in certificate order, as hex joined by commas.
    issuer = [a.oid.dotted_string for rdn in cert.issuer.rdns for a in rdn]
    subject = [a.oid.dotted_string for rdn in cert.subject.rdns for a in rdn]
    exts = [e.oid.dotted_string for e in cert.extensions]
    out["ja4x"] = f"{_sha12(issuer)}_{_sha12(subject)}_{_sha12(exts)}"


def fingerprint(der: bytes) -> str:
    """SHA-256 of the DER bytes, hex: Zeek's x509.log ``fingerprint``."""
    return hashlib.sha256(der).hexdigest()


def certificate_record(der: bytes) -> dict[str, Any]:
    """The x509.log fields of one DER certificate (no ts, host_cert, client_cert).

    Raises :class:`X509DecodeError` when the bytes are too large or not a
    certificate; a field that cannot be read is left out.
    """
    if len(der) > MAX_CERT_BYTES:
        raise X509DecodeError(
            "X509_TOO_LARGE",
            f"x509: certificate of {len(der)} bytes > limit {MAX_CERT_BYTES}",
        )
    fp = fingerprint(der)
    known = _cache.get(fp)
    if known is None:
        try:
            with warnings.catch_warnings():
                # Deprecation warnings for RFC 5280 violations (negative
                # serials) are about the sender, not us; such certificates
                # still log.
                warnings.simplefilter("ignore")
                known = _record(der, fp)
        except X509DecodeError as e:
            known = e
        if len(_cache) >= CACHE_SIZE:
            del _cache[next(iter(_cache))]
        _cache[fp] = known
    if isinstance(known, X509DecodeError):
        raise X509DecodeError(known.name, str(known))
    # A copy: callers add their own fields (host_cert, client_cert).
    return dict(known)


def _record(der: bytes, fp: str) -> dict[str, Any]:
    try:
        cert = x509.load_der_x509_certificate(der)
    except Exception as e:  # noqa: BLE001 - any parse failure is bad input
        raise X509DecodeError("X509_UNPARSEABLE", f"x509: {e}") from None

    out: dict[str, Any] = {"fingerprint": fp}
    steps = (
        ("certificate.version", lambda: cert.version.value + 1),
        ("certificate.serial", lambda: _serial(cert.serial_number)),
        ("certificate.subject", lambda: format_name(cert.subject)),
        ("certificate.issuer", lambda: format_name(cert.issuer)),
        ("certificate.not_valid_before", lambda: cert.not_valid_before_utc.timestamp()),
        ("certificate.not_valid_after", lambda: cert.not_valid_after_utc.timestamp()),
        ("certificate.key_alg", lambda: _oid_name(cert.public_key_algorithm_oid)),
        ("certificate.sig_alg", lambda: _oid_name(cert.signature_algorithm_oid)),
    )
    # A field that does not decode is left out; the others still log.
    for field, read in steps:
        with contextlib.suppress(Exception):
            out[field] = read()
    for fill in (_key_fields, _extension_fields, _ja4x):
        with contextlib.suppress(Exception):
            fill(cert, out)
    return out


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    return _ALG_NAMES.get(oid.dotted_string, oid.dotted_string)


def matches_host(record: dict[str, Any], host: str) -> bool:
    """Whether ``host`` is named by the certificate's SAN DNS names or CN.

    A wildcard stands for exactly one leftmost label (RFC 6125 6.4.3).
    """
    names = list(record.get("san.dns", ()))
    for rdn in str(record.get("certificate.subject", "")).split(","):
        if rdn.startswith("CN="):
            names.append(rdn[3:])
    host = host.lower().rstrip(".")
    for name in names:
        name = name.lower().rstrip(".")
        if name == host:
            return True
        if name.startswith("*.") and "." in host:
            label, rest = host.split(".", 1)
            if label and rest == name[2:]:
                return True
    return False
