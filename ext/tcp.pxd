# TCP connection semantics; twin: sensor/flow/tcp.py, which follows Zeek's
# TCPSessionAdapter step by step. Each function below has the twin's name
# without the leading underscore and the same body, on C structs; weirds go
# into a small per-packet list (Weirds) that the table turns into records.

from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport malloc

from conn cimport *
from dnscheck cimport tcp_data, tcp_eof
from decode cimport A_truncated_tcp_payload, Packet

cdef enum:
    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    ACK = 0x10
    URG = 0x20

# likely_server_ports for TCP, filled by flow.pyx from sensor.flow.ports
# (a C static, so that cimporting this file needs no module at run time).
cdef extern from *:
    """
    static unsigned char sensor_tcp_server_ports[65536];
    """
    unsigned char TCP_SERVER "sensor_tcp_server_ports"[65536]

cdef enum:
    TOO_LARGE_SEQ_DELTA = 1048576
    MAX_ABOVE_HOLE = 16384          # tcp_max_above_hole_without_any_acks
    MAX_INITIAL_WINDOW = 16384      # tcp_max_initial_window

cdef extern from *:
    const int64_t ATTEMPT_DELAY "(5 * 1000000000LL)"    # tcp_attempt_delay
    const int64_t CLOSE_DELAY "(5 * 1000000000LL)"      # tcp_close_delay
    const int64_t SESSION_TIMER "(6 * 1000000000LL)"    # tcp_session_timer
    const int64_t LINGER "(5 * 1000000000LL)"           # tcp_connection_linger

cdef inline int64_t seq_delta(uint64_t a, uint64_t b) noexcept nogil:
    """a - b in 32-bit sequence space, as a signed 32-bit number."""
    cdef uint64_t d = (a - b) & U32
    if d & BIT31:
        return <int64_t>d - TWO32
    return <int64_t>d


