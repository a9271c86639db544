"""The compiled connection table (ext/flow.pyx) against its twin.

Both must hand back identical Events (conns, weirds, payloads, ARP records,
early notices, in order) and
identical stats for the same batches: on every shared capture, and on
generated traffic that drives the TCP state machine, the timers, the
table-full policy and the decoder's error paths. The compiled table must
never raise, even on batches whose offsets lie. SENSOR_FUZZ=deep runs
longer. In CI (CI set) a missing build fails instead of skipping.
"""

from __future__ import annotations

import importlib
import ipaddress
import json
import os
import struct
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor.capture.batch import Batch
from sensor.flow import table as twin
from tests.conftest import PCAPS
from tests.flow.captures import batches
from tests.flow.craft import (
    ACK,
    FIN,
    MAC_A,
    PSH,
    RST,
    SYN,
    eth,
    icmp,
    ipv4,
    ipv6,
    tcp,
    udp,
)
from tests.replay import sensord, shared_captures

DEEP = os.environ.get("SENSOR_FUZZ") == "deep"
EXAMPLES = 3000 if DEEP else 120
SEC = 1_000_000_000


def compiled() -> ModuleType:
    try:
        return importlib.import_module("sensor._ext.flow")
    except ImportError as e:
        if os.environ.get("CI"):
            pytest.fail(f"compiled extensions not built: {e}")
        pytest.skip(f"compiled extensions not built: {e}")


def events(ev: Any) -> tuple[list[Any], ...]:
    # Field order too: the logs written from both must be byte-identical.
    order = [list(record) for record in ev.conns + ev.weirds + ev.arps + ev.early]
    return ev.conns, ev.weirds, ev.payloads, ev.arps, ev.early, order


def assert_same(chunks: list[Batch], config: twin.FlowConfig | None = None) -> int:
    """Run both tables over ``chunks``; assert equal output; count conns."""
    # With the early notices of reset connections (Events.early) asked for.
    fast = compiled().ConnTable(config, early=True)
    slow = twin.ConnTable(config, early=True)
    conns = 0
    for i, chunk in enumerate(chunks):
        got, want = events(fast.process(chunk)), events(slow.process(chunk))
        assert got == want, f"batch {i}"
        conns += len(want[0])
    got, want = events(fast.flush()), events(slow.flush())
    assert got == want, "flush"
    assert fast.stats() == slow.stats()
    return conns + len(want[0])


CAPTURES = shared_captures()


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_shared_capture_gives_identical_events(path: Path) -> None:
    assert_same(list(batches(path)))


def test_a_capture_gives_its_known_connections() -> None:
    # wikipedia.pcap: Zeek's conn.log for it has 34 connections.
    path = next(p for p in CAPTURES if p.name == "wikipedia.pcap")
    assert assert_same(list(batches(path))) == 34


# -- generated traffic ------------------------------------------------------

HOSTS = ["10.0.0.1", "10.0.0.2", "255.255.255.255"]
PORTS = [22, 53, 80, 123, 40000, 40001]
SEQS = [0, 1, 1000, 1001, 1500, 5000, 5001, 0xFFFFFFF0, 0xFFFFFFFF]
FLAGS = [
    SYN,
    SYN | ACK,
    ACK,
    PSH | ACK,
    FIN | ACK,
    RST,
    RST | ACK,
    FIN,
    SYN | FIN | ACK,
]
GAPS = [0.0, 0.001, 0.5, 5.5, 7.0, 11.0, 61.0, 400.0, 3700.0]


