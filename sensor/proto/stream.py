"""Bounded TCP stream reassembly for the protocol analyzers.

The connection table hands over TCP payload one segment at a time, in the
order the segments were captured, with the sequence number of each
segment's first byte. :class:`Reassembler` turns that into what an
analyzer needs: each direction's bytes exactly once, in sequence order,
and a *gap* wherever bytes will never come.

Design. Each direction keeps ``next``, the stream offset of the first byte
not yet delivered, and the out-of-order segments that lie beyond it, sorted
and never overlapping each other. A segment is placed on the stream by the
distance of its sequence number from ``next`` taken modulo 2**32 as a
signed number (RFC 793 section 3.3, RFC 1982 serial arithmetic), so
sequence numbers may wrap and a stream may outgrow 4 GiB. The first
payload seen in a direction starts it: the table's events carry no SYN,
so data that arrives before a reordered first segment is taken as the
start (see the known gaps below).

- In order: delivered at once, then every held segment it reaches.
- Wholly before ``next`` (a retransmission): dropped, counted.
- Overlapping: the first copy wins, byte for byte, whether it was already
  delivered or is still held. That is Zeek's default policy
  (``tcp_reassembler_ports`` aside, its reassembler keeps the data it saw
  first and reports inconsistent retransmissions as a weird). Bytes cut
  this way are counted in ``overlap_bytes``.
- Beyond ``next``: held until the hole before it is filled.

There are no ACKs among the payload events, so a hole is never known to
be lost while the connection lives; it is given up on, and reported to
the analyzers as ``gap(length)`` followed by the held data, only when:

- the held bytes of one connection pass ``StreamConfig.conn_bytes``: the
  first hole of the direction that is holding is skipped, then the next,
  until the connection is back under its bound (``conn_limit`` counts);
- the held bytes of all connections pass ``StreamConfig.total_bytes``: the
  direction that has waited on a hole longest is flushed whole
  (``total_limit`` counts), the oldest hole being the least likely to be
  filled;
- the connection ends (:meth:`Reassembler.finish`). Given the connection
  record, the end is Zeek's: Zeek crosses a hole only when the peer
  acknowledges the bytes after it, so holes are crossed only as far as
  ``missed_bytes`` (the acknowledged holes) pays for them and the data
  behind an unacknowledged one is dropped; and the bytes missing after the
  last one captured (``orig_bytes``/``resp_bytes`` come from sequence
  numbers) are one more gap, so that an analyzer counting a body knows it
  was cut short.

Every held segment is charged ``SEGMENT_OVERHEAD`` bytes besides its data,
so a flood of one-byte segments is bounded as well as a few big ones.

UDP needs none of this: the dispatcher hands datagrams straight through.

Known gaps: data sent before a reordered first segment of a direction is
counted as a retransmission and lost (the SYN's sequence number would
tell; payload events do not carry it). Bytes cut off by the capture's
snapshot length make a hole that only the bounds or the end close.
"""

from __future__ import annotations

import logging
from bisect import bisect_left, insort
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: Bytes charged for every held segment besides its data.
SEGMENT_OVERHEAD = 64

#: Largest gap reported after a direction's last byte; a larger shortfall
#: says more about odd sequence numbers than about lost data.
MAX_TAIL_GAP = 1 << 30

Deliver = Callable[[Any, bool, float, bytes], None]
Gap = Callable[[Any, bool, float, int], None]


@dataclass(frozen=True)
class StreamConfig:
    """Limits of the reassembler (bytes held out of order, overhead included).

    ``conn_bytes``: per connection, both directions together; past it the
    connection's oldest holes become gaps. ``total_bytes``: over all
    connections; past it the direction that has waited longest is flushed.
    """

    conn_bytes: int = 256 << 10
    total_bytes: int = 64 << 20

    def __post_init__(self) -> None:
        for name in ("conn_bytes", "total_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"stream.{name}: {value!r} is not a non-negative integer"
                )


class _Direction:
    # No reference back to its _Conn: a cycle would leave every finished
    # connection to the cyclic garbage collector instead of freeing it.
    __slots__ = ("held", "is_orig", "key", "next", "offs", "segs", "start")

    def __init__(self, key: Any, is_orig: bool) -> None:
        self.key = key
        self.is_orig = is_orig
        self.next = -1  # stream offset of the next byte to deliver; -1: none yet
        self.start = -1  # stream offset of the first byte
        self.offs: list[int] = []  # held segments: start offsets, sorted
        self.segs: dict[int, bytes] = {}  # ... and their bytes
        self.held = 0  # bytes charged for the held segments


class _Conn:
    __slots__ = ("dirs",)

    def __init__(self, key: Any) -> None:
        self.dirs = (_Direction(key, False), _Direction(key, True))

    @property
    def held(self) -> int:
        """Bytes charged for the held segments of both directions."""
        return self.dirs[0].held + self.dirs[1].held


