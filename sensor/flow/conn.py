"""Per-connection state: one :class:`Conn` with two :class:`Endpoint` halves.

Everything here is a fixed set of integers, so the compiled twin can hold a
connection in a C struct of a few hundred bytes. The few Python containers
have fixed C shapes: ``history`` is at most ``HISTORY_MAX`` characters,
``Endpoint.blocks`` at most ``MAX_BLOCKS`` (lo, hi, hidden) triples,
``Conn.weirds`` a 64-bit mask, ``dns_buf``/``dns_need`` two 14-byte buffers
and two counters (used only on DNS-over-TCP connections), ``new_weirds`` a
per-packet scratch list, and ``key`` the hash key of the table.

Sequence numbers follow Zeek's TCP analyzer: 32-bit values plus a wrap
counter, relative numbers start at 1 after the (real or assumed) SYN.
"""

from __future__ import annotations

from sensor.decode.anomaly import ANOMALIES

#: Anomaly name -> bit in Conn.weirds (a 64-bit mask in the compiled twin).
WEIRD_BIT = {name: i for i, name in enumerate(ANOMALIES)}
assert len(WEIRD_BIT) <= 64, "Conn.weirds is a 64-bit mask"

# TCP endpoint states, in the order of Zeek's EndpointState enum.
INACTIVE = 0
SYN_SENT = 1
SYN_ACK_SENT = 2
PARTIAL = 3
ESTABLISHED = 4
CLOSED = 5
RESET = 6

# History bits (Zeek's TCP_Endpoint HIST_*); the responder's are << 16.
HIST_SYN = 0x1
HIST_FIN = 0x2
HIST_RST = 0x4
HIST_FIN_RST = 0x8
HIST_DATA = 0x10
HIST_ACK = 0x20
HIST_MULTI_FLAG = 0x40

#: Longest history kept; longer ones are cut (a bound for the C struct).
HISTORY_MAX = 64
#: Out-of-order data ranges kept per direction for gap accounting.
MAX_BLOCKS = 4

U32 = 0xFFFFFFFF
U64 = 0xFFFFFFFFFFFFFFFF


def seq_delta(a: int, b: int) -> int:
    """``a - b`` in 32-bit sequence space, as a signed 32-bit number."""
    d = (a - b) & U32
    return d - 0x100000000 if d & 0x80000000 else d


