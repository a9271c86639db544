"""NTLM: the NTLMSSP parser on crafted messages, hostile input, the tracker."""

from __future__ import annotations

import os
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.proto.analyzer import ConnInfo
from sensor.proto.analyzers.ntlm import MAX_RECORDS, NTLMTracker
from sensor.proto.parsers.ntlm import NTLMError, parse_ntlm

#: Fuzz examples: SENSOR_FUZZ=deep (make deep-fuzz) for a long run.
EXAMPLES = 5000 if os.environ.get("SENSOR_FUZZ") == "deep" else 300

CONN = ConnInfo("Cntlm", "tcp", "10.0.0.5", 50000, "10.0.0.1", 445)


def u16(s: str) -> bytes:
    return s.encode("utf-16-le")


def av(av_id: int, s: str) -> bytes:
    return struct.pack("<HH", av_id, len(u16(s))) + u16(s)


def negotiate() -> bytes:
    return b"NTLMSSP\x00" + struct.pack("<II", 1, 0xE2088297) + b"\x00" * 16


def challenge() -> bytes:
    """CHALLENGE (MS-NLMP 2.2.1.2) with NetBIOS, DNS and tree names."""
    info = av(1, "DC01") + av(2, "CORP") + av(3, "dc01.corp.example")
    info += av(5, "corp.example") + struct.pack("<HH", 0, 0)
    head = b"NTLMSSP\x00" + struct.pack("<I", 2)
    head += struct.pack("<HHI", 0, 0, 56) + struct.pack("<I", 0xE2898215)
    head += b"\x11" * 8 + b"\x00" * 8
    head += (
        struct.pack("<HHI", len(info), len(info), 56)
        + b"\x06\x01\xb1\x1d\x00\x00\x00\x0f"
    )
    return head + info


def authenticate(user: str = "alice", unicode: bool = True) -> bytes:
    """AUTHENTICATE (MS-NLMP 2.2.1.3) from CORP\\alice on WS7."""
    enc = u16 if unicode else (lambda s: s.encode("latin-1"))
    payload = [b"\x00" * 24, b"\x01" * 24, enc("CORP"), enc(user), enc("WS7"), b""]
    off = 72
    fields = b""
    for p in payload:
        fields += struct.pack("<HHI", len(p), len(p), off)
        off += len(p)
    flags = 0xE2888215 if unicode else 0xE2888214
    head = b"NTLMSSP\x00" + struct.pack("<I", 3) + fields + struct.pack("<I", flags)
    head += b"\x00" * 8
    return head + b"".join(payload)


def track(blobs: list[tuple[bool, bytes]], result: bool | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    t = NTLMTracker(CONN, lambda n, r: out.append(r))
    for i, (is_orig, b) in enumerate(blobs):
        t.blob(is_orig, 10.0 + i, b)
    if result is not None:
        t.outcome(20.0, result)
    t.end(30.0)
    return out


def test_parse_each_message() -> None:
    assert parse_ntlm(negotiate()).type == 1
    c = parse_ntlm(challenge())
    assert (c.nb_computer_name, c.dns_computer_name, c.dns_tree_name) == (
        "DC01",
        "dc01.corp.example",
        "corp.example",
    )
    a = parse_ntlm(authenticate())
    assert (a.user, a.domain, a.workstation) == ("alice", "CORP", "WS7")
    oem = parse_ntlm(authenticate(unicode=False))
    assert (oem.user, oem.domain) == ("alice", "CORP")


def test_exchange_in_spnego_wrapper_writes_one_record() -> None:
    spnego = b"\xa1\x81\x90\x30\x81\x8d\xa2\x81\x8a\x04\x81\x87"
    out = track(
        [
            (True, negotiate()),
            (False, spnego + challenge()),
            (True, spnego + authenticate()),
        ],
        True,
    )
    assert out == [
        {
            "ts": 10.0,  # the NEGOTIATE opens the record, as in Zeek
            **CONN.id_fields(),
            "server_nb_computer_name": "DC01",
            "server_dns_computer_name": "dc01.corp.example",
            "server_tree_name": "corp.example",
            "username": "alice",
            "hostname": "WS7",
            "domainname": "CORP",
            "success": True,
        }
    ]


def test_failure_and_no_outcome() -> None:
    (failed,) = track([(False, challenge()), (True, authenticate())], False)
    assert failed["success"] is False
    (unknown,) = track([(False, challenge()), (True, authenticate())], None)
    assert "success" not in unknown and unknown["username"] == "alice"


def test_anonymous_outcome_waits_for_end() -> None:
    """Zeek writes on the outcome only once a user or host is known."""
    (rec,) = track([(False, challenge()), (True, authenticate(user=""))], True)
    assert rec["hostname"] == "WS7" and "username" not in rec
    (bare,) = track([(False, challenge())], True)
    assert "success" not in bare


@pytest.mark.parametrize("msg", [negotiate(), challenge(), authenticate()])
def test_truncation_never_raises_other_errors(msg: bytes) -> None:
    for cut in range(len(msg)):
        try:
            parse_ntlm(msg[:cut])
        except NTLMError:
            pass


def test_offset_that_lies_is_counted() -> None:
    bad = bytearray(authenticate())
    struct.pack_into("<HHI", bad, 36, 10, 10, 60000)  # UserName past the end
    with pytest.raises(NTLMError, match="past"):
        parse_ntlm(bytes(bad))
    t = NTLMTracker(CONN, lambda n, r: None)
    t.blob(True, 1.0, bytes(bad))
    assert t.counters == {"NTLM_MALFORMED": 1}


def test_record_limit() -> None:
    out: list[dict[str, Any]] = []
    t = NTLMTracker(CONN, lambda n, r: out.append(r))
    for i in range(MAX_RECORDS + 5):
        t.blob(False, i, challenge())
        t.blob(True, i, authenticate())
        t.outcome(i, False)
    assert len(out) == MAX_RECORDS and t.counters == {"NTLM_RECORD_LIMIT": 5}


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.sampled_from([1, 2, 3]), st.integers(0, 200), st.binary(max_size=12))
def test_fuzz_never_raises_out(which: int, pos: int, junk: bytes) -> None:
    base = {1: negotiate(), 2: challenge(), 3: authenticate()}[which]
    data = base[:pos] + junk + base[pos + len(junk) :]
    t = NTLMTracker(CONN, lambda n, r: None)
    t.blob(True, 1.0, data)
    t.outcome(2.0, True)
    t.end(3.0)
