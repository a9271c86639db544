"""TCP connection semantics, following Zeek's TCP analyzer step by step.

:func:`tcp_packet` is Zeek's ``TCPAnalyzer::DeliverPacket`` for one segment:
endpoint initialisation, relative sequence numbers, history letters, the
endpoint state machine (``UpdateStateMachine``), ack processing and the
content-gap accounting that yields ``missed_bytes`` (in
:mod:`sensor.flow.reassembly`), then the close logic that arms the delete and
expire timers. Names and order mirror Zeek's ``TCPSessionAdapter.cc`` so the
two can be read side by side; the code is our own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sensor.flow import dnscheck, reassembly
from sensor.flow.conn import (
    CLOSED,
    ESTABLISHED,
    HIST_ACK,
    HIST_DATA,
    HIST_FIN,
    HIST_FIN_RST,
    HIST_MULTI_FLAG,
    HIST_RST,
    HIST_SYN,
    INACTIVE,
    PARTIAL,
    RESET,
    SYN_ACK_SENT,
    SYN_SENT,
    U32,
    U64,
    Conn,
    Endpoint,
    seq_delta,
)
from sensor.flow.ports import likely_server

if TYPE_CHECKING:
    from sensor.decode.packet import Packet

APP_DNS_TCP = 3  # sensor.flow.udp.APP_DNS_TCP (not imported: import cycle)

FIN, SYN, RST, ACK, URG = 0x01, 0x02, 0x04, 0x10, 0x20
TOO_LARGE_SEQ_DELTA = 1048576
SEC = 1_000_000_000
ATTEMPT_DELAY = 5 * SEC  # tcp_attempt_delay
CLOSE_DELAY = 5 * SEC  # tcp_close_delay
SESSION_TIMER = 6 * SEC  # tcp_session_timer
LINGER = 5 * SEC  # tcp_connection_linger
LONG_IDLE_PORTS = (21, 22, 23, 513)  # Conn::port_inactivity_timeouts
LONG_IDLE = 3600 * SEC


def tcp_packet(conn: Conn, pkt: Packet, is_orig: bool, now: int) -> None:
    """Process one TCP segment of ``conn`` (header already validated)."""
    ep = conn.orig if is_orig else conn.resp
    peer = conn.resp if is_orig else conn.orig
    flags = pkt.tcp_flags
    base_seq = pkt.seq
    ack_seq = pkt.ack
    length = pkt.payload_len

    _set_partial_status(conn, flags, ep.is_orig)
    seg_len = length + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
    if flags & RST:
        seg_len -= length
    seq_one_past = (base_seq + seg_len) & U32
    _init_endpoint(conn, ep, flags, base_seq, seq_one_past, now)

    rel_seq, underflow = _relative_seq(ep, base_seq, ep.last_seq, ep.seq_wraps)
    if underflow and not flags & RST:
        _weird(conn, "TCP_seq_underflow_or_misorder")
    _update_history(conn, flags, ep, rel_seq, length)
    if (
        pkt.window == 0
        and not flags & RST
        and peer.state != CLOSED
        and ep.state != RESET
    ):
        conn.scaled_history(ep, "W", "win0")
    if not conn.orig.did_close or not conn.resp.did_close:
        conn.last_ns = now
    if flags & SYN:
        if flags & RST:
            _weird(conn, "TCP_christmas")
        if flags & URG:
            _weird(conn, "baroque_SYN")
        if length > 0:
            _weird(conn, "SYN_with_data")
    if flags & FIN:
        ep.fin_cnt += 1
        ep.fin_seq = (rel_seq + seg_len) & U64
    if flags & RST:
        ep.rst_cnt += 1

    rel_ack = 0
    if flags & ACK:
        if peer.state == INACTIVE:
            rel_ack = 1
            split = not flags & (SYN | FIN | RST) and ep.state in (
                SYN_SENT,
                SYN_ACK_SENT,
                ESTABLISHED,
            )
            if split and not conn.weirds:
                _weird(conn, "possible_split_routing")
            a = (ack_seq - 1) & U32
            peer.start_seq = peer.ack_seq = peer.last_seq = a
        else:
            rel_ack, ack_under = _relative_seq(
                peer, ack_seq, peer.ack_seq, peer.ack_wraps
            )
            if ack_under:
                rel_ack = 0
                _weird(conn, "TCP_ack_underflow_or_misorder")
            elif not flags & RST:
                delta = seq_delta(ack_seq, peer.ack_seq)
                if not (ack_seq == 0 and delta > TOO_LARGE_SEQ_DELTA) and delta > 0:
                    peer.update_ack_seq(ack_seq)

    delta_last = _update_last_seq(conn, ep, seq_one_past, flags, length)
    do_close, gen_event = _state_machine(
        conn, ep, peer, base_seq, ack_seq, length, delta_last, is_orig, flags, now
    )
    if flags & ACK and reassembly.ack_received(conn, peer, rel_ack):
        _check_eof(conn, peer)

    # Payload goes to the reassembler; data missing from the capture does not.
    if length > 0 and not flags & RST and not underflow:
        data_seq = rel_seq + 1 if flags & SYN else rel_seq
        if pkt.payload_caplen >= length:
            in_order = data_seq == ep.reasm_seq and not ep.skip
            if data_seq == 1 and conn.ssh_banners != 3:
                _ssh_banner(conn, pkt, is_orig)
            reassembly.data_sent(conn, ep, data_seq, length)
            if conn.app == APP_DNS_TCP and in_order:
                _dns_tcp(conn, dnscheck.tcp_data(conn, pkt.payload(), is_orig))
        else:
            _weird(conn, "truncated_tcp_payload")
    if conn.app == APP_DNS_TCP and flags & FIN:
        _dns_tcp(conn, dnscheck.tcp_eof(conn, is_orig))
    _check_eof(conn, ep)
    if do_close:
        _connection_closed(conn, ep, peer, gen_event)


def _ssh_banner(conn: Conn, pkt: Packet, is_orig: bool) -> None:
    """Zeek confirms SSH on any port once both sides open with a banner.

    Its DPD signatures (``dpd_ssh_client``/``dpd_ssh_server``) want
    ``SSH-1.`` or ``SSH-2.`` at the start of each direction (RFC 4253
    section 4.2); on confirmation ``Conn::analyzer_inactivity_timeouts``
    gives the connection an hour of idle time.
    """
    head = pkt.data[pkt.payload_off : pkt.payload_off + 6]
    if (
        len(head) < 6
        or head[:4].upper() != b"SSH-"
        or head[4:5] not in b"12"
        or head[5:6] != b"."
    ):
        return
    conn.ssh_banners |= 1 if is_orig else 2
    if conn.ssh_banners == 3:
        conn.inactivity_ns = conn.tcp_inactivity_ns = LONG_IDLE


def _dns_tcp(conn: Conn, violated: bool) -> None:
    if violated:
        conn.app = 0  # Zeek disables the analyzer after a violation


def _weird(conn: Conn, name: str) -> None:
    conn.weird(name)


def _set_partial_status(conn: Conn, flags: int, is_orig: bool) -> None:
    if is_orig:
        if not conn.first_seen & 1:
            conn.is_partial = not flags & SYN or bool(flags & ACK)
    elif not conn.first_seen & 2 and not conn.is_partial:
        conn.is_partial = not flags & SYN


def _init_endpoint(
    conn: Conn, ep: Endpoint, flags: int, first: int, last: int, now: int
) -> None:
    st = ep.state
    if st == INACTIVE:
        if flags & SYN:
            ep.ack_seq = ep.start_seq = first
        else:
            # Partial connection: number as though a SYN had been seen.
            ep.ack_seq = ep.start_seq = (first - 1) & U32
            last = first
        ep.last_seq = last
    elif st in (SYN_SENT, SYN_ACK_SENT):
        if flags & SYN and first != ep.start_seq:
            _weird(conn, "SYN_seq_jump")
            ep.start_seq = ep.ack_seq = first
            ep.last_seq = last
    elif st in (ESTABLISHED, PARTIAL):
        if flags & SYN:
            if ep.size_tcp(_peer(conn, ep)) > 0:
                _weird(conn, "SYN_inside_connection")
            if first != ep.start_seq:
                _weird(conn, "SYN_seq_jump")
            ep.start_seq = ep.ack_seq = first
            ep.last_seq = last
    elif st == RESET and flags & SYN and ep.prev_state == INACTIVE:
        ep.start_seq = ep.ack_seq = first
        ep.last_seq = last


def _relative_seq(ep: Endpoint, cur: int, last: int, wraps: int) -> tuple[int, bool]:
    """Zeek's get_relative_seq: (relative number as uint64, underflow)."""
    delta = seq_delta(cur, last)
    if delta < 0:
        if wraps and cur > last:
            wraps -= 1
    elif delta > 0 and cur < last:
        wraps += 1
    if wraps == 0:
        d = seq_delta(cur, ep.start_seq)
        return d & U64, d < 0
    return (((wraps << 32) | cur) - ep.start_seq) & U64, False


