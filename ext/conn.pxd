# Per-connection state as fixed-size C structs; twin: sensor/flow/conn.py.
#
# A connection is one Conn in the table's pool, found through the hash
# index by its Key. Sequence arithmetic that the twin does on unbounded
# Python ints is done here on 128-bit integers (i128), so that every
# intermediate value of the twin, negative ones included, is represented
# exactly; stored values fit in 64 bits because the twin masks them.

from libc.stdint cimport (int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t,
                          uint64_t)
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy

cdef extern from *:
    ctypedef long long i128 "__int128"

# TCP endpoint states, in the order of Zeek's EndpointState enum.
cdef enum:
    INACTIVE = 0
    SYN_SENT = 1
    SYN_ACK_SENT = 2
    PARTIAL = 3
    ESTABLISHED = 4
    CLOSED = 5
    RESET = 6

# History bits (Zeek's TCP_Endpoint HIST_*); the responder's are << 16.
cdef enum:
    HIST_SYN = 0x1
    HIST_FIN = 0x2
    HIST_RST = 0x4
    HIST_FIN_RST = 0x8
    HIST_DATA = 0x10
    HIST_ACK = 0x20
    HIST_MULTI_FLAG = 0x40

cdef enum:
    HISTORY_MAX = 64    # longest history kept (conn.HISTORY_MAX)
    HIST_INLINE = 16    # letters kept in Conn; TCP's longer ones spill over
    DNS_HEAD = 12       # DNS header bytes judged (dnscheck.HEAD)
    MAX_BLOCKS = 4      # out-of-order ranges per direction (conn.MAX_BLOCKS)

cdef enum:
    # Which scaled-history counter (Zeek's ScaledHistoryEntry).
    SCALE_RXMT = 0
    SCALE_WIN0 = 1
    SCALE_GAP = 2

# Constants too wide for a Cython literal, spelled in C.
cdef extern from *:
    const uint64_t U32 "((uint64_t)0xFFFFFFFFULL)"
    const uint64_t U64 "((uint64_t)0xFFFFFFFFFFFFFFFFULL)"
    const uint64_t BIT31 "((uint64_t)0x80000000ULL)"
    const int64_t TWO32 "((int64_t)0x100000000LL)"
    const int64_t SEC_NS "((int64_t)1000000000LL)"


# The hash key: both directions of a connection share one (addresses and
# ports in canonical order), except one-way ICMP messages.
cdef struct Key:
    uint8_t a[16]
    uint8_t b[16]
    uint16_t pa
    uint16_t pb
    uint8_t proto           # IP protocol (58 for ICMPv6)
    uint8_t one_way
    uint8_t alen            # 4 or 16
    uint8_t pad


# An out-of-order range of relative sequence numbers, [lo, hi), and the
# bytes of the holes that merging closest neighbours hid inside it.
cdef struct Block:
    uint64_t lo
    uint64_t hi
    uint64_t hidden


# What every connection counts per direction (twin: the Endpoint fields that
# are not TCP's).
cdef struct Side:
    uint64_t pkts
    uint64_t ip_bytes
    int64_t size            # UDP/ICMP payload bytes, -1 until the first
    uint32_t payload_pkts
    uint32_t payload_bytes
    uint8_t has_l2
    uint8_t l2[6]


# TCP state of one direction (twin: the TCP fields of Endpoint).
cdef struct Endpoint:
    uint64_t fin_seq
    uint64_t hist_last_syn
    uint64_t hist_last_fin
    uint64_t hist_last_rst
    uint64_t reasm_seq
    uint64_t trim_seq
    uint64_t max_upper
    uint32_t start_seq
    uint32_t last_seq
    uint32_t ack_seq
    uint32_t seq_wraps
    uint32_t ack_wraps
    uint8_t state
    uint8_t prev_state
    uint8_t did_close
    uint8_t skip
    uint8_t nblocks         # out-of-order ranges, in TcpExtra.blocks
    uint8_t fin_seen        # twin: fin_cnt > 0


