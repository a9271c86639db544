"""DNS messages (RFC 1035 4.1) as Zeek's DNS analyzer reads them.

:func:`parse_message` turns one message into a :class:`DNSMessage`: the
header, the questions, and for each resource record that Zeek's scripts
summarise in dns.log the summary text (``reply``). It never raises: a
message that ends early keeps what was read before the end and names the
problem in ``anomalies`` with Zeek's weird names (``DNS_truncated_...``).

Design note on names (RFC 1035 4.1.4): a compression pointer may only point
backwards, before the pointer itself, and the name it leads to may not read
past the pointer. Each jump therefore moves to strictly earlier bytes, so
pointer loops end after at most one pass over the message; a forward or
self-pointing pointer is the anomaly ``DNS_label_forward_compress_offset``.
Names are capped at 512 bytes as Zeek's buffer is.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from sensor.proto.parsers.dnsconst import qtype_name

HEADER_LEN = 12
#: Largest name Zeek builds (its buffer is 513 bytes with the terminator).
MAX_NAME = 512
#: More questions than this is not DNS (Zeek's ``dns_max_queries``).
MAX_QUESTIONS = 25
#: Resource records summarised per message at most; the rest are counted.
MAX_RECORDS = 1000

OP_UPDATE = 5

_HEADER = struct.Struct(">HHHHHH")  # RFC 1035 4.1.1
_RR = struct.Struct(">HHIH")  # type, class, TTL, RDLENGTH (RFC 1035 4.1.3)
_QUESTION = struct.Struct(">HH")  # QTYPE, QCLASS (RFC 1035 4.1.2)

# Which section a record came from, as Zeek's ``answer_type``.
ANSWER, PREREQUISITE, UPDATE = "ans", "pre", "upd"
_CLASS_NONE, _CLASS_ANY, _TYPE_ANY = 254, 255, 255


@dataclass(slots=True)
class DNSRecord:
    """One resource record; ``reply`` is Zeek's summary of it.

    ``reply`` is None where Zeek's scripts log nothing for the type (HINFO,
    CAA, SVCB, ...), and empty where they note the reply but add no answer
    (WKS).
    """

    kind: str
    name: bytes
    rtype: int
    rclass: int
    ttl: int
    reply: bytes | None


@dataclass(slots=True)
class DNSMessage:
    """One DNS message: header fields, questions and summarised records."""

    id: int
    qr: bool
    opcode: int
    aa: bool
    tc: bool
    rd: bool
    ra: bool
    z: int
    rcode: int
    qdcount: int
    ancount: int
    nscount: int
    arcount: int
    questions: list[tuple[bytes, int, int]] = field(default_factory=list)
    records: list[DNSRecord] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)


def read_name(
    msg: bytes, off: int, end: int, netbios: bool = False, lower: bool = True
) -> tuple[bytes, int, str | None]:
    """The name at ``off`` (not reading at or past ``end``).

    Returns the name (labels joined by dots, no trailing dot), the offset
    after it in the original position, and an anomaly name or None. Zeek
    lowers the ASCII letters of names (``lower``).
    """
    labels: list[bytes] = []
    size = 0  # bytes of the name so far, a dot after each label
    anomaly: str | None = None
    pos, limit = off, end
    after = -1  # where the name ends in the original position, once known
    while True:
        if pos >= limit:
            break
        n = msg[pos]
        pos += 1
        if pos >= limit:
            break
        if n == 0:
            break
        if n & 0xC0 == 0xC0:
            target = ((n & 0x3F) << 8) | msg[pos]
            pos += 1
            if after < 0:
                after = pos
            if target >= pos - 2:
                anomaly = "DNS_label_forward_compress_offset"
                break
            # The name continues at ``target`` and may not run into the pointer.
            limit, pos = pos - 2, target
            continue
        if n > limit - pos:
            anomaly = "DNS_label_len_gt_pkt"
            pos = limit
            break
        if n > 63 and not netbios:
            anomaly = "DNS_label_too_long"
            break
        if n >= MAX_NAME - size:
            anomaly = "DNS_label_len_gt_name_len"
            break
        labels.append(msg[pos : pos + n])
        size += n + 1
        pos += n
    # Labels are never empty (a zero length ends the name): joined by dots,
    # the name has no trailing dot.
    name = b".".join(labels)
    if lower:
        return name.lower(), (after if after >= 0 else pos), anomaly
    return name, (after if after >= 0 else pos), anomaly


def parse_message(msg: bytes, netbios: bool = False) -> DNSMessage | None:
    """Parse one message; None if it is shorter than the 12-byte header."""
    if len(msg) < HEADER_LEN:
        return None
    ident, flags, qd, an, ns, ar = _HEADER.unpack_from(msg)
    m = DNSMessage(
        id=ident,
        qr=bool(flags & 0x8000),
        opcode=(flags >> 11) & 0xF,
        aa=bool(flags & 0x0400),
        tc=bool(flags & 0x0200),
        rd=bool(flags & 0x0100),
        ra=bool(flags & 0x0080),
        z=(flags >> 4) & 0x7,
        rcode=flags & 0xF,
        qdcount=qd,
        ancount=an,
        nscount=ns,
        arcount=ar,
    )
    if m.qdcount > MAX_QUESTIONS:
        m.anomalies.append("DNS_Conn_count_too_large")
        return m

    off = HEADER_LEN
    for _ in range(m.qdcount):
        name, off, anomaly = read_name(msg, off, len(msg), netbios)
        if anomaly:
            m.anomalies.append(anomaly)
        if len(msg) - off < 4:
            m.anomalies.append("DNS_truncated_quest_too_short")
            return m
        qtype, qclass = _QUESTION.unpack_from(msg, off)
        m.questions.append((name, qtype, qclass))
        off += 4

    # Zeek skips the authority and additional sections (dns_skip_all_auth,
    # dns_skip_all_addl), except that an UPDATE's authority section is its
    # update section (RFC 2136 2.2), whose records dns.log lists.
    update = m.opcode == OP_UPDATE and not netbios
    sections = [(m.ancount, PREREQUISITE if update else ANSWER)]
    if update:
        sections.append((m.nscount, UPDATE))
    for count, kind in sections:
        for _ in range(count):
            if len(m.records) >= MAX_RECORDS:
                m.anomalies.append("DNS_too_many_records")
                return m
            off = _parse_record(msg, off, kind, netbios, m)
            if off < 0:
                return m
    return m


def _parse_record(msg: bytes, off: int, kind: str, netbios: bool, m: DNSMessage) -> int:
    """Parse the record at ``off`` into ``m``; the offset after it, or -1."""
    name, off, anomaly = read_name(msg, off, len(msg), netbios)
    if anomaly:
        m.anomalies.append(anomaly)
    if len(msg) - off < 10:
        m.anomalies.append("DNS_truncated_ans_too_short")
        return -1
    fields: tuple[int, int, int, int] = _RR.unpack_from(msg, off)
    rtype, rclass, ttl, rdlen = fields
    off += 10
    if rdlen > len(msg) - off:
        m.anomalies.append("DNS_truncated_RR_rdlength_lt_len")
        return -1
    if rdlen == 0 and off < len(msg) and kind == ANSWER:
        # Zeek stops at an empty record that is not the last thing in the
        # message (an UPDATE's deletions are empty by design, RFC 2136 2.5).
        m.anomalies.append("DNS_zero_rdlength")
        return -1

    end = off + rdlen
    if kind == PREREQUISITE and rclass in (_CLASS_NONE, _CLASS_ANY):
        reply: bytes | None = b"pre: " + _prerequisite(name, rtype, rclass)
    elif kind == UPDATE and rclass in (_CLASS_NONE, _CLASS_ANY):
        reply = b"del: " + _deletion(name, rtype, rclass)
    else:
        try:
            reply = _rdata(msg, off, end, rtype, name, kind != ANSWER, netbios)
        except _Malformed as e:
            m.anomalies.append(str(e))
            return -1
        if reply is not None and kind == UPDATE:
            reply = b"add: " + reply
    m.records.append(DNSRecord(kind, name, rtype, rclass, ttl, reply))
    return end


def _prerequisite(name: bytes, rtype: int, rclass: int) -> bytes:
    # RFC 2136 2.4: class NONE or ANY with type ANY or a type name.
    tname = _type_name(rtype)
    if rtype == _TYPE_ANY:
        return (b"NameNotInUse " if rclass == _CLASS_NONE else b"NameInUse ") + name
    if rclass == _CLASS_NONE:
        return b"NoRRSet " + tname + b" " + name
    return b"RRSetExists " + tname + b" " + name


def _deletion(name: bytes, rtype: int, rclass: int) -> bytes:
    # RFC 2136 2.5.2-2.5.4.
    if rclass == _CLASS_ANY and rtype == _TYPE_ANY:
        return b"RRSet * " + name
    if rclass == _CLASS_NONE:
        return b"RR " + _type_name(rtype) + b" " + name
    return b"RRSet " + _type_name(rtype)


def _type_name(rtype: int) -> bytes:
    return qtype_name(rtype).encode()


class _Malformed(Exception):
    """Record data that does not fit its type; the text is the anomaly."""


def _rdata(
    msg: bytes,
    off: int,
    end: int,
    rtype: int,
    owner: bytes,
    update: bool,
    netbios: bool,
) -> bytes | None:
    """Zeek's summary of one record's data (see :class:`DNSRecord`)."""
    if rtype == 1 and end - off == 4 and not update:
        # The common answer, formatted as ipaddress would, without it.
        return b"%d.%d.%d.%d" % (msg[off], msg[off + 1], msg[off + 2], msg[off + 3])
    data = msg[off:end]
    if rtype in (1, 28, 38):  # A, AAAA, A6
        size = 4 if rtype == 1 else 16
        if len(data) != size:
            raise _Malformed("DNS_RR_bad_length")
        addr = str(ipaddress.ip_address(data)).encode()
        if update and not netbios:
            return {1: b"A", 28: b"AAAA", 38: b"A6"}[rtype] + b" " + owner + b" " + addr
        return addr
    if rtype in (2, 5, 12):  # NS, CNAME, PTR
        return read_name(msg, off, len(msg))[0]
    if rtype == 15:  # MX: preference, exchange
        _need(data, 3)
        return read_name(msg, off + 2, len(msg))[0]
    if rtype == 6:  # SOA: only the primary name server is logged
        return read_name(msg, off, len(msg))[0]
    if rtype == 33:
        if netbios:  # NBSTAT (RFC 1002 4.2.18) reuses SRV's number
            return None
        _need(data, 7)
        return read_name(msg, off + 6, len(msg))[0]
    if rtype in (16, 99):  # TXT, SPF: every character-string
        label = b"TXT" if rtype == 16 else b"SPF"
        return b" ".join(b"%s %d %s" % (label, len(s), s) for s in _strings(data))
    if rtype == 11:  # WKS
        return b""
    if rtype == 35:  # NAPTR (RFC 3403 4.1)
        return _naptr(msg, off, data)
    if rtype == 46:  # RRSIG (RFC 4034 3.1)
        _need(data, 19)
        signer = read_name(msg, off + 18, end)[0] or b"<Root>"
        return b"RRSIG %d %s" % (int.from_bytes(data[0:2], "big"), signer)
    if rtype == 48:  # DNSKEY (RFC 4034 2.1)
        _need(data, 4)
        return b"DNSKEY %d" % data[3]
    if rtype == 43:  # DS (RFC 4034 5.1)
        _need(data, 4)
        return b"DS %d %d" % (data[2], data[3])
    if rtype == 47:  # NSEC (RFC 4034 4.1)
        return b"NSEC %s %s" % (owner, read_name(msg, off, end)[0])
    if rtype == 50:
        return b"NSEC3"
    if rtype == 51:
        return b"NSEC3PARAM"
    if rtype == 44:  # SSHFP (RFC 4255 3.1)
        _need(data, 2)
        return b"SSHFP: " + data[2:].hex().encode()
    if rtype == 29:  # LOC (RFC 1876 2)
        _need(data, 4)
        return b"LOC:  %d %d %d" % (data[1], data[2], data[3])
    if rtype == 65534:  # BIND 9's private signing-state record
        return b"BIND9 signing signal"
    if rtype in (13, 32, 41, 64, 65, 249, 250, 257):
        # HINFO, NetBIOS NB, OPT, SVCB, HTTPS, TKEY, TSIG, CAA: Zeek parses
        # them but its dns.log scripts do not list them.
        return None
    return b"<unknown type=%d>" % rtype


def _need(data: bytes, n: int) -> None:
    if len(data) < n:
        raise _Malformed("DNS_RR_length_mismatch")


def _strings(data: bytes) -> list[bytes]:
    # RFC 1035 3.3: <character-string> is a length byte and that many bytes.
    out, i = [], 0
    while i < len(data):
        n = data[i]
        if i + 1 + n > len(data):
            raise _Malformed("DNS_TXT_char_str_past_rdlen")
        out.append(data[i + 1 : i + 1 + n])
        i += 1 + n
    return out


def _naptr(msg: bytes, off: int, data: bytes) -> bytes:
    _need(data, 4)
    order, pref = int.from_bytes(data[0:2], "big"), int.from_bytes(data[2:4], "big")
    parts, i = [], 4
    for _ in range(3):  # flags, services, regexp
        _need(data, i + 1)
        n = data[i]
        _need(data, i + 1 + n)
        parts.append(data[i + 1 : i + 1 + n])
        i += 1 + n
    replacement = read_name(msg, off + i, len(msg))[0]
    tail = b" ".join(p for p in (parts[2], replacement) if p)
    return b"NAPTR %d %d %s %s %s" % (order, pref, parts[0], parts[1], tail)


def decode_netbios_name(name: bytes) -> bytes:
    """The NetBIOS name in a first-level encoded label (RFC 1001 14.1).

    Each of the 16 bytes is two letters ``A``-``P`` (four bits each). As
    Zeek does, the 16th byte (the service suffix) is dropped and the name
    stops at the first byte that is not alphanumeric, punctuation or one of
    the control bytes 0x01 and 0x02 (``\\x01\\x02__MSBROWSE__\\x02``); anything
    that is not 32 such letters decodes to the empty name.
    """
    if len(name) != 32:
        return b""
    out = bytearray()
    for i in range(0, 32, 2):
        hi, lo = name[i] & 0xDF, name[i + 1] & 0xDF  # upper case
        if not (0x41 <= hi <= 0x50 and 0x41 <= lo <= 0x50):
            return b""
        out.append(((hi - 0x41) << 4) | (lo - 0x41))
    decoded = bytearray()
    for b in out[:15]:
        if b in (1, 2) or (0x21 <= b <= 0x7E):
            decoded.append(b)
        else:
            break
    return bytes(decoded)
