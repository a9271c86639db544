# Tunnel decapsulation: where the inner packet of IP-in-IP, GRE, VXLAN and
# Geneve lies in the outer one; twin: sensor/flow/tunnel.py. Each function
# returns the inner packet's length (0 when the packet is not a well-formed
# tunnel packet), its offset in start and its link type in link; the inner
# bytes are never copied.

from libc.stdint cimport int64_t, uint8_t

from decode cimport LT_ETHERNET, LT_IPV4, LT_IPV6, Packet

cdef enum:
    VXLAN_PORT = 4789
    GENEVE_PORT = 6081
    GTP_U_PORT = 2152


cdef inline int64_t ip_end(Packet *p) noexcept nogil:
    """End of the IP datagram in the captured bytes."""
    cdef int64_t end = <int64_t>p.ip_off + p.ip_total_len
    return end if end < p.caplen else p.caplen


cdef inline int64_t ip_in_ip_inner(Packet *p, int64_t *start,
                                   int *link) noexcept nogil:
    """IPv4 or IPv6 carried directly in IP (protocols 4 and 41, RFC 2003,
    RFC 4213)."""
    cdef int64_t end = ip_end(p)
    if p.l4_off < 0 or end - p.l4_off < 20:
        return 0
    start[0] = p.l4_off
    link[0] = LT_IPV4 if p.ip_proto == 4 else LT_IPV6
    return end - p.l4_off


cdef inline int64_t gre_inner(Packet *p, const uint8_t *d, int64_t *start,
                              int *link) noexcept nogil:
    """The payload of a GRE packet (RFC 2784, RFC 2890; version 1 is PPTP,
    RFC 2637, whose PPP header is skipped)."""
    cdef int64_t off = p.l4_off
    cdef int64_t end = ip_end(p)
    cdef int64_t size = 4
    cdef int flags, version, proto
    if off < 0 or end - off < 4:
        return 0
    flags = d[off]
    version = d[off + 1] & 0x07
    proto = (d[off + 2] << 8) | d[off + 3]
    if version == 0:
        size += 4 * ((flags & 0x80 != 0) + (flags & 0x20 != 0)
                     + (flags & 0x10 != 0))
    elif version == 1:
        size += 4 + 4 * (flags & 0x10 != 0) + 4 * (d[off + 1] & 0x80 != 0)
        # PPP inside PPTP: address and control, then the protocol.
        if (proto == 0x880B and end - (off + size) >= 4
                and d[off + size] == 0xFF and d[off + size + 1] == 0x03):
            if d[off + size + 2] == 0x00 and d[off + size + 3] == 0x21:
                proto = 0x0800
            elif d[off + size + 2] == 0x00 and d[off + size + 3] == 0x57:
                proto = 0x86DD
            else:
                proto = 0
            size += 4
    else:
        return 0
    if proto == 0x0800:
        link[0] = LT_IPV4
    elif proto == 0x86DD:
        link[0] = LT_IPV6
    elif proto == 0x6558:  # transparent Ethernet bridging
        link[0] = LT_ETHERNET
    else:
        return 0
    start[0] = off + size
    return end - (off + size) if end > off + size else 0


cdef inline int64_t udp_tunnel_inner(Packet *p, const uint8_t *d, int port,
                                     int64_t *start, int *link) noexcept nogil:
    """The frame inside VXLAN (RFC 7348), Geneve (RFC 8926) or GTP-U."""
    cdef int64_t off = p.payload_off
    cdef int64_t end = off + p.payload_caplen
    cdef int64_t size
    if port == GTP_U_PORT:
        return gtp_u_inner(d, off, end, start, link)
    if off < 0 or end - off < 8 + 14:
        return 0
    link[0] = LT_ETHERNET
    if port == VXLAN_PORT and d[off] & 0x08:
        start[0] = off + 8
        return end - off - 8
    if port == GENEVE_PORT and d[off] >> 6 == 0:
        size = 8 + (d[off] & 0x3F) * 4
        if ((d[off + 2] << 8) | d[off + 3]) == 0x6558 and end - off >= size + 14:
            start[0] = off + size
            return end - off - size
    return 0


cdef inline int64_t gtp_u_inner(const uint8_t *d, int64_t off, int64_t end,
                                int64_t *start, int *link) noexcept nogil:
    """The IP packet of a GTPv1-U G-PDU (3GPP TS 29.281 section 5)."""
    cdef int flags, nxt, version
    cdef int64_t pos, size
    if off < 0 or end - off < 8:
        return 0
    flags = d[off]
    if flags >> 5 != 1 or not flags & 0x10 or d[off + 1] != 0xFF:
        return 0  # not version 1, not GTP (PT), or not a G-PDU
    pos = off + 8
    if flags & 0x07:  # E, S or PN: sequence, N-PDU and next-extension type
        if end - pos < 4:
            return 0
        nxt = d[pos + 3] if flags & 0x04 else 0
        pos += 4
        while nxt:  # extension headers, each a length in 4-byte units
            if pos >= end or d[pos] == 0:
                return 0
            size = d[pos] * 4
            if pos + size > end:
                return 0
            nxt = d[pos + size - 1]
            pos += size
    if end - pos < 20:
        return 0
    version = d[pos] >> 4
    if version == 4:
        link[0] = LT_IPV4
    elif version == 6:
        link[0] = LT_IPV6
    else:
        return 0
    start[0] = pos
    return end - pos
