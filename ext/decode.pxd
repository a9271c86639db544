# Compiled packet decoder: one packet's bytes to a flat C struct.
#
# The struct holds every field that connection tracking needs, so that the
# flow table (ext/flow.pyx) decodes and tracks a packet without making a
# Python object. The pure-Python twin is sensor/decode/packet.py; decode()
# in decode.pyx turns this struct into the same dict that the twin returns.

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t
from libc.string cimport memcpy, memset


# Link types (https://www.tcpdump.org/linktypes.html).
cdef enum:
    LT_NULL = 0
    LT_ETHERNET = 1
    LT_RAW_12 = 12
    LT_RAW_14 = 14
    LT_RAW = 101
    LT_LOOP = 108
    LT_SLL = 113
    LT_IPV4 = 228
    LT_IPV6 = 229
    LT_SLL2 = 276


# Anomaly codes: A_<name> is the index of <name> in ANOMALY_NAMES
# (decode.pyx), which must match sensor.decode.anomaly.ANOMALIES.
cdef enum:
    A_NONE = 0
    A_truncated_link_header
    A_unknown_link_type
    A_truncated_vlan_header
    A_truncated_mpls_header
    A_mpls_unknown_payload
    A_truncated_pppoe_header
    A_non_ip_packet
    A_truncated_ARP
    A_unknown_null_family
    A_truncated_IP
    A_unknown_ip_version
    A_ip_hdr_len_zero
    A_truncated_IP_len
    A_invalid_IP_header_size
    A_internally_truncated_header
    A_incompletely_captured_fragment
    A_IPv4_min_header_size
    A_bad_IPv6_ext_header
    A_ipv6_no_next
    A_unknown_protocol
    A_truncated_header
    A_bad_TCP_header_len
    A_UDP_datagram_length_mismatch
    A_truncated_tcp_payload
    A_conn_table_full
    A_COUNT


# Bounds-checked read cursor shared by every parser below: take() hands out
# a pointer to the next n bytes, or NULL when fewer than n remain.
cdef struct Cursor:
    const uint8_t *buf
    uint32_t end
    uint32_t pos


# One decoded packet. Integer fields are -1 when their layer is absent (as
# in the twin's Packet); offsets index the packet's captured bytes.
cdef struct Packet:
    int anomaly             # A_* code, A_NONE when clean
    uint32_t wirelen
    uint32_t caplen

    # Link layer.
    uint8_t has_l2_src
    uint8_t has_l2_dst
    uint8_t l2_src[6]
    uint8_t l2_dst[6]
    int32_t ethertype
    int32_t vlan
    int32_t inner_vlan
    uint32_t mpls_off       # MPLS labels are re-read from the bytes
    uint32_t mpls_count
    int32_t arp_op
    uint8_t has_arp         # the four ARP addresses below were read
    uint8_t arp_sha[6]      # sender and target, Ethernet/IPv4 ARP only
    uint8_t arp_spa[4]
    uint8_t arp_tha[6]
    uint8_t arp_tpa[4]

    # Network layer.
    uint8_t ip_version      # 0 when absent
    int32_t ip_off
    uint8_t addr_len        # 4 or 16 once addresses were read, else 0
    uint8_t src[16]
    uint8_t dst[16]
    int32_t ip_proto        # after IPv6 extension headers
    int32_t ttl
    uint32_t ip_total_len
    uint32_t ip_hdr_len
    int64_t frag_id
    uint32_t frag_offset    # bytes
    uint8_t frag_more
    uint8_t is_fragment

    # Transport layer.
    int32_t l4_off
    int64_t l4_len
    int32_t sport
    int32_t dport
    int32_t tcp_flags
    int64_t seq
    int64_t ack
    int32_t window
    int32_t tcp_hdr_len
    int32_t wscale
    int32_t icmp_type
    int32_t icmp_code
    int32_t udp_len
    int32_t payload_off
    int64_t payload_len
    int64_t payload_caplen


# Ethernet types (https://www.iana.org/assignments/ieee-802-numbers).
cdef enum:
    ET_IPV4 = 0x0800
    ET_ARP = 0x0806
    ET_VLAN = 0x8100
    ET_QINQ = 0x88A8
    ET_QINQ_OLD = 0x9100
    ET_IPV6 = 0x86DD
    ET_MPLS = 0x8847
    ET_MPLS_MC = 0x8848
    ET_PPPOE = 0x8864

