"""JA3, JA3S, JA4 and JA4S fingerprints of TLS hellos.

JA3 and JA3S (Salesforce, https://github.com/salesforce/ja3): the decimal
hello fields joined with ``,`` (lists with ``-``), then MD5. GREASE values
(RFC 8701) are left out of JA3.

JA4 and JA4S (FoxIO, https://github.com/FoxIO-LLC/ja4, technical details in
its README): a readable prefix (transport, version, SNI, counts, ALPN) and
truncated SHA-256 hashes of the sorted cipher and extension lists (JA4) or
of the extension list in wire order (JA4S).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

from sensor.proto.parsers.tls import (
    EXT_ALPN,
    EXT_EC_POINT_FORMATS,
    EXT_SERVER_NAME,
    EXT_SIGNATURE_ALGORITHMS,
    EXT_SUPPORTED_GROUPS,
    EXT_SUPPORTED_VERSIONS,
    Hello,
    TLSDecodeError,
    alpn_protocols,
    supported_versions,
    u8_vector,
    u16_vector,
)

# JA4's two-character version codes (FoxIO JA4 README, "TLS Version").
_JA4_VERSIONS = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0002: "s2",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}

_EMPTY_HASH = "000000000000"

T = TypeVar("T")


def is_grease(value: int) -> bool:
    """Whether ``value`` is a GREASE code point (RFC 8701 2: 0x?A?A, equal bytes)."""
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


#: The sixteen GREASE values, for filtering lists without a call per value.
GREASE = frozenset(v for v in range(0x0A0A, 0x10000, 0x1010) if is_grease(v))


def _decoded(fn: Callable[..., list[T]], *args: Any) -> list[T]:
    # A malformed extension counts as an empty list, as in the references.
    try:
        return fn(*args)
    except TLSDecodeError:
        return []


def ja3_string(hello: Hello) -> str:
    """The JA3 text of a ClientHello: version,ciphers,extensions,groups,formats."""
    exts = [code for code, _ in hello.extensions if code not in GREASE]
    groups_raw = hello.extension(EXT_SUPPORTED_GROUPS)
    formats_raw = hello.extension(EXT_EC_POINT_FORMATS)
    groups = _decoded(u16_vector, groups_raw) if groups_raw is not None else []
    formats = _decoded(u8_vector, formats_raw) if formats_raw is not None else []
    parts = [
        [hello.version],
        [c for c in hello.ciphers if c not in GREASE],
        exts,
        [g for g in groups if g not in GREASE],
        formats,
    ]
    return ",".join(["-".join(map(str, part)) for part in parts])


def ja3s_string(hello: Hello) -> str:
    """The JA3S text of a ServerHello: version,cipher,extensions."""
    exts = "-".join([str(code) for code, _ in hello.extensions])
    return f"{hello.version},{hello.ciphers[0] if hello.ciphers else 0},{exts}"


def ja3(hello: Hello) -> str:
    """JA3 of a ClientHello (MD5 of :func:`ja3_string`, hex)."""
    return hashlib.md5(ja3_string(hello).encode(), usedforsecurity=False).hexdigest()


def ja3s(hello: Hello) -> str:
    """JA3S of a ServerHello (MD5 of :func:`ja3s_string`, hex)."""
    return hashlib.md5(ja3s_string(hello).encode(), usedforsecurity=False).hexdigest()


def _sha12(text: str) -> str:
    if not text:
        return _EMPTY_HASH
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _version(hello: Hello, is_client: bool) -> str:
    # The highest non-GREASE supported_versions entry wins over the
    # legacy version field (RFC 8446 4.2.1 freezes that at 0x0303).
    raw = hello.extension(EXT_SUPPORTED_VERSIONS)
    versions = _decoded(supported_versions, raw, is_client) if raw is not None else []
    versions = [v for v in versions if v not in GREASE]
    version = max(versions) if versions else hello.version
    return _JA4_VERSIONS.get(version, "00")


def _alpn(hello: Hello) -> str:
    raw = hello.extension(EXT_ALPN)
    protos = _decoded(alpn_protocols, raw) if raw is not None else []
    if not protos or not protos[0]:
        return "00"
    first = protos[0]
    a, z = chr(first[0]), chr(first[-1])
    if a.isascii() and a.isalnum() and z.isascii() and z.isalnum():
        return a + z
    # Non-alphanumeric ends: first and last hex digit of the value.
    hexed = first.hex()
    return hexed[0] + hexed[-1]


def ja4(hello: Hello, transport: str = "t") -> str:
    """JA4 of a ClientHello; ``transport`` is ``t`` (TCP), ``q`` or ``d``."""
    ciphers = sorted(c for c in hello.ciphers if c not in GREASE)
    exts = [code for code, _ in hello.extensions if code not in GREASE]
    sni = "d" if hello.extension(EXT_SERVER_NAME) is not None else "i"
    prefix = (
        f"{transport}{_version(hello, True)}{sni}"
        f"{min(len(ciphers), 99):02d}{min(len(exts), 99):02d}{_alpn(hello)}"
    )

    # "%04x" % n is about twice as fast as an f-string here (per value).
    cipher_text = ",".join(["%04x" % c for c in ciphers])
    ext_text = ",".join(
        ["%04x" % e for e in sorted(exts) if e not in (EXT_SERVER_NAME, EXT_ALPN)]
    )
    sigs_raw = hello.extension(EXT_SIGNATURE_ALGORITHMS)
    sigs = _decoded(u16_vector, sigs_raw) if sigs_raw is not None else []
    if sigs:
        ext_text += "_" + ",".join(["%04x" % s for s in sigs])
    ext_hash = _sha12(ext_text) if exts else _EMPTY_HASH
    return f"{prefix}_{_sha12(cipher_text)}_{ext_hash}"


def ja4s(hello: Hello, transport: str = "t") -> str:
    """JA4S of a ServerHello."""
    exts = [code for code, _ in hello.extensions]
    prefix = (
        f"{transport}{_version(hello, False)}{min(len(exts), 99):02d}{_alpn(hello)}"
    )
    cipher = hello.ciphers[0] if hello.ciphers else 0
    return f"{prefix}_{cipher:04x}_{_sha12(','.join(['%04x' % e for e in exts]))}"