def _update_history(
    conn: Conn, flags: int, ep: Endpoint, rel_seq: int, length: int
) -> None:
    bits = (
        (1 if flags & SYN else 0)
        + (1 if flags & FIN else 0)
        + (1 if flags & RST else 0)
    )
    if bits > 1:
        if flags & FIN and flags & RST:
            conn.ep_check_history(ep, HIST_FIN_RST, "I")
        else:
            conn.ep_check_history(ep, HIST_MULTI_FLAG, "Q")
    elif bits == 1:
        if flags & SYN:
            code = "H" if flags & ACK else "S"
            if (
                conn.ep_check_history(ep, HIST_SYN, code)
                and rel_seq != ep.hist_last_syn
            ):
                conn.ep_add_history(ep, code)
            ep.hist_last_syn = rel_seq
        if flags & FIN:
            end = (rel_seq + length) & U64
            if conn.ep_check_history(ep, HIST_FIN, "F") and end != ep.hist_last_fin:
                conn.ep_add_history(ep, "F")
            ep.hist_last_fin = end
        if flags & RST:
            if conn.ep_check_history(ep, HIST_RST, "R") and rel_seq != ep.hist_last_rst:
                conn.ep_add_history(ep, "R")
            ep.hist_last_rst = rel_seq
    elif length:
        conn.ep_check_history(ep, HIST_DATA, "D")
    elif flags & ACK:
        conn.ep_check_history(ep, HIST_ACK, "A")


