"""Application payloads for make_office.py: TLS 1.3, HTTP/1.1, SMB2, NTP.

Byte layouts follow the RFCs and [MS-SMB2]/[MS-NLMP]; the encrypted parts
(TLS application data) are bytes from the scenario's seeded generator, which
is all a passive sensor can see of them anyway.
"""

from __future__ import annotations

import random
import struct


def _u8(n: int) -> bytes:
    return struct.pack("!B", n)


def _u16(n: int) -> bytes:
    return struct.pack("!H", n)


def _vec16(data: bytes) -> bytes:
    return _u16(len(data)) + data


def _ext(kind: int, body: bytes) -> bytes:
    return _u16(kind) + _vec16(body)


def tls_record(content_type: int, body: bytes, version: int = 0x0303) -> bytes:
    """One TLS record (RFC 8446 5.1)."""
    return _u8(content_type) + _u16(version) + _vec16(body)


def _handshake(kind: int, body: bytes) -> bytes:
    return _u8(kind) + struct.pack("!I", len(body))[1:] + body


def client_hello(rng: random.Random, sni: str) -> bytes:
    """A TLS 1.3 ClientHello (RFC 8446 4.1.2) with SNI (RFC 6066 3) and ALPN.

    The cipher suites and extensions are those a current browser offers,
    without GREASE, in the record layer's legacy version 0x0301.
    """
    suites = [
        0x1301,
        0x1302,
        0x1303,
        0xC02B,
        0xC02F,
        0xC02C,
        0xC030,
        0xCCA9,
        0xCCA8,
        0xC013,
        0xC014,
        0x009C,
        0x009D,
        0x002F,
        0x0035,
    ]
    name = sni.encode()
    extensions = b"".join(
        [
            _ext(0x0000, _vec16(b"\x00" + _vec16(name))),  # server_name
            _ext(0x0017, b""),  # extended_master_secret
            _ext(0xFF01, b"\x00"),  # renegotiation_info
            _ext(0x000A, _vec16(b"".join(_u16(g) for g in (0x001D, 0x0017, 0x0018)))),
            _ext(0x000B, b"\x01\x00"),  # ec_point_formats: uncompressed
            _ext(0x0023, b""),  # session_ticket
            _ext(0x0010, _vec16(b"\x02h2\x08http/1.1")),  # ALPN (RFC 7301)
            _ext(0x0005, b"\x01\x00\x00\x00\x00"),  # status_request
            _ext(
                0x000D,
                _vec16(
                    b"".join(
                        _u16(s)
                        for s in (
                            0x0403,
                            0x0804,
                            0x0401,
                            0x0503,
                            0x0805,
                            0x0501,
                            0x0806,
                            0x0601,
                        )
                    )
                ),
            ),
            _ext(
                0x0033, _vec16(_u16(0x001D) + _vec16(rng.randbytes(32)))
            ),  # key_share x25519
            _ext(0x002D, b"\x01\x01"),  # psk_key_exchange_modes: psk_dhe_ke
            _ext(0x002B, b"\x04\x03\x04\x03\x03"),  # supported_versions 1.3, 1.2
        ]
    )
    body = b"".join(
        [
            _u16(0x0303),
            rng.randbytes(32),
            _u8(32) + rng.randbytes(32),  # legacy_session_id
            _vec16(b"".join(_u16(s) for s in suites)),
            b"\x01\x00",  # compression: null
            _vec16(extensions),
        ]
    )
    return tls_record(0x16, _handshake(1, body), version=0x0301)


def server_hello_flight(
    rng: random.Random, client_hello_bytes: bytes, encrypted: int
) -> bytes:
    """ServerHello (TLS 1.3, TLS_AES_128_GCM_SHA256), ChangeCipherSpec, and
    ``encrypted`` bytes of encrypted handshake (certificate and finished) as
    application-data records, as RFC 8446 D.4 middlebox compatibility sends."""
    session_id = client_hello_bytes[5 + 4 + 2 + 32 + 1 : 5 + 4 + 2 + 32 + 1 + 32]
    extensions = _ext(0x002B, _u16(0x0304)) + _ext(
        0x0033, _u16(0x001D) + _vec16(rng.randbytes(32))
    )
    body = (
        _u16(0x0303)
        + rng.randbytes(32)
        + _u8(32)
        + session_id
        + _u16(0x1301)
        + b"\x00"
        + _vec16(extensions)
    )
    return (
        tls_record(0x16, _handshake(2, body))
        + tls_record(0x14, b"\x01")
        + app_data(rng, encrypted)
    )