# IP protocol numbers (https://www.iana.org/assignments/protocol-numbers).
cdef enum:
    P_HOPOPT = 0
    P_ICMP = 1
    P_IPIP = 4
    P_TCP = 6
    P_UDP = 17
    P_IPV6 = 41
    P_ROUTING = 43
    P_FRAGMENT = 44
    P_GRE = 47
    P_ESP = 50
    P_AH = 51
    P_ICMPV6 = 58
    P_NONE = 59
    P_DSTOPTS = 60
    P_MOBILITY = 135


# ---------------------------------------------------------------- cursor

cdef inline const uint8_t *take(Cursor *c, uint32_t n) noexcept nogil:
    """The next n bytes, advancing the cursor; NULL if fewer remain."""
    cdef const uint8_t *at
    if c.end - c.pos < n:
        return NULL
    at = c.buf + c.pos
    c.pos += n
    return at


cdef inline const uint8_t *peek(Cursor *c, uint32_t n) noexcept nogil:
    """The next n bytes without advancing; NULL if fewer remain."""
    if c.end - c.pos < n:
        return NULL
    return c.buf + c.pos


cdef inline uint16_t be16(const uint8_t *b) noexcept nogil:
    return (<uint16_t>b[0] << 8) | b[1]


cdef inline uint32_t be32(const uint8_t *b) noexcept nogil:
    return ((<uint32_t>b[0] << 24) | (<uint32_t>b[1] << 16)
            | (<uint32_t>b[2] << 8) | b[3])


cdef inline int fail(Packet *p, int code) noexcept nogil:
    p.anomaly = code
    return code


# ---------------------------------------------------------------- link layer
#
# Each link parser returns the ethertype of what follows its header, or -1
# after setting an anomaly.

cdef inline int link_layer(Cursor *c, int linktype, Packet *p) noexcept nogil:
    """The link header of any supported LINKTYPE."""
    cdef const uint8_t *h
    cdef uint32_t fam
    if linktype == LT_ETHERNET:
        h = take(c, 14)
        if h == NULL:
            return -fail(p, A_truncated_link_header)
        memcpy(p.l2_dst, h, 6)
        memcpy(p.l2_src, h + 6, 6)
        p.has_l2_dst = 1
        p.has_l2_src = 1
        return be16(h + 12)

    # Linux cooked capture v1 (16 bytes, protocol last) and v2 (20 bytes,
    # protocol first): https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL.html
    if linktype == LT_SLL:
        h = take(c, 16)
        if h == NULL:
            return -fail(p, A_truncated_link_header)
        if be16(h + 4) == 6:
            memcpy(p.l2_src, h + 6, 6)
            p.has_l2_src = 1
        return be16(h + 14)
    if linktype == LT_SLL2:
        h = take(c, 20)
        if h == NULL:
            return -fail(p, A_truncated_link_header)
        if h[11] == 6:
            memcpy(p.l2_src, h + 12, 6)
            p.has_l2_src = 1
        return be16(h)

    # BSD loopback: a 4-byte address family, host order for NULL, network
    # order for LOOP. AF_INET is 2 everywhere; AF_INET6 is 10 (Linux),
    # 24 (NetBSD, OpenBSD), 28 (FreeBSD), 30 (macOS).
    if linktype == LT_NULL or linktype == LT_LOOP:
        h = take(c, 4)
        if h == NULL:
            return -fail(p, A_truncated_link_header)
        fam = be32(h)
        if linktype == LT_NULL and fam > 0xFFFF:
            fam = ((<uint32_t>h[3] << 24) | (<uint32_t>h[2] << 16)
                   | (<uint32_t>h[1] << 8) | h[0])
        if fam == 2:
            return ET_IPV4
        if fam == 10 or fam == 24 or fam == 28 or fam == 30:
            return ET_IPV6
        return -fail(p, A_unknown_null_family)

    if (linktype == LT_RAW or linktype == LT_RAW_12 or linktype == LT_RAW_14
            or linktype == LT_IPV4 or linktype == LT_IPV6):
        h = peek(c, 1)
        if h == NULL:
            return -fail(p, A_truncated_IP)
        return ET_IPV6 if h[0] >> 4 == 6 else ET_IPV4
    return -fail(p, A_unknown_link_type)