def _update_last_seq(
    conn: Conn, ep: Endpoint, last_seq: int, flags: int, length: int
) -> int:
    delta = seq_delta(last_seq, ep.last_seq)
    if flags & (SYN | RST) and (
        delta > TOO_LARGE_SEQ_DELTA or delta < -TOO_LARGE_SEQ_DELTA
    ):
        pass  # implausible jump on a SYN or RST: not trusted
    elif flags & FIN and ep.last_seq == (ep.start_seq + 1) & U32:
        ep.update_last_seq(last_seq)
    elif ep.state == RESET:
        pass
    elif delta > 0:
        ep.update_last_seq(last_seq)
    elif length > 0:
        conn.scaled_history(ep, "T", "rxmt")
    return delta


def _state_machine(
    conn: Conn, ep: Endpoint, peer: Endpoint, base_seq: int, ack_seq: int,
    length: int, delta_last: int, is_orig: bool, flags: int, now: int,
) -> tuple[bool, bool]:  # fmt: skip
    """Zeek's UpdateStateMachine; returns (do_close, gen_event)."""
    st = ep.state
    if st == INACTIVE:
        return _inactive(conn, ep, peer, base_seq, length, is_orig, flags, now)
    do_close = gen_event = False
    if st in (SYN_SENT, SYN_ACK_SENT):
        if flags & SYN:
            if (
                is_orig
                and flags & ACK
                and not flags & (FIN | RST)
                and st != SYN_ACK_SENT
            ):
                _weird(conn, "repeated_SYN_with_ack")
            elif not is_orig and not flags & ACK and st != SYN_SENT:
                _weird(conn, "repeated_SYN_reply_wo_ack")
        if flags & FIN:
            if peer.state in (INACTIVE, SYN_SENT):
                _weird(conn, "inappropriate_FIN")
            ep.set_state(conn, CLOSED, peer)
            do_close = gen_event = True
        if flags & RST:
            ep.set_state(conn, RESET, peer)
            conn.is_active = False
            do_close = True
        elif length > 0:
            _weird(conn, "data_before_established")
    elif st in (ESTABLISHED, PARTIAL):
        if flags & SYN and st == PARTIAL and peer.state == INACTIVE and not flags & ACK:
            _weird(conn, "SYN_after_partial")
            ep.set_state(conn, SYN_SENT, peer)
        if flags & FIN and not flags & RST:
            ep.set_state(conn, CLOSED, peer)
            if peer.state == RESET and peer.prev_state == CLOSED:
                peer.set_state(conn, CLOSED, ep)
            do_close = gen_event = True
        if flags & RST:
            ep.set_state(conn, RESET, peer)
            do_close = True
            if peer.state != RESET or peer.prev_state != ESTABLISHED:
                conn.is_active = False
    elif st == CLOSED:
        if flags & SYN:
            _weird(conn, "SYN_after_close")
        if flags & FIN and delta_last > 0:
            _weird(conn, "FIN_advanced_last_seq")
        if flags & RST and peer.state != CLOSED:
            ep.set_state(conn, RESET, peer)
            if not ep.did_close:
                do_close = True
    elif st == RESET:
        if flags & SYN:
            _weird(conn, "SYN_after_reset")
        if flags & FIN:
            _weird(conn, "FIN_after_reset")
        if length > 0 and not flags & RST:
            _weird(conn, "data_after_reset")
    return do_close, gen_event


