"""Deterministic connection uids in Zeek's format.

Zeek draws uids at random; ours are derived from the connection's first
packet and its creation number, so that replaying the same capture gives the
same uids and the compiled table and its Python twin can be compared record
for record. The shape is Zeek's: ``C`` followed by base62 digits.
"""

from __future__ import annotations

import hashlib
import struct

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(n: int) -> str:
    """``n`` in base 62, most significant digit first."""
    digits = []
    while True:
        n, r = divmod(n, 62)
        digits.append(_ALPHABET[r])
        if n == 0:
            return "".join(reversed(digits))


def conn_uid(
    ts_ns: int,
    ip_proto: int,
    orig_h: bytes,
    orig_p: int,
    resp_h: bytes,
    resp_p: int,
    serial: int,
) -> str:
    """The uid of a connection.

    ``orig_h``/``resp_h`` are the packed addresses (4 or 16 bytes) as the
    table first saw them, and ``serial`` counts connections created by the
    table so far, so that two connections on one 5-tuple in the same
    nanosecond still differ.
    """
    key = struct.pack("!qBHHQ", ts_ns, ip_proto, orig_p, resp_p, serial) + orig_h + resp_h
    digest = hashlib.blake2b(key, digest_size=12).digest()
    return "C" + base62(int.from_bytes(digest, "big"))
