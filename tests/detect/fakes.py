"""A small ModelView for detection tests, and record builders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sensor.detect.support import is_private


@dataclass
class FakeDevice:
    """A DeviceInfo with test values."""

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
    """Known devices by address; every device learning when ``learning``."""

    def __init__(
        self, devices: list[FakeDevice] | None = None, learning: bool = False
    ) -> None:
        self.devices = {d.ip: d for d in devices or []}
        self.is_learning = learning
        self.users: dict[tuple[str, str], int] = {}

    def device(self, ip: str, mac: str | None = None) -> FakeDevice | None:
        return self.devices.get(ip)

    def is_internal(self, ip: str) -> bool:
        return is_private(ip)

    def learning(self, device_id: str, now: float) -> bool:
        return self.is_learning

    def is_new_for_device(self, device_id: str, kind: str, value: str) -> bool:
        return True

    def network_devices(self, kind: str, value: str) -> int:
        return self.users.get((kind, value), 0)

    def network_first_seen(self, kind: str, value: str) -> float | None:
        return None

    def baseline(self, device_id: str, feature: str) -> float | None:
        return None

    def peer_group(self, device_id: str) -> str | None:
        return None


_n = [0]


def conn(
    ts: float,
    src: str,
    dst: str,
    dport: int,
    proto: str = "tcp",
    state: str = "S0",
    sport: int = 40000,
    **extra: Any,
) -> dict[str, Any]:
    """A conn.log record with a fresh uid."""
    _n[0] += 1
    r: dict[str, Any] = {
        "ts": ts,
        "uid": f"CT{_n[0]:06d}",
        "id.orig_h": src,
        "id.orig_p": sport,
        "id.resp_h": dst,
        "id.resp_p": dport,
        "proto": proto,
        "conn_state": state,
        "orig_pkts": 1,
        "resp_pkts": 0,
    }
    r.update(extra)
    return r
