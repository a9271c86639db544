# cython: language_level=3
"""Compiled connection table; twin: sensor.flow.table.

Same interface and the same Events as the twin (see docs/internals.md);
the semantics live in conn.pxd, tcp.pxd, udp.pxd, dnscheck.pxd,
tunnel.pxd and record.pxd, each a port of the twin module of that name.
What differs is the storage:

- Connections are 224-byte C structs in a pool of fixed chunks that never
  move (free slots are chained); TCP connections also own a TcpState, and
  the few that need it a TcpExtra (conn.pxd). They are found through an
  open-addressing index of 64-bit slots (upper half: hash bits, lower half:
  pool index + 1) with linear probing and backward-shift deletion, kept at
  most half full.
- Timers are a binary min-heap of (deadline, serial, pool index), lazily
  invalidated exactly as the twin's heapq: an entry is live when its serial
  still owns the pool slot and its deadline is the connection's heap_ns.
- Bound: FlowConfig.max_conns. At the limit the entry at the top of the
  heap whose connection is still open is finished early (the twin's policy:
  soonest deadline first), counted and reported as conn_table_full.
- No Python object is made per packet: only for a weird, a payload event,
  a finished connection, and for IP fragments, which go through the twin's
  reassembler (sensor.decode.ipfrag) so that both agree by construction.
  Tunnelled packets are decoded in place, without a copy.
- ARP packets are decoded here and handed to the twin's aggregator
  (sensor.flow.arp), which merges repeats, so that both agree by
  construction; Python is entered only when an ARP packet comes or a
  window is due (arp_due).
- Early notices (early=True): the twin's, checked with one byte compare
  per TCP packet (did this packet start the close delay?). A copy of each
  notice is kept (notices, by serial) and handed out as the conn record
  when no packet of the connection came since, which is the usual case:
  the record would be built the same, at several times the cost.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport (int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t,
                          uint64_t)
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset

from conn cimport *
from decode cimport (A_COUNT, A_conn_table_full, A_incompletely_captured_fragment,
                     A_ip_hdr_len_zero, A_UDP_datagram_length_mismatch,
                     A_unknown_protocol, LT_ETHERNET, LT_IPV4, LT_IPV6, Packet,
                     decode_packet)
from record cimport (conn_state, fast_uid, floor_div, history_text, ipv4_text,
                     mac_text, orig_h, orig_p, resp_h, resp_p)
from tcp cimport ACK, SYN, TCP_SERVER, attempt_timer, expire_timer, tcp_packet
from tunnel cimport (GENEVE_PORT, GTP_U_PORT, VXLAN_PORT, gre_inner,
                     ip_in_ip_inner,
                     udp_tunnel_inner)
from udp cimport (attach_app, dns_expire, other_packet, teredo_inner,
                  udp_packet)

import ipaddress

from sensor.decode import packet as twin_packet
from sensor.decode.ipfrag import FragmentReassembler
from sensor.flow.arp import NEVER, ARPAggregator
from sensor.flow.ports import TCP_SERVER_PORTS, UDP_SERVER_PORTS
from sensor.flow.record import icmp_ports
from sensor.flow.tcp import LONG_IDLE
from sensor.flow.udp import OTHER_TUNNEL_PORTS
from sensor.flow.table import (QUIET, WEIRD_MEMORY, WEIRD_REPEAT_NS, Events,
                               FlowConfig)
from sensor.flow.uid import conn_uid
from sensor._ext.decode import ANOMALY_NAMES

__all__ = ["ConnTable", "Events", "FlowConfig", "WEIRD_NAMES"]

_SEC = 1000000000  # a Python int: ts / _SEC rounds as the twin does

#: Weird names by code: the decoder's anomalies, then TCP's (tcp.pxd W_*).
WEIRD_NAMES = ANOMALY_NAMES + ("",) * (W_FIRST - len(ANOMALY_NAMES)) + (
    "SYN_seq_jump",
    "TCP_seq_underflow_or_misorder",
    "TCP_ack_underflow_or_misorder",
    "above_hole_data_without_any_acks",
    "repeated_SYN_with_ack",
    "repeated_SYN_reply_wo_ack",
    "inappropriate_FIN",
    "data_before_established",
    "SYN_after_partial",
    "SYN_after_close",
    "FIN_advanced_last_seq",
    "SYN_after_reset",
    "FIN_after_reset",
    "data_after_reset",
    "connection_originator_SYN_ack",
    "simultaneous_open",
    "unsolicited_SYN_response",
    "spontaneous_FIN",
    "spontaneous_RST",
    "TCP_christmas",
    "baroque_SYN",
    "SYN_with_data",
    "possible_split_routing",
    "SYN_inside_connection",
    "DNS_unknown_opcode",
    "DNS_Conn_count_too_large",
)
assert len(WEIRD_NAMES) == N_WEIRDS <= 64, "WEIRD_NAMES out of step with tcp.pxd"

# Lookup tables filled once from the twin's definitions.
cdef uint8_t UDP_SERVER[65536]
cdef uint8_t OTHER_TUNNEL[65536]
cdef int16_t ICMP4_PAIR[256]
cdef int16_t ICMP6_PAIR[256]


cdef void _fill_tables():
    cdef int i
    memset(TCP_SERVER, 0, sizeof(TCP_SERVER))
    memset(UDP_SERVER, 0, sizeof(UDP_SERVER))
    for i in TCP_SERVER_PORTS:
        TCP_SERVER[i] = 1
    for i in UDP_SERVER_PORTS:
        UDP_SERVER[i] = 1
    memset(OTHER_TUNNEL, 0, sizeof(OTHER_TUNNEL))
    for i in OTHER_TUNNEL_PORTS:
        OTHER_TUNNEL[i] = 1
    for i in range(256):
        _, other, one_way = icmp_ports(1, i, 0)
        ICMP4_PAIR[i] = -1 if one_way else other
        _, other, one_way = icmp_ports(58, i, 0)
        ICMP6_PAIR[i] = -1 if one_way else other


_fill_tables()


cdef enum:
    CHUNK_BITS = 12
    CHUNK = 4096            # connections per pool chunk


cdef extern from *:
    const uint64_t GOLDEN "0x9E3779B97F4A7C15ULL"
    const uint64_t MIX "0xFF51AFD7ED558CCDULL"


cdef struct HeapEntry:
    int64_t when
    uint64_t serial
    uint32_t idx


cdef inline bint heap_less(HeapEntry *a, HeapEntry *b) noexcept nogil:
    return a.when < b.when or (a.when == b.when and a.serial < b.serial)


cdef inline uint64_t hash_key(const Key *k) noexcept nogil:
    """A 64-bit mix of the 40 key bytes (multiply-xorshift per word)."""
    cdef uint64_t w[5]
    cdef uint64_t h = GOLDEN
    cdef int i
    memcpy(w, k, sizeof(Key))
    for i in range(5):
        h ^= w[i]
        h *= MIX
        h ^= h >> 32
    return h


cdef inline bint want_flip_tcp(int sport, int dport, int flags) noexcept nogil:
    """Zeek's TCP WantConnection (twin: table._want_flip_tcp)."""
    if flags & SYN and not flags & ACK:
        return False
    if flags & SYN:
        return True
    if TCP_SERVER[sport]:
        if TCP_SERVER[dport]:
            return not flags & SYN and sport < dport
        return True
    return False


