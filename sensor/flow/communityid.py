"""Community ID v1: one flow identifier that Zeek, Suricata and Wireshark share.

The Community ID specification (https://github.com/corelight/community-id-spec)
hashes a flow's endpoints so that two tools that saw the same flow log the same
string, whichever direction each of them saw first. Version 1 is::

    "1:" + base64(SHA1(seed . addr_lo . addr_hi . proto . 0 . port_lo . port_hi))

with the 2-byte seed, the addresses (4 or 16 bytes) and the ports in network
byte order, and the endpoints ordered so that the numerically smaller
address:port pair comes first. Protocols without ports (anything but TCP, UDP,
SCTP, ICMP and ICMPv6) leave the ports out of the hash.

ICMP has no ports. The specification borrows Zeek's mapping (Zeek's
``ICMP4_counterpart``/``ICMP6_counterpart`` in ``src/packet_analysis/protocol/
icmp/ICMP.cc``): the message type plays the source port; for request/reply
types the *counterpart type* plays the destination port and the flow is
two-way (ordered like TCP); for every other type the code plays the
destination port and the flow is one-way (never reordered, because an error
message and its reverse are different things).

Zeek's conn.log already writes ICMP that way: ``id.orig_p`` is the type and
``id.resp_p`` the counterpart type or the code. :func:`community_id` takes the
ports as conn.log writes them, so a conn record can be hashed as it stands.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import struct
from socket import AF_INET, AF_INET6, inet_pton

#: IP protocol numbers that the specification hashes with ports.
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58
IPPROTO_SCTP = 132

_PORTED = frozenset({IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP})

# Request/reply pairs, type -> counterpart type. ICMPv4 numbers are RFC 792
# (echo, timestamp, information), RFC 1256 (router solicitation/advertisement)
# and RFC 950 (address mask). The specification's reference implementation
# (pycommunityid) pairs router advertisement back to solicitation; Zeek's own
# ICMP4_counterpart does not, and writes the code as resp_p for type 9. We
# follow the specification, so a Zeek conn record of a lone router
# advertisement (type 9, code 0) hashes as two-way here.
ICMP4_COUNTERPART: dict[int, int] = {
    0: 8,  # echo reply -> echo request
    8: 0,
    9: 10,  # router advertisement -> router solicitation
    10: 9,
    13: 14,  # timestamp -> timestamp reply
    14: 13,
    15: 16,  # information request -> information reply
    16: 15,
    17: 18,  # address mask request -> address mask reply
    18: 17,
}

# ICMPv6 pairs: echo (RFC 4443), MLD query/report (RFC 2710), router and
# neighbour discovery (RFC 4861), node information "who are you" (RFC 4620
# numbers 139/140) and home agent address discovery (RFC 6275, 144/145).
ICMP6_COUNTERPART: dict[int, int] = {
    128: 129,
    129: 128,
    130: 131,
    131: 130,
    133: 134,
    134: 133,
    135: 136,
    136: 135,
    139: 140,
    140: 139,
    144: 145,
    145: 144,
}


def community_id(
    orig_h: str, orig_p: int, resp_h: str, resp_p: int, proto: int, seed: int = 0
) -> str:
    """The Community ID v1 of a flow given as conn.log writes it.

    ``orig_h``/``resp_h`` are IPv4 or IPv6 addresses as text, ``proto`` the
    IP protocol number (``ip_proto`` in conn.log: 1 for ICMP, 58 for ICMPv6).
    For ICMP, ``orig_p`` is the message type and ``resp_p`` the code (the
    counterpart type of a request/reply pair is derived from the type, so
    Zeek's ``resp_p`` for those is accepted but not needed).

    Raises ValueError when an address is not an address, the two are of
    different families, or a port, protocol or seed is out of range.
    """
    try:
        orig = _packed(orig_h)
        resp = _packed(resp_h)
    except ValueError as e:
        raise ValueError(f"community_id: {e}") from None
    return community_id_packed(orig, orig_p, resp, resp_p, proto, seed)


def _packed(text: str) -> bytes:
    # The C library's parser first: every finished connection comes here
    # twice, and ipaddress takes about 4 us an address against 0.2. What
    # it refuses (a scope id, say) ipaddress decides, with its message.
    if type(text) is str:
        try:
            return inet_pton(AF_INET, text)
        except (OSError, ValueError):
            pass
        try:
            return inet_pton(AF_INET6, text)
        except (OSError, ValueError):
            pass
    return ipaddress.ip_address(text).packed


def community_id_packed(
    orig: bytes, orig_p: int, resp: bytes, resp_p: int, proto: int, seed: int = 0
) -> str:
    """:func:`community_id` for packed addresses (4 or 16 bytes each).

    This is the form the connection table holds, which saves a round trip
    through text for every finished connection.
    """
    if len(orig) != len(resp) or len(orig) not in (4, 16):
        raise ValueError(
            f"community_id: addresses of {len(orig)} and {len(resp)} bytes; "
            "expected both 4 (IPv4) or both 16 (IPv6)"
        )
    for name, value, top in (
        ("orig_p", orig_p, 0xFFFF),
        ("resp_p", resp_p, 0xFFFF),
        ("proto", proto, 0xFF),
        ("seed", seed, 0xFFFF),
    ):
        if not 0 <= value <= top:
            raise ValueError(f"community_id: {name} {value} outside 0..{top}")

    # Map ICMP to port equivalents; one-way messages keep their direction.
    one_way = False
    if proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
        table = ICMP4_COUNTERPART if proto == IPPROTO_ICMP else ICMP6_COUNTERPART
        counterpart = table.get(orig_p)
        if counterpart is None:
            one_way = True
        else:
            resp_p = counterpart
    has_ports = proto in _PORTED or proto in (IPPROTO_ICMP, IPPROTO_ICMPV6)
    if not has_ports:
        orig_p = resp_p = 0

    # Smaller address first; equal addresses are ordered by port.
    if not one_way and (orig, orig_p) > (resp, resp_p):
        orig, resp, orig_p, resp_p = resp, orig, resp_p, orig_p

    data = struct.pack("!H", seed) + orig + resp + struct.pack("!BB", proto, 0)
    if has_ports:
        data += struct.pack("!HH", orig_p, resp_p)
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")