def app_data(rng: random.Random, size: int) -> bytes:
    """``size`` bytes of encrypted data in records of at most 16 KiB + tag."""
    out = b""
    while size > 0:
        chunk = min(size, 16384 + 17)
        out += tls_record(0x17, rng.randbytes(chunk))
        size -= chunk
    return out


def http_get(host: str, path: str, agent: str) -> bytes:
    """An HTTP/1.1 GET request (RFC 9112 3)."""
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {agent}\r\n"
        "Accept: */*\r\nAccept-Encoding: gzip, deflate\r\nConnection: close\r\n\r\n"
    ).encode()


def http_response(status: str, content_type: str, body: bytes) -> bytes:
    """An HTTP/1.1 response with Content-Length (RFC 9112 6.3)."""
    head = (
        f"HTTP/1.1 {status}\r\nDate: Mon, 02 Nov 2026 09:00:00 GMT\r\nServer: nginx\r\n"
    )
    if body or not status.startswith("204"):
        head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    return (head + "Connection: close\r\n\r\n").encode() + body


def ntp_packet(mode: int, t_seconds: float, stratum: int = 0) -> bytes:
    """An NTPv4 packet (RFC 5905 7.3); mode 3 client, 4 server."""
    era = 2_208_988_800  # seconds from 1900 (NTP epoch) to 1970
    stamp = int((t_seconds + era) * 2**32) & 0xFFFFFFFFFFFFFFFF
    li_vn_mode = (0 << 6) | (4 << 3) | mode
    header = struct.pack(
        "!BBbb", li_vn_mode, stratum, 3 if mode == 4 else 0, -24 if mode == 4 else 0
    )
    if mode == 3:  # the client sets only its transmit time
        return header + bytes(36) + struct.pack("!Q", stamp)
    return header + struct.pack(
        "!II4sQQQQ",
        0x10,
        0x20,
        b"\xa2\x9f\xc8\x7b",
        stamp - 2**36,
        0,
        stamp,
        stamp + 2**20,
    )


# --- SMB2 ([MS-SMB2] 2.2) over NetBIOS session service framing (RFC 1002) ---

SMB2_NEGOTIATE, SMB2_SESSION_SETUP, SMB2_LOGOFF, SMB2_TREE_CONNECT = 0, 1, 2, 3
SMB2_CREATE, SMB2_CLOSE, SMB2_READ = 5, 6, 8
STATUS_MORE_PROCESSING_REQUIRED = 0xC0000016


def smb2(
    command: int,
    message_id: int,
    body: bytes,
    response: bool = False,
    status: int = 0,
    session: int = 0,
    tree: int = 0,
) -> bytes:
    """One SMB2 message behind its 4-byte NetBIOS session header."""
    header = b"\xfeSMB" + struct.pack(
        "<HHIHHIIQIIQ16s",
        64,
        1,
        status,
        command,
        31 if response else 1,
        1 if response else 0,
        0,
        message_id,
        0xFEFF,
        tree,
        session,
        bytes(16),
    )
    message = header + body
    return struct.pack("!I", len(message)) + message


def negotiate_request(guid: bytes) -> bytes:
    """[MS-SMB2] 2.2.3, offering SMB 2.0.2 to 3.0.2."""
    dialects = (0x0202, 0x0210, 0x0300, 0x0302)
    return struct.pack("<HHHHI16sQ", 36, len(dialects), 1, 0, 0x7F, guid, 0) + b"".join(
        struct.pack("<H", d) for d in dialects
    )


def negotiate_response(guid: bytes, filetime: int, blob: bytes) -> bytes:
    """[MS-SMB2] 2.2.4, choosing SMB 3.0.2."""
    return (
        struct.pack(
            "<HHHH16sIIIIQQHHI",
            65,
            1,
            0x0302,
            0,
            guid,
            0x2F,
            8388608,
            8388608,
            8388608,
            filetime,
            0,
            128,
            len(blob),
            0,
        )
        + blob
    )


def session_setup_request(blob: bytes) -> bytes:
    """[MS-SMB2] 2.2.5 carrying an NTLMSSP message."""
    return struct.pack("<HBBIIHHQ", 25, 0, 1, 1, 0, 88, len(blob), 0) + blob


def session_setup_response(blob: bytes) -> bytes:
    """[MS-SMB2] 2.2.6."""
    return struct.pack("<HHHH", 9, 0, 72, len(blob)) + blob


