"""Content-gap accounting for one TCP direction: Zeek's reassembler, minus the bytes.

Design note: Zeek buffers payload per direction and, when the peer
acknowledges bytes that never arrived, reports them as a gap
(``content_gap``, summed into ``missed_bytes``, history ``G``). We keep only
the sequence bookkeeping on the :class:`~sensor.flow.conn.Endpoint`:
``reasm_seq`` (next byte expected in order), ``trim_seq`` (highest ack
processed), ``max_upper`` and a short list of out-of-order ranges above
``reasm_seq``. The list holds at most ``MAX_BLOCKS`` ranges; past that the
two closest ranges are merged and the hole between them is kept as a byte
count (see :func:`_add_block`). Sequence numbers here are relative (the
first payload byte is 1), as in Zeek's ``TCP_Reassembler.cc``.
"""

from __future__ import annotations

from sensor.flow.conn import (
    CLOSED,
    ESTABLISHED,
    MAX_BLOCKS,
    RESET,
    U64,
    Conn,
    Endpoint,
)

MAX_ABOVE_HOLE = 16384  # tcp_max_above_hole_without_any_acks
MAX_INITIAL_WINDOW = 16384  # tcp_max_initial_window


def ack_received(conn: Conn, ep: Endpoint, seq: int) -> bool:
    """The peer acknowledged ``ep``'s data up to relative ``seq``.

    Returns whether anything new was acknowledged (then Zeek checks for the
    end of the stream).
    """
    if ep.fin_cnt > 0 and seq >= ep.fin_seq:
        seq = ep.fin_seq - 1
    if seq <= ep.trim_seq:
        return False
    _trim_to_seq(conn, ep, seq)
    return True


def _trim_to_seq(conn: Conn, ep: Endpoint, seq: int) -> None:
    if seq > ep.reasm_seq:
        _undelivered(conn, ep, seq)
    ep.blocks = [b for b in ep.blocks if b[1] > seq]
    ep.trim_seq = seq


def _undelivered(conn: Conn, ep: Endpoint, up_to: int) -> None:
    if up_to <= 2 and conn.is_partial:
        return  # Zeek's partial-connection allowance (last_reassem_seq kept)
    if not ep.skip:
        for lo, hi, hidden in sorted(ep.blocks):
            if lo >= up_to:
                break
            if hi <= ep.reasm_seq:
                continue
            if lo > ep.reasm_seq:
                _gap(conn, ep, lo - ep.reasm_seq)
                ep.reasm_seq = lo
            if hidden:
                _gap(conn, ep, hidden)
            ep.reasm_seq = max(ep.reasm_seq, hi)
        ep.blocks = [b for b in ep.blocks if b[1] > ep.reasm_seq]
        if up_to > ep.reasm_seq:
            _gap(conn, ep, up_to - ep.reasm_seq)
    ep.reasm_seq = max(ep.reasm_seq, up_to)


def _is_clean(ep: Endpoint) -> bool:
    return ep.state == ESTABLISHED or (
        ep.state == CLOSED and ep.prev_state == ESTABLISHED
    )


def _gap(conn: Conn, ep: Endpoint, length: int) -> None:
    # Zeek counts gaps only while both sides are established or closing
    # cleanly; elsewhere they come from RSTs or partial captures.
    peer = conn.resp if ep is conn.orig else conn.orig
    if _is_clean(ep) and _is_clean(peer):
        conn.scaled_history(ep, "G", "gap")
        conn.missed_bytes_add(length)


def data_sent(conn: Conn, ep: Endpoint, seq: int, length: int) -> None:
    """Payload ``[seq, seq+length)`` (relative) arrived from ``ep``."""
    if ep.skip:
        return
    ack = (ep.full_ack() - ep.start_seq) & U64
    upper = seq + length
    if seq < ack:
        if upper <= ack:
            return
        seq = ack
    if upper <= ep.trim_seq:
        return
    seq = max(seq, ep.trim_seq)
    ep.max_upper = max(ep.max_upper, upper)
    if seq <= ep.reasm_seq < upper:
        ep.reasm_seq = upper
        # Deliver out-of-order ranges that now join up. A merged range
        # still owes its inner holes, which Zeek would report once acked;
        # they are reported now.
        for lo, hi, hidden in sorted(ep.blocks):
            if lo <= ep.reasm_seq < hi:
                ep.reasm_seq = hi
                if hidden:
                    _gap(conn, ep, hidden)
        ep.blocks = [b for b in ep.blocks if b[1] > ep.reasm_seq]
        if ep.no_data_acked() and ep.size_tcp(_peer(conn, ep)) > MAX_INITIAL_WINDOW:
            _trim_to_seq(conn, ep, ep.reasm_seq)
    elif seq > ep.reasm_seq:
        _add_block(ep, seq, upper)
    if (
        ep.no_data_acked()
        and ep.blocks
        and ep.max_upper - ep.reasm_seq > MAX_ABOVE_HOLE
    ):
        conn.weird("above_hole_data_without_any_acks")
        ep.blocks = []
        ep.skip = True


def _add_block(ep: Endpoint, lo: int, hi: int) -> None:
    """Record out-of-order data ``[lo, hi)``; at most MAX_BLOCKS ranges.

    Past the bound the two closest ranges merge and the hole between them
    is remembered as ``hidden`` bytes, so the gap is still counted when the
    range is acknowledged. (Data that later fills a hidden hole is not
    seen, which can over-count; Zeek's unbounded list would not.)
    """
    blocks = sorted([*ep.blocks, (lo, hi, 0)])
    merged: list[tuple[int, int, int]] = []
    for b in blocks:
        if merged and b[0] <= merged[-1][1]:
            m = merged[-1]
            merged[-1] = (m[0], max(m[1], b[1]), m[2] + b[2])
        else:
            merged.append(b)
    while len(merged) > MAX_BLOCKS:
        i = min(range(len(merged) - 1), key=lambda k: merged[k + 1][0] - merged[k][1])
        a, b = merged[i], merged[i + 1]
        merged[i : i + 2] = [(a[0], b[1], a[2] + b[2] + b[0] - a[1])]
    ep.blocks = merged


def _peer(conn: Conn, ep: Endpoint) -> Endpoint:
    return conn.resp if ep is conn.orig else conn.orig


def data_pending(ep: Endpoint, peer: Endpoint) -> bool:
    """Zeek's DataPending: bytes sent but not yet delivered or acknowledged."""
    if ep.skip:
        return False
    delivered = ep.start_seq + ep.reasm_seq
    last = ep.full_last()
    if last < delivered:
        return False
    if delivered != last - 1 and delivered != last:
        return True
    return ep.state != RESET and peer.max_upper > peer.trim_seq and not peer.skip
