"""SSH transport-layer messages (RFC 4253) that ssh.log needs.

Before NEWKEYS each direction carries an identification line (RFC 4253
4.2) and then binary packets in the clear (RFC 4253 6): a four-byte length,
a padding length, the message type and its payload. :func:`next_packet`
splits them off a buffer, :func:`parse_kexinit` reads the algorithm lists
of SSH_MSG_KEXINIT (RFC 4253 7.1), and :func:`host_key_of` finds the
server's host key in the key-exchange reply. Fingerprints follow the hassh
specification (Salesforce, hassh 1.1) and Zeek's host key fingerprints.
Nothing here raises on bad input; anomalies are returned by name.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

#: Longest identification line read (RFC 4253 4.2 allows 255 bytes).
MAX_VERSION_LINE = 1024
#: Largest cleartext packet (RFC 4253 6.1 requires 35000; servers allow more).
MAX_PACKET = 256 * 1024

MSG_KEXINIT = 20
MSG_NEWKEYS = 21

# The names of the ten name-lists of SSH_MSG_KEXINIT, in order.
KEXINIT_FIELDS = (
    "kex",
    "host_key",
    "enc_c2s",
    "enc_s2c",
    "mac_c2s",
    "mac_s2c",
    "comp_c2s",
    "comp_s2c",
    "lang_c2s",
    "lang_s2c",
)


@dataclass(slots=True)
class KEXInit:
    """The algorithm name-lists of one SSH_MSG_KEXINIT, raw and split."""

    raw: dict[str, bytes]
    lists: dict[str, list[str]]


def split_line(buf: bytes) -> tuple[bytes, int] | None:
    """The first line of ``buf`` without its CR LF, and the bytes it took.

    None while no line feed has arrived yet.
    """
    end = buf.find(b"\n")
    if end < 0:
        return None
    line = buf[:end]
    if line.endswith(b"\r"):
        line = line[:-1]
    return line, end + 1


def next_packet(buf: bytes | bytearray) -> tuple[int, int, bytes] | int | str:
    """Split one binary packet off the front of ``buf``.

    Returns ``(size, msg_type, payload)`` with ``size`` the bytes the packet
    took; an int (how many bytes are needed in all) when it is incomplete;
    or an anomaly name when the length cannot be a cleartext packet.
    """
    if len(buf) < 6:
        return 6
    length = int.from_bytes(buf[:4], "big")
    if length < 2 or length > MAX_PACKET:
        return "SSH_packet_length_invalid"
    if len(buf) < 4 + length:
        return 4 + length
    padding = buf[4]
    if padding + 2 > length:
        return "SSH_padding_length_invalid"
    payload = bytes(buf[6 : 4 + length - padding])
    return 4 + length, buf[5], payload


def _string(data: bytes, off: int) -> tuple[bytes, int]:
    # RFC 4251 5: uint32 length, then that many bytes.
    if off + 4 > len(data):
        raise ValueError("SSH_string_truncated")
    n = int.from_bytes(data[off : off + 4], "big")
    if off + 4 + n > len(data):
        raise ValueError("SSH_string_truncated")
    return data[off + 4 : off + 4 + n], off + 4 + n


def name_list(raw: bytes) -> list[str]:
    """A comma-separated name-list (RFC 4251 5), empty names dropped."""
    return [n for n in raw.decode("latin-1").split(",") if n]


def parse_kexinit(payload: bytes) -> KEXInit | str:
    """The name-lists of a KEXINIT payload (after the message type byte)."""
    off = 16  # cookie
    raw: dict[str, bytes] = {}
    try:
        for name in KEXINIT_FIELDS:
            raw[name], off = _string(payload, off)
    except ValueError as e:
        return str(e)
    return KEXInit(raw, {k: name_list(v) for k, v in raw.items()})


def host_key_of(payload: bytes) -> bytes | str:
    """K_S, the first string of a DH, GEX or ECDH reply (RFC 4253 8, RFC 5656 4)."""
    try:
        return _string(payload, 0)[0]
    except ValueError as e:
        return str(e)


def host_key_md5(key: bytes) -> str:
    """MD5 fingerprint in colon-separated hex (Zeek's ``host_key`` up to 8.x)."""
    return ":".join(f"{b:02x}" for b in hashlib.md5(key).digest())


def host_key_sha256(key: bytes) -> str:
    """Zeek 9's ``host_key_fingerprint``: ``SHA256:`` and 32 base64 characters.

    Zeek 9.1 keeps the first 32 of the 43 characters that OpenSSH shows
    (checked against its logs of the shared captures).
    """
    return "SHA256:" + base64.b64encode(hashlib.sha256(key).digest()).decode()[:32]


def hassh_algorithms(k: KEXInit, client: bool) -> str:
    """The hassh (client) or hasshServer algorithm string.

    hassh 1.1: key exchange, encryption, MAC and compression lists of the
    sender's own direction, each as sent, joined by semicolons.
    """
    if client:
        parts = (k.raw["kex"], k.raw["enc_c2s"], k.raw["mac_c2s"], k.raw["comp_c2s"])
    else:
        parts = (k.raw["kex"], k.raw["enc_s2c"], k.raw["mac_s2c"], k.raw["comp_s2c"])
    return ";".join(p.decode("latin-1") for p in parts)


def hassh(algorithms: str) -> str:
    """MD5 of a hassh algorithm string, in hex."""
    return hashlib.md5(algorithms.encode("latin-1")).hexdigest()
