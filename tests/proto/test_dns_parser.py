"""DNS message parser: byte literals, hostile names and lengths, fuzzing."""

from __future__ import annotations

import os
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.proto.parsers.dns import (
    MAX_RECORDS,
    decode_netbios_name,
    parse_message,
    read_name,
)

EXAMPLES = 5000 if os.environ.get("SENSOR_FUZZ") == "deep" else 200


def header(
    id_: int = 0x1234,
    flags: int = 0x0100,
    qd: int = 1,
    an: int = 0,
    ns: int = 0,
    ar: int = 0,
) -> bytes:
    return struct.pack(">HHHHHH", id_, flags, qd, an, ns, ar)


def name(*labels: bytes) -> bytes:
    return b"".join(bytes([len(x)]) + x for x in labels) + b"\x00"


def rr(
    owner: bytes, rtype: int, rdata: bytes, ttl: int = 300, rclass: int = 1
) -> bytes:
    return owner + struct.pack(">HHIH", rtype, rclass, ttl, len(rdata)) + rdata


QUERY = header() + name(b"www", b"Example", b"com") + struct.pack(">HH", 1, 1)
# A reply: the question, then a CNAME and an A record whose owners point back
# at the question name (offset 12).
REPLY = (
    header(flags=0x8180, an=2)
    + name(b"www", b"example", b"com")
    + struct.pack(">HH", 1, 1)
    + rr(b"\xc0\x0c", 5, name(b"Edge", b"example", b"net"), ttl=60)
    + rr(b"\xc0\x0c", 1, bytes([93, 184, 216, 34]), ttl=30)
)


def test_query_header_and_question() -> None:
    m = parse_message(QUERY)
    assert m is not None
    assert (m.id, m.qr, m.opcode, m.rd, m.rcode) == (0x1234, False, 0, True, 0)
    # Zeek lower-cases names.
    assert m.questions == [(b"www.example.com", 1, 1)]
    assert m.anomalies == []


def test_reply_records_and_summaries() -> None:
    m = parse_message(REPLY)
    assert m is not None and m.qr and m.ra
    assert [(r.name, r.rtype, r.ttl, r.reply) for r in m.records] == [
        (b"www.example.com", 5, 60, b"edge.example.net"),
        (b"www.example.com", 1, 30, b"93.184.216.34"),
    ]


def test_short_header_is_none() -> None:
    assert parse_message(b"\x00" * 11) is None


def test_pointer_to_itself_ends_the_name() -> None:
    msg = header() + b"\xc0\x0c" + struct.pack(">HH", 1, 1)
    name_, off, anomaly = read_name(msg, 12, len(msg))
    assert (name_, off, anomaly) == (b"", 14, "DNS_label_forward_compress_offset")


def test_pointer_loop_between_two_names_ends() -> None:
    # Offset 12 holds a label then a pointer to 18, which points back to 12:
    # the second jump is not before its own pointer and stops the walk.
    msg = header() + b"\x03abc\xc0\x12" + b"\xc0\x0c"
    name_, _, anomaly = read_name(msg, 18, len(msg))
    assert name_ == b"abc"
    assert anomaly == "DNS_label_forward_compress_offset"


def test_forward_pointer_is_an_anomaly() -> None:
    msg = header() + b"\xc0\x20" + b"\x00" * 40
    assert read_name(msg, 12, len(msg))[2] == "DNS_label_forward_compress_offset"


def test_label_longer_than_message() -> None:
    msg = header() + b"\x3fabc"
    name_, off, anomaly = read_name(msg, 12, len(msg))
    assert anomaly == "DNS_label_len_gt_pkt" and off == len(msg) and name_ == b""


def test_label_over_63_bytes() -> None:
    msg = header() + bytes([64]) + b"a" * 64 + b"\x00"
    assert read_name(msg, 12, len(msg))[2] == "DNS_label_too_long"
    # The NetBIOS name service allows it.
    assert read_name(msg, 12, len(msg), netbios=True)[2] is None


