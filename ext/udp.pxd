# UDP, ICMP and other-protocol connections and the DNS/NTP analyzers that
# change a connection's shape; twin: sensor/flow/udp.py (see its docstring
# for what Zeek does and why).

from libc.stdint cimport int64_t, uint8_t, uint16_t

from conn cimport *
from dnscheck cimport udp_message
from decode cimport Packet

cdef extern from *:
    const int64_t DNS_SESSION_TIMEOUT "(10 * 1000000000LL)"


cdef inline void attach_app(Conn *c, uint16_t resp_p, int64_t now) noexcept nogil:
    """Pick the analyzer by responder port, as Zeek's port table does."""
    if c.proto == 6:
        if resp_p == 53:
            c.app = APP_DNS_TCP
        return
    if resp_p == 53 or resp_p == 137 or resp_p == 5353 or resp_p == 5355:
        c.app = APP_DNS
        c.timer_ns = now + DNS_SESSION_TIMEOUT
    elif resp_p == 123:
        c.app = APP_NTP


cdef inline bint multicast(const uint8_t *addr, int alen) noexcept nogil:
    if alen == 4:
        return 224 <= addr[0] <= 239
    return addr[0] == 0xFF


cdef inline void udp_packet(Conn *c, Weirds *w, Packet *pkt,
                            const uint8_t *data, bint is_orig,
                            const uint8_t *resp_h, uint16_t resp_p,
                            int64_t now) noexcept nogil:
    """One UDP datagram: history, payload size, analyzer role flips and
    DNS violations."""
    cdef Side *ep = orig_side(c) if is_orig else resp_side(c)
    cdef int64_t n
    cdef int64_t off = pkt.payload_off
    cdef int64_t avail = pkt.payload_caplen
    cdef int mode
    check_history(c, 1 if is_orig else 2, b'D' if is_orig else b'd')
    n = pkt.udp_len - 8  # Zeek sums the UDP length field, not the capture
    ep.size = n if ep.size < 0 else ep.size + n
    c.last_ns = now
    if c.app == APP_NONE:
        return
    if c.app == APP_DNS:
        if avail < 12:
            return  # too short for a header: Zeek keeps waiting for one
        if c.app_first:
            c.app_first = 0
            if (data[off + 2] & 0x80 and is_orig
                    and not multicast(resp_h, c.key.alen)):
                flip_addresses(c)
                resp_p = c.key.pb if c.orig_is_a else c.key.pa
        if udp_message(c, w, data + off, avail, resp_p, is_orig):
            # The analyzer is gone, and with it its session timer.
            c.app = APP_NONE
            c.timer_ns = 0
    elif c.app == APP_NTP and c.app_first and avail >= 48:
        mode = data[off] & 0x07
        if (mode == 4 and is_orig) or (mode == 3 and not is_orig):
            c.app_first = 0
            flip_addresses(c)


cdef inline bint dns_expire(Conn *c, int64_t now) noexcept nogil:
    """The DNS analyzer's ExpireTimer; True when the connection ends."""
    if now - c.last_ns >= DNS_SESSION_TIMEOUT - SEC_NS:
        return True
    c.timer_ns = now + DNS_SESSION_TIMEOUT
    return False


cdef inline void other_packet(Conn *c, Packet *pkt, bint is_orig,
                              int64_t now) noexcept nogil:
    """ICMP and unknown-protocol packets: payload size and last time."""
    cdef Side *ep = orig_side(c) if is_orig else resp_side(c)
    cdef int64_t n = pkt.payload_len if pkt.payload_off >= 0 else 0
    ep.size = n if ep.size < 0 else ep.size + n
    c.last_ns = now


cdef inline int64_t teredo_inner(Packet *p, const uint8_t *d,
                                 int64_t *start) noexcept nogil:
    """The IPv6 packet inside a Teredo datagram (RFC 4380 section 5.1.1):
    its length, with its offset in start, or 0 (twin: teredo_inner, whose
    docstring says when Zeek decapsulates)."""
    cdef int64_t off = p.payload_off
    cdef int64_t end = off + p.payload_caplen
    cdef int64_t plen
    if end - off >= 4 and d[off] == 0 and d[off + 1] == 1:
        off += 4 + d[off + 2] + d[off + 3] + 8 + 1  # nonce, confirmation
    if end - off >= 8 and d[off] == 0 and d[off + 1] == 0:
        off += 8
    if end - off < 40 or d[off] >> 4 != 6:
        return 0
    plen = (<int64_t>d[off + 4] << 8) | d[off + 5]
    if d[off + 6] == 59 or off + 40 + plen != end:
        return 0
    start[0] = off
    return end - off