cdef inline void tcp_packet(Conn *c, Packet *pkt, const uint8_t *data,
                            bint is_orig, int64_t now,
                            Weirds *w) noexcept nogil:
    """Process one TCP segment of c (header already validated)."""
    cdef Endpoint *ep = orig_ep(c) if is_orig else resp_ep(c)
    cdef Endpoint *peer = resp_ep(c) if is_orig else orig_ep(c)
    cdef int flags = pkt.tcp_flags
    cdef uint32_t base_seq = <uint32_t>pkt.seq
    cdef uint32_t ack_seq = <uint32_t>pkt.ack
    cdef int64_t length = pkt.payload_len
    cdef int64_t seg_len, delta, delta_last
    cdef uint32_t seq_one_past, a
    cdef i128 rel_seq, rel_ack, data_seq
    cdef bint underflow, ack_under, in_order
    cdef int closing

    set_partial_status(c, flags, is_orig_ep(c, ep))
    seg_len = length + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
    if flags & RST:
        seg_len -= length
    seq_one_past = <uint32_t>((base_seq + seg_len) & U32)
    init_endpoint_seq(c, ep, flags, base_seq, seq_one_past, w)

    underflow = relative_seq(ep, base_seq, ep.last_seq, ep.seq_wraps, &rel_seq)
    if underflow and not flags & RST:
        weird(c, w, W_TCP_seq_underflow_or_misorder)
    update_history(c, flags, ep, rel_seq, length)
    if (pkt.window == 0 and not flags & RST and peer.state != CLOSED
            and ep.state != RESET):
        scaled_history(c, ep, b'W', SCALE_WIN0)
    if not orig_ep(c).did_close or not resp_ep(c).did_close:
        c.last_ns = now
    if flags & SYN:
        if flags & RST:
            weird(c, w, W_TCP_christmas)
        if flags & URG:
            weird(c, w, W_baroque_SYN)
        if length > 0:
            weird(c, w, W_SYN_with_data)
    if flags & FIN:
        ep.fin_seen = 1
        ep.fin_seq = <uint64_t>((rel_seq + seg_len) & U64)

    rel_ack = 0
    if flags & ACK:
        if peer.state == INACTIVE:
            rel_ack = 1
            if (not flags & (SYN | FIN | RST) and c.weirds == 0
                    and (ep.state == SYN_SENT or ep.state == SYN_ACK_SENT
                         or ep.state == ESTABLISHED)):
                weird(c, w, W_possible_split_routing)
            a = ack_seq - 1
            peer.start_seq = a
            peer.ack_seq = a
            peer.last_seq = a
        else:
            ack_under = relative_seq(peer, ack_seq, peer.ack_seq,
                                     peer.ack_wraps, &rel_ack)
            if ack_under:
                rel_ack = 0
                weird(c, w, W_TCP_ack_underflow_or_misorder)
            elif not flags & RST:
                delta = seq_delta(ack_seq, peer.ack_seq)
                if (not (ack_seq == 0 and delta > TOO_LARGE_SEQ_DELTA)
                        and delta > 0):
                    update_ack_seq(peer, ack_seq)

    delta_last = update_last_seq_tcp(c, ep, seq_one_past, flags, length)
    closing = state_machine(c, ep, peer, base_seq, ack_seq, length,
                            delta_last, is_orig, flags, now, w)
    if flags & ACK:
        ack_received(c, peer, rel_ack, w)

    # Payload goes to the reassembler; data missing from the capture does not.
    if length > 0 and not flags & RST and not underflow:
        data_seq = rel_seq + 1 if flags & SYN else rel_seq
        if pkt.payload_caplen >= length:
            in_order = data_seq == ep.reasm_seq and not ep.skip
            if data_seq == 1 and c.ssh_banners != 3:
                ssh_banner(c, data + pkt.payload_off, length, is_orig)
            data_sent(c, ep, data_seq, length, w)
            if c.app == APP_DNS_TCP and in_order:
                if tcp_data(c, w, data + pkt.payload_off, pkt.payload_caplen,
                            is_orig):
                    c.app = APP_NONE  # Zeek disables the analyzer
        else:
            weird(c, w, A_truncated_tcp_payload)
    if c.app == APP_DNS_TCP and flags & FIN:
        if tcp_eof(c, w, is_orig):
            c.app = APP_NONE
    check_eof(c, ep)
    if closing & 1:
        connection_closed(c, ep, peer, closing & 2)


cdef inline void ssh_banner(Conn *c, const uint8_t *head, int64_t n,
                            bint is_orig) noexcept nogil:
    """Zeek confirms SSH on any port once both sides open with a banner,
    "SSH-1." or "SSH-2." (RFC 4253 section 4.2; the twin's _ssh_banner),
    and then gives the connection an hour of idle time."""
    if n < 6 or not (lower(head[0]) == b's' and lower(head[1]) == b's'
                     and lower(head[2]) == b'h' and head[3] == b'-'
                     and (head[4] == b'1' or head[4] == b'2')
                     and head[5] == b'.'):
        return
    c.ssh_banners |= 1 if is_orig else 2
    if c.ssh_banners == 3:
        c.inactivity = T_LONG
        c.long_idle = 1


cdef inline void set_partial_status(Conn *c, int flags, bint is_orig) noexcept nogil:
    if is_orig:
        if not c.first_seen & 1:
            c.is_partial = (not flags & SYN) or (flags & ACK) != 0
    elif not c.first_seen & 2 and not c.is_partial:
        c.is_partial = not flags & SYN


cdef inline void init_endpoint_seq(Conn *c, Endpoint *ep, int flags,
                                   uint32_t first, uint32_t last,
                                   Weirds *w) noexcept nogil:
    cdef uint8_t st = ep.state
    if st == INACTIVE:
        if flags & SYN:
            ep.ack_seq = first
            ep.start_seq = first
        else:
            # Partial connection: number as though a SYN had been seen.
            ep.ack_seq = first - 1
            ep.start_seq = first - 1
            last = first
        ep.last_seq = last
    elif st == SYN_SENT or st == SYN_ACK_SENT:
        if flags & SYN and first != ep.start_seq:
            weird(c, w, W_SYN_seq_jump)
            ep.start_seq = first
            ep.ack_seq = first
            ep.last_seq = last
    elif st == ESTABLISHED or st == PARTIAL:
        if flags & SYN:
            if size_tcp(ep, peer_of(c, ep)) > 0:
                weird(c, w, W_SYN_inside_connection)
            if first != ep.start_seq:
                weird(c, w, W_SYN_seq_jump)
            ep.start_seq = first
            ep.ack_seq = first
            ep.last_seq = last
    elif st == RESET:
        if flags & SYN and ep.prev_state == INACTIVE:
            ep.start_seq = first
            ep.ack_seq = first
            ep.last_seq = last


