"""Bounded reassembly of IPv4 and IPv6 fragments.

Design: pending datagrams are kept in insertion order, keyed by (version,
source, destination, identification, protocol) as RFC 791 section 3.2 and
RFC 8200 section 4.5 define a datagram. Each holds its fragments as
``(offset, bytes)`` pieces; it completes when the piece with More Fragments
clear has arrived and the pieces cover ``[0, end)`` without a hole. Where
pieces overlap, the bytes seen first win (Zeek keeps the first copy too) and
``fragment_overlap`` is reported.

Bounds and policy: all pending pieces together may hold at most
``memory_limit`` bytes. A fragment that would exceed it first evicts the
oldest pending datagrams (counted in ``dropped``, reported as
``fragment_table_full``). A datagram that reaches past 65535 bytes is
discarded (``excessively_large_fragment``), and so is one that arrives in
more than ``MAX_PIECES`` fragments (``too_many_fragments``). Datagrams idle
for ``timeout_ns``
are dropped (counted in ``timed_out``); Zeek's default keeps them forever, ours
bounds them because a sensor runs for months.

The reassembled datagram is a fresh IP packet: for IPv4 the first fragment's
header with the total length and fragment fields rewritten; for IPv6 a
40-byte fixed header whose next header is the fragment header's (extension
headers before the fragment header are not kept).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sensor.decode.packet import Packet

MAX_DATAGRAM = 65535
#: Fragments kept per datagram: bounds the work per fragment (a flood of
#: tiny overlapping fragments would otherwise cost quadratic time).
MAX_PIECES = 64


class _Pending:
    """One datagram being reassembled."""

    __slots__ = ("end", "header", "key", "last_ns", "pieces", "size")

    def __init__(self, key: tuple[int, bytes, bytes, int, int], now_ns: int) -> None:
        self.key = key
        self.pieces: list[tuple[int, bytes]] = []
        self.end = -1  # payload length, known once the last fragment came
        self.header = b""  # header of the offset-0 fragment
        self.size = 0
        self.last_ns = now_ns


class FragmentReassembler:
    """Reassembles fragments within a memory bound; see the module docs."""

    def __init__(
        self, memory_limit: int = 4 << 20, timeout_ns: int = 60_000_000_000
    ) -> None:
        self.memory_limit = memory_limit
        self.timeout_ns = timeout_ns
        self.pending: dict[tuple[int, bytes, bytes, int, int], _Pending] = {}
        self.memory = 0
        self.dropped = 0
        self.timed_out = 0
        self.completed = 0

    def add(self, pkt: Packet, now_ns: int) -> tuple[bytes, str]:
        """Add one fragment; returns (datagram or b"", anomaly name or "")."""
        self._expire(now_ns)
        key = (pkt.ip_version, pkt.src, pkt.dst, pkt.frag_id, pkt.ip_proto)
        start = pkt.ip_off + pkt.ip_hdr_len
        piece = pkt.data[start : pkt.ip_off + pkt.ip_total_len]
        offset = pkt.frag_offset
        anomaly = ""
        if offset + len(piece) > MAX_DATAGRAM:
            self._drop(key)
            return b"", "excessively_large_fragment"

        # Make room first: the oldest pending datagrams go.
        while self.pending and self.memory + len(piece) > self.memory_limit:
            oldest = next(iter(self.pending))
            self._drop(oldest)
            self.dropped += 1
            anomaly = "fragment_table_full"
        if len(piece) > self.memory_limit:
            return b"", "fragment_table_full"

        dgram = self.pending.get(key)
        if dgram is None:
            dgram = _Pending(key, now_ns)
            self.pending[key] = dgram
        dgram.last_ns = now_ns
        if len(dgram.pieces) >= MAX_PIECES:
            self._drop(key)
            self.dropped += 1
            return b"", "too_many_fragments"
        for other_off, other in dgram.pieces:
            if offset < other_off + len(other) and other_off < offset + len(piece):
                anomaly = anomaly or "fragment_overlap"
        dgram.pieces.append((offset, piece))
        dgram.size += len(piece)
        self.memory += len(piece)
        upper = offset + len(piece)
        if not pkt.frag_more:
            if 0 <= dgram.end != upper:
                anomaly = "fragment_size_inconsistency"
            dgram.end = max(dgram.end, upper)
        elif 0 <= dgram.end < upper:
            # A middle fragment reaching past the end: the datagram grows,
            # as in Zeek's FragReassembler.
            anomaly = "fragment_size_inconsistency"
            dgram.end = upper
        if offset == 0:
            dgram.header = self._header(pkt)

        datagram = self._complete(dgram)
        if datagram:
            self._drop(key)
            self.completed += 1
        return datagram, anomaly

    def _header(self, pkt: Packet) -> bytes:
        data = pkt.data
        if pkt.ip_version == 4:
            return data[pkt.ip_off : pkt.ip_off + pkt.ip_hdr_len]
        fixed = bytearray(data[pkt.ip_off : pkt.ip_off + 40])
        fixed[6] = pkt.ip_proto
        return bytes(fixed)

    def _complete(self, dgram: _Pending) -> bytes:
        if dgram.end < 0 or not dgram.header:
            return b""
        buf = bytearray(dgram.end)
        covered = 0
        for offset, piece in sorted(dgram.pieces, key=lambda p: p[0]):
            if offset > covered:
                return b""  # a hole remains
            stop = min(offset + len(piece), dgram.end)
            if stop > covered:
                # The first copy wins: fill only what is not yet covered.
                buf[covered:stop] = piece[covered - offset : stop - offset]
                covered = stop
        if covered < dgram.end:
            return b""
        header = bytearray(dgram.header)
        if dgram.key[0] == 4:
            total = len(header) + dgram.end
            header[2:4] = total.to_bytes(2, "big")
            header[6:8] = b"\x00\x00"
        else:
            header[4:6] = dgram.end.to_bytes(2, "big")
        return bytes(header) + bytes(buf)

    def _drop(self, key: tuple[int, bytes, bytes, int, int]) -> None:
        dgram = self.pending.pop(key, None)
        if dgram is not None:
            self.memory -= dgram.size

    def _expire(self, now_ns: int) -> None:
        # Insertion order approximates age; stop at the first fresh one.
        while self.pending:
            oldest = next(iter(self.pending.values()))
            if now_ns - oldest.last_ns < self.timeout_ns:
                break
            self._drop(oldest.key)
            self.timed_out += 1
