"""DHCP parser and analyzer: options, joining across connections, timing, fuzzing."""

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
from sensor.proto.analyzers.dhcp import MAX_UIDS, DHCPAnalyzer
from sensor.proto.parsers.dhcp import FIXED_LEN, fmt_mac, parse_message

EXAMPLES = 3000 if os.environ.get("SENSOR_FUZZ") == "deep" else 150
SCHEMAS = Path(__file__).resolve().parents[2] / "sensor/output/schemas"
CHECK = {
    log: jsonschema.Draft202012Validator(
        json.loads((SCHEMAS / f"{log}.schema.json").read_text()),
        format_checker=jsonschema.FormatChecker(),
    )
    for log in ("dhcp", "weird")
}
MAC = bytes.fromhex("90b11c994929")


def dhcp(
    op: int, xid: int, msg_type: int, yiaddr: bytes = bytes(4), **opts: bytes
) -> bytes:
    fixed = struct.pack(">BBBBIHH", op, 1, 6, 0, xid, 0, 0)
    fixed += bytes(4) + yiaddr + bytes(8) + MAC + bytes(10) + bytes(192)
    codes = {
        "host": 12,
        "domain": 15,
        "req": 50,
        "lease": 51,
        "msg": 56,
        "cid": 61,
        "fqdn": 81,
    }
    options = bytes([53, 1, msg_type])
    for key, value in opts.items():
        options += bytes([codes[key], len(value)]) + value
    return fixed + b"\x63\x82\x53\x63" + options + b"\xff"


DISCOVER = ConnInfo("Cdisc", "udp", "0.0.0.0", 68, "255.255.255.255", 67)
OFFER = ConnInfo("Coffer", "udp", "10.0.0.1", 67, "255.255.255.255", 68)
UNICAST = ConnInfo("Cuni", "udp", "10.0.0.7", 68, "10.0.0.1", 67)


class Net:
    """Analyzers of one dispatcher: they share the join table through ``emit``."""

    def __init__(self) -> None:
        self.out: list[dict[str, Any]] = []
        self.weirds: list[dict[str, Any]] = []
        self.analyzers: dict[str, DHCPAnalyzer] = {}

    def emit(self, log: str, rec: dict[str, Any]) -> None:
        assert not [e.message for e in CHECK[log].iter_errors(rec)], rec
        (self.out if log == "dhcp" else self.weirds).append(rec)

    def send(self, conn: ConnInfo, is_orig: bool, ts: float, data: bytes) -> None:
        a = self.analyzers.get(conn.uid)
        if a is None:
            a = self.analyzers[conn.uid] = DHCPAnalyzer(conn, self.emit)
        a.data(is_orig, ts, data)

    def end(self, ts: float) -> None:
        for a in self.analyzers.values():
            a.end(ts)


def test_parse_options() -> None:
    m = parse_message(
        dhcp(
            1,
            7,
            3,
            host=b"nas1\x00",
            req=bytes([10, 0, 0, 7]),
            fqdn=b"\x00\x00\x00HOST",
        )
    )
    assert not isinstance(m, str)
    assert (m.xid, m.msg_type, m.host_name, m.requested_addr, m.client_fqdn) == (
        7,
        3,
        b"nas1\x00",
        "10.0.0.7",
        b"HOST",
    )
    assert m.chaddr == "90:b1:1c:99:49:29"


def test_fqdn_in_wire_format() -> None:
    m = parse_message(dhcp(1, 7, 3, fqdn=b"\x04\x00\x00\x04host\x07example\x00"))
    assert not isinstance(m, str) and m.client_fqdn == b"host.example"


def test_hostile_messages_are_named() -> None:
    assert parse_message(b"\x01" * 100) == "DHCP_message_too_short"
    assert parse_message(bytes(FIXED_LEN)) == "DHCP_no_magic_cookie"
    lying = dhcp(1, 1, 1)[:-1] + b"\x0c\xff" + b"abc"
    m = parse_message(lying)
    assert not isinstance(m, str) and m.anomalies == ["DHCP_option_length_past_end"]
    no_type = dhcp(1, 1, 1).replace(b"\x35\x01\x01", b"\x00\x00\x00")
    assert parse_message(no_type) == "DHCP_no_message_type"


