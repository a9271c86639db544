"""dce_rpc_command.log: command lines named in remote-execution calls."""

from __future__ import annotations

import os
import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.proto.analyzer import ConnInfo
from sensor.proto.analyzers.dcerpc import DCERPCSession
from sensor.proto.analyzers.dcerpc_exec import IDISPATCH, command_in, wants
from sensor.proto.parsers import dcerpc as p

#: Fuzz examples: SENSOR_FUZZ=deep (make deep-fuzz) for a long run.
EXAMPLES = 5000 if os.environ.get("SENSOR_FUZZ") == "deep" else 300

CONN = ConnInfo("CD1", "tcp", "192.0.2.10", 50000, "192.0.2.1", 49700)
SVCCTL = "367abb81-9844-35f1-ad32-98f038001003"


def pdu(ptype: int, call_id: int, body: bytes, flags: int = 3) -> bytes:
    head = struct.pack(
        "<BBBB4sHHI", 5, 0, ptype, flags, b"\x10\0\0\0", 16 + len(body), 0, call_id
    )
    return head + body


def bind(call_id: int, ctx: int, uuid: str) -> bytes:
    import uuid as u

    item = struct.pack("<HBB", ctx, 1, 0) + u.UUID(uuid).bytes_le + b"\x02\0\0\0"
    item += (
        b"\x04\x5d\x88\x8a\xeb\x1c\xc9\x11\x9f\xe8\x08\x00\x2b\x10\x48\x60\x02\0\0\0"
    )
    return pdu(
        p.BIND, call_id, struct.pack("<HHI", 5840, 5840, 0) + bytes([1, 0, 0, 0]) + item
    )


def request(
    call_id: int, ctx: int, opnum: int, stub: bytes, obj: bool = False
) -> bytes:
    body = struct.pack("<IHH", len(stub), ctx, opnum)
    if obj:
        body += b"\x11" * 16
    return pdu(p.REQUEST, call_id, body + stub, flags=3 | (0x80 if obj else 0))


def utf16(text: str) -> bytes:
    return text.encode("utf-16-le")


def run(chunks: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    s = DCERPCSession(CONN, lambda n, r: out.append((n, r)))
    for c in chunks:
        s.data(True, 5.0, c)
    return out


def test_command_shapes() -> None:
    assert command_in(
        b"\0\0" + utf16("%COMSPEC% /Q /c echo dir > \\\\127.0.0.1\\C$\\x") + b"\0\0"
    ) == ("%COMSPEC% /Q /c echo dir > \\\\127.0.0.1\\C$\\x")
    assert command_in(utf16("Win32_Process") + b"\0\0" + utf16("Create")) is None
    assert command_in(b"powershell -enc AAAA") == "powershell -enc AAAA"
    assert wants("svcctl", "CreateServiceW") and not wants("svcctl", "OpenSCManagerW")
    assert wants(IDISPATCH, "unknown-6") and not wants(IDISPATCH, "unknown-5")


def test_service_binary_path_is_logged() -> None:
    stub = b"\0" * 20 + utf16("%SystemRoot%\\evil.exe") + b"\0\0"
    out = run([bind(1, 0, SVCCTL), request(2, 0, 12, stub)])  # 12: CreateServiceW
    assert out == [
        (
            "dce_rpc_command",
            {
                "ts": 5.0, **CONN.id_fields(), "endpoint": "svcctl",
                "operation": "CreateServiceW", "command": "%SystemRoot%\\evil.exe",
            },
        )
    ]  # fmt: skip


def test_unbound_dcom_call_and_plain_calls() -> None:
    stub = utf16("c:\\windows\\system32\\cmd.exe") + b"\0\0" + utf16("/c calc.exe")
    out = run([request(1, 3, 6, stub, obj=True), request(2, 4, 6, stub, obj=False)])
    assert [(r.get("endpoint"), r["operation"], r["command"]) for _, r in out] == [
        (None, "unknown-6", "c:\\windows\\system32\\cmd.exe /c calc.exe")
    ]
    # An ordinary call on a bound context names nothing.
    assert run([bind(1, 0, SVCCTL), request(2, 0, 15, utf16("cmd.exe /c x"))]) == []


def test_salvaged_segments_are_read_for_commands_only() -> None:
    out: list[tuple[str, dict[str, Any]]] = []
    s = DCERPCSession(CONN, lambda n, r: out.append((n, r)))
    stub = utf16("/c notepad.exe")
    s.salvage(True, 7.0, [request(1, 0, 6, stub, obj=True), b"\x05garbage"])
    s.salvage(False, 7.0, [request(2, 0, 6, stub, obj=True)])
    assert [(n, r["ts"], r["command"]) for n, r in out] == [
        ("dce_rpc_command", 7.0, "/c notepad.exe")
    ]


def test_verifiers_reach_the_ntlm_tracker() -> None:
    out: list[tuple[str, dict[str, Any]]] = []
    s = DCERPCSession(CONN, lambda n, r: out.append((n, r)))
    neg = b"NTLMSSP\x00\x01\x00\x00\x00" + b"\x00" * 24
    b = bind(1, 0, SVCCTL)
    trailer = bytes([10, 2, 0, 0]) + b"\0\0\0\0"
    raw = b + trailer + neg
    raw = raw[:8] + struct.pack("<HH", len(raw), len(neg)) + raw[12:]
    s.data(True, 1.0, raw)
    s.end(2.0)
    assert [(n, r["ts"]) for n, r in out] == [("ntlm", 1.0)]


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_never_raises(stub: bytes) -> None:
    command_in(stub)
    run([request(1, 0, 6, stub, obj=True)])
    s = DCERPCSession(CONN, lambda n, r: None)
    s.salvage(True, 1.0, [stub, b"\x05\x00" + stub])


def test_reassembler_hands_dropped_segments_to_salvage() -> None:
    """Bytes behind a hole no ACK covers are dropped at the end (as Zeek
    does) but shown to ``salvage``; delivered bytes are not."""
    from sensor.proto.stream import Reassembler

    got: list[tuple[Any, bool, list[bytes]]] = []
    delivered: list[bytes] = []
    r = Reassembler(lambda k, o, t, d: delivered.append(d), lambda k, o, t, n: None)
    r.salvage = lambda k, o, t, segs: got.append((k, o, segs))
    r.segment("c", True, 1.0, 1000, b"first")
    r.segment("c", True, 2.0, 1100, b"behind")
    r.segment("c", True, 3.0, 1200, b"hole")
    r.finish("c", 4.0, orig_size=204, resp_size=0, missed=0)
    assert delivered == [b"first"]
    assert got == [("c", True, [b"behind", b"hole"])]
