"""DCE/RPC parser and session: crafted PDUs, fragments, truncation, fuzz."""

from __future__ import annotations

import os
import struct
import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.proto.analyzer import ConnInfo
from sensor.proto.analyzers.dcerpc import DCERPCAnalyzer, pipe_session
from sensor.proto.parsers import dcerpc as p
from sensor.proto.parsers.dcerpc_names import endpoint_name, operation_name

#: Fuzz examples: SENSOR_FUZZ=deep (make deep-fuzz) for a long run.
EXAMPLES = 5000 if os.environ.get("SENSOR_FUZZ") == "deep" else 300

SVCCTL = "367abb81-9844-35f1-ad32-98f038001003"
NDR = uuid.UUID("8a885d04-1ceb-11c9-9fe8-08002b104860").bytes_le
CONN = ConnInfo("CTest1", "tcp", "10.0.0.1", 50000, "10.0.0.2", 49683)


def pdu(
    ptype: int, call_id: int, body: bytes, flags: int = 3, auth: bytes = b""
) -> bytes:
    """A little-endian PDU with an optional 8-byte sec_trailer + verifier."""
    trailer = (b"\x0a\x02\x00\x00" + b"\x00" * 4 + auth) if auth else b""
    length = 16 + len(body) + len(trailer)
    head = struct.pack(
        "<BBBB4sHHI", 5, 0, ptype, flags, b"\x10\0\0\0", length, len(auth), call_id
    )
    return head + body + trailer


def bind(call_id: int, iface: str, ctx_id: int = 0) -> bytes:
    elem = struct.pack("<HBB", ctx_id, 1, 0) + uuid.UUID(iface).bytes_le + b"\2\0\0\0"
    elem += NDR + b"\2\0\0\0"
    return pdu(p.BIND, call_id, struct.pack("<HHIB3x", 5840, 5840, 0, 1) + elem)


def bind_ack(call_id: int, sec_addr: bytes) -> bytes:
    body = struct.pack("<HHIH", 5840, 5840, 1, len(sec_addr)) + sec_addr
    body += b"\0" * (-(16 + len(body)) % 4) + b"\1\0\0\0" + b"\0" * 24
    return pdu(p.BIND_ACK, call_id, body)


def request(call_id: int, opnum: int, flags: int = 3, stub: bytes = b"") -> bytes:
    return pdu(
        p.REQUEST, call_id, struct.pack("<IHH", len(stub), 0, opnum) + stub, flags
    )


def response(call_id: int, flags: int = 3) -> bytes:
    return pdu(p.RESPONSE, call_id, struct.pack("<IHBB", 4, 0, 0, 0) + b"\0" * 4, flags)


