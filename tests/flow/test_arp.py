"""ARP records from both connection tables: crafted frames and a real ARP scan.

Frames are built by hand and with scapy (an independent encoder); each test
runs against the compiled table and its twin (the ``impl`` fixture).
"""

from __future__ import annotations

import importlib
import ipaddress
import json
import struct
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest

from sensor.capture.merge import merge
from sensor.capture.pcapfile import CaptureFile
from sensor.decode import packet as twin_decode
from sensor.engine import Engine
from sensor.flow.arp import ARPAggregator
from tests.flow.craft import batch, eth

SEC = 1_000_000_000
T0 = 1_700_000_000.0
MAC_1 = bytes.fromhex("020000000011")
MAC_2 = bytes.fromhex("020000000022")
ZERO = bytes(6)
BCAST = b"\xff" * 6
SCHEMA = Path(__file__).resolve().parents[2] / "sensor/output/schemas/arp.schema.json"


def table_module(impl: str) -> ModuleType:
    return importlib.import_module(
        "sensor._ext.flow" if impl == "compiled" else "sensor.flow.table"
    )


def arp(op: int, sha: bytes, spa: str, tha: bytes, tpa: str) -> bytes:
    """An Ethernet/IPv4 ARP packet (RFC 826), 28 bytes."""
    return (
        struct.pack("!HHBBH", 1, 0x0800, 6, 4, op)
        + sha
        + ipaddress.IPv4Address(spa).packed
        + tha
        + ipaddress.IPv4Address(tpa).packed
    )


def frame(op: int, sha: bytes, spa: str, tha: bytes, tpa: str) -> bytes:
    dst = BCAST if op == 1 else tha
    return eth(arp(op, sha, spa, tha, tpa), ethertype=0x0806, src=sha, dst=dst)


def run(impl: str, packets: list[tuple[float, bytes]]) -> tuple[list[Any], Any]:
    table = table_module(impl).ConnTable(None)
    arps = list(table.process(batch(packets)).arps)
    arps += table.flush().arps
    return arps, table


def test_request_and_reply_give_one_record_each(impl: str) -> None:
    arps, table = run(
        impl,
        [
            (T0, frame(1, MAC_1, "192.0.2.1", ZERO, "192.0.2.2")),
            (T0 + 0.001, frame(2, MAC_2, "192.0.2.2", MAC_1, "192.0.2.1")),
        ],
    )

    assert arps == [
        {
            "ts": T0,
            "op": "request",
            "src_mac": "02:00:00:00:00:11",
            "src_ip": "192.0.2.1",
            "dst_mac": "00:00:00:00:00:00",
            "dst_ip": "192.0.2.2",
            "gratuitous": False,
            "count": 1,
        },
        {
            "ts": T0 + 0.001,
            "op": "reply",
            "src_mac": "02:00:00:00:00:22",
            "src_ip": "192.0.2.2",
            "dst_mac": "02:00:00:00:00:11",
            "dst_ip": "192.0.2.1",
            "gratuitous": False,
            "count": 1,
        },
    ]
    stats = table.stats()
    assert stats["arp_packets"] == 2
    assert "conns_created" not in stats  # ARP makes no connection


def test_repeats_within_the_window_count_once(impl: str) -> None:
    ask = frame(1, MAC_1, "192.0.2.1", ZERO, "192.0.2.2")
    other = frame(1, MAC_1, "192.0.2.1", ZERO, "192.0.2.3")
    table = table_module(impl).ConnTable(None)

    # Three repeats within 5 s of the first, one question about another
    # address, then the same question again 6 s later: a new record.
    ev = table.process(
        batch([(T0, ask), (T0 + 1, ask), (T0 + 1.5, other), (T0 + 4.9, ask)])
    )
    assert ev.arps == []  # windows still open
    ev = table.process(batch([(T0 + 6, ask)]))
    assert [(a["dst_ip"], a["count"], a["ts"]) for a in ev.arps] == [
        ("192.0.2.2", 3, T0)
    ]
    ev = table.advance(int((T0 + 7) * SEC))
    assert [(a["dst_ip"], a["count"]) for a in ev.arps] == [("192.0.2.3", 1)]
    ev = table.flush()
    assert [(a["dst_ip"], a["count"], a["ts"]) for a in ev.arps] == [
        ("192.0.2.2", 1, T0 + 6)
    ]
    assert table.stats()["arp_packets"] == 5


