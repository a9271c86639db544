"""A small ModelView for detection tests, and record builders.

:class:`FakeDevice` is the device of every detection test's fake models
(here, in ``netfakes`` and in ``winreplay``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sensor.detect.runner import NoModels


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


class FakeModels(NoModels):
    """Known devices by address; every device learning when ``learning``;
    ``users`` devices per value as the test sets them; else as NoModels."""

    def __init__(
        self, devices: list[FakeDevice] | None = None, learning: bool = False
    ) -> None:
        self.devices = {d.ip: d for d in devices or []}
        self.is_learning = learning
        self.users: dict[tuple[str, str], int] = {}

    def device(self, ip: str, mac: str | None = None) -> FakeDevice | None:
        return self.devices.get(ip)

    def learning(self, device_id: str, now: float) -> bool:
        return self.is_learning

    def network_devices(self, kind: str, value: str) -> int:
        return self.users.get((kind, value), 0)


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