def test_name_capped_at_512_bytes() -> None:
    msg = header() + (b"\x3f" + b"a" * 63) * 10 + b"\x00"
    got, _, anomaly = read_name(msg, 12, len(msg))
    assert anomaly == "DNS_label_len_gt_name_len"
    # Eight labels of 63 fill the 512-byte buffer (less the last dot).
    assert len(got) == 8 * 64 - 1


def test_rdlength_that_lies() -> None:
    bad = (
        header(flags=0x8180, qd=0, an=1)
        + rr(b"\x00", 1, b"")[:-2]
        + b"\x00\x40"
        + b"\x01\x02\x03\x04"
    )
    m = parse_message(bad)
    assert m is not None and m.records == []
    assert m.anomalies == ["DNS_truncated_RR_rdlength_lt_len"]


def test_truncation_at_every_byte_never_raises() -> None:
    for end in range(len(REPLY)):
        m = parse_message(REPLY[:end])
        if end < 12:
            assert m is None
        else:
            assert m is not None
            assert len(m.records) <= 2


def test_truncated_question_is_named() -> None:
    m = parse_message(QUERY[:-2])
    assert m is not None and m.anomalies == ["DNS_truncated_quest_too_short"]


def test_too_many_questions() -> None:
    m = parse_message(header(qd=26) + QUERY[12:])
    assert (
        m is not None
        and m.questions == []
        and m.anomalies == ["DNS_Conn_count_too_large"]
    )


def test_record_summaries_as_zeek_writes_them() -> None:
    owner = b"\xc0\x0c"
    cases = [
        (16, b"\x05hello\x00", b"TXT 5 hello TXT 0 "),
        (99, b"\x03v=1", b"SPF 3 v=1"),
        (28, bytes(15) + b"\x01", b"::1"),
        (15, b"\x00\x0a" + name(b"MX", b"example"), b"mx.example"),
        (33, b"\x00\x01\x00\x02\x00\x50" + name(b"srv"), b"srv"),
        (46, b"\x00\x06\x08\x02" + bytes(14) + b"\x00" + b"sig", b"RRSIG 6 <Root>"),
        (48, b"\x01\x01\x03\x08key", b"DNSKEY 8"),
        (43, b"\x00\x01\x08\x02digest", b"DS 8 2"),
        (44, b"\x01\x02\xab\xcd", b"SSHFP: abcd"),
        (29, b"\x00\x12\x16\x13" + bytes(12), b"LOC:  18 22 19"),
        (65534, b"\x08\x00\x01\x00", b"BIND9 signing signal"),
        (10, b"anything", b"<unknown type=10>"),
        (13, b"\x03cpu\x02os", None),
        (11, b"\x01\x02\x03\x04\x06", b""),
    ]
    for rtype, rdata, want in cases:
        msg = header(flags=0x8180, an=1) + QUERY[12:] + rr(owner, rtype, rdata)
        m = parse_message(msg)
        assert m is not None and not m.anomalies, (rtype, m)
        assert [r.reply for r in m.records] == [want], rtype


def test_a_record_of_wrong_length() -> None:
    m = parse_message(
        header(flags=0x8180, an=1) + QUERY[12:] + rr(b"\xc0\x0c", 1, b"\x01\x02\x03")
    )
    assert m is not None and m.records == [] and m.anomalies == ["DNS_RR_bad_length"]


def test_update_sections() -> None:
    # RFC 2136: zone, prerequisite (class NONE, CNAME), update (delete an
    # RRset with class ANY, add an A record).
    msg = (
        header(flags=0xA800, qd=1, an=1, ns=2)
        + name(b"zone")
        + struct.pack(">HH", 6, 1)
        + rr(name(b"host", b"zone"), 5, b"", ttl=0, rclass=254)
        + rr(b"\xc0\x16", 28, b"", ttl=0, rclass=255)
        + rr(b"\xc0\x16", 1, bytes([10, 0, 0, 1]), ttl=1200)
    )
    m = parse_message(msg)
    assert m is not None and m.opcode == 5
    assert [r.reply for r in m.records] == [
        b"pre: NoRRSet CNAME host.zone",
        b"del: RRSet AAAA",
        b"add: A host.zone 10.0.0.1",
    ]


