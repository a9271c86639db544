"""Everything after the engine: learning, detection, incidents, response.

The engine turns packets into records; the pipeline turns records into
knowledge and decisions. For every record, in order:

1. the detections see it, reading the device models as they were *before*
   this record (so "new for this device" means new);
2. the models learn from it;
3. each alert gets an id, joins an incident, and goes to the response
   policy, which may answer with actions.

Like the engine it does no I/O: records go in, records come out
(``alerts``, ``incidents``, ``actions``, ``devices``) for the writer.
Each stage is optional, so a replay without a state file or a test of one
stage runs only what it needs.

Two kinds of record that go in are not logs (:data:`NOT_LOGGED`): a
``tick`` (``{"ts": now}``, packet or wall time moving on with no record)
and a ``conn_early`` notice (a reset connection's record ahead of its conn
record, see :mod:`sensor.engine`), which only the detections see: the
models and the response stage take its conn record when it comes.

Order: the engine hands out a batch's records as it finished them: the
protocol records of the whole batch (which may span minutes of a replay)
first, then each connection's record when the connection ended. Taken so,
a detection's clock would pass the batch's end before it saw connections
from its start (a scan judged only at the end of input, its action created
then). The pipeline therefore places each protocol record just before the
first connection record that ended after it (:func:`in_time_order`). The
connection records keep the engine's order among themselves: the device
models take the MAC beside an unknown address from the first connection
that shows it, and a bridged network's devices depend on which comes
first (the Windows lab's client would take its bridge's MAC).
"""

from __future__ import annotations

from typing import Any, Protocol

from sensor.detect.alert import Alert

Record = tuple[str, dict[str, Any]]

#: Names of the records the pipeline takes that are not logs: whoever
#: writes the engine's records passes these to the pipeline alone.
NOT_LOGGED = frozenset({"tick", "conn_early"})


#: The records of connections, which keep the engine's order.
CONN_LOGS = frozenset({"conn", "conn_early"})


def complete_at(record: Record) -> float:
    """Packet time at which a record was complete: a connection's end
    (``ts + duration``), any other record's ``ts``; -inf without one."""
    log, r = record
    ts = r.get("ts")
    if not isinstance(ts, (int, float)):
        return float("-inf")
    if log in CONN_LOGS:
        return float(ts) + float(r.get("duration") or 0.0)
    return float(ts)


def in_time_order(records: list[Record]) -> list[Record]:
    """The batch with every other record moved just before the first
    connection record complete at or after it (see the module docstring);
    the connection records, and the others among themselves when their
    times tie, keep their order."""
    others = [(complete_at(r), i, r) for i, r in enumerate(records) if r[0] not in CONN_LOGS]
    if not others or len(others) == len(records):
        return records
    others.sort(key=lambda x: (x[0], x[1]))
    out: list[Record] = []
    k = 0
    for record in records:
        if record[0] not in CONN_LOGS:
            continue
        end = complete_at(record)
        while k < len(others) and others[k][0] <= end:
            out.append(others[k][2])
            k += 1
        out.append(record)
    out.extend(r for _, _, r in others[k:])
    return out


class Models(Protocol):
    def observe(self, log: str, record: dict[str, Any]) -> None: ...
    def finish(self, now: float) -> list[Record]: ...


class Detector(Protocol):
    def observe(self, log: str, record: dict[str, Any]) -> list[Alert]: ...
    def finish(self, now: float) -> list[Alert]: ...


class Incidents(Protocol):
    def add(self, alert: Alert) -> list[Record]: ...
    def finish(self, now: float) -> list[Record]: ...


class Responder(Protocol):
    def observe(self, log: str, record: dict[str, Any]) -> list[Record]: ...
    def consider(self, alert: Alert) -> list[Record]: ...
    def finish(self, now: float) -> list[Record]: ...


class Pipeline:
    """Runs the stages after the engine over finished records."""

    def __init__(
        self,
        models: Models | None = None,
        detector: Detector | None = None,
        incidents: Incidents | None = None,
        responder: Responder | None = None,
    ) -> None:
        self.models = models
        self.detector = detector
        self.incidents = incidents
        self.responder = responder
        #: Packet time of the latest record seen.
        self.now = 0.0
        #: Every alert raised so far, in order (the API and tests read it).
        self.alerts: list[Alert] = []

    def feed(self, records: list[Record]) -> list[Record]:
        """Run finished records through the stages, a batch in time order
        (:func:`in_time_order`); return the new records."""
        out: list[Record] = []
        for log, record in in_time_order(records):
            ts = record.get("ts")
            if isinstance(ts, (int, float)) and ts > self.now:
                self.now = float(ts)
            alerts = self.detector.observe(log, record) if self.detector else []
            if log != "conn_early":
                if self.models is not None:
                    self.models.observe(log, record)
                if self.responder is not None:
                    out.extend(self.responder.observe(log, record))
            for alert in alerts:
                out.extend(self._alert(alert))
        return out

    def finish(self) -> list[Record]:
        """End of input: close windows, incidents and models."""
        out: list[Record] = []
        if self.detector is not None:
            for alert in self.detector.finish(self.now):
                out.extend(self._alert(alert))
        if self.incidents is not None:
            out.extend(self.incidents.finish(self.now))
        if self.responder is not None:
            out.extend(self.responder.finish(self.now))
        if self.models is not None:
            out.extend(self.models.finish(self.now))
        return out

    def _alert(self, alert: Alert) -> list[Record]:
        # The incident builder sets alert.incident before the alert is
        # written, so alerts.log names the incident of every alert.
        self.alerts.append(alert)
        out: list[Record] = []
        if self.incidents is not None:
            out.extend(self.incidents.add(alert))
        out.append(("alerts", alert.record()))
        if self.responder is not None:
            out.extend(self.responder.consider(alert))
        return out
