"""The DNS analyzer: pairing, flips, multicast, TCP framing, limits, fuzzing."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.proto.analyzer import ConnInfo
from sensor.proto.analyzers.dns import MAX_PENDING_IDS, DNSAnalyzer
from tests.proto.test_dns_parser import QUERY, REPLY, header, name

EXAMPLES = 3000 if os.environ.get("SENSOR_FUZZ") == "deep" else 100
SCHEMAS = Path(__file__).resolve().parents[2] / "sensor/output/schemas"
CHECK = {
    log: jsonschema.Draft202012Validator(
        json.loads((SCHEMAS / f"{log}.schema.json").read_text()),
        format_checker=jsonschema.FormatChecker(),
    )
    for log in ("dns", "weird")
}

UDP = ConnInfo("CdnsUDP1", "udp", "10.0.0.1", 40000, "10.0.0.53", 53)
TCP = ConnInfo("CdnsTCP1", "tcp", "10.0.0.1", 40001, "10.0.0.53", 53)
MDNS = ConnInfo("CdnsMC1", "udp", "10.0.0.1", 5353, "224.0.0.251", 5353)


def run(
    conn: ConnInfo, *messages: tuple[bool, float, bytes], log: str = "dns"
) -> list[dict[str, Any]]:
    """The records of ``log`` (dns or weird) that the messages give."""
    out: list[tuple[str, dict[str, Any]]] = []
    a = DNSAnalyzer(conn, lambda name, rec: out.append((name, rec)))
    for is_orig, ts, data in messages:
        a.data(is_orig, ts, data)
    a.end(100.0)
    for kind, rec in out:
        errors = [e.message for e in CHECK[kind].iter_errors(rec)]
        assert not errors, (rec, errors)
    return [rec for kind, rec in out if kind == log]


def test_query_and_reply_make_one_record() -> None:
    (rec,) = run(UDP, (True, 1.0, QUERY), (False, 1.25, REPLY))
    assert rec == {
        "ts": 1.0,
        "uid": "CdnsUDP1",
        "id.orig_h": "10.0.0.1",
        "id.orig_p": 40000,
        "id.resp_h": "10.0.0.53",
        "id.resp_p": 53,
        "proto": "udp",
        "trans_id": 0x1234,
        "rtt": 0.25,
        "query": "www.example.com",
        "qclass": 1,
        "qclass_name": "C_INTERNET",
        "qtype": 1,
        "qtype_name": "A",
        "rcode": 0,
        "rcode_name": "NOERROR",
        "AA": False,
        "TC": False,
        "RD": True,
        "RA": True,
        "Z": 0,
        "answers": ["edge.example.net", "93.184.216.34"],
        "TTLs": [60.0, 30.0],
        "rejected": False,
        "opcode": 0,
        "opcode_name": "query",
    }


def test_query_alone_is_written_at_the_end() -> None:
    (rec,) = run(UDP, (True, 1.0, QUERY))
    assert rec["query"] == "www.example.com" and "rcode" not in rec and "rtt" not in rec


def test_reply_alone_flips_the_roles_and_has_no_question_fields() -> None:
    # A reply sent by the originator first: Zeek swaps the roles.
    (rec,) = run(UDP, (True, 1.0, REPLY))
    assert (rec["id.orig_h"], rec["id.resp_h"]) == ("10.0.0.53", "10.0.0.1")
    assert rec["query"] == "www.example.com" and "qtype" not in rec and "rtt" not in rec


def test_reply_before_query_pairs_up() -> None:
    (rec,) = run(UDP, (False, 2.0, REPLY), (True, 2.5, QUERY))
    assert (
        rec["ts"] == 2.0
        and rec["qtype_name"] == "A"
        and rec["answers"][1] == "93.184.216.34"
    )


def test_multicast_messages_are_records_of_their_own() -> None:
    recs = run(MDNS, (True, 1.0, QUERY), (True, 1.1, REPLY))
    assert [r.get("rcode") for r in recs] == [None, 0]
    assert recs[1]["id.resp_h"] == "224.0.0.251"


def test_empty_reply_is_rejected() -> None:
    refused = header(flags=0x8185) + QUERY[12:]
    (rec,) = run(UDP, (True, 1.0, QUERY), (False, 1.5, refused))
    assert rec["rejected"] is True and rec["rcode_name"] == "REFUSED"


def test_tcp_split_at_every_byte() -> None:
    stream = struct.pack(">H", len(QUERY)) + QUERY
    reply = struct.pack(">H", len(REPLY)) + REPLY
    for cut in range(len(stream) + 1):
        (rec,) = run(
            TCP,
            (True, 1.0, stream[:cut]),
            (True, 1.0, stream[cut:]),
            (False, 2.0, reply),
        )
        assert rec["proto"] == "tcp" and rec["answers"] == [
            "edge.example.net",
            "93.184.216.34",
        ]


def test_tcp_message_cut_short_is_parsed_twice_at_the_end() -> None:
    # Zeek's DNS-over-TCP analyzer flushes a partial message at FIN and again
    # when the connection is done.
    partial = struct.pack(">H", 500) + QUERY
    recs = run(TCP, (True, 1.0, partial))
    assert [r["trans_id"] for r in recs] == [0x1234, 0x1234]


def test_tcp_gap_stops_the_direction() -> None:
    out: list[tuple[str, dict[str, Any]]] = []
    a = DNSAnalyzer(TCP, lambda log, rec: out.append((log, rec)))
    a.data(True, 1.0, struct.pack(">H", len(QUERY)) + QUERY[:5])
    a.gap(True, 1.0, 100)
    a.data(True, 1.0, QUERY[5:])
    a.end(2.0)
    assert [(log, rec["name"]) for log, rec in out] == [("weird", "DNS_tcp_gap")]
    assert a.counters == {"DNS_tcp_gap": 1}


def test_unmatched_ids_are_bounded() -> None:
    out: list[dict[str, Any]] = []
    a = DNSAnalyzer(UDP, lambda log, rec: out.append(rec))
    for i in range(MAX_PENDING_IDS + 3):
        a.data(False, float(i), header(id_=i, flags=0x8180) + QUERY[12:])
    # Once more than the limit wait, the next new id writes them all out.
    assert [r.get("name") for r in out].count("dns_pending_ids_full") == 1
    assert (
        len([r for r in out if "trans_id" in r]) == MAX_PENDING_IDS + 1
        and a.counters["dns_pending_ids_full"] == 1
    )
    assert len(a._pending_replies) == 2


def test_short_datagram_is_counted() -> None:
    out: list[dict[str, Any]] = []
    a = DNSAnalyzer(UDP, lambda log, rec: out.append(rec))
    a.data(True, 1.0, b"\x00\x01")
    a.data(True, 1.5, b"\x00\x01")
    a.end(2.0)
    # Counted twice, written to weird.log once.
    assert [r["name"] for r in out] == ["DNS_truncated_len_lt_hdr_len"]
    assert a.counters == {"DNS_truncated_len_lt_hdr_len": 2}


def test_netbios_query_name_and_nbstat() -> None:
    conn = ConnInfo("CnbNS1", "udp", "10.0.0.1", 137, "10.0.0.255", 137)
    q = (
        header(flags=0x0110)
        + name(b"FDEFEDFFEMEBECCACACACACACACACAAA")
        + b"\x00\x21\x00\x01"
    )
    (rec,) = run(conn, (True, 1.0, q))
    assert (rec["query"], rec["qtype_name"], rec["opcode_name"]) == (
        "SECULAB",
        "NBSTAT",
        "netbios-query",
    )


def test_weirds_carry_zeek_names_and_addl() -> None:
    many = header(qd=26) + QUERY[12:]
    odd_opcode = header(flags=0x6000) + QUERY[12:]
    weirds = run(UDP, (True, 1.0, many), log="weird")
    weirds += run(UDP, (True, 2.0, odd_opcode), log="weird")
    assert [(w["name"], w.get("addl"), w["source"]) for w in weirds] == [
        ("DNS_Conn_count_too_large", "26 > 25", "DNS"),
        ("DNS_unknown_opcode", "12", "DNS"),
    ]


def test_violation_early_in_a_connection_removes_the_analyzer() -> None:
    # Zeek's DPD removes an analyzer that violates the protocol within the
    # first 10 KiB: the reply after the bad query is not read.
    bad = header(qd=26) + QUERY[12:]
    recs = run(UDP, (True, 1.0, bad), (False, 1.5, REPLY))
    assert [(r["trans_id"], r.get("rcode")) for r in recs] == [(0x1234, None)]


def test_violation_late_in_a_connection_is_ignored() -> None:
    bad = header(id_=7, qd=26) + QUERY[12:]
    filler = [(True, float(i), QUERY) for i in range(400)]  # > 10 KiB
    recs = run(UDP, *filler, (True, 300.0, bad), (False, 301.0, REPLY))
    assert any(r.get("rcode") == 0 for r in recs)


def test_unnamed_types_and_codes() -> None:
    q = header() + name(b"x") + struct.pack(">HH", 4242, 77)
    (rec,) = run(UDP, (True, 1.0, q))
    assert (rec["qtype_name"], rec["qclass_name"]) == ("query-4242", "qclass-77")


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.binary(max_size=300)), max_size=6),
    st.sampled_from([UDP, TCP, MDNS]),
)
def test_fuzz_analyzer_never_raises(
    messages: list[tuple[bool, bytes]], conn: ConnInfo
) -> None:
    run(
        conn, *[(is_orig, float(i), data) for i, (is_orig, data) in enumerate(messages)]
    )


def test_largest_tcp_message() -> None:
    # A 65535-byte message (the most the two-byte length allows) in 1000-byte
    # chunks: buffered until whole, then parsed.
    msg = QUERY + bytes(65535 - len(QUERY))
    stream = struct.pack(">H", len(msg)) + msg
    chunks = [(True, 1.0, stream[i : i + 1000]) for i in range(0, len(stream), 1000)]
    (rec,) = run(TCP, *chunks)
    assert rec["query"] == "www.example.com"


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(st.integers(1, 60), max_size=20))
def test_fuzz_tcp_chunking(cuts: list[int]) -> None:
    stream = (struct.pack(">H", len(QUERY)) + QUERY) * 3
    chunks, i = [], 0
    for n in cuts:
        chunks.append((True, 1.0, stream[i : i + n]))
        i += n
    chunks.append((True, 1.0, stream[i:]))
    recs = run(TCP, *chunks)
    assert [r["query"] for r in recs] == ["www.example.com"] * 3


def test_update_with_a_bad_zone_is_dropped() -> None:
    # RFC 2136 2.3: one zone, of type SOA; Zeek drops other UPDATEs.
    not_soa = header(flags=0x2800) + name(b"example", b"com") + b"\x00\x10\x00\x01"
    no_zone = header(flags=0xA801, qd=0)
    out = run(UDP, (True, 1.0, not_soa), (False, 1.1, no_zone), log="weird")
    assert [(w["name"], w.get("addl")) for w in out] == [
        ("DNS_DU_incorrect_zone_type", None),
        ("DNS_DU_invalid_zone_count", "0"),
    ]
    assert run(UDP, (True, 1.0, not_soa), (False, 1.1, no_zone)) == []