def test_gratuitous_vlan_and_unsupported(impl: str) -> None:
    announce = frame(1, MAC_2, "192.0.2.9", ZERO, "192.0.2.9")
    tagged = (
        BCAST + MAC_1 + struct.pack("!HHH", 0x8100, 42, 0x0806)
        + arp(1, MAC_1, "192.0.2.1", ZERO, "192.0.2.2")
    )  # fmt: skip
    rarp_like = eth(
        struct.pack("!HHBBH", 6, 0x0800, 6, 4, 1) + bytes(20), ethertype=0x0806
    )
    cut = eth(arp(1, MAC_1, "192.0.2.1", ZERO, "192.0.2.2")[:20], ethertype=0x0806)
    op3 = frame(3, MAC_1, "192.0.2.1", ZERO, "192.0.2.2")
    arps, table = run(
        impl,
        [
            (T0, announce),
            (T0 + 1, tagged),
            (T0 + 2, rarp_like),
            (T0 + 3, cut),
            (T0 + 4, op3),
        ],
    )

    assert [(a["src_ip"], a["gratuitous"], a.get("vlan")) for a in arps] == [
        ("192.0.2.9", True, None),
        ("192.0.2.1", False, 42),
    ]
    stats = table.stats()
    assert stats["arp_packets"] == 5
    assert stats["arp_unsupported"] == 3  # another hardware type, cut, op 3


def test_scapy_frames_decode_to_the_same_addresses(impl: str) -> None:
    scapy = pytest.importorskip("scapy.all")
    pkt = scapy.Ether(src="02:00:00:00:00:22", dst="02:00:00:00:00:11") / scapy.ARP(
        op=2,
        hwsrc="02:00:00:00:00:22",
        psrc="198.51.100.7",
        hwdst="02:00:00:00:00:11",
        pdst="198.51.100.1",
    )
    arps, _ = run(impl, [(T0, bytes(pkt))])
    assert [
        (a["op"], a["src_mac"], a["src_ip"], a["dst_mac"], a["dst_ip"]) for a in arps
    ] == [
        (
            "reply",
            "02:00:00:00:00:22",
            "198.51.100.7",
            "02:00:00:00:00:11",
            "198.51.100.1",
        )
    ]
    decode = (
        importlib.import_module("sensor._ext.decode").decode
        if impl == "compiled"
        else twin_decode.decode
    )
    d = decode(1, bytes(pkt))
    assert (d["arp_op"], d["arp_sha"], d["arp_spa"], d["arp_tha"], d["arp_tpa"]) == (
        2,
        "02:00:00:00:00:22",
        "198.51.100.7",
        "02:00:00:00:00:11",
        "198.51.100.1",
    )


def test_aggregator_memory_bound_hands_out_the_oldest() -> None:
    agg = ARPAggregator(window_ns=5 * SEC, memory=2)
    out: list[dict[str, Any]] = []
    for i in range(3):
        agg.add(
            i,
            i,
            1,
            MAC_1,
            bytes([192, 0, 2, 1]),
            ZERO,
            bytes([192, 0, 2, 10 + i]),
            -1,
            out,
        )
    assert [a["dst_ip"] for a in out] == ["192.0.2.10"]
    assert agg.stats()["arp_table_full"] == 1
    assert len(agg.open) == 2


def test_arp_scan_capture(impl: str, pcaps: Path) -> None:
    # slips test8: 192.168.1.247 asks, in about 6 s, for every address of
    # 192.168.1.0/24 except its own (255 targets, most of them twice).
    path = pcaps / "attacks/scan/slips_test8-malicious_arpscan.pcap"
    table = table_module(impl).ConnTable(None)
    arps: list[dict[str, Any]] = []
    for b in merge([CaptureFile(str(path))]):
        arps += table.process(b).arps
    arps += table.flush().arps

    scanner = [a for a in arps if a["src_ip"] == "192.168.1.247"]
    targets = {a["dst_ip"] for a in scanner if a["op"] == "request"}
    assert len(targets) == 255 and "192.168.1.247" not in targets
    # It also answers two hosts that ask for it.
    assert [(a["op"], a["dst_ip"]) for a in scanner if a["op"] == "reply"] == [
        ("reply", "192.168.1.122"),
        ("reply", "192.168.1.245"),
    ]
    assert {a["src_mac"] for a in scanner} == {"50:ed:3c:39:bc:d9"}
    assert sum(a["count"] for a in arps) == table.stats()["arp_packets"] == 519
    assert len(arps) == 264


def test_engine_writes_arp_records_that_validate(pcaps: Path) -> None:
    path = pcaps / "attacks/scan/slips_test8-malicious_arpscan.pcap"
    engine = Engine()
    records = []
    for b in merge([CaptureFile(str(path))]):
        records += engine.process(b)
    records += engine.flush()
    arps = [r for name, r in records if name == "arp"]
    assert len(arps) == 264

    check = jsonschema.Draft202012Validator(
        json.loads(SCHEMA.read_text()), format_checker=jsonschema.FormatChecker()
    )
    for rec in arps:
        errors = [e.message for e in check.iter_errors(rec)]
        assert not errors, f"{rec}: {errors}"