def run(
    chunks: list[tuple[bool, float, bytes]], pipe: str = ""
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    s = pipe_session(CONN, lambda n, r: out.append(r), pipe)
    for is_orig, ts, data in chunks:
        s.data(is_orig, ts, data)
    s.end(99.0)
    return out


def test_names_from_the_specs() -> None:
    assert endpoint_name(SVCCTL) == "svcctl"
    assert operation_name("svcctl", 12) == "CreateServiceW"
    assert operation_name("svcctl", 15) == "OpenSCManagerW"
    assert operation_name("svcctl", 19) == "StartServiceW"
    assert operation_name("drsuapi", 3) == "DRSGetNCChanges"
    assert operation_name("netlogon", 26) == "NetrServerAuthenticate3"
    assert operation_name("netlogon", 30) == "NetrServerPasswordSet2"
    assert operation_name("IWbemServices", 24) == "ExecMethod"
    assert operation_name("svcctl", 999) == "unknown-999"
    assert endpoint_name("00000000-0000-0000-0000-000000000001") == (
        "00000000-0000-0000-0000-000000000001"
    )


def test_bind_request_response_gives_one_record() -> None:
    recs = run(
        [
            (True, 1.0, bind(1, SVCCTL)),
            (False, 1.1, bind_ack(1, b"49683\0")),
            (True, 2.0, request(2, 12)),
            (False, 2.5, response(2)),
        ]
    )
    assert recs == [
        {
            "ts": 2.0, "uid": "CTest1", "id.orig_h": "10.0.0.1", "id.orig_p": 50000,
            "id.resp_h": "10.0.0.2", "id.resp_p": 49683, "rtt": 0.5,
            "named_pipe": "49683", "endpoint": "svcctl", "operation": "CreateServiceW",
        }
    ]  # fmt: skip


def test_pipe_name_until_bind_ack_and_auth_trailer_skipped() -> None:
    recs = run(
        [
            (True, 1.0, bind(1, SVCCTL)),
            (
                True,
                2.0,
                pdu(p.REQUEST, 2, struct.pack("<IHH", 0, 0, 15), auth=b"N" * 16),
            ),
            (False, 2.25, response(2)),
        ],
        pipe="\\PIPE\\svcctl",
    )
    assert [(r["named_pipe"], r["operation"], r["rtt"]) for r in recs] == [
        ("\\PIPE\\svcctl", "OpenSCManagerW", 0.25)
    ]


def test_fragments_and_byte_at_a_time_delivery() -> None:
    stream = request(7, 3, flags=p.PFC_FIRST_FRAG, stub=b"a" * 10)
    stream += request(7, 3, flags=0, stub=b"b" * 10) + request(7, 3, flags=2)
    chunks = [(True, 1.0, bind(1, "e3514235-4b06-11d1-ab04-00c04fc2dcd2"))]
    chunks += [(True, 2.0 + i / 1000, stream[i : i + 1]) for i in range(len(stream))]
    chunks += [(False, 3.0, response(7, flags=1)), (False, 3.1, response(7, flags=2))]
    recs = run(chunks)
    assert len(recs) == 1
    assert recs[0]["operation"] == "DRSGetNCChanges"
    assert recs[0]["ts"] == 2.0 + 33 / 1000  # the chunk completing the first PDU
    assert abs(recs[0]["rtt"] - (3.1 - recs[0]["ts"])) < 1e-9  # last fragment


def test_unanswered_and_unbound_calls() -> None:
    recs = run([(True, 1.0, request(1, 5)), (True, 2.0, request(2, 6))])
    assert recs == []
    s = pipe_session(CONN, lambda n, r: recs.append(r), "")
    s.data(True, 1.0, request(1, 5))  # its bind is not in the capture
    s.data(False, 1.5, response(1))
    assert recs == []
    assert s.counters == {"request_without_bind": 1, "response_without_request": 1}


def test_truncation_at_every_field_never_raises() -> None:
    whole = bind(1, SVCCTL) + bind_ack(1, b"135\0") + request(2, 1) + response(2)
    for cut in range(len(whole)):
        assert run([(True, 1.0, whole[:cut])]) == []


def test_lying_lengths_are_named_anomalies() -> None:
    s = pipe_session(CONN, lambda n, r: None, "")
    bad = bytearray(request(1, 1))
    bad[8:10] = (8).to_bytes(2, "little")  # frag_length below the header
    s.data(True, 1.0, bytes(bad))
    assert s.counters == {"DCE_RPC_FRAG_LENGTH_TOO_SHORT": 1}

    bad = bytearray(request(1, 1))
    bad[10:12] = (200).to_bytes(2, "little")  # auth_length past the PDU
    assert p.parse_pdu(bytes(bad)).anomaly == "DCE_RPC_AUTH_LENGTH_TOO_LONG"
    bad = bytearray(bind_ack(1, b"135\0"))
    bad[24:26] = (900).to_bytes(2, "little")
    assert p.parse_pdu(bytes(bad)).anomaly == "DCE_RPC_SEC_ADDR_TOO_LONG"
    assert p.parse_pdu(bind(1, SVCCTL)[:40]).anomaly == "DCE_RPC_BIND_CONTEXT_TRUNCATED"


def test_sniff_on_any_port() -> None:
    assert DCERPCAnalyzer.sniff(CONN, True, bind(1, SVCCTL))
    assert not DCERPCAnalyzer.sniff(CONN, True, b"GET / HTTP/1.1\r\n\r\n")
    assert not DCERPCAnalyzer.sniff(CONN, True, b"\x05\x00\x0b")


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=8), st.booleans())
def test_fuzz_never_raises(chunks: list[bytes], prefix: bool) -> None:
    lead = bind(1, SVCCTL) if prefix else b""
    s = pipe_session(CONN, lambda n, r: None, "")
    s.data(True, 0.0, lead)
    for i, c in enumerate(chunks):
        s.data(bool(i % 2), float(i), c)
        p.parse_pdu(b"\x05\x00\x00\x03\x10\0\0\0" + c[:8].ljust(8, b"\0") + c)
    s.end(9.0)


def test_fault_ends_the_call_unlogged() -> None:
    out: list[dict[str, Any]] = []
    s = pipe_session(CONN, lambda n, r: out.append(r), "")
    s.data(True, 1.0, bind(1, SVCCTL) + request(2, 12))
    s.data(False, 1.5, pdu(p.FAULT, 2, struct.pack("<IHBB", 0, 0, 0, 0) + b"\5\0\0\0"))
    s.data(False, 1.6, response(2))
    assert out == []
    assert s.counters == {"faults": 1, "response_without_request": 1}
