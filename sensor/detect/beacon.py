"""c2.beacon: a device that checks in with one destination on a schedule.

Design note (the scoring follows RITA's beacon analysis, rebuilt here):
connections are grouped per source and destination, the destination being
the domain when a name is known (SNI, Host, a DNS answer) and the address
and port otherwise, so that a beacon spread over a domain's addresses is
one series. Connections that start within ``burst_gap`` seconds of the
previous one are one check-in (an agent often opens two or three at
once). Over the check-ins still inside ``window``:

- timing: the intervals between check-ins score by their symmetry (1 minus
  the absolute Bowley skewness, (Q1 + Q3 - 2 Q2) / (Q3 - Q1)), by their
  spread (1 minus the median absolute deviation as a fraction of the median
  interval, over ``jitter_tolerance``, so that a beacon with 50% random
  jitter still scores half), and by coverage (how much of the observed span
  the check-ins fill at their median interval: a burst of browsing and a
  long silence covers little);
- size: the bytes the device sent per connection score by symmetry and by
  spread (median absolute deviation over the median, over
  ``size_tolerance``): check-ins carry the same small request each time.

The beacon score is the mean of the timing and the size scores, 0 to 1;
a series of ``min_checkins`` check-ins over ``min_span`` seconds or more
scoring ``min_score`` or more is reported with score 100 times
the beacon score, times ``popular_factor`` (0.4: below notable) when
``popular_devices`` or more devices use the destination (software updates
and telemetry beacon too, from every machine). DNS, NTP, DHCP and NetBIOS
datagrams, group addresses and UDP datagrams that got no answer (discovery
and announcement protocols) are not series: they are periodic by design.
Destinations inside the network are grouped by address, not by name (an
AD domain name covers many hosts).

Memory: a series keeps 16 bytes per connection (start, bytes sent), at
most ``max_conns`` of them (trimmed in steps of a quarter), and twenty
uids for the alert to cite; at most ``max_series`` series.
"""

from __future__ import annotations

from array import array
from collections import deque
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from sensor.detect.alert import Alert, Endpoint, Reason
from sensor.detect.base import (
    COUNT,
    POSITIVE,
    SECONDS,
    SHARE,
    NamedConnDetection,
    Threshold,
    register,
)
from sensor.detect.names import registered_domain
from sensor.detect.support import (
    BoundedTable,
    device_ref,
    duration,
    is_unicast,
    uid_sample,
)
from sensor.model.view import ModelView

#: Ports whose traffic is periodic by design (DNS, mDNS, LLMNR, NetBIOS,
#: DHCP, NTP, SSDP).
QUIET_PORTS = frozenset({53, 67, 68, 123, 137, 138, 546, 547, 1900, 5353, 5355})


