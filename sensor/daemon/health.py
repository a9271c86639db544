"""Capture health: packets, drops and drop rate per worker, per interval.

The kernel's counters (``PACKET_STATISTICS``) are the source: a packet the
ring had no room for is a drop the kernel counted, so the sensor knows when
it cannot see. Every interval :meth:`Health.sample` turns the running totals
into one ``health.log`` record per worker (schema
``sensor/output/schemas/health.schema.json``).

When the share of packets dropped over one interval exceeds
``health.max_drop_ratio``, capture is *degraded*: an ``alerts.log`` record
``CAPTURE_DEGRADED`` is written once, and :attr:`Health.response_mode` steps
down from ``auto`` to ``confirm``, so that the response stage (which reads
it) asks before acting on a partial view. ``CAPTURE_RECOVERED`` follows at
the first interval back under the threshold.
"""

from __future__ import annotations

import logging
from typing import Any

from sensor.capture.live import Counters

log = logging.getLogger(__name__)


class Health:
    """Per-interval capture health of one interface's workers."""

    def __init__(self, interface: str, max_drop_ratio: float) -> None:
        self.interface = interface
        self.max_drop_ratio = max_drop_ratio
        self._last: list[tuple[int, int]] = []
        #: ``auto`` normally, ``confirm`` while capture is degraded.
        self.response_mode = "auto"
        self.degraded = False

    def sample(
        self, ts: float, counters: list[Counters], totals: list[dict[str, Any]]
    ) -> list[tuple[str, dict[str, Any]]]:
        """Health records for the interval that ends at ``ts`` (and alerts)."""
        if len(self._last) != len(counters):
            self._last = [(0, 0)] * len(counters)
        out: list[tuple[str, dict[str, Any]]] = []
        all_packets = all_drops = 0
        for i, c in enumerate(counters):
            packets = c.packets - self._last[i][0]
            drops = c.drops - self._last[i][1]
            self._last[i] = (c.packets, c.drops)
            all_packets += packets
            all_drops += drops
            ratio = drops / packets if packets else 0.0
            record = {
                "ts": ts,
                "interface": self.interface,
                "worker": i,
                "packets": packets,
                "drops": drops,
                "drop_ratio": round(ratio, 6),
                "total_packets": c.packets,
                "total_drops": c.drops,
                "processed": int(totals[i].get("packets", 0)) if i < len(totals) else 0,
                "degraded": ratio > self.max_drop_ratio,
            }
            out.append(("health", record))
            level = logging.WARNING if drops else logging.INFO
            log.log(level, "%s: worker %d: %d packets, %d dropped (%.3f%%)",
                    self.interface, i, packets, drops, 100 * ratio)  # fmt: skip

        ratio = all_drops / all_packets if all_packets else 0.0
        if ratio > self.max_drop_ratio and not self.degraded:
            self.degraded = True
            self.response_mode = "confirm"
            log.warning("%s: capture degraded: %.3f%% of packets dropped; response steps down to confirm",
                        self.interface, 100 * ratio)  # fmt: skip
            out.append(("alerts", self._alert(ts, "CAPTURE_DEGRADED", ratio)))
        elif ratio <= self.max_drop_ratio and self.degraded:
            self.degraded = False
            self.response_mode = "auto"
            log.info("%s: capture recovered; response back to auto", self.interface)
            out.append(("alerts", self._alert(ts, "CAPTURE_RECOVERED", ratio)))
        return out

    def _alert(self, ts: float, name: str, ratio: float) -> dict[str, Any]:
        return {
            "ts": ts,
            "name": name,
            "severity": "high" if name == "CAPTURE_DEGRADED" else "info",
            "interface": self.interface,
            "drop_ratio": round(ratio, 6),
            "threshold": self.max_drop_ratio,
            "response_mode": self.response_mode,
            "msg": f"{self.interface}: {100 * ratio:.3f}% of packets dropped by the kernel "
            f"in the last interval (threshold {100 * self.max_drop_ratio:.3f}%)",
        }