def test_netbios_names() -> None:
    assert decode_netbios_name(b"FDEFEDFFEMEBECCACACACACACACACAAA") == b"SECULAB"
    # \x01\x02__MSBROWSE__\x02 with the suffix \x01 dropped.
    encoded = "".join(
        f"{chr(65 + (b >> 4))}{chr(65 + (b & 15))}"
        for b in b"\x01\x02__MSBROWSE__\x02\x01"
    )
    assert decode_netbios_name(encoded.encode()) == b"\x01\x02__MSBROWSE__\x02"
    assert decode_netbios_name(b"short") == b""
    assert decode_netbios_name(b"Z" * 32) == b""


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_never_raises(data: bytes) -> None:
    m = parse_message(data)
    assert m is None or len(m.records) <= 1000


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=400), st.integers(0, 65535))
def test_fuzz_after_a_valid_header(body: bytes, counts: int) -> None:
    m = parse_message(header(flags=0x8180, qd=counts & 3, an=counts >> 8) + body)
    assert m is not None


def test_largest_message_is_capped_at_max_records() -> None:
    # 65535 bytes of A records (16 bytes each, owner compressed to the
    # question): more than MAX_RECORDS are counted, not kept.
    record = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + b"\x0a\x00\x00\x01"
    body = QUERY[12:]
    count = (65535 - 12 - len(body)) // len(record)
    msg = header(flags=0x8180, an=count) + body + record * count
    assert len(msg) <= 65535
    m = parse_message(msg)
    assert m is not None and len(m.records) == MAX_RECORDS
    assert m.anomalies == ["DNS_too_many_records"]


def test_empty_record_before_the_end_stops_the_answers() -> None:
    empty = rr(b"\xc0\x0c", 1, b"")
    a = rr(b"\xc0\x0c", 1, b"\x01\x02\x03\x04")
    m = parse_message(header(flags=0x8180, an=2) + QUERY[12:] + empty + a)
    assert m is not None and m.records == [] and m.anomalies == ["DNS_zero_rdlength"]
    # As the last record it is read (and an A record of length 0 is bad).
    m = parse_message(header(flags=0x8180, an=2) + QUERY[12:] + a + empty)
    assert m is not None and [r.reply for r in m.records] == [b"1.2.3.4"]
    assert m.anomalies == ["DNS_RR_bad_length"]


RR_TYPES = [
    1,
    2,
    5,
    6,
    11,
    12,
    13,
    15,
    16,
    28,
    29,
    33,
    35,
    41,
    43,
    44,
    46,
    47,
    48,
    50,
    99,
    65534,
]


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """Well-framed messages whose record data and pointers are arbitrary."""
    records = b""
    count = draw(st.integers(0, 6))
    for _ in range(count):
        owner = draw(st.sampled_from([b"\xc0\x0c", b"\x00", name(b"a", b"b")]))
        pointer = draw(st.integers(0, 80)).to_bytes(2, "big")
        rdata = draw(st.binary(max_size=40)) + draw(
            st.sampled_from([b"", b"\xc0" + pointer[1:], b"\x00"])
        )
        records += rr(
            owner,
            draw(st.sampled_from(RR_TYPES)),
            rdata,
            rclass=draw(st.sampled_from([1, 254, 255])),
        )
    flags = draw(st.sampled_from([0x8180, 0xA800, 0x0100]))
    return (
        header(flags=flags, an=count, ns=draw(st.integers(0, 2))) + QUERY[12:] + records
    )


@settings(max_examples=EXAMPLES, deadline=None)
@given(messages())
def test_fuzz_structured_records(msg: bytes) -> None:
    m = parse_message(msg)
    assert m is not None and len(m.questions) == 1
    for r in m.records:
        assert r.reply is None or isinstance(r.reply, bytes)
