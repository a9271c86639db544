"""TLS and SSLv2 wire formats: records, handshake messages, hellos.

Pure functions from bytes to values; no per-connection state (that is in
:mod:`sensor.proto.analyzers.tls`). A malformed message raises
:class:`TLSDecodeError`, whose ``name`` is the anomaly the analyzer counts;
nothing else is raised for any input.

References: RFC 5246 (TLS 1.2) 6.2 and 7.4, RFC 8446 (TLS 1.3) 4.1 and 4.2,
RFC 6101 appendix E (SSLv2-compatible hello), draft-hickman-netscape-ssl-00
(SSLv2), RFC 6066 3 (server_name), RFC 7301 3.1 (ALPN).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

# Record content types (RFC 5246 6.2.1, RFC 6520 for heartbeat).
CHANGE_CIPHER_SPEC = 20
ALERT = 21
HANDSHAKE = 22
APPLICATION_DATA = 23
HEARTBEAT = 24

# Handshake message types (RFC 8446 4, RFC 5246 7.4).
CLIENT_HELLO = 1
SERVER_HELLO = 2
CERTIFICATE = 11

# Extension numbers (IANA TLS ExtensionType Values).
EXT_SERVER_NAME = 0
EXT_SUPPORTED_GROUPS = 10
EXT_EC_POINT_FORMATS = 11
EXT_SIGNATURE_ALGORITHMS = 13
EXT_ALPN = 16
EXT_SESSION_TICKET = 35
EXT_PRE_SHARED_KEY = 41
EXT_SUPPORTED_VERSIONS = 43
EXT_KEY_SHARE = 51

#: The ServerHello random of a HelloRetryRequest (RFC 8446 4.1.3).
HRR_RANDOM = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
)


class TLSDecodeError(ValueError):
    """A message does not parse; ``name`` is the anomaly to count."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


@dataclass(slots=True)
class Hello:
    """A ClientHello or ServerHello, with its extensions in wire order.

    For a ServerHello, ``ciphers`` holds the one chosen suite and
    ``compressions`` the chosen method. ``sslv2`` marks an SSLv2-format
    ClientHello, whose cipher specs are 24-bit numbers.
    """

    version: int
    random: bytes
    session_id: bytes
    ciphers: list[int]
    compressions: bytes
    extensions: list[tuple[int, bytes]] = field(default_factory=list)
    sslv2: bool = False

    def extension(self, code: int) -> bytes | None:
        """The body of the first extension ``code``, or None."""
        for ext, body in self.extensions:
            if ext == code:
                return body
        return None


class _Cursor:
    """Bounds-checked reads; running off the end raises TLSDecodeError."""

    __slots__ = ("buf", "pos", "what")

    def __init__(self, buf: bytes, what: str) -> None:
        self.buf = buf
        self.pos = 0
        self.what = what

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.buf):
            raise TLSDecodeError(
                "SSL_TRUNCATED",
                f"{self.what}: need {n} bytes at offset {self.pos}, "
                f"have {len(self.buf) - self.pos}",
            )
        out = self.buf[self.pos : end]
        self.pos = end
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, len_bytes: int) -> bytes:
        return self.take(self.uint(len_bytes))

    def left(self) -> int:
        return len(self.buf) - self.pos


def _u16_list(raw: bytes) -> list[int]:
    n = len(raw) // 2
    return list(struct.unpack_from(f">{n}H", raw)) if n else []


def _extensions(cur: _Cursor) -> list[tuple[int, bytes]]:
    # Extensions are optional in both hellos (RFC 5246 7.4.1.2).
    if cur.left() == 0:
        return []
    return _extension_list(cur.vector(2), cur.what)


def _extension_list(raw: bytes, what: str) -> list[tuple[int, bytes]]:
    # Read without a cursor (a hello has some twenty extensions); a block
    # that does not add up is read again by the cursor, for its error.
    out = []
    pos, end = 0, len(raw)
    while pos + 4 <= end:
        stop = pos + 4 + ((raw[pos + 2] << 8) | raw[pos + 3])
        if stop > end:
            break
        out.append(((raw[pos] << 8) | raw[pos + 1], raw[pos + 4 : stop]))
        pos = stop
    if pos == end:
        return out
    block = _Cursor(raw, what + " extensions")
    while block.left():
        block.uint(2)
        block.vector(2)
    raise AssertionError("unreachable: the cursor raises on a short block")


def _extensions_at(body: bytes, pos: int, what: str) -> list[tuple[int, bytes]] | None:
    # The extensions after a hello's fixed part at ``pos``; None when their
    # length runs past the body (the cursor then says how).
    size = len(body)
    if pos == size:
        return []
    end = pos + 2 + ((body[pos] << 8) | body[pos + 1]) if pos + 2 <= size else size + 1
    if end > size:
        return None
    return _extension_list(body[pos + 2 : end], what)


def parse_client_hello(body: bytes) -> Hello:
    """Parse a ClientHello handshake body (after the 4-byte header)."""
    # The common case, read by offsets; anything short or odd is read
    # again by the cursor below, which raises with the details.
    size = len(body)
    if size >= 38:
        sid = 35 + body[34]
        suites = sid + 2 + ((body[sid] << 8) | body[sid + 1]) if sid + 2 <= size else 0
        if sid + 2 <= suites < size and not (suites - sid) % 2:
            comp = suites + 1 + body[suites]
            exts = _extensions_at(body, comp, "client hello") if comp <= size else None
            if exts is not None:
                return Hello(
                    (body[0] << 8) | body[1],
                    body[2:34],
                    body[35:sid],
                    _u16_list(body[sid + 2 : suites]),
                    body[suites + 1 : comp],
                    exts,
                )

    cur = _Cursor(body, "client hello")
    version = cur.uint(2)
    random = cur.take(32)
    session_id = cur.vector(1)
    suites_raw = cur.vector(2)
    if len(suites_raw) % 2:
        raise TLSDecodeError(
            "SSL_BAD_CIPHER_LIST",
            f"client hello: cipher list of {len(suites_raw)} bytes is odd",
        )
    compressions = cur.vector(1)
    return Hello(
        version,
        random,
        session_id,
        _u16_list(suites_raw),
        compressions,
        _extensions(cur),
    )


