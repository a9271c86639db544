"""Replay a shared capture through the engine and one detection.

The real device models are built elsewhere (sensor/model); the Windows
detections ask them only for a device's name and roles, so a small fake
:class:`FakeModels` stands in. Replays are cached per capture, since
several tests read the same one.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sensor.capture.merge import merge
from sensor.capture.pcapfile import CaptureFile
from sensor.detect.alert import Alert
from sensor.detect.base import Detection
from sensor.detect.runner import NoModels
from sensor.engine import Engine
from tests.conftest import PCAPS
from tests.detect.fakes import FakeDevice

Record = tuple[str, dict[str, Any]]


class FakeModels(NoModels):
    """A ModelView that knows every device, with the roles it is given;
    else as NoModels."""

    def __init__(self, roles: dict[str, list[str]] | None = None) -> None:
        self.roles = roles or {}

    def device(self, ip: str, mac: str | None = None) -> FakeDevice | None:
        return FakeDevice(ip, ip, roles=list(self.roles.get(ip, [])))


@lru_cache(maxsize=32)
def records(capture: str) -> tuple[Record, ...]:
    """Every record the engine writes for ``capture`` (relative to PCAPS)."""
    engine = Engine()
    out: list[Record] = []
    for batch in merge([CaptureFile(str(PCAPS / capture))]):
        out += engine.process(batch)
    out += engine.flush()
    return tuple(out)


def run(detection: Detection, capture: str) -> list[Alert]:
    """The alerts ``detection`` raises over ``capture``'s records, in order."""
    alerts: list[Alert] = []
    last = 0.0
    for log, rec in records(capture):
        ts = rec.get("ts")
        if isinstance(ts, (int, float)):
            last = max(last, float(ts))
        if log in detection.logs:
            alerts += detection.observe(log, rec)
    alerts += detection.finish(last)
    return alerts