cdef inline bint relative_seq(Endpoint *ep, uint32_t cur, uint32_t last,
                              i128 wraps, i128 *out) noexcept nogil:
    """Zeek's get_relative_seq: out = relative number (as uint64), and
    whether it underflowed."""
    cdef int64_t delta = seq_delta(cur, last)
    cdef int64_t d
    if delta < 0:
        if wraps and cur > last:
            wraps -= 1
    elif delta > 0 and cur < last:
        wraps += 1
    if wraps == 0:
        d = seq_delta(cur, ep.start_seq)
        out[0] = (<i128>d) & U64
        return d < 0
    out[0] = (((wraps << 32) | cur) - ep.start_seq) & U64
    return False


cdef inline void update_history(Conn *c, int flags, Endpoint *ep, i128 rel_seq,
                                int64_t length) noexcept nogil:
    cdef int bits = ((1 if flags & SYN else 0) + (1 if flags & FIN else 0)
                     + (1 if flags & RST else 0))
    cdef char code
    cdef uint64_t end
    if bits > 1:
        if flags & FIN and flags & RST:
            ep_check_history(c, ep, HIST_FIN_RST, b'I')
        else:
            ep_check_history(c, ep, HIST_MULTI_FLAG, b'Q')
    elif bits == 1:
        if flags & SYN:
            code = b'H' if flags & ACK else b'S'
            if (ep_check_history(c, ep, HIST_SYN, code)
                    and <uint64_t>rel_seq != ep.hist_last_syn):
                ep_add_history(c, ep, code)
            ep.hist_last_syn = <uint64_t>rel_seq
        if flags & FIN:
            end = <uint64_t>((rel_seq + length) & U64)
            if ep_check_history(c, ep, HIST_FIN, b'F') and end != ep.hist_last_fin:
                ep_add_history(c, ep, b'F')
            ep.hist_last_fin = end
        if flags & RST:
            if (ep_check_history(c, ep, HIST_RST, b'R')
                    and <uint64_t>rel_seq != ep.hist_last_rst):
                ep_add_history(c, ep, b'R')
            ep.hist_last_rst = <uint64_t>rel_seq
    elif length:
        ep_check_history(c, ep, HIST_DATA, b'D')
    elif flags & ACK:
        ep_check_history(c, ep, HIST_ACK, b'A')


cdef inline int64_t update_last_seq_tcp(Conn *c, Endpoint *ep, uint32_t last_seq,
                                        int flags, int64_t length) noexcept nogil:
    cdef int64_t delta = seq_delta(last_seq, ep.last_seq)
    if flags & (SYN | RST) and (delta > TOO_LARGE_SEQ_DELTA
                                or delta < -TOO_LARGE_SEQ_DELTA):
        pass  # implausible jump on a SYN or RST: not trusted
    elif flags & FIN and ep.last_seq == <uint32_t>(ep.start_seq + 1):
        update_last_seq(ep, last_seq)
    elif ep.state == RESET:
        pass
    elif delta > 0:
        update_last_seq(ep, last_seq)
    elif length > 0:
        scaled_history(c, ep, b'T', SCALE_RXMT)
    return delta