class Endpoint:
    """One direction of a connection: TCP sequence state and counters.

    ``size`` is the UDP/ICMP payload byte count (-1 until the first packet,
    Zeek's "inactive"). The reassembly fields track only *which* sequence
    ranges arrived (never the bytes) so that content gaps can be measured the
    way Zeek's reassembler measures them.
    """

    __slots__ = (
        "ack_seq",
        "ack_wraps",
        "blocks",
        "did_close",
        "fin_cnt",
        "fin_seq",
        "gap_cnt",
        "gap_thresh",
        "hist_last_fin",
        "hist_last_rst",
        "hist_last_syn",
        "ip_bytes",
        "is_orig",
        "l2",
        "last_seq",
        "max_upper",
        "payload_bytes",
        "payload_pkts",
        "pkts",
        "prev_state",
        "reasm_seq",
        "rst_cnt",
        "rxmt_cnt",
        "rxmt_thresh",
        "seq_wraps",
        "size",
        "skip",
        "start_seq",
        "state",
        "trim_seq",
        "win0_cnt",
        "win0_thresh",
    )  # fmt: skip

    def __init__(self, is_orig: bool) -> None:
        self.is_orig = is_orig
        self.state = INACTIVE
        self.prev_state = INACTIVE
        self.start_seq = 0
        self.last_seq = 0
        self.ack_seq = 0
        self.seq_wraps = 0
        self.ack_wraps = 0
        self.fin_cnt = 0
        self.rst_cnt = 0
        self.fin_seq = 0
        self.did_close = False
        self.hist_last_syn = 0
        self.hist_last_fin = 0
        self.hist_last_rst = 0
        self.rxmt_cnt = 0
        self.rxmt_thresh = 1
        self.win0_cnt = 0
        self.win0_thresh = 1
        self.gap_cnt = 0
        self.gap_thresh = 1
        # Reassembly bookkeeping (relative sequence numbers, start at 1).
        self.reasm_seq = 1
        self.trim_seq = 1
        self.max_upper = 0
        self.skip = False
        self.blocks: list[tuple[int, int, int]] = []  # (lo, hi, hidden hole bytes)
        self.pkts = 0
        self.ip_bytes = 0
        self.size = -1
        self.payload_pkts = 0
        self.payload_bytes = 0
        self.l2 = b""

    def set_state(self, conn: Conn, new_state: int, peer: Endpoint) -> None:
        """Zeek's SetState: leaving the handshake switches to the TCP timeout."""
        if new_state == self.state:
            return
        handshake = (INACTIVE, SYN_SENT, SYN_ACK_SENT)
        if (
            new_state not in handshake
            and self.state in handshake
            and peer.state in handshake
        ):
            conn.inactivity_ns = conn.tcp_inactivity_ns
        self.prev_state = self.state
        self.state = new_state

    def full_last(self) -> int:
        """Highest sequence number sent plus one, with the wraps (64 bits)."""
        return (self.seq_wraps << 32) | self.last_seq

    def full_ack(self) -> int:
        """Highest acknowledgment from the peer, with the wraps (64 bits)."""
        return (self.ack_wraps << 32) | self.ack_seq

    def update_last_seq(self, seq: int) -> None:
        """Advance ``last_seq``, counting a wrap when it goes round."""
        if seq < self.last_seq:
            self.seq_wraps += 1
        self.last_seq = seq

    def update_ack_seq(self, seq: int) -> None:
        """Advance ``ack_seq``, counting a wrap when it goes round."""
        if seq < self.ack_seq:
            self.ack_wraps += 1
        self.ack_seq = seq

    def no_data_acked(self) -> bool:
        """Whether the peer has acknowledged nothing beyond the SYN."""
        ack = self.full_ack()
        return ack == self.start_seq or ack == self.start_seq + 1

    def size_tcp(self, peer: Endpoint) -> int:
        """Payload bytes sent, from sequence numbers (Zeek's Size())."""
        if (
            self.prev_state == SYN_SENT
            and self.state == RESET
            and peer.state == INACTIVE
            and not self.no_data_acked()
        ):
            return 0
        last = self.full_last()
        ack = self.full_ack()
        size = (max(ack, last)) - self.start_seq
        size &= U64
        if size:
            size -= 1
        if self.fin_cnt > 0 and size:
            size -= 1
        return size

    def is_active(self) -> bool:
        """Zeek's IsActive: has spoken and not closed."""
        return self.state != INACTIVE and not self.did_close


