"""scan.sweep: one source probes many hosts (ATT&CK T1046, T1018).

A sweep looks for live hosts rather than open ports: ICMP echo requests,
ARP requests, or attempts at one TCP or UDP port, each to many addresses.
Per source and probe kind (``icmp``, ``arp``, ``tcp/445``, ``udp/161``)
the detection keeps the distinct targets; TCP and UDP attempts count only
when they got no payload back (closed, filtered, silent), since a client
that really talks to many servers on one port (web browsing) is no sweep.
Windows are judged when quiet for ``idle_seconds`` or after
``window_seconds``, one alert per sweep. As a scan, its score does not
depend on the device's history.

A TCP attempt counted from its early notice (``conn_early``, see
:mod:`sensor.detect.portscan`) is not counted again from its conn record.

ARP requests come from the ``arp`` log (``ts``, ``op``, ``src_mac``,
``src_ip``, ``dst_mac``, ``dst_ip``); gratuitous ARP (asking for one's own
address) is not a probe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sensor.detect.alert import Alert, Endpoint, Reason
from sensor.detect.base import COUNT, SECONDS, Detection, Threshold, register
from sensor.detect.portscan import EARLY_MEMORY, unanswered
from sensor.detect.support import (
    BoundedTable,
    conn_ends,
    device_ref,
    duration,
    is_unicast,
    log_score,
    uid_sample,
    within,
)

# ICMP echo request types: 8 (RFC 792) and 128 for ICMPv6 (RFC 4443). Zeek
# writes the ICMP type as id.orig_p.
_ECHO = frozenset({8, 128})
_MAX_HOSTS = 70_000


@dataclass
class _Sweep:
    first: float
    last: float
    mac: str | None
    hosts: set[str] = field(default_factory=set)
    uids: list[str] = field(default_factory=list)


def _is_request(op: Any) -> bool:
    return op in (1, "1", "request", "who-has", "REQUEST")


@register
class Sweep(Detection):
    """Many hosts probed by one source with ICMP, ARP, TCP or UDP."""

    name = "scan.sweep"
    mitre = "T1046"
    logs = ("conn", "arp", "conn_early")
    thresholds = (
        Threshold("icmp_hosts", 10, "Distinct hosts sent ICMP echo requests by one source within the window.", COUNT),
        Threshold("arp_hosts", 32, "Distinct addresses asked for in ARP requests by one source within the window.", COUNT),
        Threshold("port_hosts", 16, "Distinct hosts whose same TCP or UDP port one source tried without an answer, within the window.", COUNT),
        Threshold("window_seconds", 600.0, "Longest span of one judged window.", SECONDS),
        Threshold("idle_seconds", 60.0, "A sweep with no probe for this long is judged.", SECONDS),
        Threshold("max_sources", 20_000, "Source/probe pairs tracked at once; the least recent is dropped at the limit.", COUNT),
    )  # fmt: skip

    def __init__(self, models: Any, overrides: dict[str, Any] | None = None) -> None:
        super().__init__(models, overrides)
        self.sweeps: BoundedTable[tuple[str, str], _Sweep] = BoundedTable(
            self.t["max_sources"]
        )
        #: Uids of the attempts counted from their early notice.
        self.early: BoundedTable[str, bool] = BoundedTable(EARLY_MEMORY)

    def observe(self, log: str, record: dict[str, Any]) -> list[Alert]:
        if log == "arp":
            if not _is_request(record.get("op")):
                return []
            src, dst = record.get("src_ip") or "", record.get("dst_ip") or ""
            if not src or not dst or src == dst or src == "0.0.0.0":
                return []
            return self._add(
                src, "arp", dst, float(record["ts"]), record.get("src_mac"), None
            )

        proto = record.get("proto")
        src, sport, dst, dport = conn_ends(record)
        if not src or not is_unicast(dst):
            return []
        if proto == "icmp":
            if sport not in _ECHO:
                return []
            kind = "icmp"
        elif proto in ("tcp", "udp"):
            uid = record.get("uid")
            if log == "conn" and uid and self.early.pop(uid):
                return []  # counted from its early notice
            if not unanswered(record):
                return []
            # A TCP probe opens with a SYN and carries no payload; data
            # without a handshake is a connection seen in mid-stream.
            history = record.get("history") or ""
            if proto == "tcp" and ("S" not in history or "D" in history):
                return []
            kind = f"{proto}/{dport}"
            if log == "conn_early" and uid:
                self.early.put(uid, True)
        else:
            return []
        return self._add(
            src,
            kind,
            dst,
            float(record["ts"]),
            record.get("orig_l2_addr"),
            record.get("uid"),
        )

    def _add(
        self, src: str, kind: str, dst: str, ts: float, mac: str | None, uid: str | None
    ) -> list[Alert]:
        out: list[Alert] = []
        key = (src, kind)
        s = self.sweeps.get(key)
        if s is not None and ts - s.first > self.t["window_seconds"]:
            out.extend(self._judge(key, s))
            s = None
        if s is None:
            s = _Sweep(ts, ts, mac)
            self.sweeps.put(key, s)
        if len(s.hosts) < _MAX_HOSTS:
            s.hosts.add(dst)
        s.last = max(s.last, ts)
        if uid and len(s.uids) < 400:
            s.uids.append(uid)
        return out

    def tick(self, now: float) -> list[Alert]:
        out: list[Alert] = []
        for key, s in self.sweeps.items():
            if (
                now - s.last > self.t["idle_seconds"]
                or now - s.first > self.t["window_seconds"]
            ):
                out.extend(self._judge(key, s))
        return out

    def finish(self, now: float) -> list[Alert]:
        out: list[Alert] = []
        for key, s in self.sweeps.items():
            out.extend(self._judge(key, s))
        return out

    def _limit(self, kind: str) -> int:
        if kind == "icmp":
            return int(self.t["icmp_hosts"])
        if kind == "arp":
            return int(self.t["arp_hosts"])
        return int(self.t["port_hosts"])

    def _judge(self, key: tuple[str, str], s: _Sweep) -> list[Alert]:
        self.sweeps.pop(key)
        src, kind = key
        limit = self._limit(kind)
        n = len(s.hosts)
        if n < limit:
            return []

        what = {
            "icmp": "sent ICMP echo requests to",
            "arp": "asked ARP for",
        }.get(kind, f"tried {kind.upper()} without an answer on")
        sample = sorted(s.hosts, key=_sort_key)
        span = f"{sample[0]} .. {sample[-1]}"
        summary = (
            f"{src} {what} {n} hosts ({span}) {within(s.last - s.first)}. "
            f"A device normally probes fewer than {limit} hosts this way "
            f"in {duration(self.t['window_seconds'])}."
        )
        reasons = [
            Reason(
                "distinct_hosts",
                n,
                f"< {limit} in {duration(self.t['window_seconds'])}",
            ),
            Reason("probe", kind, None),
            Reason(
                "hosts_probed",
                ", ".join(sample[:10]) + (", ..." if n > 10 else ""),
                None,
            ),
        ]
        port = int(kind.split("/")[1]) if "/" in kind else None
        return [
            Alert(
                ts=s.first,
                detection=self.name,
                score=log_score(n, limit),
                device=device_ref(self.models, src, s.mac),
                src=Endpoint(ip=src),
                dst=Endpoint(port=port),
                summary=summary,
                reasons=reasons,
                mitre=self.mitre,
                uids=uid_sample(s.uids),
            )
        ]


def _sort_key(ip: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in ip.split("."))
    except ValueError:
        return (1 << 20,)