cdef inline int state_machine(Conn *c, Endpoint *ep, Endpoint *peer,
                              uint32_t base_seq, uint32_t ack_seq,
                              int64_t length, int64_t delta_last, bint is_orig,
                              int flags, int64_t now, Weirds *w) noexcept nogil:
    """Zeek's UpdateStateMachine; returns do_close | gen_event << 1."""
    cdef bint do_close = False
    cdef bint gen_event = False
    cdef uint8_t st = ep.state
    if st == INACTIVE:
        return inactive(c, ep, peer, base_seq, length, is_orig, flags, now, w)
    if st == SYN_SENT or st == SYN_ACK_SENT:
        if flags & SYN:
            if (is_orig and flags & ACK and not flags & (FIN | RST)
                    and st != SYN_ACK_SENT):
                weird(c, w, W_repeated_SYN_with_ack)
            elif not is_orig and not flags & ACK and st != SYN_SENT:
                weird(c, w, W_repeated_SYN_reply_wo_ack)
        if flags & FIN:
            if peer.state == INACTIVE or peer.state == SYN_SENT:
                weird(c, w, W_inappropriate_FIN)
            set_state(c, ep, CLOSED, peer)
            do_close = gen_event = True
        if flags & RST:
            set_state(c, ep, RESET, peer)
            c.is_active = 0
            do_close = True
        elif length > 0:
            weird(c, w, W_data_before_established)
    elif st == ESTABLISHED or st == PARTIAL:
        if (flags & SYN and st == PARTIAL and peer.state == INACTIVE
                and not flags & ACK):
            weird(c, w, W_SYN_after_partial)
            set_state(c, ep, SYN_SENT, peer)
        if flags & FIN and not flags & RST:
            set_state(c, ep, CLOSED, peer)
            if peer.state == RESET and peer.prev_state == CLOSED:
                set_state(c, peer, CLOSED, ep)
            do_close = gen_event = True
        if flags & RST:
            set_state(c, ep, RESET, peer)
            do_close = True
            if peer.state != RESET or peer.prev_state != ESTABLISHED:
                c.is_active = 0
    elif st == CLOSED:
        if flags & SYN:
            weird(c, w, W_SYN_after_close)
        if flags & FIN and delta_last > 0:
            weird(c, w, W_FIN_advanced_last_seq)
        if flags & RST and peer.state != CLOSED:
            set_state(c, ep, RESET, peer)
            if not ep.did_close:
                do_close = True
    elif st == RESET:
        if flags & SYN:
            weird(c, w, W_SYN_after_reset)
        if flags & FIN:
            weird(c, w, W_FIN_after_reset)
        if length > 0 and not flags & RST:
            weird(c, w, W_data_after_reset)
    return (1 if do_close else 0) | (2 if gen_event else 0)


cdef inline int inactive(Conn *c, Endpoint *ep, Endpoint *peer,
                         uint32_t base_seq, int64_t length, bint is_orig,
                         int flags, int64_t now, Weirds *w) noexcept nogil:
    """Zeek's UpdateInactiveState: the first packet from this endpoint."""
    cdef bint do_close = False
    cdef bint gen_event = False
    cdef bint is_reject
    if flags & SYN:
        if is_orig:
            if flags & ACK:
                weird(c, w, W_connection_originator_SYN_ack)
            set_state(c, ep, SYN_ACK_SENT if flags & ACK else SYN_SENT, peer)
            if not c.timers_canceled:
                c.timer_ns = now + ATTEMPT_DELAY
        else:
            if flags & ACK:
                pass
            elif peer.state == SYN_ACK_SENT and base_seq == ep.start_seq:
                # SYN after its SYN-ACK (reordered capture): flip roles.
                c.is_partial = 0
                flip(c)
                set_state(c, peer, ESTABLISHED, ep)
                c.first_seen |= 1
            else:
                weird(c, w, W_simultaneous_open)
            if peer.state == SYN_SENT:
                set_state(c, peer, ESTABLISHED, ep)
            elif peer.state == INACTIVE:
                weird(c, w, W_unsolicited_SYN_response)
            set_state(c, ep, ESTABLISHED, peer)
            if peer.state != PARTIAL:
                connection_established(c)
    if flags & FIN:
        set_state(c, ep, CLOSED, peer)
        do_close = gen_event = True
        if peer.state != PARTIAL and not flags & SYN:
            weird(c, w, W_spontaneous_FIN)
    if flags & RST:
        set_state(c, ep, RESET, peer)
        if is_orig_ep(c, ep):
            is_reject = peer.state == ESTABLISHED
        else:
            is_reject = peer.state == SYN_SENT or peer.state == SYN_ACK_SENT
        do_close = True
        gen_event = not is_reject
        if is_reject:
            c.is_active = 0
        elif peer.state == INACTIVE:
            weird(c, w, W_spontaneous_RST)
    if ep.state == INACTIVE:
        if (not is_orig_ep(c, ep) and length == 0
                and orig_ep(c).state == SYN_SENT):
            pass  # an ACK of a SYN before the SYN-ACK: not partial
        elif flags & ACK and peer.state == ESTABLISHED:
            set_state(c, ep, ESTABLISHED, peer)
            c.is_partial = 0
            c.first_seen |= 1 if is_orig_ep(c, ep) else 2
        else:
            set_state(c, ep, PARTIAL, peer)
    return (1 if do_close else 0) | (2 if gen_event else 0)


