"""Minimal DER/BER reading for the security tokens inside other protocols.

Only what Kerberos (RFC 4120 5) and SPNEGO (RFC 4178 4.2) need: read one
tag-length-value header, and walk the members of a constructed value.
"""

from __future__ import annotations

from collections.abc import Iterator


def tlv(
    buf: bytes, off: int, end: int | None = None, clip: bool = False
) -> tuple[int, int, int] | None:
    """Read the header at ``off``: ``(tag, value_start, value_end)`` or None.

    Single-byte tags only (every tag these protocols use fits), definite
    lengths of up to four bytes, and the value must fit before ``end`` --
    unless ``clip`` is set, for a value that the capture limit cut short:
    then its end is clipped to ``end``.
    """
    end = len(buf) if end is None else min(end, len(buf))
    if off + 2 > end:
        return None
    tag, n = buf[off], buf[off + 1]
    off += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or off + k > end:
            return None
        n = int.from_bytes(buf[off : off + k], "big")
        off += k
    if off + n > end:
        if not clip:
            return None
        n = end - off
    return tag, off, off + n


def children(
    buf: bytes, start: int, end: int, clip: bool = False
) -> Iterator[tuple[int, int, int]]:
    """The members of a constructed value spanning ``buf[start:end]``."""
    off = start
    while off < end:
        t = tlv(buf, off, end, clip)
        if t is None:
            return
        yield t
        off = t[2]


def child(
    buf: bytes, start: int, end: int, tag: int, clip: bool = False
) -> tuple[int, int] | None:
    """The value range of the first member of ``buf[start:end]`` with ``tag``."""
    for t, s, e in children(buf, start, end, clip):
        if t == tag:
            return s, e
    return None