# What only some TCP connections need (out-of-order data, retransmissions,
# zero windows, gaps, long histories): allocated on first use, so that the
# common connection does without it. Rows are indexed like TcpState.ep.
cdef struct TcpExtra:
    Block blocks[2][MAX_BLOCKS]
    uint32_t cnt[2][3]          # scaled-history counters, by SCALE_*
    uint8_t thresh_exp[2][3]    # their thresholds, as powers of ten
    char hist_more[HISTORY_MAX - HIST_INLINE]   # history past HIST_INLINE
    uint8_t dns_buf[2][DNS_HEAD + 2]    # DNS over TCP (dnscheck.pxd)
    uint8_t dns_len[2]
    uint32_t dns_need[2]


# What only TCP connections need, allocated for them alone.
cdef struct TcpState:
    Endpoint ep[2]          # indexed like Conn.side
    int64_t expire_ns
    int64_t delete_ns
    uint64_t missed_bytes
    TcpExtra *extra         # NULL until first needed


cdef struct Conn:
    Key key
    uint64_t serial         # creation number; 0 marks a free pool slot
    int64_t start_ns
    int64_t last_ns
    int64_t heap_ns
    int64_t timer_ns        # TCP: the attempt timer; UDP: the DNS session
    uint64_t weirds         # bit per weird code already reported
    TcpState *tcp           # NULL unless proto is TCP
    Side side[2]            # side[orig] and side[1 - orig] after flips
    uint32_t hist_seen
    uint32_t next_free      # free-list link while the slot is free
    int16_t vlan
    int16_t inner_vlan
    uint8_t proto           # 6, 17, or 1 for ICMP and ICMPv6
    uint8_t ip_proto
    uint8_t orig            # index of the originator in side and tcp.ep
    uint8_t orig_is_a       # orig_h/orig_p are key.a/key.pa
    uint8_t uid_swapped     # orientation differs from the first packet's
    uint8_t is_partial
    uint8_t first_seen      # bit 1: orig, bit 2: resp
    uint8_t timers_canceled
    uint8_t is_active
    uint8_t close_deferred
    uint8_t deferred_gen_event
    uint8_t inactivity      # which timeout applies: T_UDP, T_TCP, ...
    uint8_t long_idle       # an interactive service: T_LONG replaces T_TCP
    uint8_t app             # UDP analyzer: APP_NONE, APP_DNS, APP_NTP
    uint8_t app_first       # the analyzer has not yet seen its first message
    uint8_t hist_len
    uint8_t ssh_banners     # bit 1: orig, bit 2: resp opened with "SSH-"
    uint8_t uid_cached      # the table keeps its uid (payloads, weirds)
    char history[HIST_INLINE]


cdef enum:
    APP_NONE = 0
    APP_DNS = 1
    APP_NTP = 2
    APP_DNS_TCP = 3

cdef enum:
    T_UDP = 0
    T_TCP = 1
    T_ICMP = 2
    T_LONG = 3      # tcp.LONG_IDLE, Zeek's Conn::port_inactivity_timeouts


# Weird names that TCP semantics report: codes after the decoder's (flow.pyx
# WEIRD_NAMES lists the names in this order).
cdef enum:
    W_FIRST = 30
    W_SYN_seq_jump = 30
    W_TCP_seq_underflow_or_misorder
    W_TCP_ack_underflow_or_misorder
    W_above_hole_data_without_any_acks
    W_repeated_SYN_with_ack
    W_repeated_SYN_reply_wo_ack
    W_inappropriate_FIN
    W_data_before_established
    W_SYN_after_partial
    W_SYN_after_close
    W_FIN_advanced_last_seq
    W_SYN_after_reset
    W_FIN_after_reset
    W_data_after_reset
    W_connection_originator_SYN_ack
    W_simultaneous_open
    W_unsolicited_SYN_response
    W_spontaneous_FIN
    W_spontaneous_RST
    W_TCP_christmas
    W_baroque_SYN
    W_SYN_with_data
    W_possible_split_routing
    W_SYN_inside_connection
    W_DNS_unknown_opcode
    W_DNS_Conn_count_too_large
    N_WEIRDS            # at most 64: Conn.weirds is a bit set