cdef inline void connection_established(Conn *c) noexcept nogil:
    """Zeek's conn/inactivity.zeek: interactive services (ports 21, 22, 23,
    513) get an hour of idle time (twin: _connection_established)."""
    cdef uint16_t port = c.key.pb if c.orig_is_a else c.key.pa
    cdef uint16_t oport = c.key.pa if c.orig_is_a else c.key.pb
    if (orig_ep(c).state == INACTIVE and not TCP_SERVER[port]
            and TCP_SERVER[oport]):
        port = oport
    if port == 21 or port == 22 or port == 23 or port == 513:
        c.inactivity = T_LONG
        c.long_idle = 1


# ------------------------------------------------------------ content gaps

cdef inline void ack_received(Conn *c, Endpoint *ep, i128 seq,
                              Weirds *w) noexcept nogil:
    """The peer acknowledged ep's data up to relative seq."""
    if ep.fin_seen and seq >= ep.fin_seq:
        seq = <i128>ep.fin_seq - 1
    if seq <= ep.trim_seq:
        return
    trim_to_seq(c, ep, seq)
    check_eof(c, ep)


cdef inline void keep_blocks_above(Conn *c, Endpoint *ep,
                                   i128 seq) noexcept nogil:
    """ep.blocks = [b for b in ep.blocks if b.hi > seq]."""
    cdef Block *blocks
    cdef int i, n = 0
    if ep.nblocks == 0:
        return
    blocks = c.tcp.extra.blocks[row(c, ep)]
    for i in range(ep.nblocks):
        if blocks[i].hi > seq:
            blocks[n] = blocks[i]
            n += 1
    ep.nblocks = n


cdef inline void trim_to_seq(Conn *c, Endpoint *ep, i128 seq) noexcept nogil:
    if seq > ep.reasm_seq:
        undelivered(c, ep, seq)
    keep_blocks_above(c, ep, seq)
    ep.trim_seq = <uint64_t>seq


cdef inline void undelivered(Conn *c, Endpoint *ep, i128 up_to) noexcept nogil:
    cdef int i
    cdef uint64_t lo, hi
    cdef Block *blocks = NULL
    if up_to <= 2 and c.is_partial:
        return  # Zeek's partial-connection allowance (last_reassem_seq kept)
    if not ep.skip:
        if ep.nblocks:
            blocks = c.tcp.extra.blocks[row(c, ep)]
        for i in range(ep.nblocks):
            lo = blocks[i].lo
            hi = blocks[i].hi
            if lo >= up_to:
                break
            if hi <= ep.reasm_seq:
                continue
            if lo > ep.reasm_seq:
                gap(c, ep, lo - ep.reasm_seq)
                ep.reasm_seq = lo
            if blocks[i].hidden:
                gap(c, ep, blocks[i].hidden)
            if hi > ep.reasm_seq:
                ep.reasm_seq = hi
        keep_blocks_above(c, ep, ep.reasm_seq)
        if up_to > ep.reasm_seq:
            gap(c, ep, up_to - ep.reasm_seq)
    if up_to > ep.reasm_seq:
        ep.reasm_seq = <uint64_t>up_to


