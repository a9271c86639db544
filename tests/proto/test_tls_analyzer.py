"""The TLS analyzer on synthetic conversations: exact records, chunking, hostile input."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.proto.analyzer import ConnInfo
from sensor.proto.analyzers.tls import MAX_HANDSHAKE, TLSAnalyzer, stats_of
from sensor.proto.parsers import x509
from tests.proto import tls_bytes as b

FUZZ = settings(
    max_examples=1500 if os.environ.get("SENSOR_FUZZ") == "deep" else 100, deadline=None
)
SCHEMAS = Path(__file__).resolve().parents[2] / "sensor" / "output" / "schemas"
CONN = ConnInfo("CTest1", "tcp", "10.0.0.1", 50000, "10.0.0.2", 443)

HS, CCS, ALERT, APP = 22, 20, 21, 23
ECDHE_RSA_AES128_GCM = 0xC02F
DER = b.certificate()


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def sha12(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def check(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.FormatChecker()
    )


def run(
    flights: list[tuple[bool, bytes]], chunk: int = 0
) -> tuple[list[tuple[str, dict[str, Any]]], TLSAnalyzer]:
    """Feed ``(is_orig, bytes)`` in order (optionally in ``chunk``-byte pieces); end."""
    out: list[tuple[str, dict[str, Any]]] = []
    a = TLSAnalyzer(CONN, lambda n, r: out.append((n, r)))
    for i, (is_orig, data) in enumerate(flights):
        pieces = (
            [data[j : j + chunk] for j in range(0, len(data), chunk)]
            if chunk
            else [data]
        )
        for p in pieces:
            a.data(is_orig, 100.0 + i, p)
    a.end(200.0)
    for name, rec in out:
        errors = [e.message for e in check(name).iter_errors(rec)]
        assert not errors, (name, rec, errors)
    return out, a


def tls12() -> list[tuple[bool, bytes]]:
    ch = b.client_hello(
        [0x0A0A, ECDHE_RSA_AES128_GCM, 0x002F],
        [
            b.ext(0x1A1A, b""),
            b.sni("www.example.com"),
            b.groups(0x0A0A, 29, 23),
            b.point_formats(0),
            b.ext(35, b""),
        ],
    )
    server = (
        b.handshake(
            2,
            b.server_hello(
                ECDHE_RSA_AES128_GCM, [b.ext(0xFF01, b"\x00"), b.alpn(b"h2")]
            ),
        )
        + b.handshake(11, b.certificate_msg([DER]))
        + b.handshake(12, b"\x03\x00\x1d\x20" + bytes(32))
        + b.handshake(14, b"")
    )
    return [
        (True, b.record(HS, b.handshake(1, ch), 0x0301)),
        (False, b.record(HS, server)),
        (
            True,
            b.record(HS, b.handshake(16, b"\x20" + bytes(32)))
            + b.record(CCS, b"\x01")
            + b.record(HS, bytes(40)),
        ),
        (
            False,
            b.record(HS, b.handshake(4, bytes(10)))
            + b.record(CCS, b"\x01")
            + b.record(HS, bytes(40)),
        ),
        (True, b.record(APP, bytes(100))),
    ]


def test_tls12_handshake_record() -> None:
    out, a = run(tls12())
    assert [n for n, _ in out] == ["x509", "ssl"]
    ssl = out[1][1]
    assert ssl == {
        "ts": 100.0,
        **CONN.id_fields(),
        "server_name": "www.example.com",
        # JA3 and JA4 by hand from their specifications: GREASE dropped,
        # JA4 lists sorted, SNI and ALPN out of its extension hash.
        "ja3": md5("771,49199-47,0-10-11-35,29-23,0"),
        "ja4": f"t12d020400_{sha12('002f,c02f')}_{sha12('000a,000b,0023')}",
        "version": "TLSv12",
        "cipher": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "next_protocol": "h2",
        "ja3s": md5("771,49199,65281-16"),
        "ja4s": f"t1202h2_c02f_{sha12('ff01,0010')}",
        "curve": "x25519",
        "resumed": False,
        "established": True,
        "ssl_history": "CsxknGIti",
        "cert_chain_fps": [x509.fingerprint(DER)],
        "client_cert_chain_fps": [],
        "sni_matches_cert": True,
        "subject": "CN=www.example.com,O=Example\\, Inc.,C=US",
        "issuer": "CN=www.example.com,O=Example\\, Inc.,C=US",
        "not_valid_before": 1577836800.0,
        "not_valid_after": 1609372800.0,
        "cert_sha256": x509.fingerprint(DER),
    }
    x5 = out[0][1]
    assert (x5["ts"], x5["host_cert"], x5["client_cert"]) == (101.0, True, False)
    assert a.done  # established: the analyzer stops, as Zeek's does


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000])
def test_any_chunking_gives_the_same_records(chunk: int) -> None:
    whole, _ = run(tls12())
    cut, _ = run(tls12(), chunk)
    assert [r for _, r in cut] == [r for _, r in whole]


def test_handshake_message_across_records() -> None:
    flights = tls12()
    server = flights[1][1][5:]
    half = len(server) // 2
    flights[1] = (False, b.record(HS, server[:half]) + b.record(HS, server[half:]))
    out, _ = run(flights)
    assert out[-1][1]["ssl_history"] == "CsxknGIti"


def tls13(client_ccs: bool = True) -> list[tuple[bool, bytes]]:
    ch = b.client_hello(
        [0x1301, 0x1302],
        [
            b.sni("a.example.org"),
            b.versions_client(0x0304, 0x0303),
            b.key_share_client(29),
            b.ext(41, b"\x00"),
        ],
    )
    sh = b.server_hello(0x1302, [b.version_server(0x0304), b.key_share_server(29)])
    client_second = (b.record(CCS, b"\x01") if client_ccs else b"") + b.record(
        APP, bytes(53)
    )
    return [
        (True, b.record(HS, b.handshake(1, ch), 0x0301)),
        (
            False,
            b.record(HS, b.handshake(2, sh))
            + b.record(CCS, b"\x01")
            + b.record(APP, bytes(3000)),
        ),
        (True, client_second),
    ]


@pytest.mark.parametrize("client_ccs, history", [(True, "CsiI"), (False, "Csi")])
def test_tls13_established_like_zeek(client_ccs: bool, history: str) -> None:
    out, _ = run(tls13(client_ccs))
    ssl = out[-1][1]
    assert (ssl["version"], ssl["cipher"], ssl["curve"]) == (
        "TLSv13",
        "TLS_AES_256_GCM_SHA384",
        "x25519",
    )
    assert (ssl["ssl_history"], ssl["established"], ssl["resumed"]) == (
        history,
        True,
        False,
    )
    assert "cert_chain_fps" not in ssl and ssl["ja4"].startswith("t13d0204")


def test_tls13_psk_accepted_is_resumed() -> None:
    flights = tls13()
    sh = b.server_hello(
        0x1302,
        [b.version_server(0x0304), b.key_share_server(29), b.ext(41, b"\x00\x00")],
    )
    flights[1] = (False, b.record(HS, b.handshake(2, sh)) + b.record(APP, bytes(10)))
    out, _ = run(flights)
    assert out[-1][1]["resumed"] is True


def test_session_id_echo_is_resumed() -> None:
    sid = b"\x42" * 32
    ch = b.client_hello([0x002F], session_id=sid)
    sh = b.server_hello(0x002F, session_id=sid)
    out, _ = run(
        [
            (True, b.record(HS, b.handshake(1, ch))),
            (
                False,
                b.record(HS, b.handshake(2, sh))
                + b.record(CCS, b"\x01")
                + b.record(HS, bytes(40)),
            ),
            (True, b.record(CCS, b"\x01") + b.record(HS, bytes(40))),
        ]
    )
    ssl = out[-1][1]
    assert (ssl["resumed"], ssl["established"], ssl["ssl_history"]) == (
        True,
        True,
        "CsiI",
    )


def test_hello_then_alert_logged_at_end() -> None:
    ch = b.client_hello([0x002F], [b.sni("x.test")])
    out, _ = run(
        [
            (True, b.record(HS, b.handshake(1, ch))),
            (False, b.record(ALERT, b"\x02\x28")),
        ]
    )
    assert [n for n, _ in out] == ["ssl"]
    ssl = out[0][1]
    assert (ssl["ssl_history"], ssl["last_alert"], ssl["established"]) == (
        "Cl",
        "handshake_failure",
        False,
    )
    assert "version" not in ssl and ssl["ts"] == 100.0


def test_sslv2_client_hello_then_tls_server() -> None:
    v2 = b.sslv2_client_hello([0x010080])
    assert TLSAnalyzer.sniff(CONN, True, v2)
    assert not TLSAnalyzer.sniff(
        ConnInfo("C2", "tcp", "10.0.0.1", 5, "10.0.0.2", 135), True, v2
    )
    out, _ = run(
        [
            (True, b.sslv2_client_hello([0x010080, 0x00002F])),
            (
                False,
                b.record(HS, b.handshake(2, b.server_hello(0x002F, version=0x0301))),
            ),
        ]
    )
    ssl = out[0][1]
    assert (ssl["ssl_history"], ssl["version"], ssl["cipher"]) == (
        "Cs",
        "TLSv10",
        "TLS_RSA_WITH_AES_128_CBC_SHA",
    )
    assert "ja3" not in ssl


def test_rdp_tpkt_then_tls() -> None:
    x224_cr = (
        b"\x03\x00\x00\x13\x0e\xe0\x00\x00\x00\x00\x00\x01\x00\x08\x00\x03\x00\x00\x00"
    )
    x224_cc = (
        b"\x03\x00\x00\x13\x0e\xd0\x00\x00\x12\x34\x00\x02\x1f\x08\x00\x02\x00\x00\x00"
    )
    assert TLSAnalyzer.sniff(CONN, True, x224_cr)
    flights = tls12()
    flights[0] = (True, x224_cr + flights[0][1])
    flights[1] = (False, x224_cc + flights[1][1])
    out, _ = run(flights)
    assert out[-1][1]["ssl_history"] == "CsxknGIti"


def test_gap_stops_reading() -> None:
    out: list[tuple[str, dict[str, Any]]] = []
    a = TLSAnalyzer(CONN, lambda n, r: out.append((n, r)))
    flights = tls12()
    a.data(True, 1.0, flights[0][1])
    a.gap(False, 2.0, 1460)
    a.data(False, 3.0, flights[1][1])
    a.end(4.0)
    assert out[0][1]["ssl_history"] == "C"
    assert stats_of(a)["SSL_CONTENT_GAP"] == 1


def test_not_tls_is_a_violation_without_record() -> None:
    out, a = run(
        [
            (True, b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00"),
            (False, b"HTTP/1.1 400 Bad\r\n"),
        ]
    )
    # The client's record was read (history C is absent: its hello is cut),
    # then the server's bytes are no TLS record: logged at the violation.
    assert [n for n, _ in out] == ["ssl"]
    assert stats_of(a)["SSL_PROTOCOL_VIOLATION"] == 1
    out, _ = run([(True, b"\x17\x09\x09\x00\x00")])
    assert out == []


def test_handshake_too_large_is_counted() -> None:
    huge = b"\x0b" + (MAX_HANDSHAKE + 1).to_bytes(3, "big")
    out, a = run(
        [
            (True, b.record(HS, b.handshake(1, b.client_hello([0x2F])))),
            (False, b.record(HS, huge)),
        ]
    )
    assert stats_of(a)["SSL_HANDSHAKE_TOO_LARGE"] == 1
    assert out[0][1]["ssl_history"] == "C"


def test_x509_logged_once_per_emitter() -> None:
    out: list[tuple[str, dict[str, Any]]] = []

    def emit(name: str, rec: dict[str, Any]) -> None:
        out.append((name, rec))

    for _ in range(2):
        a = TLSAnalyzer(CONN, emit)
        for i, (is_orig, data) in enumerate(tls12()):
            a.data(is_orig, 100.0 + i, data)
    assert [n for n, _ in out] == ["x509", "ssl", "ssl"]


def test_history_is_bounded() -> None:
    flights = [(True, b.record(HS, b.handshake(1, b.client_hello([0x2F]))))]
    flights += [(False, b.record(ALERT, b"\x01\x00"))] * 150
    out, a = run(flights)
    assert len(out[0][1]["ssl_history"]) == 100
    assert stats_of(a)["SSL_max_ssl_history_length_reached"] == 51


@FUZZ
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=200)), max_size=12))
def test_random_streams_never_raise(flights: list[tuple[bool, bytes]]) -> None:
    run(flights)


@FUZZ
@given(st.integers(0, 2000), st.integers(0, 255), st.integers(1, 50))
def test_mutated_handshake_never_raises(pos: int, value: int, chunk: int) -> None:
    flights = tls12()
    data = bytearray(flights[1][1])
    data[pos % len(data)] = value
    flights[1] = (False, bytes(data))
    run(flights, chunk)
