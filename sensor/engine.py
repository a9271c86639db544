"""The engine: runs decode, flow tracking, service detection and the
protocol analyzers over batches.

It does no I/O. Batches go in; log records come out as ``(log, record)``
pairs, in the order they were finished, for an output writer to write. The
replay command and the live daemon drive the same engine.

The connection table hands each payload event to the engine as it happens
(its ``on_payload`` hook), and asks, past the first packets of a direction,
whether anyone still wants a connection's payload (``wants_more``): the
service detector for FTP control and SMB pipes, the dispatcher while an
analyzer is following the connection. A finished connection's analyzers
are flushed, and their records written, before its conn record.

Early notices: an engine made with ``early=True`` also hands back, as
``("conn_early", record)``, the record of a TCP connection that a reset
ended, at the reset, ahead of its conn record 5 s later (the connection
table's close delay, see :mod:`sensor.flow.table`). Such a record is for
the detections only (:class:`sensor.pipeline.Pipeline` routes it so); it
is not a log and must not be written. It holds the table's fields only
(no ``service``, no ``community_id``), and its conn record follows with
the same uid. They come first among a batch's records, since a batch may
hold a connection's notice and its conn record too, and are not counted
in :class:`Totals`.

Garbage collection: the pipeline makes many short-lived containers per
packet and connection (payload events, records, parser state) but, by
design, no reference cycles (a finished connection is freed by reference
counting; ``tests/test_engine_gc.py`` checks it). CPython's default, a
collection every 700 net allocations, then spends a tenth to a fifth of
the engine's time traversing live connections' state for nothing; :func:`tune_gc`,
called once by the first :class:`Engine`, makes collections rarer
(:data:`GC_THRESHOLDS`).
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass, field
from typing import Any

from sensor import _impl
from sensor.capture.batch import Batch
from sensor.flow.communityid import community_id
from sensor.proto.detect import ServiceDetector
from sensor.proto.dispatch import Dispatcher

log = logging.getLogger(__name__)

Record = tuple[str, dict[str, Any]]

_IP_PROTO = {"tcp": 6, "udp": 17, "icmp": 1}

#: gc.set_threshold() values for a process that runs an engine: a young
#: collection once 50,000 more container objects are alive than after the
#: last one (CPython's default: 700), an older one every 20 of those. Dead
#: cycles, rare here, wait at most that long: a few MiB.
GC_THRESHOLDS = (50_000, 20, 20)


def tune_gc() -> None:
    """Make cyclic garbage collection rarer in this process (see the module
    docstring); does nothing when the thresholds were already raised."""
    if gc.get_threshold()[0] < GC_THRESHOLDS[0]:
        gc.set_threshold(*GC_THRESHOLDS)


@dataclass
class Totals:
    """What the engine has seen so far, for the summary line and the API."""

    packets: int = 0
    bytes: int = 0
    connections: int = 0
    by_log: dict[str, int] = field(default_factory=dict)

    @property
    def anomalies(self) -> int:
        """weird.log records: the decoder's and the analyzers' alike."""
        return self.by_log.get("weird", 0)


class Engine:
    """Decode, track and classify packets; hand back log records.

    ``flow_config`` is passed to the connection table (see
    ``sensor.flow.table.FlowConfig``); None takes its defaults. ``early``
    asks for the early notices of reset connections (module docstring).
    """

    def __init__(self, flow_config: Any = None, *, early: bool = False) -> None:
        tune_gc()
        flow = _impl.load("flow", "sensor.flow.table")
        self.implementation = (
            "compiled" if flow.__name__.startswith("sensor._ext") else "python"
        )
        self.services = ServiceDetector()
        self.analyzers = Dispatcher()
        self.totals = Totals()
        self.errors = 0
        # The uid whose packet the analyzers asked for and the detector did
        # not (see _wants_more): that packet is not fed to the detector.
        self._not_asked: str | None = None
        self.early = early
        self.table = flow.ConnTable(
            flow_config,
            on_payload=self._payload,
            wants_more=self._wants_more,
            early=early,
        )

    def process(self, batch: Batch) -> list[Record]:
        """Run one batch through the pipeline; return the records it finished."""
        self.totals.packets += len(batch)
        self.totals.bytes += int(batch.wirelens.sum())
        return self._records(self.table.process(batch))

    def flush(self) -> list[Record]:
        """End of input: finish every connection still open."""
        return self._records(self.table.flush())

    def stats(self) -> dict[str, int]:
        """Counters: the connection table's (packets, anomalies, limits hit),
        the dispatcher's (``analyzer_*``, ``dispatch_table_full``), and the
        stream reassembler's with a ``stream_`` prefix (see
        :meth:`sensor.proto.stream.Reassembler.stats`)."""
        out = dict(self.table.stats())
        out.update(self.analyzers.stats)
        for key, value in self.analyzers.streams.stats().items():
            out[f"stream_{key}"] = value
        if self.errors:
            out["engine_payload_errors"] = self.errors
        return out

    @property
    def services(self) -> ServiceDetector:
        """The service detector (may be replaced before the first batch)."""
        return self._services

    @services.setter
    def services(self, detector: ServiceDetector) -> None:
        # The payload hook runs for every segment: its callees are bound once.
        self._services = detector
        self._feed = detector.feed
        self._detector_wants = detector.wants_more

    @property
    def analyzers(self) -> Dispatcher:
        """The protocol analyzers' dispatcher (may be replaced before the
        first batch, as the benchmarks and test harnesses do)."""
        return self._analyzers

    @analyzers.setter
    def analyzers(self, dispatcher: Dispatcher) -> None:
        self._analyzers = dispatcher
        self._dispatch = dispatcher.event
        self._analyzers_want = dispatcher.wants_more

    def _payload(self, event: tuple[Any, ...]) -> None:
        # The table's on_payload hook: runs inside table.process(), so a
        # payload is seen before the record of its connection is finished.
        # It runs for every segment that someone follows, hence the bound
        # callees and no more work than a comparison before the dispatcher.
        try:
            # The detector gets what the table would give it alone: the
            # first packets of each direction, and later ones only when it
            # asked for them (see _wants_more).
            not_asked, self._not_asked = self._not_asked, None
            if event[0] != not_asked:
                self._feed(*event[:9])
            self._dispatch(event)
        except Exception:  # a bug here must not stop the capture loop
            self.errors += 1
            if self.errors == 1:
                log.exception("engine: payload of %s failed", event[0])

    def _wants_more(self, uid: str) -> bool:
        # Asked for a packet past the budget; a True answer delivers it at
        # once through _payload, which must know whether the detector asked.
        self._not_asked = None
        try:
            if self._detector_wants(uid):
                return True
            if self._analyzers_want(uid):
                self._not_asked = uid
                return True
            return False
        except Exception:  # noqa: BLE001 - as in _payload
            self._not_asked = None
            self.errors += 1
            return False

    def _records(self, events: Any) -> list[Record]:
        # A table without the hooks (a test double) still lists payloads.
        for payload in events.payloads:
            self._payload(payload)

        out: list[Record] = []
        # ARP records (sensor.flow.arp) belong to no connection.
        out.extend(("arp", arp) for arp in getattr(events, "arps", ()))
        for weird in events.weirds:
            # Zeek leaves addl unset when there is nothing to add.
            if not weird.get("addl"):
                weird.pop("addl", None)
            out.append(("weird", weird))
        for conn in events.conns:
            tcp = conn["proto"] == "tcp"
            named = self.analyzers.finish(
                conn["uid"],
                conn["ts"] + conn.get("duration", 0.0),
                conn.get("orig_bytes", -1) if tcp else -1,
                conn.get("resp_bytes", -1) if tcp else -1,
                conn.get("missed_bytes", -1) if tcp else -1,
            )
            out.extend(self.analyzers.records)
            self.analyzers.records.clear()
            out.append(("conn", self._finish_conn(conn, named)))
        out.extend(self.analyzers.records)
        self.analyzers.records.clear()

        self.totals.connections += len(events.conns)
        for name, _ in out:
            self.totals.by_log[name] = self.totals.by_log.get(name, 0) + 1
        early = getattr(events, "early", None)
        if early:
            return [("conn_early", conn) for conn in early] + out
        return out

    def _finish_conn(
        self, conn: dict[str, Any], named: list[str] | None = None
    ) -> dict[str, Any]:
        services = self.services.finish(conn["uid"], conn.get("history"))
        # Service detection names what Zeek names; of the analyzers' own
        # services only winrm, which Zeek lacks, is added to it.
        if named and "winrm" in named and "winrm" not in services:
            services = [*services, "winrm"]
        if services:
            conn["service"] = ",".join(services)
        proto = conn.get("ip_proto") or _IP_PROTO.get(conn["proto"], 0)
        conn["community_id"] = community_id(
            conn["id.orig_h"],
            conn["id.orig_p"],
            conn["id.resp_h"],
            conn["id.resp_p"],
            proto,
        )
        return conn