cdef inline bint is_clean(Endpoint *ep) noexcept nogil:
    return ep.state == ESTABLISHED or (ep.state == CLOSED
                                       and ep.prev_state == ESTABLISHED)


cdef inline void gap(Conn *c, Endpoint *ep, i128 length) noexcept nogil:
    # Zeek counts gaps only while both sides are established or closing
    # cleanly; elsewhere they come from RSTs or partial captures.
    if is_clean(ep) and is_clean(peer_of(c, ep)):
        scaled_history(c, ep, b'G', SCALE_GAP)
        c.tcp.missed_bytes += <uint64_t>length


cdef inline void data_sent(Conn *c, Endpoint *ep, i128 seq, int64_t length,
                           Weirds *w) noexcept nogil:
    """Payload [seq, seq+length) (relative) arrived from ep."""
    cdef i128 ack, upper
    cdef int i
    cdef Block *blocks = NULL
    if ep.skip:
        return
    ack = (full_ack(ep) - ep.start_seq) & U64
    upper = seq + length
    if seq < ack:
        if upper <= ack:
            return
        seq = ack
    if upper <= ep.trim_seq:
        return
    if seq < ep.trim_seq:
        seq = ep.trim_seq
    if upper > ep.max_upper:
        ep.max_upper = <uint64_t>upper
    if seq <= ep.reasm_seq and ep.reasm_seq < upper:
        ep.reasm_seq = <uint64_t>upper
        # Deliver out-of-order ranges that now join up, with the holes
        # hidden inside them (the twin's reasoning: Zeek reports them once
        # acknowledged; they are reported now).
        if ep.nblocks:
            blocks = c.tcp.extra.blocks[row(c, ep)]
        for i in range(ep.nblocks):
            if blocks[i].lo <= ep.reasm_seq < blocks[i].hi:
                ep.reasm_seq = blocks[i].hi
                if blocks[i].hidden:
                    gap(c, ep, blocks[i].hidden)
        keep_blocks_above(c, ep, ep.reasm_seq)
        if (no_data_acked(ep)
                and size_tcp(ep, peer_of(c, ep)) > MAX_INITIAL_WINDOW):
            trim_to_seq(c, ep, ep.reasm_seq)
    elif seq > ep.reasm_seq:
        add_block(c, ep, <uint64_t>seq, <uint64_t>upper)
    if (no_data_acked(ep) and ep.nblocks
            and <i128>ep.max_upper - ep.reasm_seq > MAX_ABOVE_HOLE):
        weird(c, w, W_above_hole_data_without_any_acks)
        ep.nblocks = 0
        ep.skip = 1


cdef inline void add_block(Conn *c, Endpoint *ep, uint64_t lo,
                           uint64_t hi) noexcept nogil:
    """Insert [lo, hi), merge overlaps, then merge the closest neighbours
    while more than MAX_BLOCKS remain, keeping the hole between them as
    hidden bytes (twin: _add_block)."""
    cdef Block merged[MAX_BLOCKS + 1]
    cdef Block b
    cdef int i, n = 0, best
    cdef bint placed = False
    cdef uint64_t width, best_width
    cdef Block *blocks
    if extra_of(c) == NULL:
        return  # out of memory: the range is forgotten
    blocks = c.tcp.extra.blocks[row(c, ep)]
    i = 0
    while i < ep.nblocks or not placed:
        # Next block in sorted order: the new one goes before the first
        # existing block that sorts after it (tuples compare lo, then hi).
        if not placed and (i >= ep.nblocks or lo < blocks[i].lo
                           or (lo == blocks[i].lo and hi <= blocks[i].hi)):
            b.lo = lo
            b.hi = hi
            b.hidden = 0
            placed = True
        else:
            b = blocks[i]
            i += 1
        if n and b.lo <= merged[n - 1].hi:
            if b.hi > merged[n - 1].hi:
                merged[n - 1].hi = b.hi
            merged[n - 1].hidden += b.hidden
        else:
            merged[n] = b
            n += 1
    while n > MAX_BLOCKS:
        best = 0
        best_width = merged[1].lo - merged[0].hi
        for i in range(1, n - 1):
            width = merged[i + 1].lo - merged[i].hi
            if width < best_width:
                best = i
                best_width = width
        merged[best].hidden += (merged[best + 1].hidden + merged[best + 1].lo
                                - merged[best].hi)
        merged[best].hi = merged[best + 1].hi
        for i in range(best + 1, n - 1):
            merged[i] = merged[i + 1]
        n -= 1
    for i in range(n):
        blocks[i] = merged[i]
    ep.nblocks = n


