"""Anomalies of an analyzer as weird.log records, once per connection and name.

Zeek reports a protocol analyzer's complaints (``DNS_label_too_long``,
``ssh_unknown_kex_algorithm``, ...) in weird.log, most of them once per
connection. :class:`WeirdReporter` counts every occurrence and writes the
first of each name per connection, so that a hostile peer cannot flood the
log; the counts stay in :attr:`WeirdReporter.counters`.
"""

from __future__ import annotations

from typing import Any

from sensor.proto.analyzer import Emit


class WeirdReporter:
    """Counts anomalies by name and writes the first of each as a weird."""

    def __init__(self, ids: dict[str, Any], source: str, emit: Emit) -> None:
        self.ids = ids
        self.source = source
        self.emit = emit
        self.counters: dict[str, int] = {}

    def report(self, ts: float, name: str, addl: str = "") -> None:
        """Count ``name``; write it to weird.log the first time."""
        seen = self.counters.get(name, 0)
        self.counters[name] = seen + 1
        if seen:
            return
        rec: dict[str, Any] = {"ts": ts, **self.ids, "name": name}
        if addl:
            rec["addl"] = addl
        rec.update(notice=False, peer="sensor", source=self.source)
        self.emit("weird", rec)
