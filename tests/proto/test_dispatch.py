"""The dispatcher and the engine around it: analyzers get reassembled
streams from the connection table (both implementations), gaps, their
end() before the conn record, and the table stops sending once they are
done."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from typing import Any, ClassVar

from sensor.proto.analyzer import Analyzer, ConnInfo
from sensor.proto.dispatch import Dispatcher
from tests.conftest import ROOT
from tests.flow.craft import ACK, FIN, PSH, SYN, Flow, batch

ISN_C, ISN_S = 1000, 5000


class Recorder(Analyzer):
    """Takes every TCP connection; logs what it was given at the end."""

    service = "rec"
    logs: ClassVar[tuple[str, ...]] = ("rec",)
    stop_after = 1 << 30

    @classmethod
    def sniff(cls, conn: ConnInfo, is_orig: bool, data: bytes) -> bool:
        return True

    def __init__(self, conn: ConnInfo, emit: Any) -> None:
        super().__init__(conn, emit)
        self.got: dict[bool, list[bytes | int]] = {True: [], False: []}

    def data(self, is_orig: bool, ts: float, data: bytes) -> None:
        self.got[is_orig].append(data)
        if (
            sum(len(x) for x in self.got[is_orig] if isinstance(x, bytes))
            >= self.stop_after
        ):
            self.done = True

    def gap(self, is_orig: bool, ts: float, length: int) -> None:
        self.got[is_orig].append(length)

    def end(self, ts: float) -> None:
        self.emit("rec", {"ts": ts, **self.conn.id_fields(), "got": self.got})


def test_segments_reach_the_analyzer_in_order_and_gaps_at_the_end() -> None:
    d = Dispatcher((Recorder,))
    tup = ("tcp", "10.0.0.1", 40000, "10.0.0.2", 80)
    d.payload("C1", True, 1.0, b"GET ", *tup, 100)
    d.payload("C1", True, 1.1, b"HTTP", *tup, 106)  # beyond a hole
    d.payload("C1", True, 1.2, b"/ ", *tup, 104)  # fills it
    d.payload("C1", True, 1.3, b"\r\n", *tup, 120)  # beyond another
    assert d.wants_more("C1")
    assert d.finish("C1", 2.0) == ["rec"]
    [(name, rec)] = d.records
    assert name == "rec" and rec["got"][True] == [b"GET ", b"/ ", b"HTTP", 10, b"\r\n"]
    assert d.streams.stats()["gaps"] == 1


def test_a_done_analyzer_stops_the_reassembly_and_the_table() -> None:
    class Short(Recorder):
        stop_after = 4

    d = Dispatcher((Short,))
    tup = ("tcp", "10.0.0.1", 40000, "10.0.0.2", 80)
    d.payload("C1", True, 1.0, b"ab", *tup, 0)
    d.payload("C1", False, 1.0, b"x", *tup, 0)
    d.payload("C1", True, 1.0, b"ef", *tup, 4)  # held: waits for 2..4
    assert d.wants_more("C1")
    d.payload("C1", False, 1.1, b"z", *tup, 2)  # held behind "y"
    d.payload("C1", True, 1.1, b"cd", *tup, 2)  # "abcd": done
    assert not d.wants_more("C1")
    assert d.streams.stats()["streams"] == 0  # dropped, nothing held
    d.payload("C1", False, 1.2, b"y", *tup, 1)  # ignored from now on
    d.finish("C1", 2.0)
    got = d.records[0][1]["got"]
    assert got == {True: [b"ab", b"cd"], False: [b"x"]}


def test_udp_datagrams_go_straight_through() -> None:
    class UDPRecorder(Recorder):
        protos: ClassVar[tuple[str, ...]] = ("udp",)

    d = Dispatcher((UDPRecorder,))
    tup = ("udp", "10.0.0.1", 5000, "10.0.0.2", 53)
    for payload in (b"q1", b"q1", b"q2"):  # repeats are datagrams, not retransmissions
        d.payload("U1", True, 1.0, payload, *tup, 0)
    d.finish("U1", 2.0)
    assert d.records[0][1]["got"][True] == [b"q1", b"q1", b"q2"]


ENGINE_PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
from tests.proto.test_dispatch import Recorder, conversation
from sensor.engine import Engine
from sensor.flow.table import FlowConfig
from sensor.proto.dispatch import Dispatcher
engine = Engine(FlowConfig(payload_packets=1, payload_bytes=4))
engine.analyzers = Dispatcher((Recorder,))
out = engine.process(conversation()) + engine.flush()
print(repr([(n, r.get("got")) for n, r in out]))
"""


