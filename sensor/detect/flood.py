"""dos.flood: one-way packets at a high rate toward one service
(ATT&CK T1499 for a TCP service, T1498 for UDP and ICMP volume).

Per (target, protocol, port) the detection adds the packets of
connections that got no answer: TCP attempts refused, reset or ignored
(a SYN flood, from one source or many spoofed ones), UDP and ICMP
connections whose responder sent under a tenth of the packets. A window
opens with the first such connection and is judged after
``window_seconds`` of connection starts, or when idle. A flood is
reported when the window holds ``packets`` packets at ``packets_per_second``
or more. Port scans touch many ports a few times each, so they do not add
up here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sensor.detect.alert import Alert, Endpoint, Reason
from sensor.detect.base import COUNT, POSITIVE, SECONDS, Detection, Threshold, register
from sensor.detect.portscan import unanswered
from sensor.detect.support import (
    BoundedTable,
    conn_ends,
    device_ref,
    duration,
    log_score,
    uid_sample,
)


@dataclass
class _Window:
    first: float
    end: float
    packets: int = 0
    conns: int = 0
    sources: set[str] = field(default_factory=set)
    uids: list[str] = field(default_factory=list)


@register
class Flood(Detection):
    """Many one-way packets to one service in a short time."""

    name = "dos.flood"
    mitre = "T1498"
    logs = ("conn",)
    thresholds = (
        Threshold("packets", 20_000, "One-way packets to one target service within a window.", COUNT),
        Threshold("packets_per_second", 500.0, "Their rate over the window, at least.", POSITIVE),
        Threshold("window_seconds", 60.0, "Span of connection starts in one window.", SECONDS),
        Threshold("max_targets", 20_000, "Target services tracked at once; the least recent is dropped at the limit.", COUNT),
    )  # fmt: skip

    def __init__(self, models: Any, overrides: dict[str, Any] | None = None) -> None:
        super().__init__(models, overrides)
        self.windows: BoundedTable[tuple[str, str, int], _Window] = BoundedTable(
            self.t["max_targets"]
        )

    def observe(self, log: str, record: dict[str, Any]) -> list[Alert]:
        proto = record.get("proto")
        sent = int(record.get("orig_pkts") or 0)
        got = int(record.get("resp_pkts") or 0)
        if proto == "tcp":
            if not unanswered(record):
                return []
        elif proto in ("udp", "icmp"):
            if got * 10 >= sent or sent == 0:
                return []
        else:
            return []
        src, _, dst, port = conn_ends(record)
        ts = float(record["ts"])

        out: list[Alert] = []
        key = (dst, str(proto), port)
        w = self.windows.get(key)
        if w is not None and ts - w.first > self.t["window_seconds"]:
            out.extend(self._judge(key, w))
            w = None
        if w is None:
            w = _Window(ts, ts)
            self.windows.put(key, w)
        w.packets += max(sent, 1)
        w.conns += 1
        w.end = max(w.end, ts + float(record.get("duration") or 0.0))
        if len(w.sources) < 10_000:
            w.sources.add(src)
        if len(w.uids) < 100 and "uid" in record:
            w.uids.append(record["uid"])
        return out

    def tick(self, now: float) -> list[Alert]:
        out: list[Alert] = []
        for key, w in self.windows.items():
            if now - w.end > 2 * self.t["window_seconds"]:
                out.extend(self._judge(key, w))
        return out

    def finish(self, now: float) -> list[Alert]:
        out: list[Alert] = []
        for key, w in self.windows.items():
            out.extend(self._judge(key, w))
        return out

    def _judge(self, key: tuple[str, str, int], w: _Window) -> list[Alert]:
        self.windows.pop(key)
        span = max(1.0, w.end - w.first)
        rate = w.packets / span
        if w.packets < self.t["packets"] or rate < self.t["packets_per_second"]:
            return []

        dst, proto, port = key
        service = f"{proto.upper()} port {port}" if proto != "icmp" else "ICMP"
        many = len(w.sources) > 1
        src = None if many else next(iter(w.sources))
        who = f"{len(w.sources)} sources" if many else str(src)
        summary = (
            f"{who} sent {w.packets} unanswered packets to {dst} {service} in {duration(span)} "
            f"({rate:.0f} per second, {w.conns} connections); a service normally answers, "
            f"and {self.t['packets_per_second']:.0f} one-way packets per second is the limit."
        )
        return [
            Alert(
                ts=w.first,
                detection=self.name,
                score=log_score(rate, self.t["packets_per_second"], base=60.0),
                device=device_ref(self.models, src)
                if src
                else device_ref(self.models, dst),
                src=Endpoint(ip=src),
                dst=Endpoint(ip=dst, port=port if proto != "icmp" else None),
                summary=summary,
                reasons=[
                    Reason(
                        "one_way_packets",
                        w.packets,
                        f"< {self.t['packets']} per {duration(self.t['window_seconds'])}",
                    ),
                    Reason(
                        "packets_per_second",
                        round(rate, 1),
                        f"< {self.t['packets_per_second']}",
                    ),
                    Reason("sources", len(w.sources), None),
                ],
                mitre="T1499" if proto == "tcp" else "T1498",
                uids=uid_sample(w.uids),
            )
        ]
