"""Alerts: what a detection found, with the evidence a person can check.

An alert names the device it is about, the two ends of the traffic, the
connections (uids) it rests on, a one-sentence summary with the numbers and
the baseline they were compared with, and one reason per feature. The
record written to ``alerts.log`` is :meth:`Alert.record`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Endpoint:
    """One end of the traffic an alert is about. Unknown parts stay None."""

    ip: str | None = None
    port: int | None = None
    domain: str | None = None

    def record(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass
class DeviceRef:
    """The device an alert is about: its address, MAC and name when known."""

    ip: str | None = None
    mac: str | None = None
    name: str | None = None

    def record(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass
class Reason:
    """One feature that made the alert: its value and the baseline it was
    compared with (a number, a text such as ``"never seen on this network"``,
    or None when there is no baseline)."""

    feature: str
    value: Any
    baseline: Any = None

    def record(self) -> dict[str, Any]:
        return {"feature": self.feature, "value": self.value, "baseline": self.baseline}


@dataclass
class Alert:
    """One alert. ``id`` and ``incident`` are filled in by the runner and
    the incident builder; a detection leaves them empty.

    ``score`` is 0 to 100; ``mitre`` an ATT&CK technique id such as
    ``"T1046"``.
    """

    ts: float
    detection: str
    score: float
    device: DeviceRef
    src: Endpoint
    dst: Endpoint
    summary: str
    reasons: list[Reason]
    mitre: str
    uids: list[str] = field(default_factory=list)
    id: str = ""
    incident: str = ""

    def record(self) -> dict[str, Any]:
        """The ``alerts.log`` record."""
        return {
            "ts": self.ts,
            "id": self.id,
            "detection": self.detection,
            "score": round(float(self.score), 1),
            "device": self.device.record(),
            "src": self.src.record(),
            "dst": self.dst.record(),
            "uids": list(self.uids),
            "summary": self.summary,
            "reasons": [r.record() for r in self.reasons],
            "mitre": self.mitre,
            "incident": self.incident or None,
        }