class Reassembler:
    """Per-direction, bounded, first-data-wins TCP reassembly.

    ``deliver(key, is_orig, ts, data)`` receives each direction's bytes in
    order; ``gap(key, is_orig, ts, length)`` stands for bytes that will
    never come. ``key`` is whatever the caller names a connection by.
    Neither callback may call back into the reassembler.
    """

    def __init__(
        self, deliver: Deliver, gap: Gap, config: StreamConfig | None = None
    ) -> None:
        self.config = config or StreamConfig()
        self._deliver = deliver
        self._gap = gap
        #: Optional ``salvage(key, is_orig, ts, segments)``: given, in stream
        #: order, the segments that :meth:`finish` drops behind a hole never
        #: acknowledged, for analyzers of self-framed protocols (DCE-RPC)
        #: that can still read whole messages in them.
        self.salvage: Callable[[Any, bool, float, list[bytes]], None] | None = None
        self._conns: dict[Any, _Conn] = {}
        self._waiting: dict[_Direction, None] = {}  # holding, oldest first
        self.held = 0
        # The two counters of the in-order fast path, kept apart from
        # ``counters`` (stats() adds them up).
        self._segments = 0
        self._delivered = 0
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "segments",
                "delivered_bytes",
                "retransmitted_bytes",
                "overlap_bytes",
                "out_of_order",
                "gaps",
                "gap_bytes",
                "tail_gaps",
                "unacked_bytes",
                "conn_limit",
                "total_limit",
            ),
            0,
        )

    def segment(
        self, key: Any, is_orig: bool, ts: float, seq: int, data: bytes
    ) -> None:
        """One captured TCP segment of ``key``: ``data`` starting at ``seq``."""
        if not data:
            return
        conn = self._conns.get(key)
        if conn is None:
            conn = self._conns[key] = _Conn(key)
        d = conn.dirs[is_orig]
        self._segments += 1
        nxt = d.next
        if nxt < 0:
            nxt = d.next = d.start = seq & 0xFFFFFFFF
        if not (seq - nxt) & 0xFFFFFFFF and not d.offs:
            # The common case, in order with nothing held: straight through.
            d.next = nxt + len(data)
            self._delivered += len(data)
            self._deliver(key, is_orig, ts, data)
            return

        # Where the segment lies relative to next (serial arithmetic).
        off = nxt + ((seq - nxt + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        c = self.counters
        end = off + len(data)
        if end <= d.next:
            c["retransmitted_bytes"] += len(data)
            return
        if off < d.next:
            c["overlap_bytes"] += d.next - off
            data = data[d.next - off :]
            off = d.next
        if off == d.next:
            if d.offs and d.offs[0] < end:
                self._hold(d, off, data)  # held bytes came first: they win
            else:
                self._emit(d, ts, data)
            if d.offs:
                self._drain(d, ts)
            return

        c["out_of_order"] += 1
        self._hold(d, off, data)
        self._enforce(conn, d, ts)

    def finish(
        self,
        key: Any,
        ts: float,
        orig_size: int = -1,
        resp_size: int = -1,
        missed: int = -1,
    ) -> None:
        """``key`` is over: deliver what is held, holes as gaps; forget it.

        The connection record can say more, and then the end follows Zeek,
        which reports a hole only once the peer has acknowledged the bytes
        after it. ``missed`` (conn.log's ``missed_bytes``: bytes in
        acknowledged holes) is spent on the holes in stream order,
        responder first; at the first hole it cannot cover, that
        direction's delivery stops and the bytes held after it are
        dropped (``unacked_bytes``). ``orig_size``/``resp_size`` (conn.log's
        ``orig_bytes``/``resp_bytes``, from sequence numbers) tell what is
        missing after the last byte seen: a final gap, from the same
        budget, of at most ``MAX_TAIL_GAP``.
        """
        conn = self._conns.pop(key, None)
        if conn is None:
            return
        budget = missed if missed >= 0 else 1 << 62
        for d, size in zip(conn.dirs, (resp_size, orig_size), strict=True):
            while d.offs and d.offs[0] - d.next <= budget:
                budget -= d.offs[0] - d.next
                self._skip(d, ts)
            if d.offs:
                if self.salvage is not None:
                    self.salvage(d.key, d.is_orig, ts, [d.segs[o] for o in d.offs])
                dropped = sum(map(len, d.segs.values()))
                self.counters["unacked_bytes"] += dropped
                self._release(d, d.held)
                d.offs.clear()
                d.segs.clear()
                self._waiting.pop(d, None)
                continue
            missing = size - (d.next - d.start)
            if d.start >= 0 and 0 < missing <= min(budget, MAX_TAIL_GAP):
                budget -= missing
                self.counters["tail_gaps"] += 1
                self._report(d, ts, missing)

    def drop(self, key: Any) -> None:
        """Forget ``key`` without delivering anything (nobody wants it)."""
        conn = self._conns.pop(key, None)
        if conn is None:
            return
        for d in conn.dirs:
            self._waiting.pop(d, None)
        self.held -= conn.held

    def holding(self, key: Any) -> bool:
        """Whether ``key`` has bytes held behind a hole."""
        conn = self._conns.get(key)
        return conn is not None and conn.held > 0

    def stats(self) -> dict[str, int]:
        """Counters and what is held now.

        ``segments``: segments given; ``delivered_bytes``; bytes dropped as
        ``retransmitted_bytes`` (wholly old) or ``overlap_bytes`` (trimmed,
        first copy kept); ``out_of_order``: segments held; ``gaps`` and
        ``gap_bytes``: holes reported (``tail_gaps`` of them after the last
        byte seen); ``unacked_bytes``: held at the end behind a hole that
        was never acknowledged, dropped; ``conn_limit`` and ``total_limit``:
        times a bound forced a hole to be given up; ``held_bytes`` and
        ``streams``: now.
        """
        return dict(
            self.counters,
            segments=self.counters["segments"] + self._segments,
            delivered_bytes=self.counters["delivered_bytes"] + self._delivered,
            held_bytes=self.held,
            streams=len(self._conns),
        )

    # -- internals ---------------------------------------------------------

    def _emit(self, d: _Direction, ts: float, data: bytes) -> None:
        d.next += len(data)
        self.counters["delivered_bytes"] += len(data)
        self._deliver(d.key, d.is_orig, ts, data)

    def _hold(self, d: _Direction, off: int, data: bytes) -> None:
        """Hold the parts of [off, off+len) that no held segment covers."""
        end = off + len(data)
        start = off
        i = bisect_left(d.offs, off)
        if i and d.offs[i - 1] + len(d.segs[d.offs[i - 1]]) > off:
            i -= 1
        pieces: list[tuple[int, int]] = []
        while start < end:
            if i < len(d.offs) and d.offs[i] < end:
                lo = d.offs[i]
                hi = lo + len(d.segs[lo])
                if lo > start:
                    pieces.append((start, lo))
                start = max(start, hi)
                i += 1
            else:
                pieces.append((start, end))
                break

        kept = 0
        for lo, hi in pieces:
            insort(d.offs, lo)
            d.segs[lo] = data[lo - off : hi - off]
            kept += hi - lo
        self.counters["overlap_bytes"] += len(data) - kept
        cost = kept + SEGMENT_OVERHEAD * len(pieces)
        if cost and not d.held:
            self._waiting[d] = None
        d.held += cost
        self.held += cost

    def _drain(self, d: _Direction, ts: float) -> None:
        """Deliver the held segments that ``next`` has reached."""
        while d.offs and d.offs[0] <= d.next:
            lo = d.offs.pop(0)
            seg = d.segs.pop(lo)
            self._release(d, len(seg) + SEGMENT_OVERHEAD)
            if lo + len(seg) > d.next:
                self._emit(d, ts, seg[d.next - lo :])

    def _skip(self, d: _Direction, ts: float) -> None:
        """Give up on the first hole of ``d``: report it, deliver past it."""
        missing = d.offs[0] - d.next
        if missing > 0:
            self._report(d, ts, missing)
        self._drain(d, ts)

    def _report(self, d: _Direction, ts: float, missing: int) -> None:
        self.counters["gaps"] += 1
        self.counters["gap_bytes"] += missing
        d.next += missing
        self._gap(d.key, d.is_orig, ts, missing)

    def _release(self, d: _Direction, cost: int) -> None:
        d.held -= cost
        self.held -= cost
        if not d.offs:
            self._waiting.pop(d, None)

    def _enforce(self, conn: _Conn, d: _Direction, ts: float) -> None:
        """Bring the connection, then the total, back under their bounds."""
        if conn.held > self.config.conn_bytes:
            self.counters["conn_limit"] += 1
            log.debug("stream: %s over conn_bytes; skipping holes", d.key)
            other = conn.dirs[not d.is_orig]
            while conn.held > self.config.conn_bytes:
                self._skip(d if d.offs else other, ts)

        if self.held > self.config.total_bytes:
            if not self.counters["total_limit"]:
                log.warning(
                    "stream: total_bytes=%d reached; the longest-waiting "
                    "holes become gaps (counted in total_limit)",
                    self.config.total_bytes,
                )
            self.counters["total_limit"] += 1
            while self.held > self.config.total_bytes:
                oldest = next(iter(self._waiting))
                while oldest.offs:
                    self._skip(oldest, ts)
