"""The table never raises, whatever the bytes (fast profile; SENSOR_FUZZ=deep)."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.flow.table import ConnTable, FlowConfig
from tests.flow.craft import (
    ACK,
    FIN,
    PSH,
    SYN,
    Flow,
    batch,
    eth,
    icmp,
    ipv4,
    ipv6,
    tcp,
    udp,
)

EXAMPLES = 5000 if os.environ.get("SENSOR_FUZZ") == "deep" else 150
LINKTYPES = [0, 1, 101, 108, 113, 229, 276]

F = Flow()
SEEDS = [
    F.c(SYN, 1),
    F.s(SYN | ACK, 9, 2),
    F.c(PSH | ACK, 2, 10, b"GET / HTTP/1.0\r\n\r\n"),
    F.c(FIN | ACK, 20, 10),
    eth(ipv4("10.0.0.1", "10.0.0.2", 17, udp(53, 53, b"\x00\x01\x81\x80" + b"\0" * 8))),
    eth(ipv4("10.0.0.1", "10.0.0.2", 17, b"\0" * 24, ident=3, frag=0x2000)),
    eth(ipv4("10.0.0.1", "10.0.0.2", 17, b"\0" * 24, ident=3, frag=3)),
    eth(ipv6("::1", "::2", 58, icmp(128, 0, b"x")), ethertype=0x86DD),
    eth(
        ipv4(
            "10.0.0.1", "10.0.0.2", 17, udp(1, 3544, ipv6("::1", "::2", 6, b"\0" * 20))
        )
    ),
    eth(
        ipv4(
            "10.0.0.1",
            "10.0.0.2",
            47,
            b"\x00\x00\x08\x00" + ipv4("1.1.1.1", "2.2.2.2", 6, b"\0" * 20),
        )
    ),
    eth(
        ipv4("10.0.0.1", "10.0.0.2", 4, ipv4("1.1.1.1", "2.2.2.2", 17, udp(1, 2, b"x")))
    ),
    eth(
        ipv4(
            "10.0.0.1",
            "10.0.0.2",
            17,
            udp(9, 4789, b"\x08" + b"\0" * 7 + eth(b"\0" * 28)),
        )
    ),
    eth(
        ipv4(
            "10.0.0.1",
            "10.0.0.2",
            17,
            udp(
                9,
                2152,
                b"\x30\xff\x00\x1c"
                + b"\0" * 4
                + ipv4("1.1.1.1", "2.2.2.2", 17, udp(1, 2, b"")),
            ),
        )
    ),
    eth(
        ipv4(
            "10.0.0.1",
            "10.0.0.2",
            6,
            tcp(5, 53, PSH | ACK, 1, 1, b"\x00\x0c" + b"\x00" * 12),
        )
    ),
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    frame = draw(st.sampled_from(SEEDS))
    pos = draw(st.integers(0, len(frame)))
    junk = draw(st.binary(max_size=6))
    cut = draw(st.integers(0, len(frame) + 6))
    return (frame[:pos] + junk + frame[pos + len(junk) :])[:cut]


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    frames=st.lists(st.one_of(mutated(), st.binary(max_size=80)), max_size=12),
    linktype=st.sampled_from(LINKTYPES),
    gaps=st.lists(st.floats(0, 400), min_size=12, max_size=12),
)
def test_table_never_raises(
    frames: list[bytes], linktype: int, gaps: list[float]
) -> None:
    table = ConnTable(FlowConfig(max_conns=4, frag_memory=64))
    t = 0.0
    packets = []
    for frame, gap in zip(frames, gaps, strict=False):
        t += gap
        packets.append((t, frame))
    ev = table.process(batch(packets, linktype))
    done = table.flush()
    stats = table.stats()
    assert stats.get("packets", 0) == len(frames)
    for rec in ev.conns + done.conns:
        assert rec["orig_pkts"] >= 0 and rec["resp_pkts"] >= 0
        assert rec["conn_state"]