@st.composite
def frame(draw: st.DrawFn) -> bytes:
    """One Ethernet frame: TCP with random flags and numbers, UDP, ICMP,
    an IPv4 fragment, or garbage after a valid Ethernet header."""
    src, dst = draw(st.sampled_from(HOSTS[:2])), draw(st.sampled_from(HOSTS))
    kind = draw(
        st.sampled_from(
            ["tcp", "tcp", "tcp", "udp", "icmp", "frag", "tunnel", "arp", "junk"]
        )
    )
    sp, dp = draw(st.sampled_from(PORTS)), draw(st.sampled_from(PORTS))
    if kind == "tcp":
        seg = tcp(
            sp,
            dp,
            draw(st.sampled_from(FLAGS)),
            draw(st.sampled_from(SEQS)),
            draw(st.sampled_from(SEQS)),
            draw(st.sampled_from([b"", b"x" * 10, b"y" * 600, b"z" * 20000])),
            draw(st.sampled_from([0, 8192])),
        )
        return eth(ipv4(src, dst, 6, seg))
    if kind == "udp":
        payload = draw(
            st.sampled_from(
                [b"", b"\x00\x01\x81\x80" + b"\0" * 8, b"\x23" + b"\0" * 47]
            )
        )
        return eth(ipv4(src, dst, 17, udp(sp, dp, payload)))
    if kind == "icmp":
        return eth(
            ipv6("::1", "::2", 58, icmp(draw(st.sampled_from([128, 129, 1])), 0, b"x")),
            ethertype=0x86DD,
        )
    if kind == "arp":
        # Ethernet/IPv4 ARP (RFC 826), sometimes another op, cut short or
        # padded; the same few addresses, so that repeats merge.
        body = (
            struct.pack("!HHBBH", 1, 0x0800, 6, 4, draw(st.sampled_from([1, 2, 3])))
            + MAC_A
            + ipaddress.IPv4Address(src).packed
            + bytes(6)
            + ipaddress.IPv4Address(dst).packed
        )
        return eth(body[: draw(st.sampled_from([28, 28, 28, 27, 8, 7]))], 0x0806)
    if kind == "frag":
        off = draw(st.sampled_from([0, 1, 3]))
        more = draw(st.sampled_from([0, 0x2000]))
        return eth(ipv4(src, dst, 17, b"\0" * 24, ident=7, frag=more | off))
    if kind == "tunnel":
        inner = ipv4("172.16.0.1", "172.16.0.2", 6, tcp(sp, dp, SYN, 1))
        how = draw(st.sampled_from(["ipip", "gre", "vxlan", "geneve", "teredo"]))
        if how == "ipip":
            return eth(ipv4(src, dst, 4, inner))
        if how == "gre":
            return eth(ipv4(src, dst, 47, b"\x00\x00\x08\x00" + inner))
        if how == "teredo":
            six = ipv6("2001::1", "2001::2", 17, udp(1, 2, b"x"))
            return eth(ipv4(src, dst, 17, udp(sp, 3544, six)))
        port, head = (
            (4789, b"\x08" + bytes(7))
            if how == "vxlan"
            else (6081, b"\x00\x00\x65\x58" + bytes(4))
        )
        return eth(ipv4(src, dst, 17, udp(sp, port, head + eth(inner))))
    return eth(ipv4(src, dst, 6, b"")) + draw(st.binary(max_size=40))


@st.composite
def traffic(draw: st.DrawFn) -> list[Batch]:
    t = 1_000_000.0
    packets = []
    for _ in range(draw(st.integers(1, 40))):
        t += draw(st.sampled_from(GAPS))
        packets.append((int(t * SEC), 1, draw(frame())))
    cut = draw(st.integers(0, len(packets)))
    return [Batch.from_packets(p) for p in (packets[:cut], packets[cut:]) if p]


@settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(traffic(), st.sampled_from([2, 1_000_000]), st.sampled_from([0, 1, 8]))
def test_fuzz_generated_traffic(
    chunks: list[Batch], max_conns: int, payloads: int
) -> None:
    config = twin.FlowConfig(
        max_conns=max_conns, payload_packets=payloads, payload_bytes=700
    )
    assert_same(chunks, config)


def test_table_full_finishes_the_soonest_and_counts() -> None:
    flows = [
        (
            SEC * (1 + i),
            1,
            eth(ipv4("10.0.0.1", "10.0.0.2", 17, udp(1000 + i, 9, b"q"))),
        )
        for i in range(5)
    ]
    fast = compiled().ConnTable(twin.FlowConfig(max_conns=2))
    ev = fast.process(Batch.from_packets(flows))
    assert [c["id.orig_p"] for c in ev.conns] == [1000, 1001, 1002]
    # Reported once a day (Zeek's weird framework), counted every time.
    assert [w["name"] for w in ev.weirds] == ["conn_table_full"]
    assert fast.stats()["conn_table_full"] == 3
    assert fast.stats()["conns_open"] == 2


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    st.binary(max_size=300),
    st.lists(
        st.tuples(st.integers(-5, 400), st.integers(0, 400), st.integers(0, 0xFFFF)),
        max_size=20,
    ),
)
def test_fuzz_compiled_never_raises_on_lying_batches(
    data: bytes, rows: list[tuple[int, int, int]]
) -> None:
    n = len(rows)
    lying = Batch(
        data=data,
        offsets=np.array([r[0] for r in rows], dtype=np.int64),
        caplens=np.array([r[1] for r in rows], dtype=np.uint32),
        wirelens=np.array([r[1] for r in rows], dtype=np.uint32),
        ts=np.arange(n, dtype=np.int64) * SEC,
        linktypes=np.array([r[2] % 300 for r in rows], dtype=np.uint16),
    )
    table = compiled().ConnTable()
    table.process(lying)
    table.flush()
    assert table.stats()["packets"] == n if n else "packets" not in table.stats()