def parse_server_hello(body: bytes) -> Hello:
    """Parse a ServerHello handshake body (after the 4-byte header)."""
    # By offsets when the fixed part is whole, as parse_client_hello.
    size = len(body)
    if size >= 35:
        sid = 35 + body[34]
        exts = (
            _extensions_at(body, sid + 3, "server hello") if sid + 3 <= size else None
        )
        if exts is not None:
            return Hello(
                (body[0] << 8) | body[1],
                body[2:34],
                body[35:sid],
                [(body[sid] << 8) | body[sid + 1]],
                body[sid + 2 : sid + 3],
                exts,
            )

    cur = _Cursor(body, "server hello")
    version = cur.uint(2)
    random = cur.take(32)
    session_id = cur.vector(1)
    cipher = cur.uint(2)
    compression = cur.take(1)
    return Hello(version, random, session_id, [cipher], compression, _extensions(cur))


def parse_sslv2_client_hello(record: bytes) -> Hello:
    """Parse an SSLv2-format CLIENT-HELLO record body, type byte included.

    RFC 6101 E.1 / draft-hickman-netscape-ssl-00 2.5: version, three
    lengths, then cipher specs (3 bytes each), session id and challenge.
    """
    cur = _Cursor(record, "sslv2 client hello")
    if cur.uint(1) != 1:
        raise TLSDecodeError("SSL_BAD_V2_HELLO", "sslv2 record is not a CLIENT-HELLO")
    version = cur.uint(2)
    spec_len, sid_len, chal_len = cur.uint(2), cur.uint(2), cur.uint(2)
    specs = cur.take(spec_len)
    ciphers = [
        int.from_bytes(specs[i : i + 3], "big") for i in range(0, len(specs) - 2, 3)
    ]
    session_id = cur.take(sid_len)
    challenge = cur.take(chal_len)
    return Hello(version, challenge, session_id, ciphers, b"\x00", [], sslv2=True)


def parse_certificates(body: bytes, tls13: bool = False) -> list[bytes]:
    """The DER certificates of a Certificate message body, in order.

    TLS 1.2 (RFC 5246 7.4.2): a 24-bit list of 24-bit length-prefixed
    certificates. TLS 1.3 (RFC 8446 4.4.2) adds a request context before
    the list and extensions after each certificate.
    """
    cur = _Cursor(body, "certificate")
    if tls13:
        cur.vector(1)
    chain = _Cursor(cur.vector(3), "certificate list")
    out = []
    while chain.left():
        out.append(chain.vector(3))
        if tls13:
            chain.vector(2)
    return out


def server_names(ext: bytes) -> list[str]:
    """Host names of a server_name extension (RFC 6066 3)."""
    # One host_name filling the list, the common case, read by offsets.
    if len(ext) >= 5 and ext[2] == 0:
        n = (ext[3] << 8) | ext[4]
        if (ext[0] << 8) | ext[1] == n + 3 == len(ext) - 2:
            return [ext[5:].decode("ascii", "backslashreplace")]
    cur = _Cursor(ext, "server_name")
    block = _Cursor(cur.vector(2), "server_name list")
    names = []
    while block.left():
        kind = block.uint(1)
        name = block.vector(2)
        if kind == 0:
            names.append(name.decode("ascii", "backslashreplace"))
    return names


def alpn_protocols(ext: bytes) -> list[bytes]:
    """Protocol names of an ALPN extension (RFC 7301 3.1), as bytes."""
    cur = _Cursor(ext, "alpn")
    block = _Cursor(cur.vector(2), "alpn list")
    out = []
    while block.left():
        out.append(block.vector(1))
    return out


def u16_vector(ext: bytes, len_bytes: int = 2) -> list[int]:
    """A length-prefixed list of 16-bit numbers (groups, signature schemes)."""
    return _u16_list(_Cursor(ext, "extension").vector(len_bytes))


def u8_vector(ext: bytes) -> list[int]:
    """A one-byte-length list of bytes (ec_point_formats)."""
    return list(_Cursor(ext, "extension").vector(1))


def supported_versions(ext: bytes, is_client: bool) -> list[int]:
    """supported_versions (RFC 8446 4.2.1): a list from the client, one from the server."""
    if is_client:
        return u16_vector(ext, 1)
    return [_Cursor(ext, "supported_versions").uint(2)]


def key_share_groups(ext: bytes, is_client: bool) -> list[int]:
    """Groups named by a key_share extension (RFC 8446 4.2.8).

    A HelloRetryRequest carries only the group; a ServerHello a group and
    its key.
    """
    cur = _Cursor(ext, "key_share")
    if not is_client:
        return [cur.uint(2)]
    block = _Cursor(cur.vector(2), "key_share list")
    groups = []
    while block.left():
        groups.append(block.uint(2))
        block.vector(2)
    return groups


def ecdh_server_curve(body: bytes) -> int | None:
    """The named curve of an ECDHE ServerKeyExchange (RFC 8422 5.4), if any.

    ``curve_type`` 3 (named_curve) is followed by the 16-bit group; any
    other body (DHE, RSA export, explicit curves) names no group.
    """
    if len(body) >= 3 and body[0] == 3:
        return int.from_bytes(body[1:3], "big")
    return None