def conversation() -> Any:
    """A client request in three segments, the middle one late and resent."""
    f = Flow(sport=80)
    seq = ISN_C + 1
    pkts = [
        (0.0, f.c(SYN, ISN_C)),
        (0.1, f.s(SYN | ACK, ISN_S, ISN_C + 1)),
        (0.2, f.c(ACK, seq, ISN_S + 1)),
        (0.3, f.c(PSH | ACK, seq, ISN_S + 1, b"GET /index")),
        (0.4, f.c(PSH | ACK, seq + 20, ISN_S + 1, b"\r\n\r\n")),
        (0.5, f.c(PSH | ACK, seq + 10, ISN_S + 1, b".html HTTP")),
        (0.6, f.c(PSH | ACK, seq + 10, ISN_S + 1, b".html HTTP")),
        (0.7, f.s(PSH | ACK, ISN_S + 1, seq + 24, b"HTTP/1.0 200 OK\r\n\r\nbody")),
        (0.8, f.s(FIN | ACK, ISN_S + 24, seq + 24)),
        (0.9, f.c(FIN | ACK, seq + 24, ISN_S + 25)),
    ]
    return batch(pkts)


def test_engine_gives_whole_streams_past_the_budget_and_ends_before_conn(
    impl: str,
) -> None:
    # A subprocess, so that SENSOR_NO_EXTENSIONS picks the implementation.
    env = dict(os.environ, SENSOR_NO_EXTENSIONS="1" if impl == "python" else "0")
    res = subprocess.run(
        [sys.executable, "-c", ENGINE_PROBE, str(ROOT)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    out = ast.literal_eval(res.stdout)
    assert [name for name, _ in out] == ["rec", "conn"]  # the analyzer's first
    got = out[0][1]
    assert got[True] == [b"GET /index", b".html HTTP", b"\r\n\r\n"]
    assert got[False] == [b"HTTP/1.0 200 OK\r\n\r\nbody"]


def test_analyzer_counters_are_collected_at_the_end() -> None:
    from sensor.proto.analyzer import Analyzer, ConnInfo
    from sensor.proto.dispatch import Dispatcher

    class Counting(Analyzer):
        service = "demo"
        protos = ("udp",)

        @classmethod
        def sniff(cls, conn: ConnInfo, is_orig: bool, data: bytes) -> bool:
            return True

        def data(self, is_orig: bool, ts: float, data: bytes) -> None:
            self.anomalies += 1
            self.counters = {"too_long": 2}

    d = Dispatcher((Counting,))
    for _ in range(3):
        d.payload("C1", True, 1.0, b"x", "udp", "192.0.2.1", 1000, "192.0.2.2", 53, 0)
    assert d.finish("C1", 2.0) == ["demo"]

    assert d.stats["demo_anomalies"] == 3
    assert d.stats["demo_too_long"] == 2


# Openings of the protocols the analyzers know, and of some they do not;
# each is tried with every first byte too.
_OPENINGS = [
    b"GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n",
    b"  POST /wsman HTTP/1.1\r\n",
    b"OPTIONS HTTP/1.0\r\n",
    b"GET /\r\n",
    b"HTTP/1.1 200 OK\r\n",
    b"220 mail.example ESMTP\r\n",
    b"\r\n250 ok\r\n",
    b"EHLO client.example\r\n",
    b"xyz\r\nhelo there\r\n",
    b"SSH-2.0-OpenSSH_9.6\r\n",
    b"ssh-1.99-x\r\n",
    b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",
    b"\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10",
    b"\x80\x2e\x04\x00\x01\x00\x02",
    b"\x03\x00\x00\x13\x0e\xe0\x00\x00\x00\x00\x00",
    b"\x00\x00\x00\x2f\xffSMB\x72\x00",
    b"\x00\x00\x00\x44\xfeSMB\x40\x00\x00\x00",
    b"\x00\x00\x00\x60\xfdSMB" + bytes(16),
    b"\x81\x00\x00\x44\x20CKFDENECFDEFFCFGEFFCCACACACACACA\x00",
    b"\x05\x00\x0b\x03\x10\x00\x00\x00\x48\x00",
    b"\x05\x00\x0c\x03\x10\x00\x00\x00\x44\x00\x00\x00\x02\x00\x00\x00",
    b"\x05\x01\x00\x03\x10\x00\x00\x00\x18\x00\x00\x00\x02\x00\x00\x00",
    b"\x6a\x81\x9b\x30\x81\x98\xa1\x03\x02\x01\x05\xa2\x03\x02\x01\x0a",
    b"\x00\x00\x00\x9e\x6a\x81\x9b\x30\x81\x98\xa1\x03\x02\x01\x05",
    b"\x30\x0c\x02\x01\x01\x60\x07\x02\x01\x03\x04\x00\x80\x00",
    b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00",
    bytes(range(64)),
    b"",
]


def test_sniff_hints_never_hide_a_match() -> None:
    # The dispatcher skips sniff() where a class's hint says no; sniff()
    # must then say no too, for every registered class, on any first byte.
    from sensor.proto.registry import ANALYZERS

    ports = [(40000, 50000), (40000, 443), (40000, 3389), (40000, 80), (53, 53)]
    # The Windows ports, and each seen from the wrong end.
    for port in (445, 139, 135, 88, 389, 3268):
        ports += [(40000, port), (port, 40000)]
    checked = 0
    for cls in ANALYZERS:
        hint = cls.sniff_hint
        if hint is None:
            continue
        for opening in _OPENINGS:
            variants = [opening] if not opening else [
                bytes([b]) + opening[1:] for b in range(256)
            ]
            for data in variants:
                for orig_p, resp_p in ports:
                    for proto in cls.protos:
                        info = ConnInfo(
                            "C", proto, "192.0.2.1", orig_p, "192.0.2.2", resp_p
                        )
                        for is_orig in (True, False):
                            first = hint.orig_first if is_orig else hint.resp_first
                            admitted = (
                                resp_p in hint.ports
                                or orig_p in hint.orig_ports
                                or (bool(data) and data[0] in first)
                            )
                            if not admitted:
                                checked += 1
                                assert not cls.sniff(info, is_orig, data), (
                                    cls.__name__,
                                    proto,
                                    orig_p,
                                    resp_p,
                                    is_orig,
                                    data[:12],
                                )
    assert checked > 10_000


def test_hinted_dispatcher_attaches_what_asking_everyone_would() -> None:
    # Same connections, same first payloads: the analyzers attached with the
    # hints equal those attached when every class is asked.
    from sensor.proto.registry import ANALYZERS

    unhinted = tuple(
        type(cls.__name__, (cls,), {"sniff_hint": None}) for cls in ANALYZERS
    )
    names = {c: c.__name__ for c in ANALYZERS}
    names.update({c: c.__name__ for c in unhinted})
    ports = [
        (40000, 50000),
        (40000, 443),
        (40000, 80),
        (40000, 25),
        (40000, 22),
        (68, 67),
        (5353, 5353),
        (40000, 445),
        (40000, 139),
        (40000, 135),
        (40000, 88),
        (88, 40000),
        (40000, 389),
        (40000, 3268),
    ]
    for proto in ("tcp", "udp"):
        for n, (orig_p, resp_p) in enumerate(ports):
            for k, opening in enumerate(_OPENINGS):
                if not opening:
                    continue
                got = []
                for classes in (ANALYZERS, unhinted):
                    d = Dispatcher(classes)
                    uid = f"C{n}-{k}"
                    tup = (proto, "192.0.2.1", orig_p, "192.0.2.2", resp_p)
                    d.payload(uid, True, 1.0, opening, *tup, 100)
                    d.payload(uid, False, 1.1, opening, *tup, 900)
                    followed = d._conns[uid]
                    got.append([names[type(a)] for a in followed.analyzers])
                assert got[0] == got[1], (proto, orig_p, resp_p, opening[:12])