def test_long_history_spills_over_and_stops_at_the_cap() -> None:
    # A SYN, then RSTs at ever new sequence numbers: each adds an "R", past
    # the 16 letters kept inline and up to the 64-letter cap (HISTORY_MAX).
    def seg(i: int, flags: int, seq: int) -> tuple[int, int, bytes]:
        frame = eth(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(40000, 80, flags, seq)))
        return SEC * 10 + i * 1000, 1, frame

    packets = [seg(0, SYN, 100)] + [seg(i + 1, RST, 101 + 10 * i) for i in range(70)]
    fast = compiled().ConnTable()
    fast.process(Batch.from_packets(packets))
    (record,) = fast.flush().conns
    assert record["history"] == "S" + "R" * 63
    assert_same([Batch.from_packets(packets)])


def hooked(module: Any, config: twin.FlowConfig, chunks: list[Batch]) -> list[Any]:
    """Everything the payload hooks saw, in order: events and questions."""
    seen: list[Any] = []

    def wants_more(uid: str) -> bool:
        answer = ord(uid[-1]) % 3 != 0  # deterministic: the uids are equal
        seen.append(("ask", uid, answer))
        return answer

    table = module.ConnTable(config, on_payload=seen.append, wants_more=wants_more)
    for chunk in chunks:
        seen.append(("conns", table.process(chunk).conns))
    seen.append(("flush", table.flush().conns))
    return seen


@settings(
    max_examples=EXAMPLES // 2,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(traffic(), st.sampled_from([0, 1, 8]))
def test_fuzz_payload_hooks_agree(chunks: list[Batch], payloads: int) -> None:
    config = twin.FlowConfig(payload_packets=payloads, payload_bytes=50)
    got, want = hooked(compiled(), config, chunks), hooked(twin, config, chunks)
    assert got == want
    events = [e for e in want if len(e) == 10]
    assert all(isinstance(e[9], int) and 0 <= e[9] < 2**32 for e in events)


def test_payload_hooks_get_whole_segments_with_their_sequence_numbers() -> None:
    def pkt(t: float, seq: int, data: bytes) -> tuple[int, int, bytes]:
        seg = tcp(40000, 80, PSH | ACK, seq, 1, data)
        return int(t * SEC), 1, eth(ipv4("10.0.0.1", "10.0.0.2", 6, seg))

    flows = [pkt(1.0, 1000, b"a" * 30), pkt(1.1, 1030, b"b" * 30), pkt(1.2, 1060, b"c")]
    config = twin.FlowConfig(payload_packets=1, payload_bytes=20)
    for module in (compiled(), twin):
        seen: list[Any] = []
        table = module.ConnTable(
            config, on_payload=seen.append, wants_more=lambda u: True
        )
        table.process(Batch.from_packets(flows))
        assert [(e[3], e[9]) for e in seen] == [
            (b"a" * 30, 1000),  # the budget would have cut it to 20 bytes
            (b"b" * 30, 1030),
            (b"c", 1060),
        ]
        plain = module.ConnTable(config).process(Batch.from_packets(flows))
        assert [(e[3], e[9]) for e in plain.payloads] == [(b"a" * 20, 1000)]


@pytest.mark.parametrize(
    "name", ["zeek/traces/wikipedia.pcap", "zeek/traces/tcp__truncated-header.pcap"]
)
def test_sensord_writes_the_same_logs_with_either_table(
    name: str, tmp_path: Path
) -> None:
    # The whole pipeline, one subprocess per implementation (picked at import).
    compiled()
    env = dict(os.environ)
    assert (
        sensord(
            "--replay",
            str(PCAPS / name),
            "--logdir",
            str(tmp_path / "c"),
            "--progress",
            "never",
            env=env,
        ).returncode
        == 0
    )
    env["SENSOR_NO_EXTENSIONS"] = "1"
    assert (
        sensord(
            "--replay",
            str(PCAPS / name),
            "--logdir",
            str(tmp_path / "p"),
            "--progress",
            "never",
            env=env,
        ).returncode
        == 0
    )
    logs = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert "conn.log" in logs
    assert logs == sorted(p.name for p in (tmp_path / "p").iterdir())
    for log in logs:
        got: Any = (tmp_path / "c" / log).read_bytes()
        want: Any = (tmp_path / "p" / log).read_bytes()
        if log == "actions.log":  # each change is stamped with the wall time
            got, want = unstamped(got), unstamped(want)
        assert got == want, log


def unstamped(text: bytes) -> list[dict[str, Any]]:
    """The records of an actions.log without their wall-time field."""
    records = [json.loads(line) for line in text.splitlines()]
    for r in records:
        r.pop("changed", None)
    return records