cdef inline int tags(Cursor *c, Packet *p, int et) noexcept nogil:
    """802.1Q/802.1ad tags, MPLS stacks and PPPoE session headers.

    Returns the ethertype after them, or -1 after an anomaly. After an MPLS
    stack the payload type is guessed from the version nibble, as routers
    do: RFC 3032 carries no payload type.
    """
    cdef const uint8_t *t
    cdef uint16_t ppp
    while True:
        if et == ET_VLAN or et == ET_QINQ or et == ET_QINQ_OLD:
            t = take(c, 4)
            if t == NULL:
                return -fail(p, A_truncated_vlan_header)
            # Zeek logs the outermost tag as vlan and the next as inner_vlan.
            if p.vlan < 0:
                p.vlan = be16(t) & 0x0FFF
            elif p.inner_vlan < 0:
                p.inner_vlan = be16(t) & 0x0FFF
            et = be16(t + 2)
        elif et == ET_MPLS or et == ET_MPLS_MC:
            if p.mpls_count == 0:
                p.mpls_off = c.pos
            while True:
                t = take(c, 4)
                if t == NULL:
                    return -fail(p, A_truncated_mpls_header)
                p.mpls_count += 1
                if t[2] & 1:  # bottom of stack (RFC 3032 section 2.1)
                    break
            t = peek(c, 1)
            if t == NULL:
                return -fail(p, A_truncated_mpls_header)
            if t[0] >> 4 == 4:
                et = ET_IPV4
            elif t[0] >> 4 == 6:
                et = ET_IPV6
            else:
                return -fail(p, A_mpls_unknown_payload)
        elif et == ET_PPPOE:
            # RFC 2516 session header (6 bytes), then the PPP protocol.
            t = take(c, 8)
            if t == NULL:
                return -fail(p, A_truncated_pppoe_header)
            ppp = be16(t + 6)
            if ppp == 0x0021:
                et = ET_IPV4
            elif ppp == 0x0057:
                et = ET_IPV6
            else:
                p.ethertype = ET_PPPOE
                return -fail(p, A_non_ip_packet)
        else:
            return et


# ---------------------------------------------------------------- network

cdef inline int ipv6_chain(Cursor *c, Packet *p, uint8_t nxt) noexcept nogil:
    """Walk the IPv6 extension headers that Zeek walks (RFC 8200 section
    4); leaves the cursor after them and returns the transport protocol,
    or -1 after an anomaly."""
    cdef const uint8_t *e
    cdef uint32_t size, word
    while (nxt == P_HOPOPT or nxt == P_ROUTING or nxt == P_FRAGMENT
           or nxt == P_AH or nxt == P_DSTOPTS or nxt == P_MOBILITY):
        e = peek(c, 8)
        if e == NULL:
            return -fail(p, A_bad_IPv6_ext_header)
        if nxt == P_FRAGMENT:
            word = be16(e + 2)
            p.frag_offset = word & 0xFFF8
            p.frag_more = word & 1
            p.frag_id = be32(e + 4)
            p.is_fragment = p.frag_offset != 0 or p.frag_more != 0
            size = 8
        elif nxt == P_AH:
            # RFC 4302 section 2.2: 4-octet units, minus 2.
            size = (<uint32_t>e[1] + 2) * 4
        else:
            size = (<uint32_t>e[1] + 1) * 8
        nxt = e[0]
        if take(c, size) == NULL:
            return -fail(p, A_bad_IPv6_ext_header)
        if p.is_fragment:
            break  # what follows belongs to the reassembled datagram
    return nxt