# Weirds noted while one packet is processed (Conn.weird + new_weirds).
cdef struct Weirds:
    int n
    int code[16]


cdef inline void weird(Conn *c, Weirds *w, int code) noexcept nogil:
    """Note a weird once per connection, as the twin's Conn.weird()."""
    cdef uint64_t bit = (<uint64_t>1) << code
    if c.weirds & bit:
        return
    c.weirds |= bit
    if w.n < 16:
        w.code[w.n] = code
        w.n += 1


# ------------------------------------------------------------ accessors

cdef inline Endpoint *orig_ep(Conn *c) noexcept nogil:
    return &c.tcp.ep[c.orig]


cdef inline Endpoint *resp_ep(Conn *c) noexcept nogil:
    return &c.tcp.ep[1 - c.orig]


cdef inline Side *orig_side(Conn *c) noexcept nogil:
    return &c.side[c.orig]


cdef inline Side *resp_side(Conn *c) noexcept nogil:
    return &c.side[1 - c.orig]


cdef inline bint is_orig_ep(Conn *c, Endpoint *e) noexcept nogil:
    return e == &c.tcp.ep[c.orig]


cdef inline Endpoint *peer_of(Conn *c, Endpoint *e) noexcept nogil:
    return &c.tcp.ep[1] if e == &c.tcp.ep[0] else &c.tcp.ep[0]


cdef inline int row(Conn *c, Endpoint *e) noexcept nogil:
    """Which TcpExtra row belongs to endpoint e."""
    return 0 if e == &c.tcp.ep[0] else 1


cdef inline TcpExtra *extra_of(Conn *c) noexcept nogil:
    """The connection's TcpExtra, allocated zeroed on first use; NULL only
    when memory is exhausted (the caller then forgets what it would keep)."""
    if c.tcp.extra == NULL:
        c.tcp.extra = <TcpExtra *>calloc(1, sizeof(TcpExtra))
    return c.tcp.extra


cdef inline void set_state(Conn *c, Endpoint *e, uint8_t new_state,
                           Endpoint *peer) noexcept nogil:
    """Zeek's SetState: leaving the handshake switches to the TCP timeout."""
    if new_state == e.state:
        return
    if (new_state > SYN_ACK_SENT and e.state <= SYN_ACK_SENT
            and peer.state <= SYN_ACK_SENT):
        c.inactivity = T_LONG if c.long_idle else T_TCP
    e.prev_state = e.state
    e.state = new_state


cdef inline i128 full_last(Endpoint *e) noexcept nogil:
    return (<i128>e.seq_wraps << 32) | e.last_seq


cdef inline i128 full_ack(Endpoint *e) noexcept nogil:
    return (<i128>e.ack_wraps << 32) | e.ack_seq


cdef inline void update_last_seq(Endpoint *e, uint32_t seq) noexcept nogil:
    if seq < e.last_seq:
        e.seq_wraps += 1
    e.last_seq = seq


cdef inline void update_ack_seq(Endpoint *e, uint32_t seq) noexcept nogil:
    if seq < e.ack_seq:
        e.ack_wraps += 1
    e.ack_seq = seq


cdef inline bint no_data_acked(Endpoint *e) noexcept nogil:
    cdef i128 ack = full_ack(e)
    return ack == e.start_seq or ack == <i128>e.start_seq + 1


cdef inline uint64_t size_tcp(Endpoint *e, Endpoint *peer) noexcept nogil:
    """Payload bytes sent, from sequence numbers (Zeek's Size())."""
    cdef i128 last, ack, size
    if (e.prev_state == SYN_SENT and e.state == RESET
            and peer.state == INACTIVE and not no_data_acked(e)):
        return 0
    last = full_last(e)
    ack = full_ack(e)
    size = ((last if last > ack else ack) - e.start_seq) & U64
    if size:
        size -= 1
    if e.fin_seen and size:
        size -= 1
    return <uint64_t>size


