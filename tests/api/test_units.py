"""Parts of the API without a subprocess: durations, paging, incidents,
the fallback action book, and records to messages."""

from __future__ import annotations

import threading
from pathlib import Path

import grpc
import pytest

from sensor.api import convert
from sensor.api.actions import DryRunBook, parse_duration
from sensor.api.errors import FailedPrecondition, InvalidArgument, NotFound
from sensor.api.server import ServeError, parse_listen
from sensor.api.state import ApiState, is_internal
from sensor.api.v1 import alerts_pb2, alerts_pb2_grpc, common_pb2
from tests.api.conftest import alert


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400),
     ("1h30m", 5400), ("1w", 604800), (" 2H ", 7200), ("0.5h", 1800)],
)  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "why"),
    [("", "missing"), ("2x", "expected a number with a unit"), ("h", "expected"),
     ("-5m", "expected"), ("0", "more than 0"), ("100d", "at most 90 days"), ("2h 5", "expected")],
)  # fmt: skip
def test_bad_durations(text: str, why: str) -> None:
    with pytest.raises(InvalidArgument, match=why):
        parse_duration(text)


def test_listen_addresses() -> None:
    assert (
        parse_listen("unix:/run/sensor/sensor.sock").path == "/run/sensor/sensor.sock"
    )
    assert parse_listen("/tmp/s.sock").path == "/tmp/s.sock"
    tcp = parse_listen("[::1]:7650")
    assert (tcp.host, tcp.port, str(tcp)) == ("::1", 7650, "[::1]:7650")
    for bad in ("unix:", "host", "host:0", "host:99999", ":7650"):
        with pytest.raises(ServeError):
            parse_listen(bad)
    assert str(parse_listen("sensor.example.org:7650")) == "sensor.example.org:7650"
    for bad, why in (("999.1.1.1:80", "999.1.1.1 is not an IP address"),
                     ("[::zz]:80", "::zz is not an IP address"),
                     ("a_b:80", "a_b is neither an IP address nor a host name")):  # fmt: skip
        with pytest.raises(ServeError, match=why):
            parse_listen(bad)


@pytest.mark.parametrize(
    ("ip", "device"),
    [("192.168.10.3", True), ("fe80::1", True), ("fd00::5", True),
     ("8.8.8.8", False), ("255.255.255.255", False), ("127.0.0.1", False),
     ("::1", False), ("224.0.0.251", False), ("0.0.0.0", False),
     ("240.0.0.1", False)],
)  # fmt: skip
def test_which_addresses_are_devices(ip: str, device: bool) -> None:
    """Broadcast, loopback and reserved addresses are "private" to ipaddress
    but no device of the network: the device list leaves them out."""
    assert is_internal(ip) is device


def test_fallback_book_lifecycle() -> None:
    now = [1000.0]
    book = DryRunBook(lambda: now[0], propose=True)
    proposed = book.consider(alert(1)[1])
    assert proposed is not None
    assert (proposed["state"], proposed["target"], proposed["dst_ip"], proposed["port"]) == (
        "pending", "192.0.2.10", "198.51.100.7", 22,
    )  # fmt: skip
    with pytest.raises(NotFound, match="no action 'nope'"):
        book.approve("nope", "root", "r")
    active = book.approve(proposed["id"], "alice", "seen it")
    assert (active["state"], active["who"], active["change_reason"]) == (
        "active",
        "alice",
        "seen it",
    )
    with pytest.raises(FailedPrecondition, match="not pending"):
        book.approve(proposed["id"], "alice", "again")
    longer = book.extend(proposed["id"], 600, "alice", "more")
    assert longer["expires"] == proposed["expires"] + 600
    now[0] = longer["expires"] + 1
    assert [r["state"] for r in book.expire()] == ["expired"]
    with pytest.raises(FailedPrecondition, match="already expired"):
        book.clear(proposed["id"], "alice", "late")
    with pytest.raises(InvalidArgument, match="not an IP address"):
        book.block("not-an-ip", "198.51.100.1", None, None, 60, "alice", "r")
    blocked = book.block("192.0.2.5", "example.org", 443, None, 60, "alice", "r")
    assert (blocked["dst_domain"], blocked["proto"], blocked["state"]) == (
        "example.org",
        "tcp",
        "active",
    )