cdef inline int ip_layer(Cursor *c, Packet *p) noexcept nogil:
    """IPv4 (RFC 791) or IPv6 header, with Zeek's length checks in Zeek's
    order (packet_analysis/protocol/ip/IP.cc), then the transport header.

    Returns 0 when the table should go on with this packet; a complete
    fragment stops here with is_fragment set, for reassembly.
    """
    cdef const uint8_t *h = peek(c, 20)
    cdef uint32_t caplen = c.end - c.pos
    cdef uint32_t off = c.pos
    cdef int64_t total, hdr_len
    cdef uint32_t word
    cdef int proto
    p.ip_off = off
    if h == NULL:
        return fail(p, A_truncated_IP)

    if h[0] >> 4 == 4:
        p.ip_version = 4
        hdr_len = (h[0] & 0x0F) * 4
        total = be16(h + 2)
        p.ttl = h[8]
        proto = h[9]
        p.addr_len = 4
        memcpy(p.src, h + 12, 4)
        memcpy(p.dst, h + 16, 4)
        word = be16(h + 6)
        p.frag_id = be16(h + 4)
        p.frag_offset = (word & 0x1FFF) * 8
        p.frag_more = (word >> 13) & 1
        p.is_fragment = p.frag_offset != 0 or p.frag_more != 0
    elif h[0] >> 4 == 6:
        p.ip_version = 6
        h = take(c, 40)
        if h == NULL:
            return fail(p, A_truncated_IP)
        # Zeek takes a payload length of 0 (jumbogram, offload) at face
        # value: the packet is then too short for its transport header.
        total = be16(h + 4) + 40
        p.ttl = h[7]
        p.addr_len = 16
        memcpy(p.src, h + 8, 16)
        memcpy(p.dst, h + 24, 16)
        proto = ipv6_chain(c, p, h[6])
        if proto < 0:
            return p.anomaly
        hdr_len = c.pos - off
    else:
        return fail(p, A_unknown_ip_version)

    # Zeek reports a zero total length (segmentation offload) and then
    # trusts the capture; the later checks may replace the anomaly.
    if total == 0:
        fail(p, A_ip_hdr_len_zero)
        total = caplen
    if p.wirelen < total + off:
        return fail(p, A_truncated_IP_len)
    if hdr_len > total:
        return fail(p, A_invalid_IP_header_size)
    if hdr_len > caplen:
        return fail(p, A_internally_truncated_header)
    if p.ip_version == 4 and hdr_len < 20:
        return fail(p, A_IPv4_min_header_size)
    p.ip_total_len = total
    p.ip_hdr_len = hdr_len
    p.ip_proto = proto
    if p.is_fragment:
        if caplen < total:
            fail(p, A_incompletely_captured_fragment)
            if p.frag_offset != 0:
                return p.anomaly
            # Zeek keeps a first fragment for header-only analysis.
            p.is_fragment = 0
        else:
            return 0  # the table reassembles, then calls transport()
    transport(c.buf, c.end, p)
    return p.anomaly


# ---------------------------------------------------------------- transport

cdef inline bint header_fits(Packet *p, int64_t need, int64_t length,
                             int64_t remaining) noexcept nogil:
    # Zeek's CheckHeaderTrunc: a zero IP payload length (offload) passes.
    if length and length < need:
        fail(p, A_truncated_header)
        return False
    if remaining < need:
        fail(p, A_internally_truncated_header)
        return False
    return True


cdef inline void set_payload(Packet *p, int64_t off, int64_t length,
                             int64_t remaining) noexcept nogil:
    p.payload_off = off
    p.payload_len = length
    if remaining < length:
        length = remaining
    p.payload_caplen = length if length > 0 else 0


cdef inline int tcp_wscale(const uint8_t *b, uint32_t pos,
                           uint32_t end) noexcept nogil:
    """The window-scale option of a SYN (RFC 7323 section 2), or -1."""
    cdef uint32_t kind, n
    while pos < end:
        kind = b[pos]
        if kind == 0:
            break
        if kind == 1:
            pos += 1
            continue
        if pos + 1 >= end:
            break
        n = b[pos + 1]
        if n < 2 or pos + n > end:
            break
        if kind == 3 and n >= 3:
            return b[pos + 2]
        pos += n
    return -1


