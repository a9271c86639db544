"""IncidentBuilder: groups alerts into incidents (the pipeline's Incidents).

An alert joins an open incident when, within ``gap_seconds`` of the
incident's latest alert, it

- is about a device the incident already names;
- involves an external endpoint (address or domain) the incident already
  involves;
- or is about a device that an earlier step of the incident targeted
  (scanned, guessed a password on, ran a command on): the attacker has
  moved on to it, so scan, brute force, remote execution and exfiltration
  read as one attack.

Otherwise it opens a new incident. When several incidents match, the one
with the latest alert takes it. An incident is written once, when it
closes: no alert for ``gap_seconds`` of packet time (checked as alerts
arrive), or at the end of input. Ids are ``I`` and a zero-padded counter.

TODO: a live sensor with no further alert keeps an incident open until
shutdown; closing on the pipeline's clock needs a tick in the Incidents
protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sensor.detect.alert import Alert
from sensor.detect.support import is_private
from sensor.incident.narrative import FOOTHOLD, AlertNote, narrative, severity, title
from sensor.model.view import ModelView

Record = tuple[str, dict[str, Any]]


@dataclass
class Incident:
    """One open incident."""

    id: str
    first: float
    last: float
    notes: list[AlertNote] = field(default_factory=list)
    devices: set[str] = field(default_factory=set)
    externals: set[str] = field(default_factory=set)
    footholds: set[str] = field(default_factory=set)
    more: int = 0

    def record(self) -> dict[str, Any]:
        """The ``incidents.log`` record."""
        devices = sorted(self.devices)
        uids: list[str] = []
        for n in self.notes:
            for u in n.uids:
                if u not in uids and len(uids) < 50:
                    uids.append(u)
        return {
            "ts": self.first,
            "id": self.id,
            "title": title(self.notes, devices),
            "severity": severity(self.notes),
            "score": round(max(n.score for n in self.notes), 1),
            "devices": devices,
            "first": self.first,
            "last": self.last,
            "alerts": [n.id for n in self.notes],
            "alert_count": len(self.notes) + self.more,
            "detections": sorted({n.detection for n in self.notes}),
            "mitre": sorted({n.mitre for n in self.notes if n.mitre}),
            "uids": uids,
            "narrative": narrative(self.notes, devices),
        }


class IncidentBuilder:
    """Groups alerts into incidents and writes each once it closes."""

    def __init__(
        self,
        models: ModelView | None = None,
        *,
        gap_seconds: float = 3600.0,
        first_id: int = 1,
        max_open: int = 10_000,
        max_alerts: int = 1000,
    ) -> None:
        self.models = models
        self.gap_seconds = gap_seconds
        self.next_id = first_id
        self.max_open = max_open
        self.max_alerts = max_alerts
        self.open: list[Incident] = []
        #: Incidents closed early because ``max_open`` was reached.
        self.evicted = 0
        #: Called at the end of :meth:`finish` (to save the id counters).
        self.on_finish: list[Callable[[], None]] = []

    def add(self, alert: Alert) -> list[Record]:
        """Put ``alert`` in an incident (sets ``alert.incident``); return the
        records of incidents this alert's time closed."""
        out = self._close_before(alert.ts - self.gap_seconds)
        device = alert.device.ip or alert.device.mac or alert.src.ip or ""
        externals = self._externals(alert)

        # The matching incident with the latest alert, else a new one.
        best: Incident | None = None
        for inc in self.open:
            if (
                device in inc.devices
                or device in inc.footholds
                or (externals & inc.externals)
            ) and (best is None or inc.last > best.last):
                best = inc
        if best is None:
            best = Incident(f"I{self.next_id:08d}", alert.ts, alert.ts)
            self.next_id += 1
            self.open.append(best)
            if len(self.open) > self.max_open:
                self.evicted += 1
                out.append(("incidents", self.open.pop(0).record()))

        # Join it.
        alert.incident = best.id
        best.first = min(best.first, alert.ts)
        best.last = max(best.last, alert.ts)
        if device:
            best.devices.add(device)
        best.externals |= externals
        if alert.detection in FOOTHOLD and alert.dst.ip and alert.dst.ip != device:
            best.footholds.add(alert.dst.ip)
        if len(best.notes) < self.max_alerts:
            best.notes.append(
                AlertNote(
                    id=alert.id,
                    ts=alert.ts,
                    detection=alert.detection,
                    score=float(alert.score),
                    summary=alert.summary,
                    mitre=alert.mitre,
                    device=device,
                    target=alert.dst.ip or alert.dst.domain or "",
                    uids=list(alert.uids[:5]),
                )
            )
        else:
            best.more += 1
        return out

    def finish(self, now: float) -> list[Record]:
        """End of input: write every open incident."""
        out = [
            ("incidents", inc.record()) for inc in sorted(self.open, key=lambda i: i.id)
        ]
        self.open = []
        for call in self.on_finish:
            call()
        return out

    def _close_before(self, cutoff: float) -> list[Record]:
        closed = [inc for inc in self.open if inc.last < cutoff]
        if not closed:
            return []
        self.open = [inc for inc in self.open if inc.last >= cutoff]
        return [("incidents", inc.record()) for inc in closed]

    def _internal(self, ip: str) -> bool:
        if self.models is not None:
            return self.models.is_internal(ip)
        return is_private(ip)

    def _externals(self, alert: Alert) -> set[str]:
        out = set()
        for end in (alert.src, alert.dst):
            if end.ip and end.ip != alert.device.ip and not self._internal(end.ip):
                out.add(end.ip)
            if end.domain:
                out.add(end.domain)
        return out
