"""The compiled decoder (ext/decode.pyx) against its twin, field for field.

Both ``decode()`` functions must return equal dicts for every input: the
packets of the shared captures, those packets mutated (bytes changed, cut
short, extended, fed under another link type), and arbitrary bytes. Set
SENSOR_FUZZ=deep for a longer run.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor.decode import packet as twin
from tests.conftest import PCAPS
from tests.flow.captures import packets
from tests.replay import shared_captures

DEEP = os.environ.get("SENSOR_FUZZ") == "deep"
EXAMPLES = 20000 if DEEP else 600
LINKTYPES = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147]


def compiled() -> ModuleType:
    try:
        return importlib.import_module("sensor._ext.decode")
    except ImportError as e:
        if os.environ.get("CI"):
            pytest.fail(f"compiled extensions not built: {e}")
        pytest.skip(f"compiled extensions not built: {e}")


def sample() -> list[tuple[int, bytes]]:
    """A few hundred real packets from captures of every link type."""
    names = [
        "zeek/traces/wikipedia.pcap",
        "zeek/traces/mixed-vlan-mpls.pcap",
        "zeek/traces/http-qinq-0.pcap",
        "zeek/traces/ftp__ipv6.pcap",
        "zeek/traces/ipv4__fragmented-1.pcap",
        "zeek/traces/trunc__trunc-hdr.pcap",
        "zeek/traces/tcp__truncated-header.pcap",
        "suricata/smtp-url-base64/smtp-url-b64.pcap",
        "suricata/decode-teredo-01/input.pcap",
        "attacks/scan/slips_test8-malicious_arpscan.pcap",
    ]
    out: list[tuple[int, bytes]] = []
    for name in names:
        out.extend(list(packets(PCAPS / name))[:60])
    return out


SAMPLE = sample() if PCAPS.is_dir() else [(1, b"")]


def test_every_shared_packet_decodes_the_same() -> None:
    fast = compiled()
    count = 0
    for path in shared_captures():
        for linktype, data in packets(path):
            assert fast.decode(linktype, data) == twin.decode(linktype, data), (
                path,
                data.hex(),
            )
            count += 1
    assert count > 90000


def test_decodes_a_known_packet() -> None:
    # First packet of wikipedia.pcap: an mDNS query over IPv4.
    got = compiled().decode(*SAMPLE[0])
    assert got["src"] == "141.142.220.202" and got["dst"] == "224.0.0.251"
    assert (got["sport"], got["dport"], got["ip_proto"], got["anomaly"]) == (
        5353,
        5353,
        17,
        "",
    )


@st.composite
def mutated(draw: st.DrawFn) -> tuple[int, bytes]:
    linktype, data = draw(st.sampled_from(SAMPLE))
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["set", "cut", "grow", "linktype"]))
        if op == "set" and buf:
            buf[draw(st.integers(0, len(buf) - 1))] = draw(st.integers(0, 255))
        elif op == "cut":
            del buf[draw(st.integers(0, len(buf))) :]
        elif op == "grow":
            buf += draw(st.binary(min_size=1, max_size=16))
        else:
            linktype = draw(st.sampled_from(LINKTYPES))
    return linktype, bytes(buf)


@settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(mutated())
def test_fuzz_mutated_real_packets(case: tuple[int, bytes]) -> None:
    linktype, data = case
    assert compiled().decode(linktype, data) == twin.decode(linktype, data)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.sampled_from(LINKTYPES), st.binary(max_size=120))
def test_fuzz_arbitrary_bytes(linktype: int, data: bytes) -> None:
    assert compiled().decode(linktype, data) == twin.decode(linktype, data)


@pytest.mark.parametrize(
    "linktype,data,anomaly",
    [
        (1, b"\x00" * 13, "truncated_link_header"),
        (1, b"\x00" * 12 + b"\x81\x00\x00", "truncated_vlan_header"),
        (1, b"\x00" * 12 + b"\x08\x00" + b"\x45" + b"\x00" * 10, "truncated_IP"),
        (1, b"\x00" * 12 + b"\x08\x00" + b"\x75" + b"\x00" * 30, "unknown_ip_version"),
        (0, b"\x07\x00\x00\x00" + b"\x00" * 40, "unknown_null_family"),
        (4242, b"\x00" * 40, "unknown_link_type"),
    ],
)
def test_named_hostile_cases(linktype: int, data: bytes, anomaly: str) -> None:
    assert compiled().decode(linktype, data)["anomaly"] == anomaly
    assert twin.decode(linktype, data)["anomaly"] == anomaly