def _inactive(
    conn: Conn, ep: Endpoint, peer: Endpoint, base_seq: int, length: int,
    is_orig: bool, flags: int, now: int,
) -> tuple[bool, bool]:  # fmt: skip
    """Zeek's UpdateInactiveState: the first packet from this endpoint."""
    do_close = gen_event = False
    if flags & SYN:
        if is_orig:
            if flags & ACK:
                _weird(conn, "connection_originator_SYN_ack")
            ep.set_state(conn, SYN_ACK_SENT if flags & ACK else SYN_SENT, peer)
            if not conn.timers_canceled:
                conn.attempt_ns = now + ATTEMPT_DELAY
        else:
            if flags & ACK:
                pass
            elif peer.state == SYN_ACK_SENT and base_seq == ep.start_seq:
                # SYN after its SYN-ACK (reordered capture): flip roles.
                conn.is_partial = False
                conn.flip()
                peer.set_state(conn, ESTABLISHED, ep)
                conn.first_seen |= 1
            else:
                _weird(conn, "simultaneous_open")
            if peer.state == SYN_SENT:
                peer.set_state(conn, ESTABLISHED, ep)
            elif peer.state == INACTIVE:
                _weird(conn, "unsolicited_SYN_response")
            ep.set_state(conn, ESTABLISHED, peer)
            if peer.state != PARTIAL:
                _connection_established(conn)
    if flags & FIN:
        ep.set_state(conn, CLOSED, peer)
        do_close = gen_event = True
        if peer.state != PARTIAL and not flags & SYN:
            _weird(conn, "spontaneous_FIN")
    if flags & RST:
        ep.set_state(conn, RESET, peer)
        if ep.is_orig:
            is_reject = peer.state == ESTABLISHED
        else:
            is_reject = peer.state in (SYN_SENT, SYN_ACK_SENT)
        do_close = True
        gen_event = not is_reject
        if is_reject:
            conn.is_active = False
        elif peer.state == INACTIVE:
            _weird(conn, "spontaneous_RST")
    if ep.state == INACTIVE:
        if not ep.is_orig and length == 0 and conn.orig.state == SYN_SENT:
            pass  # an ACK of a SYN before the SYN-ACK: not partial
        elif flags & ACK and peer.state == ESTABLISHED:
            ep.set_state(conn, ESTABLISHED, peer)
            conn.is_partial = False
            conn.first_seen |= 1 if ep.is_orig else 2
        else:
            ep.set_state(conn, PARTIAL, peer)
    return do_close, gen_event