def test_truncation_at_every_byte() -> None:
    full = dhcp(
        2,
        9,
        5,
        yiaddr=bytes([10, 0, 0, 7]),
        lease=struct.pack(">I", 900),
        domain=b"cmu.edu\x00",
    )
    for end in range(len(full)):
        parse_message(full[:end])
    m = parse_message(full)
    assert not isinstance(m, str) and m.domain_name == b"cmu.edu" and m.lease == 900


def test_mac_formats() -> None:
    assert fmt_mac(MAC + bytes(10)) == "90:b1:1c:99:49:29"
    assert fmt_mac(bytes(range(8))) == "00:01:02:03:04:05:06:07"
    assert fmt_mac(b"\x01\x02") == ""


def test_conversation_across_connections() -> None:
    net = Net()
    net.send(DISCOVER, True, 1.0, dhcp(1, 5, 1, host=b"btest"))
    net.send(OFFER, True, 1.1, dhcp(2, 5, 2, yiaddr=bytes([10, 0, 0, 7])))
    net.send(UNICAST, True, 1.2, dhcp(1, 5, 3, req=bytes([10, 0, 0, 7])))
    net.send(
        UNICAST,
        False,
        1.3,
        dhcp(
            2,
            5,
            5,
            yiaddr=bytes([10, 0, 0, 7]),
            lease=struct.pack(">I", 900),
            domain=b"example",
            msg=b"ok",
        ),
    )
    net.end(200.0)
    (rec,) = net.out
    assert rec["uids"] == ["Cdisc", "Coffer", "Cuni"]
    assert rec["msg_types"] == ["DISCOVER", "OFFER", "REQUEST", "ACK"]
    assert (rec["client_addr"], rec["server_addr"], rec["assigned_addr"]) == (
        "10.0.0.7",
        "10.0.0.1",
        "10.0.0.7",
    )
    assert (rec["mac"], rec["host_name"], rec["domain"], rec["lease_time"]) == (
        "90:b1:1c:99:49:29",
        "btest",
        "example",
        900.0,
    )
    assert rec["server_message"] == "ok" and rec["ts"] == 1.0
    assert abs(rec["duration"] - 0.3) < 1e-9


def test_quiet_conversation_is_written_before_the_next_one() -> None:
    net = Net()
    net.send(DISCOVER, True, 1.0, dhcp(1, 5, 1))
    # 20 s later the first is long quiet: Zeek's timers would have written it.
    net.send(DISCOVER, True, 21.0, dhcp(1, 5, 1))
    assert len(net.out) == 1 and net.out[0]["msg_types"] == ["DISCOVER"]
    net.end(30.0)
    assert len(net.out) == 2


def test_too_many_uids_writes_early() -> None:
    net = Net()
    for i in range(MAX_UIDS):
        conn = ConnInfo(f"Cc{i}", "udp", f"10.0.1.{i}", 68, "10.0.0.1", 67)
        net.send(conn, True, 1.0 + i / 100, dhcp(1, 77, 8))
    assert len(net.out) == 1 and len(net.out[0]["uids"]) == MAX_UIDS


def test_release_from_client_sets_client_addr() -> None:
    net = Net()
    net.send(UNICAST, True, 1.0, dhcp(1, 9, 7, cid=b"\x01" + MAC))
    net.end(2.0)
    (rec,) = net.out
    assert (rec["client_addr"], rec["mac"], rec["msg_types"]) == (
        "10.0.0.7",
        "90:b1:1c:99:49:29",
        ["RELEASE"],
    )


def test_bad_datagrams_are_weirds() -> None:
    net = Net()
    net.send(DISCOVER, True, 1.0, b"short")
    net.send(DISCOVER, True, 2.0, b"short")
    net.end(3.0)
    assert net.out == [] and [w["name"] for w in net.weirds] == [
        "DHCP_message_too_short"
    ]
    assert net.analyzers["Cdisc"].counters == {"DHCP_message_too_short": 2}


def test_dispatchers_do_not_share_conversations() -> None:
    a, b = Net(), Net()
    a.send(DISCOVER, True, 1.0, dhcp(1, 5, 1))
    b.send(DISCOVER, True, 1.0, dhcp(1, 5, 1))
    a.end(2.0)
    b.end(2.0)
    assert len(a.out) == 1 and len(b.out) == 1


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=400), st.binary(max_size=60))
def test_fuzz_never_raises(noise: bytes, options: bytes) -> None:
    net = Net()
    net.send(DISCOVER, True, 1.0, noise)
    net.send(OFFER, True, 2.0, dhcp(2, 1, 2)[:FIXED_LEN] + options)
    net.end(3.0)