def quantile(sorted_values: list[float], p: float) -> float:
    """The ``p`` quantile of already sorted values, linear interpolation."""
    k = (len(sorted_values) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def bowley(sorted_values: list[float]) -> float:
    """Bowley's quartile skewness, -1 to 1; 0 when the quartiles coincide."""
    q1, q2, q3 = (quantile(sorted_values, p) for p in (0.25, 0.5, 0.75))
    if q3 - q1 <= 1e-9:
        return 0.0
    return (q1 + q3 - 2 * q2) / (q3 - q1)


def mad(sorted_values: list[float]) -> float:
    """Median absolute deviation from the median."""
    m = quantile(sorted_values, 0.5)
    return quantile(sorted([abs(v - m) for v in sorted_values]), 0.5)


@dataclass
class Series:
    """The connections of one source to one destination, bounded."""

    src: str
    mac: str | None
    dst_ip: str
    port: int
    domain: str | None
    # Start times and bytes sent, 16 bytes a connection; uids only as the
    # sample an alert cites (the first and the latest ten).
    ts: array[float] = field(default_factory=lambda: array("d"))
    sent: array[int] = field(default_factory=lambda: array("q"))
    first_uids: list[str] = field(default_factory=list)
    last_uids: deque[str] = field(default_factory=lambda: deque(maxlen=10))
    dirty: bool = False
    reported: float = 0.0


@dataclass
class Judgement:
    """The figures of one judged series."""

    checkins: int
    conns: int
    interval: float
    jitter: float
    skew: float
    coverage: float
    size: float
    size_spread: float
    timing: float
    sizing: float
    span: float

    @property
    def score(self) -> float:
        """Beacon score, 0 to 1."""
        return (self.timing + self.sizing) / 2


def judge(
    conns: list[tuple[float, int]],
    burst_gap: float,
    jitter_tolerance: float,
    size_tolerance: float,
) -> Judgement | None:
    """Score a series of ``(start, bytes sent)``; None if too short to
    have an interval."""
    starts: list[float] = []
    last = float("-inf")
    for ts, _ in sorted(conns):
        if ts - last > burst_gap:
            starts.append(ts)
        last = ts  # a burst lasts while its connections keep coming
    if len(starts) < 3:
        return None
    intervals = sorted(b - a for a, b in pairwise(starts))
    interval = quantile(intervals, 0.5)
    if interval <= 0:
        return None
    jitter = mad(intervals)
    skew = bowley(intervals)
    span = starts[-1] - starts[0]
    coverage = min(1.0, (len(starts) - 1) / (span / interval))
    timing = (
        (1 - abs(skew)) + max(0.0, 1 - jitter / interval / jitter_tolerance) + coverage
    ) / 3

    sizes = sorted(float(b) for _, b in conns)
    size = quantile(sizes, 0.5)
    spread = mad(sizes) / max(size, 1.0)
    sizing = ((1 - abs(bowley(sizes))) + max(0.0, 1 - spread / size_tolerance)) / 2
    return Judgement(
        len(starts), len(conns), interval, jitter, skew, coverage, size, spread,
        timing, sizing, span,
    )  # fmt: skip


@register
class Beacon(NamedConnDetection):
    """Regular check-ins of a device with one destination (see module)."""

    name = "c2.beacon"
    mitre = "T1071"
    thresholds = (
        Threshold("min_checkins", 10, "Fewest check-ins (bursts merged) a series needs to be judged.", COUNT),
        Threshold("min_span", 300.0, "Fewest seconds from a series' first to last check-in before it is judged (a schedule shows over minutes; a script's loop lasts seconds).", SECONDS),
        Threshold("burst_gap", 1.0, "Connections starting within this many seconds of the previous one are one check-in.", SECONDS),
        Threshold("jitter_tolerance", 1.0, "Median absolute deviation of the intervals, as a fraction of the median interval, at which timing spread scores 0.", POSITIVE),
        Threshold("size_tolerance", 0.5, "Median absolute deviation of bytes sent, as a fraction of the median, at which size spread scores 0.", POSITIVE),
        Threshold("min_score", 0.7, "Beacon score (0 to 1) from which a series is reported.", SHARE),
        Threshold("window", 86400.0, "Seconds of check-ins kept per series.", SECONDS),
        Threshold("max_conns", 512, "Connections kept per series (the oldest go first).", COUNT),
        Threshold("judge_every", 300.0, "Seconds of packet time between judgements of series that grew.", SECONDS),
        Threshold("popular_devices", 5, "A destination used by this many devices is popular.", COUNT),
        Threshold("popular_factor", 0.4, "Factor on the score of a beacon to a popular destination.", SHARE),
        Threshold("max_series", 20000, "Series tracked at once (the least recently active are dropped).", COUNT),
    )  # fmt: skip

    def __init__(
        self, models: ModelView, overrides: dict[str, Any] | None = None
    ) -> None:
        super().__init__(models, overrides)
        self.series: BoundedTable[tuple[str, str], Series] = BoundedTable(
            self.t["max_series"]
        )
        self._next_judge = 0.0

    def observe_conn(self, record: dict[str, Any]) -> list[Alert]:
        """Add the connection to its series."""
        src = record.get("id.orig_h", "")
        dst = record.get("id.resp_h", "")
        port = int(record.get("id.resp_p") or 0)
        proto = record.get("proto")
        if (
            port in QUIET_PORTS
            or proto == "icmp"
            or not is_unicast(dst)
            or not is_unicast(src)
        ):
            return []
        if (
            proto == "udp"
            and not record.get("resp_pkts")
            and not record.get("resp_bytes")
        ):
            return []  # an unanswered datagram: discovery, announcement, logging

        # A name groups an external destination's addresses; inside the
        # network a name (the AD domain) covers many hosts, so the address.
        host = self.names.name_of(record.get("uid"), dst)
        domain = (
            registered_domain(host)
            if host and not self.models.is_internal(dst)
            else None
        )
        key = (src, f"d:{domain}") if domain else (src, f"{dst}:{port}")
        series = self.series.get(key)
        if series is None:
            series = Series(src, record.get("orig_l2_addr"), dst, port, domain)
            self.series.put(key, series)
        series.dst_ip, series.port = dst, port
        series.ts.append(float(record.get("ts") or 0.0))
        series.sent.append(int(record.get("orig_bytes") or 0))
        uid = str(record.get("uid") or "")
        if len(series.first_uids) < 10:
            series.first_uids.append(uid)
        else:
            series.last_uids.append(uid)
        if len(series.ts) >= self.t["max_conns"] * 5 // 4:
            # Trimmed in steps, so that a long series costs no shifting per
            # connection.
            cut = len(series.ts) - self.t["max_conns"]
            del series.ts[:cut]
            del series.sent[:cut]
        series.dirty = True
        return []

    def tick(self, now: float) -> list[Alert]:
        """Every ``judge_every`` seconds, judge the series that grew."""
        if now < self._next_judge:
            return []
        self._next_judge = now + self.t["judge_every"]
        return self._judge_all(now)

    def finish(self, now: float) -> list[Alert]:
        """End of input: judge every series that grew since its last look."""
        return self._judge_all(now)

    def _judge_all(self, now: float) -> list[Alert]:
        out: list[Alert] = []
        for _, series in self.series.items():  # noqa: PERF102 (a BoundedTable)
            if not series.dirty:
                continue
            series.dirty = False
            oldest = now - self.t["window"]
            if series.ts and min(series.ts) < oldest:
                keep = [i for i, t in enumerate(series.ts) if t >= oldest]
                series.ts = array("d", (series.ts[i] for i in keep))
                series.sent = array("q", (series.sent[i] for i in keep))
            alert = self._judge(series, now)
            if alert is not None:
                out.append(alert)
        return out

    def _judge(self, series: Series, now: float) -> Alert | None:
        conns = list(zip(series.ts, series.sent, strict=True))
        if len(conns) < self.t["min_checkins"]:
            return None
        j = judge(
            conns,
            self.t["burst_gap"],
            self.t["jitter_tolerance"],
            self.t["size_tolerance"],
        )
        if (
            j is None
            or j.checkins < self.t["min_checkins"]
            or j.span < self.t["min_span"]
            or j.score < self.t["min_score"]
        ):
            return None
        if j.score <= series.reported + 0.05:
            return None  # reported already, and no clearer now
        series.reported = j.score

        kind, value = (
            ("domain", series.domain) if series.domain else ("ip", series.dst_ip)
        )
        users = self.models.network_devices(kind, value)
        score = 100 * j.score
        reasons = [
            Reason("checkins", j.checkins, f"at least {self.t['min_checkins']}"),
            Reason("interval_s", round(j.interval, 2), None),
            Reason("interval_jitter_s", round(j.jitter, 2), f"scores 0 at {self.t['jitter_tolerance']:.0%} of the interval"),
            Reason("interval_skew", round(j.skew, 2), "0 for a regular schedule"),
            Reason("coverage", round(j.coverage, 2), "1 when check-ins fill the span"),
            Reason("bytes_sent_spread", round(j.size_spread, 3), f"scores 0 at {self.t['size_tolerance']:.0%} of the median"),
            Reason("beacon_score", round(j.score, 2), f"reported from {self.t['min_score']}"),
        ]  # fmt: skip
        if users >= self.t["popular_devices"]:
            score *= self.t["popular_factor"]
            reasons.append(
                Reason(
                    "devices_using_destination",
                    users,
                    f"popular from {self.t['popular_devices']}: "
                    f"score times {self.t['popular_factor']}",
                )
            )

        where = f"{series.dst_ip}:{series.port}"
        if series.domain:
            where = f"{series.domain} ({where})"
        summary = (
            f"{series.src} checked in with {where} {j.checkins} times "
            f"({j.conns} connections) over {duration(j.span)} at a "
            f"{j.interval:.1f} s interval (jitter {j.jitter:.1f} s, sizes within "
            f"{j.size_spread:.0%} of {j.size:.0f} bytes); beacon score "
            f"{j.score:.2f}, reported from {self.t['min_score']}"
        )
        return Alert(
            ts=min(series.ts),
            detection=self.name,
            score=score,
            device=device_ref(self.models, series.src, series.mac),
            src=Endpoint(ip=series.src),
            dst=Endpoint(ip=series.dst_ip, port=series.port, domain=series.domain),
            summary=summary,
            reasons=reasons,
            mitre=self.mitre,
            uids=uid_sample(series.first_uids + list(series.last_uids)),
        )