def _connection_established(conn: Conn) -> None:
    """Zeek's conn/inactivity.zeek: interactive services get an hour.

    SSH confirmed on another port gets the hour too (:func:`_ssh_banner`).
    TODO: FTP confirmed on another port as well; that needs FTP parsing.
    """
    port = conn.resp_p
    if (
        conn.orig.state == INACTIVE
        and not likely_server(6, port)
        and likely_server(6, conn.orig_p)
    ):
        port = conn.orig_p
    if port in LONG_IDLE_PORTS:
        conn.inactivity_ns = conn.tcp_inactivity_ns = LONG_IDLE


def _peer(conn: Conn, ep: Endpoint) -> Endpoint:
    return conn.resp if ep is conn.orig else conn.orig


def _check_eof(conn: Conn, ep: Endpoint) -> None:
    peer = _peer(conn, ep)
    closing = ep.fin_cnt > 0 or ep.state in (CLOSED, RESET)
    if conn.close_deferred and closing and not reassembly.data_pending(ep, peer):
        gen = conn.deferred_gen_event
        conn.close_deferred = False
        _connection_closed(conn, ep, peer, gen)


def _connection_closed(
    conn: Conn, ep: Endpoint, peer: Endpoint, gen_event: bool
) -> None:
    if reassembly.data_pending(ep, peer):
        conn.close_deferred = True
        conn.deferred_gen_event = conn.deferred_gen_event or gen_event
        return
    conn.close_deferred = False
    if ep.did_close:
        return
    ep.did_close = True
    if ep.state == RESET or peer.did_close or peer.state == INACTIVE:
        if ep.prev_state != INACTIVE or peer.state != INACTIVE:
            if gen_event or conn.deferred_gen_event:
                conn.is_active = False
            conn.deferred_gen_event = False
        # CancelTimers(), then remove the connection tcp_close_delay later.
        conn.timers_canceled = True
        conn.attempt_ns = conn.expire_ns = 0
        conn.delete_ns = conn.last_ns + CLOSE_DELAY
    elif ep.prev_state != INACTIVE and not conn.timers_canceled:
        nxt = conn.last_ns + SESSION_TIMER
        conn.expire_ns = nxt if not conn.expire_ns else min(conn.expire_ns, nxt)


def expire_timer(conn: Conn, now: int) -> bool:
    """Zeek's ExpireTimer at ``now``; True when the connection is finished."""
    conn.expire_ns = 0
    if not conn.is_active:
        return False
    o, r = conn.orig, conn.resp
    if conn.last_ns + LINGER < now:
        # One side closed and the other closed, reset or never spoke.
        done = (o.did_close and r.did_close) or RESET in (o.state, r.state)
        if (o.did_close or r.did_close) and (done or INACTIVE in (o.state, r.state)):
            conn.is_active = False
            return True
        if r.state == INACTIVE and o.state == INACTIVE:
            return True
    conn.expire_ns = now + SESSION_TIMER
    return False


def attempt_timer(conn: Conn) -> bool:
    """Zeek's AttemptTimer: an unanswered SYN ends the connection."""
    conn.attempt_ns = 0
    if not conn.is_active:
        return False
    if conn.orig.state in (SYN_SENT, SYN_ACK_SENT) and conn.resp.state == INACTIVE:
        conn.is_active = False
        return True
    return False