# ------------------------------------------------------------ history

cdef inline void add_history(Conn *c, char code) noexcept nogil:
    """Append a letter; past HIST_INLINE they go to the TCP state's
    overflow buffer (only TCP histories grow that long)."""
    if c.hist_len >= HISTORY_MAX:
        return
    if c.hist_len < HIST_INLINE:
        c.history[c.hist_len] = code
    else:
        if c.tcp == NULL or extra_of(c) == NULL:
            return  # (only TCP histories grow this long)
        c.tcp.extra.hist_more[c.hist_len - HIST_INLINE] = code
    c.hist_len += 1


cdef inline bint check_history(Conn *c, uint32_t mask, char code) noexcept nogil:
    """Record code the first time mask is seen; True if seen before."""
    if c.hist_seen & mask == 0:
        c.hist_seen |= mask
        add_history(c, code)
        return False
    return True


cdef inline char lower(char code) noexcept nogil:
    if code >= 65 and code <= 90:
        return code + 32
    return code


cdef inline bint ep_check_history(Conn *c, Endpoint *e, uint32_t mask,
                                  char code) noexcept nogil:
    if not is_orig_ep(c, e):
        mask <<= 16
        code = lower(code)
    return check_history(c, mask, code)


cdef inline void ep_add_history(Conn *c, Endpoint *e, char code) noexcept nogil:
    add_history(c, code if is_orig_ep(c, e) else lower(code))


cdef inline void scaled_history(Conn *c, Endpoint *e, char code,
                                int which) noexcept nogil:
    """Zeek's ScaledHistoryEntry: the letter again at 1, 10, 100, ... events.
    The threshold is kept as its power of ten (at most 10**9)."""
    cdef TcpExtra *x = extra_of(c)
    cdef int k = row(c, e)
    cdef uint64_t cnt, thresh = 1
    cdef int i
    if x == NULL:
        return
    cnt = <uint64_t>x.cnt[k][which] + 1
    for i in range(x.thresh_exp[k][which]):
        thresh *= 10
    if cnt == thresh:
        ep_add_history(c, e, code)
        if thresh * 10 > U32:
            cnt = 0
        else:
            x.thresh_exp[k][which] += 1
    x.cnt[k][which] = <uint32_t>cnt


cdef inline void flip(Conn *c) noexcept nogil:
    """Swap originator and responder (Zeek's FlipRoles), history '^'."""
    cdef uint8_t fs = c.first_seen
    c.orig_is_a = not c.orig_is_a
    c.uid_swapped = not c.uid_swapped
    c.orig = 1 - c.orig
    c.first_seen = (2 if fs & 1 else 0) | (1 if fs & 2 else 0)
    c.is_partial = 0
    add_history(c, b'^')


cdef inline void flip_addresses(Conn *c) noexcept nogil:
    """Swap addresses, ports and MACs only, as a UDP analyzer's flip does;
    the sides' counters stay where they are (twin: Conn.flip_addresses)."""
    cdef uint8_t l2[6]
    cdef uint8_t has = c.side[0].has_l2
    c.orig_is_a = not c.orig_is_a
    c.uid_swapped = not c.uid_swapped
    memcpy(l2, c.side[0].l2, 6)
    memcpy(c.side[0].l2, c.side[1].l2, 6)
    memcpy(c.side[1].l2, l2, 6)
    c.side[0].has_l2 = c.side[1].has_l2
    c.side[1].has_l2 = has
    add_history(c, b'^')


cdef inline void init_endpoint(Endpoint *e) noexcept nogil:
    e.reasm_seq = 1
    e.trim_seq = 1


cdef inline void free_tcp(Conn *c) noexcept nogil:
    if c.tcp != NULL:
        free(c.tcp.extra)
        free(c.tcp)
        c.tcp = NULL
