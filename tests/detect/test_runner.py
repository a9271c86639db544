"""The Detector: discovery, overrides, routing, ticks, reasons, dedup, ids."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sensor.detect.alert import Alert, DeviceRef, Endpoint, Reason
from sensor.detect.base import (
    REGISTRY,
    SCORE,
    Detection,
    Threshold,
    ThresholdError,
    register,
)
from sensor.detect.runner import Detector, NoModels, load_all, overrides_from
from tests.detect.fakes import FakeModels, conn

MINE = {
    "scan.port",
    "scan.sweep",
    "bruteforce.login",
    "protocol.mismatch",
    "dos.flood",
    "device.new",
}


class Probe(Detection):
    """A test detection: one alert per record whose ``say`` field is set."""

    name = "test.probe"
    mitre = "T0000"
    logs = ("conn", "http")
    thresholds = (Threshold("level", 60.0, "score of each alert", SCORE),)

    def __init__(self, models: Any, overrides: dict[str, Any] | None = None) -> None:
        super().__init__(models, overrides)
        self.seen: list[str] = []
        self.ticks: list[float] = []

    def observe(self, log: str, record: dict[str, Any]) -> list[Alert]:
        self.seen.append(log)
        if record.get("boom"):
            raise RuntimeError("boom")
        if "say" not in record:
            return []
        reasons = (
            [] if record["say"] == "silent" else [Reason("said", record["say"], None)]
        )
        return [
            Alert(
                ts=record["ts"],
                detection=self.name,
                score=record.get("score", self.t["level"]),
                device=DeviceRef(ip=record["id.orig_h"]),
                src=Endpoint(ip=record["id.orig_h"]),
                dst=Endpoint(ip=record["id.resp_h"]),
                summary=f"said {record['say']}",
                reasons=reasons,
                mitre=self.mitre,
            )
        ]

    def tick(self, now: float) -> list[Alert]:
        self.ticks.append(now)
        return []


@pytest.fixture
def probe() -> Iterator[type[Probe]]:
    register(Probe)
    yield Probe
    del REGISTRY[Probe.name]


def test_every_module_is_discovered() -> None:
    registry = load_all()
    assert MINE <= set(registry)
    d = Detector(FakeModels())
    assert {x.name for x in d.detections} == set(registry)
    assert all(isinstance(x, Detection) and x.models is d.models for x in d.detections)


def test_overrides_apply_and_bad_ones_name_the_problem() -> None:
    d = Detector(FakeModels(), {"scan.port": {"ports": 50}}, only=["scan.port"])
    assert d.detections[0].t["ports"] == 50
    with pytest.raises(
        ThresholdError, match=r"detect\.scan\.port\.portz: unknown threshold"
    ):
        Detector(FakeModels(), {"scan.port": {"portz": 50}})
    with pytest.raises(
        ThresholdError, match=r"detect\.scan\.port\.ports: expected int, got str"
    ):
        Detector(FakeModels(), {"scan.port": {"ports": "50"}})
    with pytest.raises(ThresholdError, match=r"detect\.scan\.nope: unknown detection"):
        Detector(FakeModels(), {"scan.nope": {}})


def test_overrides_from_toml_tables() -> None:
    assert overrides_from(
        {"scan": {"port": {"ports": 40}}, "dos.flood": {"packets": 5}}
    ) == {
        "scan.port": {"ports": 40},
        "dos.flood": {"packets": 5},
    }
    with pytest.raises(ThresholdError, match="not a detection section"):
        overrides_from({"scan": {"port": 3}})


def test_routing_by_log_and_ticks_by_packet_time(probe: type[Probe]) -> None:
    d = Detector(FakeModels(), only=["test.probe"], tick_seconds=10.0)
    p = d.detections[0]
    assert isinstance(p, Probe)
    d.observe("conn", conn(100.0, "10.0.0.1", "10.0.0.2", 80))
    d.observe("dns", {"ts": 105.0})
    d.observe("http", {"ts": 111.0, "id.orig_h": "10.0.0.1", "id.resp_h": "10.0.0.2"})
    d.observe("conn", conn(90.0, "10.0.0.1", "10.0.0.2", 80))  # time never goes back
    assert p.seen == ["conn", "http", "conn"]
    assert p.ticks == [100.0, 111.0]
    d.finish(120.0)
    assert p.ticks == [100.0, 111.0, 120.0]


def test_ids_reasons_and_dedup(probe: type[Probe]) -> None:
    d = Detector(FakeModels(), only=["test.probe"], dedup_seconds=60.0, first_id=41)

    def say(
        ts: float, what: str, dst: str = "10.0.0.2", score: float = 60.0
    ) -> list[Alert]:
        return d.observe("conn", conn(ts, "10.0.0.1", dst, 80, say=what, score=score))

    first = say(1.0, "a")
    assert [a.id for a in first] == ["A00000041"]
    assert say(2.0, "silent") == []  # no reason: dropped
    assert d.counters["no_reason"] == 1
    assert say(30.0, "again") == []  # same device and destination within 60 s
    assert d.counters["suppressed"] == 1
    assert [a.id for a in say(31.0, "other host", dst="10.0.0.3")] == ["A00000042"]
    assert [a.id for a in say(40.0, "much worse", score=80.0)] == [
        "A00000043"
    ]  # score rose 20
    assert [a.id for a in say(200.0, "later")] == ["A00000044"]  # window over
    assert d.next_id == 45
    assert d.counters["alerts"] == 4
    assert d.counters["alerts.test.probe"] == 4


def test_a_failing_detection_is_counted_and_others_go_on(probe: type[Probe]) -> None:
    d = Detector(FakeModels(), only=["test.probe", "scan.port"])
    assert d.observe("conn", conn(1.0, "10.0.0.1", "10.0.0.2", 80, boom=True)) == []
    assert d.counters["errors"] == 1
    out = d.observe("conn", conn(2.0, "10.0.0.1", "10.0.0.2", 80, say="fine"))
    assert [a.detection for a in out] == ["test.probe"]


def test_scores_are_clamped(probe: type[Probe]) -> None:
    d = Detector(FakeModels(), only=["test.probe"])
    (a,) = d.observe(
        "conn", conn(1.0, "10.0.0.1", "10.0.0.2", 80, say="x", score=180.0)
    )
    assert a.score == 100.0


def test_no_models_knows_nothing() -> None:
    m = NoModels()
    assert m.device("10.0.0.1") is None
    assert m.is_internal("192.168.1.4") and not m.is_internal("8.8.8.8")
    assert m.network_devices("ip", "8.8.8.8") == 0
    assert Detector().models is not None
