# Text of a connection's record: addresses, MACs, history, conn_state and
# the uid; twin: sensor/flow/record.py and sensor/flow/uid.py. Made only
# when a record, weird or payload event is, never per packet.

from libc.stdint cimport int64_t, uint8_t, uint16_t, uint64_t
from libc.string cimport memcpy

from blake2b cimport blake2b_short
from conn cimport *

cdef extern from *:
    """
    static const char sensor_hex[] = "0123456789abcdef";
    static const char sensor_b62[] =
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    """
    const char *HEX "sensor_hex"
    const char *B62 "sensor_b62"
    ctypedef unsigned long long u128 "unsigned __int128"


cdef inline const uint8_t *orig_h(Conn *c) noexcept nogil:
    if c.orig_is_a:
        return &c.key.a[0]
    return &c.key.b[0]


cdef inline const uint8_t *resp_h(Conn *c) noexcept nogil:
    if c.orig_is_a:
        return &c.key.b[0]
    return &c.key.a[0]


cdef inline uint16_t orig_p(Conn *c) noexcept nogil:
    return c.key.pa if c.orig_is_a else c.key.pb


cdef inline uint16_t resp_p(Conn *c) noexcept nogil:
    return c.key.pb if c.orig_is_a else c.key.pa


cdef inline int64_t floor_div(int64_t a, int64_t b) noexcept nogil:
    """a // b as Python rounds it (towards minus infinity)."""
    cdef int64_t q = a // b
    if (a % b != 0) and ((a < 0) != (b < 0)):
        q -= 1
    return q


cdef inline str mac_text(const uint8_t *b):
    """aa:bb:cc:dd:ee:ff, lowercase, as the twin prints MAC addresses."""
    cdef char text[17]
    cdef int i
    for i in range(6):
        text[3 * i] = HEX[b[i] >> 4]
        text[3 * i + 1] = HEX[b[i] & 15]
        if i < 5:
            text[3 * i + 2] = 58
    return text[:17].decode("ascii")


cdef inline str ipv4_text(const uint8_t *b):
    """Dotted decimal, as ipaddress prints an IPv4 address."""
    cdef char text[16]
    cdef int i, k = 0, v
    for i in range(4):
        v = b[i]
        if v >= 100:
            text[k] = 48 + v // 100
            k += 1
        if v >= 10:
            text[k] = 48 + (v // 10) % 10
            k += 1
        text[k] = 48 + v % 10
        k += 1
        text[k] = 46
        k += 1
    return text[:k - 1].decode("ascii")


cdef inline bint rstos0(str history):
    # Zeek: /\^?S[^HAFGIQ]*R.*/ matched against the whole history.
    h = history[1:] if history.startswith("^") else history
    if not h.startswith("S"):
        return False
    for ch in h[1:]:
        if ch == "R":
            return True
        if ch in "HAFGIQ":
            return False
    return False


cdef inline str history_text(Conn *c):
    cdef int n = c.hist_len if c.hist_len < HIST_INLINE else HIST_INLINE
    h = c.history[:n].decode("ascii")
    if c.hist_len > HIST_INLINE:
        h += c.tcp.extra.hist_more[:c.hist_len - HIST_INLINE].decode("ascii")
    return h


cdef inline str conn_state(Conn *c, str history):
    """Zeek's conn_state() (twin: record.conn_state)."""
    cdef Endpoint *o
    cdef Endpoint *r
    cdef uint8_t os_, rs
    cdef bint o_inactive, r_inactive
    if c.proto == 17:
        if orig_side(c).size >= 0:
            return "SF" if resp_side(c).size >= 0 else "S0"
        return "SHR" if resp_side(c).size >= 0 else "OTH"
    if c.proto != 6:
        return "OTH"
    o = orig_ep(c)
    r = resp_ep(c)
    os_ = o.state
    rs = r.state
    o_inactive = os_ == INACTIVE or os_ == PARTIAL
    r_inactive = rs == INACTIVE or rs == PARTIAL
    if rs == RESET:
        if (os_ == SYN_SENT or os_ == SYN_ACK_SENT or (
                os_ == RESET and size_tcp(o, r) == 0 and size_tcp(r, o) == 0)):
            return "REJ"
        return "RSTRH" if o_inactive else "RSTR"
    if os_ == RESET:
        if r_inactive:
            return "RSTOS0" if rstos0(history) else "OTH"
        return "RSTO"
    if rs == CLOSED and os_ == CLOSED:
        return "SF"
    if os_ == CLOSED:
        return "SH" if r_inactive else "S2"
    if rs == CLOSED:
        return "SHR" if o_inactive else "S3"
    if os_ == SYN_SENT and rs == INACTIVE:
        return "S0"
    if os_ == ESTABLISHED and rs == ESTABLISHED:
        return "S1"
    return "OTH"


cdef inline str fast_uid(int64_t ts_ns, int ip_proto, const uint8_t *a, uint16_t ap,
                  const uint8_t *b, uint16_t bp, uint64_t serial, int alen):
    """sensor.flow.uid.conn_uid made in C: key packing, BLAKE2b and the
    base62 digits (the Python version was half of the table's time on scan
    traffic). FAST_UID says whether it still agrees."""
    cdef uint8_t key[53]
    cdef uint8_t d[12]
    cdef u128 n = 0
    cdef char text[24]
    cdef int i, k = 24
    for i in range(8):
        key[i] = (<uint64_t>ts_ns >> (56 - 8 * i)) & 0xFF
    key[8] = ip_proto
    key[9] = ap >> 8
    key[10] = ap & 0xFF
    key[11] = bp >> 8
    key[12] = bp & 0xFF
    for i in range(8):
        key[13 + i] = (serial >> (56 - 8 * i)) & 0xFF
    memcpy(key + 21, a, alen)
    memcpy(key + 21 + alen, b, alen)
    blake2b_short(key, 21 + 2 * alen, 12, d)
    for i in range(12):
        n = (n << 8) | d[i]
    while True:
        k -= 1
        text[k] = B62[<int>(n % 62)]
        n //= 62
        if n == 0:
            break
    k -= 1
    text[k] = 67  # "C"
    return text[k:24].decode("ascii")