class Conn:
    """A tracked connection: its 5-tuple, two endpoints, history and timers.

    Times are nanoseconds. ``attempt_ns``, ``expire_ns`` and ``delete_ns``
    are Zeek's TCP attempt, expire and delete timers (0 when not armed);
    the inactivity deadline is ``last_ns + inactivity_ns``.
    """

    __slots__ = (
        "app",
        "app_first",
        "app_ns",
        "attempt_ns",
        "close_deferred",
        "deferred_gen_event",
        "delete_ns",
        "dns_buf",
        "dns_need",
        "done",
        "expire_ns",
        "first_seen",
        "heap_ns",
        "hist_seen",
        "history",
        "inactivity_ns",
        "inner_vlan",
        "ip_proto",
        "is_active",
        "is_partial",
        "key",
        "last_ns",
        "missed_bytes",
        "new_weirds",
        "orig",
        "orig_h",
        "orig_p",
        "proto",
        "resp",
        "resp_h",
        "resp_p",
        "serial",
        "ssh_banners",
        "start_ns",
        "tcp_inactivity_ns",
        "timers_canceled",
        "uid",
        "vlan",
        "weirds",
    )  # fmt: skip

    def __init__(self) -> None:
        self.key: tuple[object, ...] = ()
        self.uid = ""
        self.proto = 0
        self.ip_proto = 0
        self.orig_h = b""
        self.orig_p = 0
        self.resp_h = b""
        self.resp_p = 0
        self.start_ns = 0
        self.last_ns = 0
        self.history = ""
        self.hist_seen = 0
        self.orig = Endpoint(True)
        self.resp = Endpoint(False)
        self.is_partial = False
        self.first_seen = 0  # bit 1: orig, bit 2: resp (Zeek's first_packet_seen)
        self.vlan = -1
        self.inner_vlan = -1
        self.inactivity_ns = 0
        self.tcp_inactivity_ns = 0
        self.attempt_ns = 0
        self.expire_ns = 0
        self.delete_ns = 0
        self.timers_canceled = False
        self.is_active = True
        self.close_deferred = False
        self.deferred_gen_event = False
        self.heap_ns = -1
        self.done = False
        self.weirds = 0  # bit i set: WEIRD_NAMES[i] already reported
        self.new_weirds: list[str] = []
        self.missed_bytes = 0
        self.serial = 0
        self.app = 0  # UDP analyzer attached by port (sensor.flow.udp)
        self.app_first = True
        self.app_ns = 0
        # DNS over TCP framing per direction (sensor.flow.dnscheck).
        self.ssh_banners = 0  # bit 1: orig, bit 2: resp opened with "SSH-"
        self.dns_need = [0, 0]
        self.dns_buf = [b"", b""]

    def weird(self, name: str) -> None:
        """Note a weird once per connection (Zeek logs each name once per conn)."""
        bit = 1 << WEIRD_BIT[name]
        if not self.weirds & bit:
            self.weirds |= bit
            self.new_weirds.append(name)

    def missed_bytes_add(self, n: int) -> None:
        """Count bytes lost in a content gap (Zeek's content_gap event)."""
        self.missed_bytes += n

    def add_history(self, code: str) -> None:
        """Append a history letter (cut at HISTORY_MAX)."""
        if len(self.history) < HISTORY_MAX:
            self.history += code

    def check_history(self, mask: int, code: str) -> bool:
        """Record ``code`` the first time ``mask`` is seen; True if seen before."""
        if self.hist_seen & mask == 0:
            self.hist_seen |= mask
            self.add_history(code)
            return False
        return True

    def ep_check_history(self, ep: Endpoint, mask: int, code: str) -> bool:
        """check_history for an endpoint: the responder's bit and lower case."""
        if not ep.is_orig:
            mask <<= 16
            code = code.lower()
        return self.check_history(mask, code)

    def ep_add_history(self, ep: Endpoint, code: str) -> None:
        """add_history in the endpoint's case."""
        self.add_history(code if ep.is_orig else code.lower())

    def scaled_history(self, ep: Endpoint, code: str, which: str) -> None:
        """Zeek's ScaledHistoryEntry: the letter again at 1, 10, 100, ... events."""
        cnt = getattr(ep, which + "_cnt") + 1
        thresh = getattr(ep, which + "_thresh")
        if cnt == thresh:
            self.add_history(code if ep.is_orig else code.lower())
            new = thresh * 10
            if new > 0xFFFFFFFF:
                cnt = 0
            else:
                thresh = new
        setattr(ep, which + "_cnt", cnt)
        setattr(ep, which + "_thresh", thresh)

    def flip_addresses(self) -> None:
        """Swap addresses, ports and MACs only, as a UDP analyzer's flip does.

        Zeek's UDP size and packet counters are not swapped by such a flip
        (its logs keep the first sender's counts on the originator side).
        """
        self.orig_h, self.resp_h = self.resp_h, self.orig_h
        self.orig_p, self.resp_p = self.resp_p, self.orig_p
        self.orig.l2, self.resp.l2 = self.resp.l2, self.orig.l2
        self.add_history("^")

    def flip(self) -> None:
        """Swap originator and responder (Zeek's FlipRoles), history '^'."""
        self.orig_h, self.resp_h = self.resp_h, self.orig_h
        self.orig_p, self.resp_p = self.resp_p, self.orig_p
        self.orig, self.resp = self.resp, self.orig
        self.orig.is_orig = True
        self.resp.is_orig = False
        fs = self.first_seen
        self.first_seen = (2 if fs & 1 else 0) | (1 if fs & 2 else 0)
        self.is_partial = False
        self.add_history("^")