cdef inline bint is_broadcast(Packet *p) noexcept nogil:
    return (p.addr_len == 4 and p.dst[0] == 255 and p.dst[1] == 255
            and p.dst[2] == 255 and p.dst[3] == 255)


cdef inline bint is_reuse(Conn *c, Packet *p) noexcept nogil:
    """Zeek's TCP IsReuse (twin: table._is_reuse)."""
    cdef int flags = p.tcp_flags
    cdef Endpoint *co = orig_ep(c)
    if not flags & SYN:
        return False
    if flags & ACK:
        if orig_ep(c).state != 0:
            return False
        co = resp_ep(c)
    if not (orig_ep(c).did_close or resp_ep(c).did_close):
        if p.seq == co.start_seq:
            return False
        if (not flags & ACK and co.state == 2 and resp_ep(c).state == 0
                and p.seq == resp_ep(c).start_seq):
            return False
    return True


cdef dict _V6_TEXT = {}


cdef str _addr(const uint8_t *b, int n):
    """An address as ipaddress prints it: IPv4 formatted in C (dotted
    decimal has one spelling), IPv6 through ipaddress with a bounded cache."""
    if n == 4:
        return ipv4_text(b)
    raw = PyBytes_FromStringAndSize(<char *>b, n)
    out = _V6_TEXT.get(raw)
    if out is None:
        if len(_V6_TEXT) >= 65536:
            _V6_TEXT.clear()
        out = _V6_TEXT[raw] = str(ipaddress.ip_address(raw))
    return out


def _fast_uid_agrees():
    """Whether fast_uid gives conn_uid's answers (checked once, at import)."""
    cdef uint8_t v4a[4], v4b[4], v6a[16], v6b[16]
    for i in range(16):
        v6a[i] = i * 7 + 1
        v6b[i] = 255 - i
        if i < 4:
            v4a[i] = 10 + i
            v4b[i] = 200 - i
    cases = [
        (1300475167096535000, 6, 1, 40000, 2, 80, 1),
        (-5, 17, 3, 0, 4, 65535, 2 ** 63),
        (0, 58, 5, 128, 6, 129, 12345),
    ]
    for ts, proto, _, ap, _, bp, serial in cases:
        for a, b, n in ((v4a, v4b, 4), (v6a, v6b, 16)):
            want = conn_uid(ts, proto, bytes(a[:n]), ap, bytes(b[:n]), bp, serial)
            if fast_uid(ts, proto, a, ap, b, bp, serial, n) != want:
                return False
    return True


FAST_UID = _fast_uid_agrees()


