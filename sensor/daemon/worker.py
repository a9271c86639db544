"""A capture worker: one ring in, finished records out to the main process.

Each worker owns one socket of the fanout group and runs the whole engine
(decode, connection tracking, service detection) on what its ring holds.

Transport to the main process: one pipe per worker
(``multiprocessing.Pipe``), carrying pickled messages, each a *list* of
records: the records a ring block finished, gathered until
``SEND_RECORDS`` of them or ``SEND_SECONDS`` have passed. Packets never
cross it, only finished connections and anomalies, which are two to three
orders of magnitude fewer, and batching makes the cost per record a few
microseconds (``bench/live.py --transport`` measures it). The pipe is the
bound: when the main process falls behind, ``send`` blocks, the worker stops
reading its ring, and the kernel counts the overflow as drops, which the
health records report. Nothing is lost silently.

The engine gives early notices of reset connections (``conn_early``, see
:mod:`sensor.engine`): a batch that made one is sent at once, since the
detections act on it (a port scan is counted at its RSTs).

Messages, worker to main: ``("ready", index)`` once reading;
``("records", index, [(log, record), ...])``; ``("totals", index, dict)``
about once a second; ``("done", index)`` after the final flush.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

from sensor.engine import Engine, Record
from sensor.flow.table import FlowConfig

log = logging.getLogger(__name__)

#: Records gathered before a message is sent to the main process.
SEND_RECORDS = 1000
#: Longest time a finished record waits in the worker.
SEND_SECONDS = 0.2
#: How long the ring read waits for a block before the loop goes round.
POLL_MS = 100
#: Longest time a stopping worker keeps reading its ring before it flushes.
DRAIN_SECONDS = 1.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # If the main process is killed (watchdog abort, SIGKILL), end too,
    # instead of capturing for nobody (prctl(2), PR_SET_PDEATHSIG).
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class Worker:
    """Runs the engine over one ring; :meth:`run` returns on SIGTERM."""

    def __init__(
        self, index: int, ring: Any, out: Connection, flow: FlowConfig
    ) -> None:
        self.index = index
        self.ring = ring
        self.out = out
        self.engine = Engine(flow, early=True)
        self.stopping = False
        self.pending: list[Record] = []
        self.last_send = time.monotonic()
        self.last_totals = 0.0

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _hang(self, signum: int, frame: object) -> None:
        while True:
            time.sleep(3600)

    def run(self) -> None:
        """Read, track and send until told to stop; then flush everything."""
        try:
            self._run()
        except (BrokenPipeError, EOFError):
            # The main process is gone (killed by the watchdog, say): there
            # is nobody to write the records; end quietly.
            pass

    def _run(self) -> None:
        _die_with_parent()
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        if os.environ.get("SENSOR_DEBUG_HANG") == "1":
            # Debug aid, as in the main process: SIGUSR2 hangs this worker.
            signal.signal(signal.SIGUSR2, self._hang)
        self.out.send(("ready", self.index))

        advance = getattr(self.engine.table, "advance", None)
        while not self.stopping:
            batch = self.ring.read(POLL_MS)
            now = time.monotonic()
            urgent = False
            if batch is not None and len(batch):
                records = self.engine.process(batch)
                # Early notices come first among a batch's records.
                urgent = bool(records) and records[0][0] == "conn_early"
                self.pending.extend(records)
            elif advance is not None:
                # A quiet link: let timers run on the wall clock, so idle
                # connections end on time (ring timestamps are wall clock).
                self.pending.extend(self.engine._records(advance(time.time_ns())))
            if (
                urgent
                or len(self.pending) >= SEND_RECORDS
                or now - self.last_send >= SEND_SECONDS
            ):
                self._send()
            if now - self.last_totals >= 1.0:
                self._totals(now)

        # Drain what the ring holds (a part-filled block is handed over
        # after block_timeout_ms), then finish every connection. On a busy
        # link blocks keep coming: the drain stops after DRAIN_SECONDS or
        # one ring's worth, whichever comes first.
        deadline = time.monotonic() + DRAIN_SECONDS
        for _ in range(self.ring.blocks + 1):
            batch = self.ring.read(3 * POLL_MS)
            if batch is None:
                break
            self.pending.extend(self.engine.process(batch))
            if time.monotonic() >= deadline:
                break
        self.pending.extend(self.engine.flush())
        self._send()
        self._totals(time.monotonic())
        self.out.send(("done", self.index))

    def _send(self) -> None:
        if self.pending:
            self.out.send(("records", self.index, self.pending))
            self.pending = []
        self.last_send = time.monotonic()

    def _totals(self, now: float) -> None:
        t = self.engine.totals
        self.out.send(
            (
                "totals",
                self.index,
                {
                    "packets": t.packets,
                    "bytes": t.bytes,
                    "connections": t.connections,
                    "anomalies": t.anomalies,
                    "socket_errors": list(self.ring.errors),
                },
            )
        )
        self.last_totals = now
