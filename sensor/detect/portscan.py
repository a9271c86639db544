"""scan.port: one source tries many ports of one host (ATT&CK T1046).

Design: per (source, target) pair the detection keeps the distinct
``proto/port`` pairs tried, how many of those attempts got no answer
payload (refused, reset, unanswered, an empty handshake), the TCP ports
that answered the SYN (open: what the scan found), and a sample of the
connections. A pair is judged when it has been quiet for
``idle_seconds`` or open for ``window_seconds``, so one scan gives one
alert with its full numbers rather than one per threshold crossed. A scan
is plain attack behaviour: the score does not depend on the device's
history and is not lowered while the device is learning.

Connection records come when a connection ends, which for unanswered
attempts is after the connection table's timeout; ``ts`` is the start, so
the window is counted in start times. A refused or reset attempt ends 5 s
after its RST (the table's close delay); where the engine hands out early
notices (``conn_early`` records, see :mod:`sensor.engine`; the live sensor
does), such an attempt is counted at its RST from the notice, and its conn
record, when it comes, only corrects whether it got an answer: each
connection counts once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sensor.detect.alert import Alert, Endpoint, Reason
from sensor.detect.base import COUNT, SECONDS, SHARE, Detection, Threshold, register
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

#: Connections counted from their early notice, remembered by uid until
#: their conn record comes (about 5 s later); at the limit the oldest is
#: forgotten, and its conn record then counts again.
EARLY_MEMORY = 100_000

_UNANSWERED = frozenset(
    {"S0", "REJ", "RSTOS0", "RSTRH", "SH", "SHR", "OTH", "RSTR", "RSTO", "S1"}
)


@dataclass
class _Pair:
    first: float
    last: float
    mac: str | None
    ports: set[tuple[str, int]] = field(default_factory=set)
    unanswered: int = 0
    attempts: int = 0
    #: TCP ports whose host answered the SYN: open, whatever came after.
    open: set[int] = field(default_factory=set)
    uids: list[str] = field(default_factory=list)


def accepted(record: dict[str, Any]) -> bool:
    """True when the responder of a TCP attempt answered its SYN (Zeek's
    history letter ``h``): the port is open, data or not."""
    return record.get("proto") == "tcp" and "h" in record.get("history", "")


def unanswered(record: dict[str, Any]) -> bool:
    """True when the responder sent no payload: refused, reset, silent."""
    if record.get("resp_bytes"):
        return False
    if record.get("proto") == "udp":
        return True
    return record.get("conn_state", "") in _UNANSWERED


@register
class PortScan(Detection):
    """Many ports of one host tried by one source, most of them closed."""

    name = "scan.port"
    mitre = "T1046"
    logs = ("conn", "conn_early")
    thresholds = (
        Threshold("ports", 25, "Distinct TCP/UDP ports of one host tried by one source within the window.", COUNT),
        Threshold("unanswered_share", 0.5, "Share of the attempts that got no payload back (closed, filtered, reset); below it the pair is taken as a busy client, not a scan.", SHARE),
        Threshold("window_seconds", 600.0, "Longest span of one judged window.", SECONDS),
        Threshold("idle_seconds", 60.0, "A pair with no attempt for this long is judged.", SECONDS),
        Threshold("merge_hosts", 3, "Scanned hosts of one source judged together at or above which they make one alert.", COUNT),
        Threshold("max_pairs", 50_000, "Source/target pairs tracked at once; the least recent is dropped at the limit.", COUNT),
    )  # fmt: skip

    def __init__(self, models: Any, overrides: dict[str, Any] | None = None) -> None:
        super().__init__(models, overrides)
        self.pairs: BoundedTable[tuple[str, str], _Pair] = BoundedTable(
            self.t["max_pairs"]
        )
        #: uid -> whether it was counted unanswered, for attempts counted
        #: from their early notice.
        self.early: BoundedTable[str, bool] = BoundedTable(EARLY_MEMORY)

    def observe(self, log: str, record: dict[str, Any]) -> list[Alert]:
        proto = record.get("proto")
        if proto not in ("tcp", "udp"):
            return []
        src, _, dst, dport = conn_ends(record)
        if not src or not is_unicast(dst):
            return []
        ts = float(record["ts"])
        key = (src, dst)
        uid = record.get("uid")
        if log == "conn" and uid and uid in self.early:
            self._settle(key, ts, record, bool(self.early.pop(uid)), dport)
            return []

        # Judge an old window before this attempt opens a new one.
        out: list[Alert] = []
        p = self.pairs.get(key)
        if p is not None and ts - p.first > self.t["window_seconds"]:
            out.extend(self._judge(key, p))
            p = None
        if p is None:
            p = _Pair(ts, ts, record.get("orig_l2_addr"))
            self.pairs.put(key, p)

        p.ports.add((proto, dport))
        p.attempts += 1
        p.last = max(p.last, ts)
        silent = unanswered(record)
        if silent:
            p.unanswered += 1
        if accepted(record):
            p.open.add(dport)
        if len(p.uids) < 400 and uid:
            p.uids.append(uid)
        if log == "conn_early" and uid:
            self.early.put(uid, silent)
        return out

    def _settle(
        self,
        key: tuple[str, str],
        ts: float,
        record: dict[str, Any],
        silent: bool,
        dport: int,
    ) -> None:
        # The conn record of an attempt counted from its early notice: it
        # only corrects the answer, if the window it was counted in runs on.
        p = self.pairs.get(key)
        if p is None or ts < p.first:
            return
        if accepted(record):
            p.open.add(dport)
        now = unanswered(record)
        if now != silent:
            p.unanswered = max(0, p.unanswered + (1 if now else -1))

    def tick(self, now: float) -> list[Alert]:
        out: list[Alert] = []
        for key, p in self.pairs.items():
            if (
                now - p.last > self.t["idle_seconds"]
                or now - p.first > self.t["window_seconds"]
            ):
                out.extend(self._judge(key, p))
        return self._merge(out)

    def finish(self, now: float) -> list[Alert]:
        out: list[Alert] = []
        for key, p in self.pairs.items():
            out.extend(self._judge(key, p))
        return self._merge(out)

    def _merge(self, alerts: list[Alert]) -> list[Alert]:
        """One alert per source for the hosts it scanned that were judged
        together: a subnet scan is one finding, not one per host."""
        by_src: dict[str, list[Alert]] = {}
        for a in alerts:
            by_src.setdefault(a.src.ip or "", []).append(a)
        out: list[Alert] = []
        for src, group in by_src.items():
            if len(group) < self.t["merge_hosts"]:
                out.extend(group)
                continue
            hosts = sorted((a.dst.ip or "" for a in group), key=_ip_key)
            ports = [int(a.reasons[0].value) for a in group]
            first = min(a.ts for a in group)
            uids = [u for a in group for u in a.uids[:2]]
            top = max(group, key=lambda a: a.score)
            summary = (
                f"{src} tried {min(ports)} to {max(ports)} ports on each of {len(hosts)} hosts "
                f"({hosts[0]} .. {hosts[-1]}), most attempts unanswered. A device normally "
                f"reaches fewer than {self.t['ports']} ports of one host in "
                f"{duration(self.t['window_seconds'])}."
            )
            out.append(
                Alert(
                    ts=first,
                    detection=self.name,
                    score=min(95.0, top.score + 5.0),
                    device=top.device,
                    src=Endpoint(ip=src),
                    dst=Endpoint(),
                    summary=summary,
                    reasons=[
                        Reason(
                            "hosts_scanned",
                            len(hosts),
                            f"{self.t['merge_hosts']} or more merged",
                        ),
                        Reason(
                            "distinct_ports_max",
                            max(ports),
                            f"< {self.t['ports']} per host",
                        ),
                        Reason(
                            "hosts",
                            ", ".join(hosts[:10])
                            + (", ..." if len(hosts) > 10 else ""),
                            None,
                        ),
                    ],
                    mitre=self.mitre,
                    uids=uid_sample(uids),
                )
            )
        return out

    def _judge(self, key: tuple[str, str], p: _Pair) -> list[Alert]:
        self.pairs.pop(key)
        n = len(p.ports)
        share = p.unanswered / p.attempts if p.attempts else 0.0
        if n < self.t["ports"] or share < self.t["unanswered_share"]:
            return []

        src, dst = key
        tcp = sum(1 for proto, _ in p.ports if proto == "tcp")
        udp = n - tcp
        kinds = ", ".join(f"{c} {k}" for c, k in ((tcp, "TCP"), (udp, "UDP")) if c)
        sample = ", ".join(str(port) for _, port in sorted(p.ports)[:12])
        summary = (
            f"{src} tried {n} ports of {dst} ({kinds}) {within(p.last - p.first)}; "
            f"{p.unanswered} of {p.attempts} attempts got no data back"
            f"{_open_ports(p.open)}. "
            f"A device normally reaches fewer than {self.t['ports']} ports of one host "
            f"in {duration(self.t['window_seconds'])}."
        )
        reasons = [
            Reason(
                "distinct_ports",
                n,
                f"< {self.t['ports']} per host in {duration(self.t['window_seconds'])}",
            ),
            Reason(
                "unanswered_share",
                round(share, 3),
                f"< {self.t['unanswered_share']} for a client",
            ),
            Reason("ports_tried", sample + (", ..." if n > 12 else ""), None),
        ]
        if p.open:
            reasons.append(Reason("open_ports", _port_list(p.open), None))
        return [
            Alert(
                ts=p.first,
                detection=self.name,
                score=log_score(n, self.t["ports"]),
                device=device_ref(self.models, src, p.mac),
                src=Endpoint(ip=src),
                dst=Endpoint(ip=dst),
                summary=summary,
                reasons=reasons,
                mitre=self.mitre,
                uids=uid_sample(p.uids),
            )
        ]


def _ip_key(ip: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in ip.split("."))
    except ValueError:
        return (1 << 20,)


def _port_list(ports: set[int]) -> str:
    shown = sorted(ports)[:12]
    return ", ".join(map(str, shown)) + (", ..." if len(ports) > 12 else "")


def _open_ports(ports: set[int]) -> str:
    # What a scan found matters as much as how it looked: name the TCP
    # ports that accepted the handshake, or say that none did.
    if not ports:
        return " (refused, reset or silent; no port accepted a connection)"
    n = len(ports)
    return (
        f" (refused, reset or silent); {n} TCP port{'s' if n > 1 else ''} "
        f"accepted a connection: {_port_list(ports)}"
    )