def ntlm_negotiate() -> bytes:
    """[MS-NLMP] 2.2.1.1 NEGOTIATE_MESSAGE, no domain or workstation."""
    return b"NTLMSSP\x00" + struct.pack("<II8s8s", 1, 0xE0088297, bytes(8), bytes(8))


def _av_pairs(domain: str, server: str) -> bytes:
    # [MS-NLMP] 2.2.2.1: NetBIOS domain name (2), computer name (1), EOL (0).
    return b"".join(
        struct.pack("<HH", kind, len(value)) + value
        for kind, value in (
            (2, domain.encode("utf-16-le")),
            (1, server.encode("utf-16-le")),
            (0, b""),
        )
    )


def ntlm_challenge(rng: random.Random, domain: str, server: str) -> bytes:
    """[MS-NLMP] 2.2.1.2 CHALLENGE_MESSAGE with the target (domain) name and
    target information."""
    name, info = domain.encode("utf-16-le"), _av_pairs(domain, server)
    head = struct.pack(
        "<IHHIIQ8sHHI", 2, len(name), len(name), 48, 0xE0898215,
        rng.getrandbits(64), bytes(8), len(info), len(info), 48 + len(name),
    )  # fmt: skip
    return b"NTLMSSP\x00" + head + name + info


def ntlm_authenticate(
    rng: random.Random,
    domain: str,
    user: str,
    workstation: str,
    server: str,
    filetime: int,
) -> bytes:
    """[MS-NLMP] 2.2.1.3 AUTHENTICATE_MESSAGE with an NTLMv2 response (2.2.2.8)."""
    blob = (
        struct.pack("<BBHIQ8sI", 1, 1, 0, 0, filetime, rng.randbytes(8), 0)
        + _av_pairs(domain, server)
        + bytes(4)
    )
    fields = [
        rng.randbytes(24),
        rng.randbytes(16) + blob,
        domain.encode("utf-16-le"),
        user.encode("utf-16-le"),
        workstation.encode("utf-16-le"),
        rng.randbytes(16),
    ]
    # Security buffers in field order: LM, NT, domain, user, workstation, key.
    offset, headers = 64, []
    for value in fields:
        headers.append(struct.pack("<HHI", len(value), len(value), offset))
        offset += len(value)
    return (
        b"NTLMSSP\x00"
        + struct.pack("<I", 3)
        + b"".join(headers)
        + struct.pack("<I", 0xE0888215)
        + b"".join(fields)
    )


def tree_connect_request(path: str) -> bytes:
    """[MS-SMB2] 2.2.9."""
    unc = path.encode("utf-16-le")
    return struct.pack("<HHHH", 9, 0, 72, len(unc)) + unc


def tree_connect_response() -> bytes:
    """[MS-SMB2] 2.2.10, a disk share."""
    return struct.pack("<HBBIII", 16, 1, 0, 0x800, 0, 0x1F01FF)


def create_request(name: str) -> bytes:
    """[MS-SMB2] 2.2.13, open an existing file for reading."""
    path = name.encode("utf-16-le")
    return (
        struct.pack(
            "<HBBIQQIIIIIHHII",
            57,
            0,
            0,
            2,
            0,
            0,
            0x120089,
            0,
            7,
            1,
            0x40,
            120,
            len(path),
            0,
            0,
        )
        + path
    )


def create_response(file_id: bytes, size: int, filetime: int) -> bytes:
    """[MS-SMB2] 2.2.14."""
    return struct.pack(
        "<HBBIQQQQQQII16sII",
        89,
        0,
        0,
        1,
        filetime,
        filetime,
        filetime,
        filetime,
        size,
        size,
        0x20,
        0,
        file_id,
        0,
        0,
    )


def read_request(file_id: bytes, length: int, offset: int) -> bytes:
    """[MS-SMB2] 2.2.19."""
    return (
        struct.pack(
            "<HBBIQ16sIIIHH", 49, 0x50, 0, length, offset, file_id, 1, 0, 0, 0, 0
        )
        + b"\x00"
    )


def read_response(data: bytes) -> bytes:
    """[MS-SMB2] 2.2.20."""
    return struct.pack("<HBBIII", 17, 80, 0, len(data), 0, 0) + data


def close_request(file_id: bytes) -> bytes:
    """[MS-SMB2] 2.2.15."""
    return struct.pack("<HHI16s", 24, 0, 0, file_id)


def close_response() -> bytes:
    """[MS-SMB2] 2.2.16."""
    return struct.pack("<HHIQQQQQQI", 60, 0, 0, 0, 0, 0, 0, 0, 0, 0)
