"""Replay a shared capture through the engine and one detection.

The real device models are built elsewhere (sensor/model); the Windows
detections ask them only for a device's name and roles, so a small fake
:class:`FakeModels` stands in. Replays are cached per capture, since
several tests read the same one.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sensor.capture.merge import merge
from sensor.capture.pcapfile import CaptureFile
from sensor.detect.alert import Alert
from sensor.detect.base import Detection
from sensor.engine import Engine
from tests.conftest import PCAPS

Record = tuple[str, dict[str, Any]]


@dataclass
class FakeDevice:
    """A device as DeviceInfo describes it."""

    id: str
    ip: str | None
    mac: str | None = None
    name: str | None = None
    vendor: str | None = None
    internal: bool = True
    first_seen: float = 0.0
    roles: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)


class FakeModels:
    """A ModelView that knows only the devices (and roles) it is given."""

    def __init__(self, roles: dict[str, list[str]] | None = None) -> None:
        self.roles = roles or {}

    def device(self, ip: str, mac: str | None = None) -> FakeDevice | None:
        return FakeDevice(ip, ip, roles=list(self.roles.get(ip, [])))

    def is_internal(self, ip: str) -> bool:
        return ipaddress.ip_address(ip).is_private

    def learning(self, device_id: str, now: float) -> bool:
        return False

    def is_new_for_device(self, device_id: str, kind: str, value: str) -> bool:
        return True

    def network_devices(self, kind: str, value: str) -> int:
        return 0

    def network_first_seen(self, kind: str, value: str) -> float | None:
        return None

    def baseline(self, device_id: str, feature: str) -> float | None:
        return None

    def peer_group(self, device_id: str) -> str | None:
        return None


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
