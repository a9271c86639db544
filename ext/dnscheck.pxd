# The DNS analyzer's protocol violations, which mark a connection's history;
# twin: sensor/flow/dnscheck.py (its docstring says what Zeek does).
# The TCP framing state lives in TcpExtra: the first HEAD bytes of the
# current message (with its two-byte length) and the count still missing.

from libc.stdint cimport int64_t, uint8_t, uint32_t

from conn cimport *

cdef enum:
    MAX_QUERIES = 25        # dns_max_queries


cdef inline int violation(const uint8_t *msg, int64_t n,
                          bint netbios) noexcept nogil:
    """The weird code of Zeek's DNS violation for msg[:n], or 0."""
    cdef int opcode
    if n < 12:
        return 0  # Zeek only notes a weird for a short message
    opcode = (msg[2] >> 3) & 0x0F
    if not (opcode == 0 or opcode == 4 or opcode == 5 or (
            netbios and 6 <= opcode <= 9)):
        return W_DNS_unknown_opcode
    if ((<int>msg[4] << 8) | msg[5]) > MAX_QUERIES:
        return W_DNS_Conn_count_too_large
    return 0


cdef inline bint violated(Conn *c, Weirds *w, int code,
                          bint is_orig) noexcept nogil:
    if not code:
        return False
    weird(c, w, code)
    add_history(c, b'X' if is_orig else b'x')
    return True


cdef inline bint udp_message(Conn *c, Weirds *w, const uint8_t *msg, int64_t n,
                             uint16_t resp_p, bint is_orig) noexcept nogil:
    """Judge one datagram; True (and the history letter) on a violation."""
    return violated(c, w, violation(msg, n, resp_p == 137), is_orig)


cdef inline bint judge(Conn *c, Weirds *w, TcpExtra *x, int i,
                       bint is_orig) noexcept nogil:
    return violated(c, w, violation(x.dns_buf[i] + 2, x.dns_len[i] - 2, False),
                    is_orig)


cdef inline bint tcp_data(Conn *c, Weirds *w, const uint8_t *data, int64_t n,
                          bint is_orig) noexcept nogil:
    """Follow in-order stream bytes; True once a message is a violation."""
    cdef TcpExtra *x = extra_of(c)
    cdef int i = 0 if is_orig else 1
    cdef int64_t take, room, k
    if x == NULL:
        return False  # out of memory: the stream is not followed
    while n > 0:
        if x.dns_need[i] == 0 and x.dns_len[i] >= 2:
            x.dns_len[i] = 0  # the previous message was judged
        if x.dns_len[i] < 2:
            take = 2 - x.dns_len[i]
            if take > n:
                take = n
            for k in range(take):
                x.dns_buf[i][x.dns_len[i] + k] = data[k]
            x.dns_len[i] += take
            data += take
            n -= take
            if x.dns_len[i] == 2:
                x.dns_need[i] = (<uint32_t>x.dns_buf[i][0] << 8) | x.dns_buf[i][1]
                if x.dns_need[i] == 0:
                    x.dns_len[i] = 0
            continue
        take = x.dns_need[i] if x.dns_need[i] < n else n
        room = DNS_HEAD + 2 - x.dns_len[i]
        if room > 0:
            if room > take:
                room = take
            for k in range(room):
                x.dns_buf[i][x.dns_len[i] + k] = data[k]
            x.dns_len[i] += room
        x.dns_need[i] -= take
        data += take
        n -= take
        if x.dns_need[i] == 0 and judge(c, w, x, i, is_orig):
            return True
    return False


cdef inline bint tcp_eof(Conn *c, Weirds *w, bint is_orig) noexcept nogil:
    """The end of one direction: a partial message is judged as it is."""
    cdef TcpExtra *x = c.tcp.extra
    cdef int i = 0 if is_orig else 1
    if x != NULL and x.dns_need[i] > 0 and x.dns_len[i] > 2:
        x.dns_need[i] = 0
        return judge(c, w, x, i, is_orig)
    return False