cdef class ConnTable:
    """Bidirectional connection tracking with Zeek's conn.log semantics.

    ``config`` is a :class:`sensor.flow.table.FlowConfig` (None: defaults).
    """

    cdef readonly object config
    cdef Conn **chunks
    cdef uint32_t n_chunks, pool_top, free_head, n_conns, n_tcp
    cdef uint64_t *slots
    cdef uint64_t slot_mask
    cdef HeapEntry *heap
    cdef uint32_t heap_len, heap_cap
    cdef uint64_t serial, packets, bytes, conns_created
    cdef int64_t network_ns
    cdef uint64_t counts[N_WEIRDS]
    cdef int64_t timeout[4]
    cdef int64_t max_conns, payload_packets, payload_bytes
    cdef object frags, ev, extra, uids, reported, arp, notices
    cdef int64_t arp_due
    cdef readonly object on_payload, wants_more
    cdef readonly bint early

    def __cinit__(self):
        self.chunks = NULL
        self.slots = NULL
        self.heap = NULL

    def __init__(self, config=None, *, on_payload=None, wants_more=None,
                 early=False):
        """``on_payload(event)`` and ``wants_more(uid)``: the twin's hooks;
        ``early``: its early notices (see
        :class:`sensor.flow.table.ConnTable`)."""
        self.on_payload = on_payload
        self.early = early
        self.wants_more = wants_more
        self.reported = {}
        self.config = config if config is not None else FlowConfig()
        c = self.config
        self.timeout[T_UDP] = int(c.udp_inactivity * _SEC)
        self.timeout[T_TCP] = int(c.tcp_inactivity * _SEC)
        self.timeout[T_ICMP] = int(c.icmp_inactivity * _SEC)
        self.timeout[T_LONG] = LONG_IDLE
        self.max_conns = c.max_conns
        self.payload_packets = c.payload_packets
        self.payload_bytes = c.payload_bytes
        self.frags = FragmentReassembler(c.frag_memory, int(c.frag_timeout * _SEC))
        self.extra = {}
        self.uids = {}
        self.notices = {}
        self.ev = Events()
        self.arp = ARPAggregator()
        self.arp_due = NEVER
        self._reset()

    def __dealloc__(self):
        self._free_all()

    cdef void _free_all(self) noexcept:
        cdef uint32_t i
        for i in range(self.pool_top):
            if self._c(i).serial:
                free_tcp(self._c(i))
        for i in range(self.n_chunks):
            free(self.chunks[i])
        free(self.chunks)
        free(self.slots)
        free(self.heap)
        self.chunks = NULL
        self.n_chunks = 0
        self.pool_top = 0
        self.slots = NULL
        self.heap = NULL

    cdef inline Conn *_c(self, uint32_t idx) noexcept:
        """Pool slot idx: chunks of CHUNK structs that never move."""
        return &self.chunks[idx >> CHUNK_BITS][idx & (CHUNK - 1)]

    cdef int _reset(self) except -1:
        """Empty table: no pool chunk yet, 2048 index slots, 1024 timers."""
        self._free_all()
        self.slot_mask = 2047
        self.slots = <uint64_t *>malloc((self.slot_mask + 1) * sizeof(uint64_t))
        self.heap_cap = 1024
        self.heap = <HeapEntry *>malloc(self.heap_cap * sizeof(HeapEntry))
        if self.slots == NULL or self.heap == NULL:
            self._free_all()
            raise MemoryError("flow: cannot allocate the connection table")
        memset(self.slots, 0, (self.slot_mask + 1) * sizeof(uint64_t))
        self.free_head = 0
        self.n_conns = 0
        self.n_tcp = 0
        self.heap_len = 0
        return 0

    # -- interface ---------------------------------------------------------

    def process(self, batch):
        """Track every packet of ``batch``; returns what finished meanwhile."""
        cdef const uint8_t[:] data = batch.data
        cdef const int64_t[:] offsets = batch.offsets
        cdef const uint32_t[:] caplens = batch.caplens
        cdef const uint32_t[:] wirelens = batch.wirelens
        cdef const int64_t[:] ts = batch.ts
        cdef const uint16_t[:] linktypes = batch.linktypes
        cdef Py_ssize_t i, n = offsets.shape[0]
        cdef Py_ssize_t size = data.shape[0]
        cdef int64_t off, caplen
        cdef const uint8_t *base = &data[0] if size else <const uint8_t *>b""
        cdef object raw = batch.data
        self.ev = Events()
        n = min(n, caplens.shape[0], wirelens.shape[0], ts.shape[0],
                linktypes.shape[0])

        for i in range(n):
            # A batch whose offsets or lengths point outside its data is
            # cut to the bytes that exist rather than read out of bounds.
            off = offsets[i]
            caplen = caplens[i]
            if off < 0 or off > size:
                off = size
            if caplen > size - off:
                caplen = size - off
            self._packet(base + off, <uint32_t>caplen, wirelens[i],
                         linktypes[i], ts[i], raw, off)
        return self.ev

    def advance(self, int64_t now_ns):
        """Move network time to now_ns without a packet (twin: advance())."""
        self.ev = Events()
        if now_ns > self.network_ns:
            self.network_ns = now_ns
            self._run_timers(now_ns)
            if now_ns >= self.arp_due:
                self.arp_due = self.arp.expire(now_ns, self.ev.arps)
        return self.ev

    def flush(self):
        """End of input: finish every connection still open, oldest first."""
        cdef uint32_t i
        self.ev = Events()
        live = sorted((self._c(i).serial, i) for i in range(self.pool_top)
                      if self._c(i).serial)
        for _, i in live:
            self._finish(i)
        self._reset()
        self.uids.clear()
        self.notices.clear()
        self.arp.flush(self.ev.arps)
        self.arp_due = NEVER
        return self.ev

    def stats(self):
        """Counters: packets, per-anomaly counts, connections, limits hit."""
        cdef int i
        out = {}
        if self.packets:
            out["packets"] = self.packets
            out["bytes"] = self.bytes
        if self.conns_created:
            out["conns_created"] = self.conns_created
        for i in range(N_WEIRDS):
            if self.counts[i]:
                out[WEIRD_NAMES[i]] = self.counts[i]
        for name, value in self.extra.items():
            out[name] = out.get(name, 0) + value
        out["conns_open"] = self.n_conns
        out["frag_dropped"] = self.frags.dropped
        out["frag_timed_out"] = self.frags.timed_out
        out["frag_reassembled"] = self.frags.completed
        out.update(self.arp.stats())
        return out

    def memory(self):
        """Bytes held by the table now, by part (for the bench)."""
        return {
            "conn_struct": sizeof(Conn),
            "tcp_struct": sizeof(TcpState),
            "pool": self.n_chunks * CHUNK * sizeof(Conn),
            "tcp": self.n_tcp * sizeof(TcpState),
            "tcp_open": self.n_tcp,
            "index": (self.slot_mask + 1) * sizeof(uint64_t),
            "timers": self.heap_cap * sizeof(HeapEntry),
            "conns_open": self.n_conns,
            "timer_entries": self.heap_len,
        }

    # -- per packet --------------------------------------------------------

    cdef int _packet(self, const uint8_t *buf, uint32_t caplen, uint32_t wirelen,
                     int linktype, int64_t ts, object raw, int64_t off) except -1:
        """Process one packet seen at ts nanoseconds (twin: packet())."""
        cdef Packet p
        self.packets += 1
        self.bytes += wirelen
        # Timers run on network time, which never goes back even when a
        # merged capture's timestamps do; the packet keeps its own time.
        if ts > self.network_ns:
            self.network_ns = ts
        self._run_timers(self.network_ns)
        if self.network_ns >= self.arp_due:
            self.arp_due = self.arp.expire(self.network_ns, self.ev.arps)
        decode_packet(buf, caplen, wirelen, linktype, &p)
        if p.arp_op >= 0:
            return self._arp(&p, ts)
        return self._ip(&p, buf, raw, off, linktype, ts, 0)

    cdef int _arp(self, Packet *p, int64_t ts) except -1:
        """One ARP packet to the aggregator (twin: _arp)."""
        if not p.has_arp:
            self.arp.unsupported()
            return 0
        self.arp_due = self.arp.add(
            ts, self.network_ns, p.arp_op,
            PyBytes_FromStringAndSize(<char *>p.arp_sha, 6),
            PyBytes_FromStringAndSize(<char *>p.arp_spa, 4),
            PyBytes_FromStringAndSize(<char *>p.arp_tha, 6),
            PyBytes_FromStringAndSize(<char *>p.arp_tpa, 4),
            p.vlan, self.ev.arps)
        return 0

    cdef int _ip(self, Packet *pp, const uint8_t *pbuf, object raw, int64_t off,
                 int linktype, int64_t ts, int depth) except -1:
        """Track one decoded IP packet; depth counts tunnel layers around it
        (twin: _ip). raw[off:] holds its bytes, as link type linktype."""
        cdef Packet p = pp[0]
        cdef Packet inner
        cdef object whole = None
        cdef int proto, sport, dport, pair
        cdef bint tcp_bad, one_way, is_orig
        cdef Key key
        cdef uint64_t h
        cdef int64_t idx, t_off, t_len
        cdef int link, port
        cdef Conn *c
        cdef Weirds w
        cdef uint8_t canceled

        # Fragments go through the twin's reassembler (rare; Python objects).
        if p.is_fragment and not p.anomaly:
            whole = self._fragment(raw, off, p.caplen, p.wirelen, linktype, ts)
            if whole is None:
                return 0
            pbuf = <const uint8_t *><char *>whole
            decode_packet(pbuf, len(whole), len(whole),
                          LT_IPV4 if p.ip_version == 4 else LT_IPV6, &inner)
            inner.has_l2_src = p.has_l2_src
            inner.has_l2_dst = p.has_l2_dst
            memcpy(inner.l2_src, p.l2_src, 6)
            memcpy(inner.l2_dst, p.l2_dst, 6)
            inner.vlan = p.vlan
            inner.inner_vlan = p.inner_vlan
            p = inner

        # Tunnels carried directly in IP: track the inner packet instead.
        proto = p.ip_proto
        if p.anomaly == A_unknown_protocol and (proto == 4 or proto == 41
                                                or proto == 47):
            if proto == 47:
                t_len = gre_inner(&p, pbuf, &t_off, &link)
            else:
                t_len = ip_in_ip_inner(&p, &t_off, &link)
            if t_len and depth < 2:
                return self._inner(pbuf, t_off, t_len, link, ts, depth)

        # Drop what cannot be tracked; some anomalies still let it through.
        tcp_bad = proto == 6 and p.sport >= 0 and p.tcp_hdr_len < 0
        if (p.anomaly and p.anomaly != A_UDP_datagram_length_mismatch
                and p.anomaly != A_ip_hdr_len_zero
                and p.anomaly != A_incompletely_captured_fragment
                and not tcp_bad):
            self._anomaly(p.anomaly, ts, &p)
            return 0
        one_way = False
        if proto == 1 or proto == 58:
            if p.icmp_type < 0:
                return 0
            sport = p.icmp_type
            pair = ICMP4_PAIR[sport] if proto == 1 else ICMP6_PAIR[sport]
            if pair >= 0:
                dport = pair
            else:
                dport = p.icmp_code
                one_way = True
        elif proto != 6 and proto != 17:
            if p.l4_off < 0:
                return 0
            sport = dport = 0
        elif p.sport < 0:
            return 0
        else:
            sport = p.sport
            dport = p.dport

        # Find the connection, or make it.
        memset(&key, 0, sizeof(Key))
        key.proto = proto
        key.one_way = one_way
        key.alen = p.addr_len
        pair = memcmp(p.src, p.dst, p.addr_len)
        if one_way or pair < 0 or (pair == 0 and sport <= dport):
            memcpy(key.a, p.src, p.addr_len)
            memcpy(key.b, p.dst, p.addr_len)
            key.pa = sport
            key.pb = dport
        else:
            memcpy(key.a, p.dst, p.addr_len)
            memcpy(key.b, p.src, p.addr_len)
            key.pa = dport
            key.pb = sport
        h = hash_key(&key)
        idx = self._lookup(&key, h)
        if idx >= 0 and proto == 6 and is_reuse(self._c(idx), &p):
            self._finish(<uint32_t>idx)
            idx = -1
        w.n = 0
        if idx < 0:
            idx = self._new_conn(&key, h, &p, proto, sport, dport, ts, &w)
        c = self._c(idx)
        is_orig = (memcmp(p.src, orig_h(c), p.addr_len) == 0
                   and sport == orig_p(c))

        # Run the protocol's semantics.
        if p.anomaly:
            weird(c, &w, p.anomaly)
        if proto == 6:
            if not tcp_bad:
                canceled = c.timers_canceled
                tcp_packet(c, &p, pbuf, is_orig, ts, &w)
                self._count_packet(c, &p, pbuf, is_orig, ts)
                if self.early and c.timers_canceled and not canceled:
                    self._notice(c)
        elif proto == 17:
            self._count_packet(c, &p, pbuf, is_orig, ts)
            udp_packet(c, &w, &p, pbuf, is_orig, resp_h(c), resp_p(c), ts)
            if depth < 2:
                port = resp_p(c)
                t_len = 0
                if port == VXLAN_PORT or port == GENEVE_PORT or port == GTP_U_PORT:
                    t_len = udp_tunnel_inner(&p, pbuf, port, &t_off, &link)
                elif not OTHER_TUNNEL[port]:
                    t_len = teredo_inner(&p, pbuf, &t_off)
                    link = LT_IPV6
                if t_len:
                    if w.n:
                        self._flush_weirds(c, &w, ts)
                    self._schedule(<uint32_t>idx)
                    return self._inner(pbuf, t_off, t_len, link, ts, depth)
        else:
            other_packet(c, &p, is_orig, ts)
            # ICMP packets count only when fully captured (twin's comment).
            if p.payload_caplen >= p.payload_len:
                self._count_packet(c, &p, pbuf, is_orig, ts)
        if w.n:
            self._flush_weirds(c, &w, ts)
        self._schedule(<uint32_t>idx)
        return 0

    cdef int _inner(self, const uint8_t *pbuf, int64_t t_off, int64_t t_len,
                    int link, int64_t ts, int depth) except -1:
        """Track the packet inside a tunnel, pbuf[t_off:t_off + t_len] of
        link type link (twin: the recursive _ip calls)."""
        cdef Packet inner
        cdef object owner
        decode_packet(pbuf + t_off, <uint32_t>t_len, <uint32_t>t_len, link,
                      &inner)
        if inner.is_fragment and not inner.anomaly:
            # The reassembler wants the inner bytes as an object of their own.
            owner = PyBytes_FromStringAndSize(<char *>pbuf + t_off, t_len)
            return self._ip(&inner, <const uint8_t *><char *>owner, owner, 0,
                            link, ts, depth + 1)
        return self._ip(&inner, pbuf + t_off, None, 0, link, ts, depth + 1)

    cdef object _fragment(self, object raw, int64_t off, uint32_t caplen,
                          uint32_t wirelen, int linktype, int64_t ts):
        """Hand a complete fragment to the twin's reassembler; the whole
        datagram (bytes) or None."""
        pkt = twin_packet.parse(raw, off, caplen, wirelen, linktype)
        whole, anomaly = self.frags.add(pkt, ts)
        if anomaly:
            self._anomaly_name(anomaly, ts, pkt)
        return whole if whole else None

    cdef int _count_packet(self, Conn *c, Packet *p, const uint8_t *pbuf,
                           bint is_orig, int64_t ts) except -1:
        cdef Side *ep = orig_side(c) if is_orig else resp_side(c)
        cdef int64_t budget, n
        ep.pkts += 1
        ep.ip_bytes += p.ip_total_len
        if p.payload_caplen <= 0 or (c.proto != 6 and c.proto != 17):
            return 0
        budget = self.payload_bytes - ep.payload_bytes
        if ep.payload_pkts < self.payload_packets and budget > 0:
            n = p.payload_caplen if p.payload_caplen < budget else budget
            ep.payload_pkts += 1
            ep.payload_bytes += n
            # A stream follower needs whole segments (twin: _count_packet).
            if n < p.payload_caplen and self._more(c):
                n = p.payload_caplen
        elif self._more(c):
            n = p.payload_caplen  # past the budget, on request, whole
        else:
            return 0
        event = (
            self._uid_kept(c), is_orig, ts / _SEC,
            PyBytes_FromStringAndSize(<char *>pbuf + p.payload_off, n),
            "tcp" if c.proto == 6 else "udp",
            _addr(orig_h(c), c.key.alen), orig_p(c),
            _addr(resp_h(c), c.key.alen), resp_p(c),
            p.seq if c.proto == 6 else 0)
        if self.on_payload is not None:
            self.on_payload(event)
        else:
            self.ev.payloads.append(event)
        return 0

    cdef bint _more(self, Conn *c) except -1:
        return self.wants_more is not None and bool(self.wants_more(
            self._uid_kept(c)))

    cdef int64_t _new_conn(self, Key *key, uint64_t h, Packet *p, int proto,
                           int sport, int dport, int64_t ts,
                           Weirds *w) except -1:
        """Make a connection from its first packet (twin: _new_conn)."""
        cdef uint32_t idx
        cdef Conn *c
        if self.n_conns >= self.max_conns:
            self._evict()
        self.serial += 1
        self.conns_created += 1
        idx = self._alloc()
        c = self._c(idx)
        memset(c, 0, sizeof(Conn))
        c.key = key[0]
        c.serial = self.serial
        c.proto = 1 if proto == 58 else proto
        c.ip_proto = proto
        c.orig_is_a = (memcmp(key.a, p.src, p.addr_len) == 0
                       and key.pa == sport)
        c.side[0].size = -1
        c.side[1].size = -1
        c.side[0].has_l2 = p.has_l2_src
        memcpy(c.side[0].l2, p.l2_src, 6)
        c.side[1].has_l2 = p.has_l2_dst
        memcpy(c.side[1].l2, p.l2_dst, 6)
        if proto == 6:
            c.tcp = <TcpState *>calloc(1, sizeof(TcpState))
            if c.tcp == NULL:
                self._release_slot(idx)
                raise MemoryError("flow: cannot allocate TCP state")
            init_endpoint(&c.tcp.ep[0])
            init_endpoint(&c.tcp.ep[1])
            self.n_tcp += 1
        c.vlan = p.vlan
        c.inner_vlan = p.inner_vlan
        c.start_ns = ts
        c.last_ns = ts
        c.is_active = 1
        c.app_first = 1
        c.heap_ns = -1
        if proto != 6 and proto != 17:
            c.inactivity = T_ICMP
        else:
            # TCP starts with the UDP timeout until its handshake completes.
            c.inactivity = T_UDP
        if proto == 6:
            c.tcp.expire_ns = ts + 5 * SEC_NS  # tcp_SYN_timeout
            if want_flip_tcp(sport, dport, p.tcp_flags) and not is_broadcast(p):
                if p.tcp_flags & SYN and not TCP_SERVER[sport]:
                    # Zeek 9 processes such a SYN-ACK as the originator's
                    # (hence the weird) before flipping (twin's comment).
                    weird(c, w, W_connection_originator_SYN_ack)
                flip(c)
            attach_app(c, resp_p(c), ts)
        elif proto == 17:
            if (UDP_SERVER[sport] and not UDP_SERVER[dport]
                    and not is_broadcast(p)):
                flip(c)
            attach_app(c, resp_p(c), ts)
        self._insert(h, idx)
        return idx

    cdef uint32_t _alloc(self) except? 0xFFFFFFFF:
        """A free pool slot; a new chunk when none is free. Growth never
        moves a connection, and holds at most one chunk more than needed."""
        cdef uint32_t idx
        cdef Conn **grown
        if self.free_head:
            idx = self.free_head - 1
            self.free_head = self._c(idx).next_free
            return idx
        if self.pool_top == self.n_chunks * CHUNK:
            grown = <Conn **>realloc(self.chunks,
                                     (self.n_chunks + 1) * sizeof(Conn *))
            if grown == NULL:
                raise MemoryError("flow: cannot grow the connection pool")
            self.chunks = grown
            self.chunks[self.n_chunks] = <Conn *>malloc(CHUNK * sizeof(Conn))
            if self.chunks[self.n_chunks] == NULL:
                raise MemoryError("flow: cannot grow the connection pool")
            self.n_chunks += 1
        idx = self.pool_top
        self.pool_top += 1
        return idx

    # -- index -------------------------------------------------------------

    cdef int64_t _lookup(self, Key *key, uint64_t h) noexcept:
        cdef uint64_t tag = h >> 32
        cdef uint64_t i = tag & self.slot_mask
        cdef uint64_t s
        while True:
            s = self.slots[i]
            if s == 0:
                return -1
            if (s >> 32) == tag and memcmp(&self._c((s & U32) - 1).key,
                                           key, sizeof(Key)) == 0:
                return <int64_t>(s & U32) - 1
            i = (i + 1) & self.slot_mask

    cdef int _insert(self, uint64_t h, uint32_t idx) except -1:
        cdef uint64_t i
        if (<uint64_t>self.n_conns + 1) * 2 > self.slot_mask + 1:
            self._grow_index()
        i = (h >> 32) & self.slot_mask
        while self.slots[i]:
            i = (i + 1) & self.slot_mask
        self.slots[i] = ((h >> 32) << 32) | (<uint64_t>idx + 1)
        self.n_conns += 1
        return 0

    cdef int _grow_index(self) except -1:
        cdef uint64_t old_mask = self.slot_mask
        cdef uint64_t *old = self.slots
        cdef uint64_t mask = old_mask * 2 + 1
        cdef uint64_t *slots = <uint64_t *>malloc((mask + 1) * sizeof(uint64_t))
        cdef uint64_t i, j
        if slots == NULL:
            raise MemoryError("flow: cannot grow the connection index")
        memset(slots, 0, (mask + 1) * sizeof(uint64_t))
        for i in range(old_mask + 1):
            if old[i]:
                j = (old[i] >> 32) & mask
                while slots[j]:
                    j = (j + 1) & mask
                slots[j] = old[i]
        free(old)
        self.slots = slots
        self.slot_mask = mask
        return 0

    cdef void _remove(self, uint32_t idx) noexcept:
        """Take pool slot idx out of the index (backward-shift deletion,
        so that probe chains stay unbroken without tombstones)."""
        cdef Conn *c = self._c(idx)
        cdef uint64_t h = hash_key(&c.key)
        cdef uint64_t mask = self.slot_mask
        cdef uint64_t i = (h >> 32) & mask
        cdef uint64_t j, home
        while (self.slots[i] & U32) != <uint64_t>idx + 1:
            if self.slots[i] == 0:
                return
            i = (i + 1) & mask
        j = i
        while True:
            j = (j + 1) & mask
            if self.slots[j] == 0:
                break
            home = (self.slots[j] >> 32) & mask
            # Move the entry at j back to i unless its home lies in (i, j].
            if ((j - home) & mask) >= ((j - i) & mask):
                self.slots[i] = self.slots[j]
                i = j
        self.slots[i] = 0
        self.n_conns -= 1

    cdef void _release(self, uint32_t idx) noexcept:
        """Forget connection idx: index, extra memory, pool slot."""
        cdef Conn *c = self._c(idx)
        self._remove(idx)
        if c.tcp != NULL:
            self.n_tcp -= 1
            free_tcp(c)
        self._release_slot(idx)

    cdef void _release_slot(self, uint32_t idx) noexcept:
        cdef Conn *c = self._c(idx)
        c.serial = 0
        c.next_free = self.free_head
        self.free_head = idx + 1

    # -- timers ------------------------------------------------------------

    cdef int64_t _next_deadline(self, Conn *c) noexcept:
        cdef int64_t nd, t
        if c.timers_canceled:
            return c.tcp.delete_ns
        nd = c.last_ns + self.timeout[c.inactivity]
        t = c.timer_ns  # TCP's attempt timer, or the DNS analyzer's
        if t and t < nd:
            nd = t
        if c.tcp != NULL:
            t = c.tcp.expire_ns
            if t and t < nd:
                nd = t
            t = c.tcp.delete_ns
            if t and t < nd:
                nd = t
        return nd

    cdef int _schedule(self, uint32_t idx) except -1:
        cdef Conn *c = self._c(idx)
        cdef int64_t nd = self._next_deadline(c)
        if c.heap_ns < 0 or nd < c.heap_ns:
            c.heap_ns = nd
            self._push(nd, c.serial, idx)
        return 0

    cdef int _push(self, int64_t when, uint64_t serial, uint32_t idx) except -1:
        cdef HeapEntry e
        cdef HeapEntry *grown
        cdef uint32_t i, parent
        if self.heap_len == self.heap_cap:
            grown = <HeapEntry *>realloc(self.heap,
                                         2 * self.heap_cap * sizeof(HeapEntry))
            if grown == NULL:
                raise MemoryError("flow: cannot grow the timer heap")
            self.heap = grown
            self.heap_cap *= 2
        e.when = when
        e.serial = serial
        e.idx = idx
        i = self.heap_len
        self.heap_len += 1
        while i > 0:
            parent = (i - 1) >> 1
            if not heap_less(&e, &self.heap[parent]):
                break
            self.heap[i] = self.heap[parent]
            i = parent
        self.heap[i] = e
        return 0

    cdef HeapEntry _pop(self) noexcept:
        cdef HeapEntry top = self.heap[0]
        cdef HeapEntry last
        cdef uint32_t i = 0, child, n
        self.heap_len -= 1
        n = self.heap_len
        if n:
            last = self.heap[n]
            while True:
                child = 2 * i + 1
                if child >= n:
                    break
                if child + 1 < n and heap_less(&self.heap[child + 1],
                                               &self.heap[child]):
                    child += 1
                if not heap_less(&self.heap[child], &last):
                    break
                self.heap[i] = self.heap[child]
                i = child
            self.heap[i] = last
        return top

    cdef int _run_timers(self, int64_t now) except -1:
        cdef HeapEntry e
        cdef Conn *c
        while self.heap_len and self.heap[0].when <= now:
            e = self._pop()
            c = self._c(e.idx)
            if c.serial != e.serial or e.when != c.heap_ns:
                continue
            c.heap_ns = -1
            if self._fire(c, now):
                self._finish(e.idx)
            else:
                self._schedule(e.idx)
        return 0

    cdef bint _fire(self, Conn *c, int64_t now) noexcept:
        """Run the connection's due timers in time order; True to finish it.

        Ties go to the lower timer number, as the twin's min() over
        (deadline, number) pairs: 0 delete, 1 inactivity, 2 attempt,
        3 expire, 4 the DNS analyzer's.
        """
        cdef int64_t best, t, attempt, expire, delete, app
        cdef int which
        while True:
            attempt = expire = delete = app = 0
            if c.tcp != NULL:
                attempt = c.timer_ns
                expire = c.tcp.expire_ns
                delete = c.tcp.delete_ns
            else:
                app = c.timer_ns
            which = -1
            best = 0
            if delete and delete <= now:
                best = delete
                which = 0
            if not c.timers_canceled:
                t = c.last_ns + self.timeout[c.inactivity]
                if t <= now and (which < 0 or t < best):
                    best = t
                    which = 1
                t = attempt
                if t and t <= now and (which < 0 or t < best):
                    best = t
                    which = 2
                t = expire
                if t and t <= now and (which < 0 or t < best):
                    best = t
                    which = 3
                t = app
                if t and t <= now and (which < 0 or t < best):
                    best = t
                    which = 4
            if which < 0:
                return False
            if which == 0 or which == 1:
                return True
            if which == 2 and attempt_timer(c):
                return True
            if which == 3 and expire_timer(c, now):
                return True
            if which == 4 and dns_expire(c, now):
                return True

    cdef int _evict(self) except -1:
        """Make room: finish the open connection at the top of the heap."""
        cdef HeapEntry e
        while self.heap_len:
            e = self._pop()
            if self._c(e.idx).serial == e.serial:
                self._anomaly(A_conn_table_full, self._c(e.idx).last_ns, NULL)
                self._finish(e.idx)
                return 0
        return 0

    # -- output ------------------------------------------------------------

    cdef object _uid(self, Conn *c):
        """The twin's uid: from the first packet's orientation and serial,
        made once and kept until the connection is finished."""
        cdef const uint8_t *a = orig_h(c)
        cdef const uint8_t *b = resp_h(c)
        cdef uint16_t ap = orig_p(c), bp = resp_p(c)
        if c.uid_cached:
            return self.uids[c.serial]
        if c.uid_swapped:
            a, b, ap, bp = b, a, bp, ap
        if FAST_UID:
            uid = fast_uid(c.start_ns, c.ip_proto, a, ap, b, bp, c.serial,
                           c.key.alen)
        else:
            uid = conn_uid(c.start_ns, c.ip_proto,
                           PyBytes_FromStringAndSize(<char *>a, c.key.alen), ap,
                           PyBytes_FromStringAndSize(<char *>b, c.key.alen), bp,
                           c.serial)
        return uid

    cdef object _uid_kept(self, Conn *c):
        """_uid, kept until the connection is finished: for payload events
        and weirds, which may come many times for one connection."""
        if c.uid_cached:
            return self.uids[c.serial]
        uid = self._uid(c)
        self.uids[c.serial] = uid
        c.uid_cached = 1
        return uid

    cdef int _finish(self, uint32_t idx) except -1:
        """Emit the record of connection idx and forget it."""
        cdef Conn *c = self._c(idx)
        kept = self.notices.pop(c.serial, None) if self.notices else None
        if kept is not None and kept[1] == orig_side(c).pkts + resp_side(c).pkts:
            self.ev.conns.append(kept[0])  # no packet since its notice
        else:
            self.ev.conns.append(self._record(c))
        if c.uid_cached:
            del self.uids[c.serial]
        self._release(idx)
        return 0

    cdef int _notice(self, Conn *c) except -1:
        """The close delay has just begun; a reset on either side decided
        it: hand out the record as it stands (twin: _notice)."""
        if orig_ep(c).state == RESET or resp_ep(c).state == RESET:
            rec = self._record(c)
            self.ev.early.append(rec)
            self.notices[c.serial] = (
                rec.copy(), orig_side(c).pkts + resp_side(c).pkts)
        return 0

    cdef dict _record(self, Conn *c):
        """The conn.log record (twin: record.conn_record)."""
        cdef Side *o = orig_side(c)
        cdef Side *r = resp_side(c)
        # Zeek reads captures at microsecond precision and subtracts
        # doubles (twin: record.conn_record).
        cdef double start_s = <double>floor_div(c.start_ns, 1000) / 1e6
        cdef double duration = <double>floor_div(c.last_ns, 1000) / 1e6 - start_s
        history = history_text(c)
        orig_bytes = resp_bytes = 0
        if duration > 0:
            if c.proto == 6:
                orig_bytes = size_tcp(orig_ep(c), resp_ep(c))
                resp_bytes = size_tcp(resp_ep(c), orig_ep(c))
            else:
                orig_bytes = o.size if o.size > 0 else 0
                resp_bytes = r.size if r.size > 0 else 0
            if history and o.has_l2 and r.has_l2 and c.vlan < 0:
                # The usual record in one presized dict, in the twin's order.
                return {
                    "ts": start_s,
                    "uid": self._uid(c),
                    "id.orig_h": _addr(orig_h(c), c.key.alen),
                    "id.orig_p": orig_p(c),
                    "id.resp_h": _addr(resp_h(c), c.key.alen),
                    "id.resp_p": resp_p(c),
                    "proto": PROTO_NAMES.get(c.proto, "unknown_transport"),
                    "duration": duration,
                    "orig_bytes": orig_bytes,
                    "resp_bytes": resp_bytes,
                    "conn_state": conn_state(c, history),
                    "missed_bytes": c.tcp.missed_bytes if c.tcp != NULL else 0,
                    "history": history,
                    "orig_pkts": o.pkts,
                    "orig_ip_bytes": o.ip_bytes,
                    "resp_pkts": r.pkts,
                    "resp_ip_bytes": r.ip_bytes,
                    "orig_l2_addr": mac_text(o.l2),
                    "resp_l2_addr": mac_text(r.l2),
                    "ip_proto": c.ip_proto,
                }
        rec = {
            "ts": start_s,
            "uid": self._uid(c),
            "id.orig_h": _addr(orig_h(c), c.key.alen),
            "id.orig_p": orig_p(c),
            "id.resp_h": _addr(resp_h(c), c.key.alen),
            "id.resp_p": resp_p(c),
            "proto": PROTO_NAMES.get(c.proto, "unknown_transport"),
        }
        if duration > 0:
            rec["duration"] = duration
            rec["orig_bytes"] = orig_bytes
            rec["resp_bytes"] = resp_bytes
        rec["conn_state"] = conn_state(c, history)
        rec["missed_bytes"] = c.tcp.missed_bytes if c.tcp != NULL else 0
        if history:
            rec["history"] = history
        rec["orig_pkts"] = o.pkts
        rec["orig_ip_bytes"] = o.ip_bytes
        rec["resp_pkts"] = r.pkts
        rec["resp_ip_bytes"] = r.ip_bytes
        if o.has_l2:
            rec["orig_l2_addr"] = mac_text(o.l2)
        if r.has_l2:
            rec["resp_l2_addr"] = mac_text(r.l2)
        if c.vlan >= 0:
            rec["vlan"] = c.vlan
        if c.inner_vlan >= 0:
            rec["inner_vlan"] = c.inner_vlan
        rec["ip_proto"] = c.ip_proto
        return rec

    cdef int _flush_weirds(self, Conn *c, Weirds *w, int64_t ts) except -1:
        cdef int i
        for i in range(w.n):
            self.counts[w.code[i]] += 1
            if QUIET_CODE[w.code[i]]:
                continue
            self.ev.weirds.append({
                "ts": ts / _SEC,
                "uid": self._uid_kept(c),
                "id.orig_h": _addr(orig_h(c), c.key.alen),
                "id.orig_p": orig_p(c),
                "id.resp_h": _addr(resp_h(c), c.key.alen),
                "id.resp_p": resp_p(c),
                "name": WEIRD_NAMES[w.code[i]],
                "addl": "",
                "notice": False,
                "peer": "sensor",
                "source": "TCP" if c.proto == 6 else "IP",
            })
        return 0

    cdef int _anomaly(self, int code, int64_t ts, Packet *p) except -1:
        """A weird tied to no connection (twin: _anomaly)."""
        self.counts[code] += 1
        if QUIET_CODE[code]:
            return 0
        if p != NULL and p.ip_total_len > 0 and p.addr_len:
            self._weird_record(
                WEIRD_NAMES[code], ts,
                PyBytes_FromStringAndSize(<char *>p.src, p.addr_len),
                PyBytes_FromStringAndSize(<char *>p.dst, p.addr_len))
        else:
            self._weird_record(WEIRD_NAMES[code], ts, None, None)
        return 0

    cdef int _anomaly_name(self, str name, int64_t ts, object pkt) except -1:
        """A weird from the twin's reassembler, about the twin Packet pkt."""
        code = WEIRD_CODES.get(name)
        if code is None:
            self.extra[name] = self.extra.get(name, 0) + 1
        else:
            self.counts[<int>code] += 1
        if name in QUIET:
            return 0
        if pkt.ip_total_len > 0 and pkt.src:
            self._weird_record(name, ts, pkt.src, pkt.dst)
        else:
            self._weird_record(name, ts, None, None)
        return 0

    cdef int _weird_record(self, str name, int64_t ts, object src,
                           object dst) except -1:
        """Report a flow weird (src and dst: packed addresses) or a net
        weird (None), once per name and flow a day, as Zeek's weird
        framework does; that memory holds at most WEIRD_MEMORY entries,
        the oldest forgotten first (twin: _anomaly)."""
        seen = (name, src, dst) if src is not None else (name, b"", b"")
        last = self.reported.get(seen)
        if last is not None and ts - last < WEIRD_REPEAT_NS:
            return 0
        if last is None and len(self.reported) >= WEIRD_MEMORY:
            del self.reported[next(iter(self.reported))]
        self.reported[seen] = ts
        rec = {"ts": ts / _SEC}
        if src is not None:
            # Past the IP checks Zeek reports a "flow weird" with the
            # addresses (ports 0); before them a bare "net weird".
            rec["id.orig_h"] = _addr(<const uint8_t *><char *>src, len(src))
            rec["id.orig_p"] = 0
            rec["id.resp_h"] = _addr(<const uint8_t *><char *>dst, len(dst))
            rec["id.resp_p"] = 0
        rec["name"] = name
        rec["addl"] = ""
        rec["notice"] = False
        rec["peer"] = "sensor"
        rec["source"] = "IP"
        self.ev.weirds.append(rec)
        return 0


PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp"}
WEIRD_CODES = {name: i for i, name in enumerate(WEIRD_NAMES) if name}

# Names counted in stats() but not reported as weirds (twin: table.QUIET).
cdef uint8_t QUIET_CODE[N_WEIRDS]
memset(QUIET_CODE, 0, sizeof(QUIET_CODE))
for _name in QUIET:
    if _name in WEIRD_CODES:
        QUIET_CODE[<int>WEIRD_CODES[_name]] = 1
