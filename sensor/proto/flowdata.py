"""What the detector keeps of one connection: its tuple and first payloads.

Detection runs on a :class:`FlowData` once the connection ends, so every
protocol check sees both directions at once, the way Zeek's analyzers see
both sides of a conversation before the record is written.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate

#: ``(buf, off) -> int``: length of the message starting at ``off``, 0 if bad.
LengthFn = Callable[[bytes, int], int]


@dataclass
class FlowData:
    """The first payload-bearing packets of one connection, per direction.

    ``orig_pkts`` and ``resp_pkts`` keep packet boundaries (UDP protocols
    are one message per datagram, and TCP parsers resynchronise on them);
    ``order`` records which direction each packet came from, in arrival
    order, for protocols whose meaning depends on who spoke first.
    ``nbytes`` is what both directions hold together (for the detector's
    overall budget). ``partial`` is set for a TCP connection whose
    handshake was not seen:
    Zeek then starts only the analyzers whose signatures do not depend on
    the TCP endpoint state.
    """

    proto: str
    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int
    orig_pkts: list[bytes] = field(default_factory=list)
    resp_pkts: list[bytes] = field(default_factory=list)
    order: list[bool] = field(default_factory=list)
    nbytes: int = 0
    partial: bool = False
    _joined: dict[bool, tuple[int, bytes]] = field(default_factory=dict, repr=False)

    def flip(self) -> None:
        """Swap originator and responder (the connection table flipped them)."""
        self.orig_h, self.resp_h = self.resp_h, self.orig_h
        self.orig_p, self.resp_p = self.resp_p, self.orig_p
        self.orig_pkts, self.resp_pkts = self.resp_pkts, self.orig_pkts
        self.order = [not o for o in self.order]
        self._joined.clear()

    def forget_streams(self) -> None:
        """Drop the joined streams (they double what a buffering flow holds)."""
        self._joined.clear()

    def pkts(self, is_orig: bool) -> list[bytes]:
        """The packets of one direction."""
        return self.orig_pkts if is_orig else self.resp_pkts

    def stream(self, is_orig: bool) -> bytes:
        """The payload of one direction, packets joined in arrival order."""
        pkts = self.orig_pkts if is_orig else self.resp_pkts
        # Every check asks for the streams: join once per direction, again
        # only when a packet was added (only the latest join is kept).
        count, joined = self._joined.get(is_orig, (-1, b""))
        if count != len(pkts):
            joined = b"".join(pkts)
            self._joined[is_orig] = (len(pkts), joined)
        return joined

    def on_port(self, ports: frozenset[int]) -> bool:
        """True when the responder port is one a Zeek analyzer registers for.

        Zeek starts no port-based analyzer on a partial TCP connection (one
        whose handshake it never saw), so this is False for those.
        """
        return self.resp_p in ports and not self.partial


def pdus(pkts: list[bytes], length_of: LengthFn, limit: int = 64) -> list[bytes]:
    """Split a TCP direction into length-framed messages.

    ``length_of(buf, off)`` returns the total length of the message that
    starts at ``off`` or 0 when no valid header is there. A bad header (or
    a retransmitted segment that breaks the framing) makes the parser skip
    to the next packet boundary, since senders start messages on one more
    often than not; a message cut short by the capture limit is returned
    truncated so that its header can still be read.
    """
    return [m for _, m in _framed(pkts, length_of, limit)]


def pdus_in_order(
    flow: FlowData, length_of: LengthFn, limit: int = 64
) -> list[tuple[bool, bytes]]:
    """The messages of both directions, as ``(is_orig, message)`` in the
    order they were complete (the packet holding a message's last byte)."""
    arrival: dict[bool, list[int]] = {True: [], False: []}
    for i, is_orig in enumerate(flow.order):
        arrival[is_orig].append(i)
    out: list[tuple[int, bool, bytes]] = []
    for is_orig in (True, False):
        pkts = flow.pkts(is_orig)
        ends = list(accumulate(map(len, pkts)))
        for end, msg in _framed(pkts, length_of, limit):
            k = min(bisect_left(ends, end), len(pkts) - 1)
            when = arrival[is_orig][k] if k < len(arrival[is_orig]) else len(flow.order)
            out.append((when, is_orig, msg))
    out.sort(key=lambda x: x[0])
    return [(is_orig, msg) for _, is_orig, msg in out]


def _framed(
    pkts: list[bytes], length_of: LengthFn, limit: int
) -> list[tuple[int, bytes]]:
    """``(end offset, message)`` for each message of one direction."""
    buf = b"".join(pkts)
    bounds = []
    pos = 0
    for p in pkts:
        bounds.append(pos)
        pos += len(p)
    out: list[tuple[int, bytes]] = []
    off = 0
    while off < len(buf) and len(out) < limit:
        n = length_of(buf, off)
        if n > 0:
            out.append((min(off + n, len(buf)), buf[off : off + n]))
            off += n
            continue
        nxt = [b for b in bounds if b > off]
        if not nxt:
            break
        off = nxt[0]
    return out