def test_alert_message_keeps_every_field() -> None:
    _, r = alert(7)
    m = convert.alert(r, 7)
    assert (m.id, m.detection, m.score, m.seq, m.mitre) == (
        "A00000007",
        "scan.port",
        57.0,
        7,
        "T1046",
    )
    assert (m.src.ip, m.dst.ip, m.dst.port) == ("192.0.2.10", "198.51.100.7", 22)
    assert not m.dst.HasField("domain")
    assert m.reasons[0].value.number_value == 7
    assert m.reasons[0].baseline.WhichOneof("kind") == "null_value"


def incident(n: int, severity: str, alerts: list[str]) -> tuple[str, dict[str, object]]:
    return (
        "incidents",
        {"id": f"I{n:08d}", "title": f"incident {n}", "severity": severity,
         "devices": ["192.0.2.10"], "first": 1000.0, "last": 1000.0 + n,
         "alerts": alerts, "mitre": ["T1046"], "narrative": "..."},
    )  # fmt: skip


def test_incidents_list_get_follow(served_state: tuple[ApiState, Path]) -> None:
    state, sock = served_state
    state.publish([alert(1), alert(2), incident(1, "medium", ["A00000001"])])
    state.publish(
        [
            incident(2, "high", ["A00000002"]),
            incident(1, "high", ["A00000001", "A00000002"]),
        ]
    )
    with grpc.insecure_channel(f"unix:{sock}") as ch:
        stub = alerts_pb2_grpc.IncidentsStub(ch)
        listed = stub.ListIncidents(alerts_pb2.ListIncidentsRequest(), timeout=10)
        # Each incident once, as it stands now (I1 was updated).
        assert [(i.id, i.severity, i.cursor) for i in listed.incidents] == [
            ("I00000002", "high", 2), ("I00000001", "high", 3),
        ]  # fmt: skip
        got = stub.GetIncident(
            alerts_pb2.GetIncidentRequest(id="I00000001"), timeout=10
        )
        assert [a.id for a in got.alerts] == ["A00000001", "A00000002"]
        with pytest.raises(grpc.RpcError) as e:
            stub.GetIncident(alerts_pb2.GetIncidentRequest(id="I9"), timeout=10)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as e:
            stub.ListIncidents(
                alerts_pb2.ListIncidentsRequest(
                    filter=alerts_pb2.IncidentFilter(min_severity="huge")
                ),
                timeout=10,
            )
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        # Follow from cursor 1: the two later records, then a new one live.
        stream = stub.FollowIncidents(alerts_pb2.FollowIncidentsRequest(after_cursor=1))
        seen = [next(stream).cursor, next(stream).cursor]
        threading.Timer(0.2, lambda: state.publish([incident(3, "low", [])])).start()
        seen.append(next(stream).cursor)
        stream.cancel()
        assert seen == [2, 3, 4]


def test_paging_tokens(served_state: tuple[ApiState, Path]) -> None:
    state, sock = served_state
    state.publish([alert(n) for n in range(1, 8)])
    with grpc.insecure_channel(f"unix:{sock}") as ch:
        stub = alerts_pb2_grpc.AlertsStub(ch)
        page = stub.ListAlerts(
            alerts_pb2.ListAlertsRequest(page=common_pb2.PageRequest(page_size=3)),
            timeout=10,
        )
        assert [a.seq for a in page.alerts] == [1, 2, 3]
        assert (page.page.next_page_token, page.page.total) == ("3.7", 7)
        last = stub.ListAlerts(
            alerts_pb2.ListAlertsRequest(
                page=common_pb2.PageRequest(page_size=3, page_token="6.7")
            ),
            timeout=10,
        )
        assert [a.seq for a in last.alerts] == [7] and last.page.next_page_token == ""
        for token, size in (("x", 3), ("99.7", 3), ("6", 3), ("0.7", 5000)):
            with pytest.raises(grpc.RpcError) as e:
                stub.ListAlerts(
                    alerts_pb2.ListAlertsRequest(
                        page=common_pb2.PageRequest(page_size=size, page_token=token)
                    ),
                    timeout=10,
                )
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