cdef inline void transport(const uint8_t *buf, uint32_t end,
                           Packet *p) noexcept nogil:
    """TCP (RFC 9293), UDP (RFC 768) or ICMP/ICMPv6 header after a complete
    IP header; buf[:end] holds the IP datagram from p.ip_off on.

    Lengths come from the IP header; ``remaining`` counts captured bytes,
    link padding included, as the twin and Zeek do.
    """
    cdef uint32_t off = p.ip_off + p.ip_hdr_len
    cdef int64_t length = <int64_t>p.ip_total_len - p.ip_hdr_len
    cdef int64_t remaining = <int64_t>end - off
    cdef const uint8_t *h = buf + off
    cdef int32_t hlen
    p.l4_off = off
    p.l4_len = length

    if p.ip_proto == P_TCP:
        if not header_fits(p, 20, length, remaining):
            return
        p.sport = be16(h)
        p.dport = be16(h + 2)
        p.seq = be32(h + 4)
        p.ack = be32(h + 8)
        hlen = (h[12] >> 4) * 4
        p.tcp_flags = h[13]
        p.window = be16(h + 14)
        if hlen < 20:
            fail(p, A_bad_TCP_header_len)
            return
        if hlen > length or hlen > remaining:
            fail(p, A_truncated_header)
            return
        p.tcp_hdr_len = hlen
        if p.tcp_flags & 0x02:
            p.wscale = tcp_wscale(buf, off + 20, off + hlen)
        set_payload(p, off + hlen, length - hlen, remaining - hlen)
    elif p.ip_proto == P_UDP:
        if not header_fits(p, 8, length, remaining):
            return
        p.sport = be16(h)
        p.dport = be16(h + 2)
        p.udp_len = be16(h + 4)
        if p.udp_len != length:
            fail(p, A_UDP_datagram_length_mismatch)
        set_payload(p, off + 8, length - 8, remaining - 8)
    elif p.ip_proto == P_ICMP or p.ip_proto == P_ICMPV6:
        if not header_fits(p, 8, length, remaining):
            return
        p.icmp_type = h[0]
        p.icmp_code = h[1]
        set_payload(p, off + 8, length - 8, remaining - 8)
    elif p.ip_proto == P_NONE:
        fail(p, A_ipv6_no_next)
    elif (p.ip_proto == P_IPIP or p.ip_proto == P_IPV6 or p.ip_proto == P_GRE
          or p.ip_proto == P_ESP):
        # Tunnels Zeek would decapsulate, and ESP, are not tracked.
        # TODO: decapsulate tunnels (Zeek logs the inner connections too).
        fail(p, A_unknown_protocol)
    # Other protocols (IGMP, PIM, ...) are tracked without ports, as Zeek's
    # "unknown_transport" connections.


# ---------------------------------------------------------------- packet

cdef inline int decode_packet(const uint8_t *buf, uint32_t caplen,
                              uint32_t wirelen, int linktype,
                              Packet *p) noexcept nogil:
    """Decode one packet into p; returns p.anomaly (A_NONE when clean).

    Mirrors sensor.decode.packet.parse() step by step: decoding stops at
    the first layer it cannot go past, and what came before stays in p.
    """
    cdef Cursor c
    cdef int et
    cdef const uint8_t *h

    memset(p, 0, sizeof(Packet))
    p.wirelen = wirelen
    p.caplen = caplen
    p.ethertype = -1
    p.vlan = -1
    p.inner_vlan = -1
    p.arp_op = -1
    p.ip_off = -1
    p.ip_proto = -1
    p.ttl = -1
    p.frag_id = -1
    p.l4_off = -1
    p.sport = -1
    p.dport = -1
    p.tcp_flags = -1
    p.seq = -1
    p.ack = -1
    p.window = -1
    p.tcp_hdr_len = -1
    p.wscale = -1
    p.icmp_type = -1
    p.icmp_code = -1
    p.udp_len = -1
    p.payload_off = -1
    c.buf = buf
    c.end = caplen
    c.pos = 0

    et = link_layer(&c, linktype, p)
    if et < 0:
        return p.anomaly
    et = tags(&c, p, et)
    if et < 0:
        return p.anomaly
    p.ethertype = et

    if et == ET_ARP:
        if peek(&c, 8) == NULL:
            return fail(p, A_truncated_ARP)
        h = c.buf + c.pos
        p.arp_op = be16(h + 6)
        # RFC 826 over Ethernet for IPv4: hardware type 1, protocol
        # 0x0800, address lengths 6 and 4; 28 bytes in all.
        if (peek(&c, 28) != NULL and be16(h) == 1 and be16(h + 2) == ET_IPV4
                and h[4] == 6 and h[5] == 4):
            p.has_arp = 1
            memcpy(p.arp_sha, h + 8, 6)
            memcpy(p.arp_spa, h + 14, 4)
            memcpy(p.arp_tha, h + 18, 6)
            memcpy(p.arp_tpa, h + 24, 4)
        return 0
    if et != ET_IPV4 and et != ET_IPV6:
        return fail(p, A_non_ip_packet)
    return ip_layer(&c, p)
