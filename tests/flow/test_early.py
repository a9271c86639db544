"""Early notices of reset connections: the table, the engine, the pipeline.

A TCP connection ended by a RST is finished 5 s later (the close delay), as
in Zeek's conn.log; a table made with ``early=True`` hands its record out at
the RST in ``Events.early``. Each table test runs against the compiled
table and its twin (the ``impl`` fixture); ``test_differential.py`` checks
that both give the same notices on every shared capture.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from sensor.detect.alert import Alert
from sensor.engine import Engine
from sensor.pipeline import NOT_LOGGED, Pipeline
from tests.flow.craft import ACK, FIN, RST, SYN, batch, eth, ipv4, tcp

A, B = "192.0.2.1", "192.0.2.2"
SEC = 1_000_000_000


def table_module(impl: str) -> ModuleType:
    return importlib.import_module(
        "sensor._ext.flow" if impl == "compiled" else "sensor.flow.table"
    )


def refused(t: float, port: int, sport: int = 40000) -> list[tuple[float, bytes]]:
    """A SYN to a closed port and the RST-ACK that refuses it (REJ)."""
    return [
        (t, eth(ipv4(A, B, 6, tcp(sport, port, SYN, seq=100)))),
        (t + 0.001, eth(ipv4(B, A, 6, tcp(port, sport, RST | ACK, ack=101)))),
    ]


def closed(t: float, port: int, sport: int = 41000) -> list[tuple[float, bytes]]:
    """A handshake and both FINs (SF): no reset."""
    return [
        (t, eth(ipv4(A, B, 6, tcp(sport, port, SYN, seq=200)))),
        (t + 0.001, eth(ipv4(B, A, 6, tcp(port, sport, SYN | ACK, seq=500, ack=201)))),
        (t + 0.002, eth(ipv4(A, B, 6, tcp(sport, port, ACK, seq=201, ack=501)))),
        (t + 0.003, eth(ipv4(A, B, 6, tcp(sport, port, FIN | ACK, seq=201, ack=501)))),
        (t + 0.004, eth(ipv4(B, A, 6, tcp(port, sport, FIN | ACK, seq=501, ack=202)))),
    ]


def test_a_refused_attempt_gets_a_notice_at_its_reset(impl: str) -> None:
    table = table_module(impl).ConnTable(None, early=True)
    ev = table.process(batch(refused(1.0, 81) + closed(2.0, 80)))
    assert ev.conns == []  # both wait out the close delay
    (notice,) = ev.early
    assert notice["id.resp_p"] == 81 and notice["conn_state"] == "REJ"
    assert notice["history"] == "Sr"

    # The conn record comes 5 s after the RST, the same as the notice.
    assert table.advance(int(6.5 * SEC)).conns == [notice]
    later = table.advance(int(7.5 * SEC))
    assert [c["conn_state"] for c in later.conns] == ["SF"] and later.early == []


def test_a_reset_after_data_gets_one_notice(impl: str) -> None:
    # Handshake, then the client resets; the RST sent again adds no notice.
    rst = eth(ipv4(A, B, 6, tcp(41000, 80, RST | ACK, seq=201, ack=501)))
    packets = closed(1.0, 80)[:3] + [(1.1, rst), (1.2, rst)]
    table = table_module(impl).ConnTable(None, early=True)
    ev = table.process(batch(packets))
    (notice,) = ev.early
    assert notice["conn_state"] == "RSTO" and notice["orig_pkts"] == 3
    (final,) = table.flush().conns
    assert final["uid"] == notice["uid"] and final["orig_pkts"] == 4


def test_no_notice_unless_asked(impl: str) -> None:
    table = table_module(impl).ConnTable(None)
    assert table.process(batch(refused(1.0, 81))).early == []
    assert len(table.flush().conns) == 1


def test_the_engine_hands_notices_first_and_logs_them_nowhere() -> None:
    engine = Engine(early=True)
    # One batch holds the notice of the first attempt and, 6 s on, its
    # conn record (the second attempt's SYN runs the timers).
    got = engine.process(batch(refused(1.0, 81) + refused(7.0, 82, sport=40001)))
    assert [n for n, _ in got] == ["conn_early", "conn_early", "conn"]
    assert got[0][1]["uid"] == got[2][1]["uid"]
    assert "community_id" in got[2][1] and "community_id" not in got[0][1]
    assert engine.totals.by_log == {"conn": 1}
    assert "conn_early" in NOT_LOGGED

    plain = Engine()
    assert [n for n, _ in plain.process(batch(refused(1.0, 81)))] == []


class Seen:
    """A stage that lists what it was given (models, detector, responder)."""

    def __init__(self) -> None:
        self.logs: list[str] = []

    def observe(self, log: str, record: dict[str, Any]) -> list[Any]:
        self.logs.append(log)
        return []

    def finish(self, now: float) -> list[Any]:
        return []

    def consider(self, alert: Alert) -> list[Any]:
        return []


def test_the_pipeline_gives_notices_to_the_detections_alone() -> None:
    models, detector, responder = Seen(), Seen(), Seen()
    pipeline = Pipeline(
        models=models,
        detector=detector,  # type: ignore[arg-type]
        responder=responder,  # type: ignore[arg-type]
    )
    pipeline.feed([("conn_early", {"ts": 1.0}), ("conn", {"ts": 1.0})])
    assert detector.logs == ["conn_early", "conn"]
    assert models.logs == responder.logs == ["conn"]
