"""DNS (and NetBIOS name service, mDNS, LLMNR, which share its format).

Zeek runs its DNS analyzer only on registered ports (53, 137, 5353, 5355
over UDP, 53 over TCP; there is no DPD signature) and confirms once a
message parses (RFC 1035 4.1: header, questions, resource records).
"""

from __future__ import annotations

from sensor.proto.flowdata import FlowData

UDP_PORTS = frozenset({53, 137, 5353, 5355})
TCP_PORTS = frozenset({53})

_HEADER = 12
_UPDATE = 5
_OPCODES = frozenset({0, 4, _UPDATE})  # QUERY, NOTIFY, UPDATE
# NetBIOS name service (RFC 1002 4.2.1.1) adds registration (5), release
# (6), WACK (7) and refresh (8, 9) to the same header.
NETBIOS_PORT = 137
_NETBIOS_OPCODES = frozenset({0, 4, 5, 6, 7, 8, 9})


def _skip_name(msg: bytes, off: int) -> int:
    """Return the offset after the (possibly compressed) name at ``off``, or -1."""
    for _ in range(128):
        if off >= len(msg):
            return -1
        n = msg[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            # RFC 1035 4.1.4: a pointer ends the name in this place.
            return off + 2 if off + 2 <= len(msg) else -1
        if n & 0xC0:
            return -1
        off += 1 + n
    return -1


def parse_message(msg: bytes, netbios: bool = False) -> bool:
    """True when ``msg`` is a DNS message Zeek would confirm.

    Every question and answer record must fit inside the message; the
    counts in the header are taken at their word, which is what makes a
    random datagram fail. A bare header with all counts zero passes, as it
    does for Zeek. Only QUERY, NOTIFY (RFC 1996) and UPDATE (RFC 2136)
    (on the NetBIOS port also the name service opcodes)
    pass, like Zeek's ``DNS_unknown_opcode`` check; an UPDATE must name
    exactly one zone, of type SOA (RFC 2136 2.3, Zeek's
    ``DNS_DU_invalid_zone_count`` and ``DNS_DU_incorrect_zone_type``).
    """
    if len(msg) < _HEADER:
        return False
    opcode = (msg[2] >> 3) & 0xF
    if opcode not in (_NETBIOS_OPCODES if netbios else _OPCODES):
        return False
    update = opcode == _UPDATE and not netbios
    qd, an = int.from_bytes(msg[4:6], "big"), int.from_bytes(msg[6:8], "big")
    if update and qd != 1:
        return False
    off = _HEADER
    for _ in range(qd):
        off = _skip_name(msg, off)
        if off < 0 or off + 4 > len(msg):
            return False
        if update and msg[off : off + 2] != b"\x00\x06":
            return False
        off += 4
    # Zeek confirms once the answer section parsed; the authority and
    # additional sections come after that and cannot take it back.
    for _ in range(an):
        off = _skip_name(msg, off)
        if off < 0 or off + 10 > len(msg):
            return False
        rdlen = int.from_bytes(msg[off + 8 : off + 10], "big")
        off += 10 + rdlen
        if off > len(msg):
            return False
    return True


def dns(flow: FlowData) -> bool:
    """DNS on one of Zeek's DNS ports with at least one message that parses."""
    if flow.proto == "udp":
        if flow.resp_p not in UDP_PORTS and flow.orig_p not in UDP_PORTS:
            return False
        netbios = NETBIOS_PORT in (flow.resp_p, flow.orig_p)
        return any(parse_message(p, netbios) for p in flow.orig_pkts + flow.resp_pkts)
    if flow.resp_p not in TCP_PORTS:
        return False
    for is_orig in (True, False):
        data = flow.stream(is_orig)
        if len(data) >= 2:
            n = int.from_bytes(data[:2], "big")
            if parse_message(data[2 : 2 + n]):
                return True
    return False