# ------------------------------------------------------------ closing

cdef inline bint data_pending(Endpoint *ep, Endpoint *peer) noexcept nogil:
    cdef i128 delivered, last
    if ep.skip:
        return False
    delivered = <i128>ep.start_seq + ep.reasm_seq
    last = full_last(ep)
    if last < delivered:
        return False
    if delivered != last - 1 and delivered != last:
        return True
    return (ep.state != RESET and peer.max_upper > peer.trim_seq
            and not peer.skip)


cdef inline void check_eof(Conn *c, Endpoint *ep) noexcept nogil:
    cdef Endpoint *peer = peer_of(c, ep)
    cdef bint gen
    if c.close_deferred and (ep.fin_seen or ep.state == CLOSED
                             or ep.state == RESET):
        if not data_pending(ep, peer):
            gen = c.deferred_gen_event
            c.close_deferred = 0
            connection_closed(c, ep, peer, gen)


cdef inline void connection_closed(Conn *c, Endpoint *ep, Endpoint *peer,
                                   bint gen_event) noexcept nogil:
    cdef int64_t nxt
    if data_pending(ep, peer):
        c.close_deferred = 1
        c.deferred_gen_event = c.deferred_gen_event or gen_event
        return
    c.close_deferred = 0
    if ep.did_close:
        return
    ep.did_close = 1
    if ep.state == RESET or peer.did_close or peer.state == INACTIVE:
        if ep.prev_state != INACTIVE or peer.state != INACTIVE:
            if gen_event or c.deferred_gen_event:
                c.is_active = 0
            c.deferred_gen_event = 0
        # CancelTimers(), then remove the connection tcp_close_delay later.
        c.timers_canceled = 1
        c.timer_ns = 0
        c.tcp.expire_ns = 0
        c.tcp.delete_ns = c.last_ns + CLOSE_DELAY
    elif ep.prev_state != INACTIVE and not c.timers_canceled:
        nxt = c.last_ns + SESSION_TIMER
        c.tcp.expire_ns = nxt if not c.tcp.expire_ns or nxt < c.tcp.expire_ns else c.tcp.expire_ns


cdef inline bint expire_timer(Conn *c, int64_t now) noexcept nogil:
    """Zeek's ExpireTimer at now; True when the connection is finished."""
    cdef Endpoint *o = orig_ep(c)
    cdef Endpoint *r = resp_ep(c)
    c.tcp.expire_ns = 0
    if not c.is_active:
        return False
    if c.last_ns + LINGER < now:
        if o.did_close or r.did_close:
            if ((o.did_close and r.did_close) or o.state == RESET
                    or r.state == RESET or o.state == INACTIVE
                    or r.state == INACTIVE):
                c.is_active = 0
                return True
        if r.state == INACTIVE and o.state == INACTIVE:
            return True
    c.tcp.expire_ns = now + SESSION_TIMER
    return False


cdef inline bint attempt_timer(Conn *c) noexcept nogil:
    """Zeek's AttemptTimer: an unanswered SYN ends the connection."""
    c.timer_ns = 0
    if not c.is_active:
        return False
    if ((orig_ep(c).state == SYN_SENT or orig_ep(c).state == SYN_ACK_SENT)
            and resp_ep(c).state == INACTIVE):
        c.is_active = 0
        return True
    return False
