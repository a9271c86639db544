"""tunnel.icmp: data carried in the payload of ICMP echo messages.

A ping sends a fixed, small payload (32 bytes from Windows, 56 from
Linux and macOS) and the echo reply returns the same bytes, so the two
directions of an exchange carry equal volumes. A tunnel (ptunnel,
icmptunnel, icmpsh) fills each echo with its own data up to the MTU, and
the replies carry the other direction's data, so payloads are large and
the two directions differ.

Per source and destination, over ``window`` seconds, the detection adds
up the echo exchanges of conn.log (ICMP type 8, or 128 for ICMPv6): bytes
and packets each way. A pair qualifies once it has moved ``min_bytes``
and either its mean payload per packet is ``big_payload`` bytes or more,
or the directions differ by ``asymmetry`` or more of the larger one. The
score is 55 at ``min_bytes`` and grows by 30 points per tenfold (capped
at 95); reported when it first qualifies and again when it rose by 15.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sensor.detect.alert import Alert, Endpoint, Reason
from sensor.detect.base import (
    COUNT,
    NON_NEGATIVE,
    SECONDS,
    SHARE,
    Detection,
    Threshold,
    register,
)
from sensor.detect.evidence import UidSample
from sensor.detect.support import (
    BoundedTable,
    device_ref,
    duration,
    human_bytes,
    is_unicast,
    log_score,
)
from sensor.model.view import ModelView

ECHO_REQUEST = frozenset({8, 128})


@dataclass
class Echoes:
    """The echo traffic of one pair since ``first``."""

    first: float
    last: float = 0.0
    sent: int = 0
    received: int = 0
    packets: int = 0
    uids: UidSample = field(default_factory=UidSample)
    mac: str | None = None
    reported: float = 0.0


@register
class ICMPTunnel(Detection):
    """Data moved in ICMP echo payloads (see module)."""

    name = "tunnel.icmp"
    mitre = "T1095"
    logs = ("conn",)
    thresholds = (
        Threshold("window", 3600.0, "Seconds over which one pair's echo traffic is added up.", SECONDS),
        Threshold("min_bytes", 20000, "Echo payload bytes (both ways) from which a pair is judged; scores 55 there.", COUNT),
        Threshold("big_payload", 100.0, "Mean echo payload per packet, in bytes, that a ping does not reach.", NON_NEGATIVE),
        Threshold("asymmetry", 0.2, "Difference between the directions, as a share of the larger, that echoes do not show.", SHARE),
        Threshold("max_pairs", 20000, "Pairs tracked at once (the least recently active are dropped).", COUNT),
    )  # fmt: skip

    def __init__(
        self, models: ModelView, overrides: dict[str, Any] | None = None
    ) -> None:
        super().__init__(models, overrides)
        self.pairs: BoundedTable[tuple[str, str], Echoes] = BoundedTable(
            self.t["max_pairs"]
        )

    def observe(self, log: str, record: dict[str, Any]) -> list[Alert]:
        """Add one ICMP echo exchange to its pair; alert when it qualifies."""
        if (
            record.get("proto") != "icmp"
            or int(record.get("id.orig_p") or -1) not in ECHO_REQUEST
        ):
            return []
        src = record.get("id.orig_h", "")
        dst = record.get("id.resp_h", "")
        if not is_unicast(dst):
            return []
        ts = float(record.get("ts") or 0.0)
        e = self.pairs.get((src, dst))
        if e is None or ts - e.first > self.t["window"]:
            e = Echoes(first=ts)
            self.pairs.put((src, dst), e)
        e.last = ts + float(record.get("duration") or 0.0)
        e.sent += int(record.get("orig_bytes") or 0)
        e.received += int(record.get("resp_bytes") or 0)
        e.packets += int(record.get("orig_pkts") or 0) + int(
            record.get("resp_pkts") or 0
        )
        e.mac = e.mac or record.get("orig_l2_addr")
        e.uids.add(record.get("uid"))

        total = e.sent + e.received
        if total < self.t["min_bytes"] or e.packets == 0:
            return []
        mean = total / e.packets
        skew = abs(e.sent - e.received) / max(e.sent, e.received)
        if mean < self.t["big_payload"] and skew < self.t["asymmetry"]:
            return []
        score = log_score(total, self.t["min_bytes"])
        if score < e.reported + 15:
            return []
        e.reported = score
        return [self._alert(src, dst, e, mean, skew, score)]

    def _alert(
        self, src: str, dst: str, e: Echoes, mean: float, skew: float, score: float
    ) -> Alert:
        summary = (
            f"{src} exchanged {human_bytes(e.sent + e.received)} of ICMP echo payload "
            f"with {dst} in {duration(e.last - e.first)} ({human_bytes(e.sent)} out, "
            f"{human_bytes(e.received)} back, {mean:.0f} bytes per packet); a ping "
            f"carries 32 to 56 bytes and gets the same bytes back"
        )
        reasons = [
            Reason("echo_payload_bytes", e.sent + e.received, f"judged from {self.t['min_bytes']}"),
            Reason("mean_payload_per_packet", round(mean, 1), f"ping: 32 to 56; flagged from {self.t['big_payload']}"),
            Reason("direction_difference", round(skew, 2), f"echo: 0; flagged from {self.t['asymmetry']}"),
        ]  # fmt: skip
        return Alert(
            ts=e.first,
            detection=self.name,
            score=score,
            device=device_ref(self.models, src, e.mac),
            src=Endpoint(ip=src),
            dst=Endpoint(ip=dst),
            summary=summary,
            reasons=reasons,
            mitre=self.mitre,
            uids=e.uids.uids(),
        )
