"""exfil.volume: an upload far above the device's own history, to a rare place.

A device's uploads have a size it keeps to: the models learn its largest
upload to one peer in one connection (``max_upload_bytes``, decayed over
30 days). Data theft shows as an upload many times that size, to a
destination the device has not used and few devices on the network use.

Per internal source and external destination (the registered domain when
a name is known, else the address), the bytes the device sent are added
up over ``window`` seconds, so that an upload split over many connections
counts whole. A pair qualifies once it has sent ``min_bytes`` and
``min_ratio`` times the device's baseline, and the destination address is
new for the device and the destination (name or address) is used by at
most ``rare_devices`` devices (the device itself counts once it has
looked the name up). The score is 55
at ``min_ratio`` times the baseline and grows by 30 points per tenfold
(capped at 95); with no baseline yet, the bytes are compared with
``default_baseline`` instead, and while the device is learning the score
is halved. Reported when it first qualifies and again when it rose by 15.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sensor.detect.alert import Alert, Endpoint, Reason
from sensor.detect.base import (
    COUNT,
    NON_NEGATIVE,
    POSITIVE,
    SECONDS,
    NamedConnDetection,
    Threshold,
    register,
)
from sensor.detect.evidence import UidSample
from sensor.detect.names import registered_domain
from sensor.detect.support import (
    BoundedTable,
    device_id,
    device_ref,
    duration,
    human_bytes,
    is_unicast,
    learning_scale,
    log_score,
)
from sensor.model.view import ModelView


@dataclass
class Upload:
    """What one device sent to one destination since ``first``."""

    first: float
    dst_ip: str
    port: int
    domain: str | None
    last: float = 0.0
    sent: int = 0
    conns: int = 0
    rare: bool | None = None
    users: int = 0
    uids: UidSample = field(default_factory=UidSample)
    mac: str | None = None
    reported: float = 0.0


@register
class ExfilVolume(NamedConnDetection):
    """Uploads far above the device's history to a rare destination."""

    name = "exfil.volume"
    mitre = "T1048"
    thresholds = (
        Threshold("window", 3600.0, "Seconds over which a device's uploads to one destination are added up.", SECONDS),
        Threshold("min_bytes", 10_000_000, "Bytes sent to one destination below which nothing is judged.", NON_NEGATIVE),
        Threshold("min_ratio", 10.0, "Times the device's largest usual upload for a score of 55.", POSITIVE),
        Threshold("default_baseline", 5_000_000, "Bytes used as the baseline of a device with no history yet.", COUNT),
        Threshold("rare_devices", 1, "A destination used by more devices than this is not rare.", NON_NEGATIVE),
        Threshold("max_pairs", 50000, "Pairs tracked at once (the least recently active are dropped).", COUNT),
    )  # fmt: skip

    def __init__(
        self, models: ModelView, overrides: dict[str, Any] | None = None
    ) -> None:
        super().__init__(models, overrides)
        self.uploads: BoundedTable[tuple[str, str], Upload] = BoundedTable(
            self.t["max_pairs"]
        )

    def observe_conn(self, record: dict[str, Any]) -> list[Alert]:
        """Add the connection's upload to its destination's."""
        sent = int(record.get("orig_bytes") or 0)
        src = record.get("id.orig_h", "")
        dst = record.get("id.resp_h", "")
        if sent <= 0 or not is_unicast(dst) or self.models.is_internal(dst):
            return []
        if not self.models.is_internal(src):
            return []
        ts = float(record.get("ts") or 0.0)
        mac = record.get("orig_l2_addr")
        host = self.names.name_of(record.get("uid"), dst)
        domain = registered_domain(host) if host else None
        key = (src, domain or dst)
        u = self.uploads.get(key)
        if u is None or ts - u.first > self.t["window"]:
            u = Upload(
                first=ts,
                dst_ip=dst,
                port=int(record.get("id.resp_p") or 0),
                domain=domain,
            )
            self.uploads.put(key, u)
        if u.rare is None:
            # Asked at the first connection: the models learn from it next.
            # New: the address (the device's own DNS lookup has already
            # taught the models the name). Rare: the name when there is one.
            did = device_id(self.models, src, mac) or src
            kind, value = ("domain", domain) if domain else ("ip", dst)
            u.users = self.models.network_devices(kind, value)
            u.rare = (
                self.models.is_new_for_device(did, "ip", dst)
                and u.users <= self.t["rare_devices"]
            )
        u.last = ts + float(record.get("duration") or 0.0)
        u.sent += sent
        u.conns += 1
        u.mac = u.mac or mac
        u.uids.add(record.get("uid"))
        if not u.rare or u.sent < self.t["min_bytes"]:
            return []

        did = device_id(self.models, src, u.mac)
        learned = self.models.baseline(did, "max_upload_bytes") if did else None
        baseline = float(learned) if learned else float(self.t["default_baseline"])
        ratio = u.sent / max(baseline, 1.0)
        if ratio < self.t["min_ratio"] and learned:
            return []
        score = (
            log_score(ratio, self.t["min_ratio"])
            if learned
            else log_score(u.sent, baseline * self.t["min_ratio"])
        )
        if score <= 0:
            return []
        score, scaled = learning_scale(self.models, src, u.mac, ts, score)
        if score < u.reported + 15:
            return []
        u.reported = score
        return [self._alert(src, u, score, baseline, bool(learned), ratio, scaled)]

    def _alert(
        self,
        src: str,
        u: Upload,
        score: float,
        baseline: float,
        learned: bool,
        ratio: float,
        scaled: bool,
    ) -> Alert:
        where = u.domain or f"{u.dst_ip}:{u.port}"
        rarity = (
            "no device had contacted before"
            if u.users == 0
            else f"only {u.users} device had contacted"
        )
        history = (
            f"its largest upload to one peer in 30 days was {human_bytes(baseline)}"
            if learned
            else f"it has no upload history yet ({human_bytes(baseline)} assumed)"
        )
        summary = (
            f"{src} sent {human_bytes(u.sent)} to {where}, a destination {rarity}, in "
            f"{u.conns} connections over {duration(u.last - u.first)}; {history}"
            + (" (device still learning: score halved)" if scaled else "")
        )
        reasons = [
            Reason("bytes_sent", u.sent, baseline),
            Reason("times_largest_upload", round(ratio, 1), f"scores 55 at {self.t['min_ratio']}"),
            Reason("devices_using_destination", u.users, f"rare up to {self.t['rare_devices']}"),
        ]  # fmt: skip
        if scaled:
            reasons.append(Reason("device_learning", True, "score halved"))
        return Alert(
            ts=u.first,
            detection=self.name,
            score=score,
            device=device_ref(self.models, src, u.mac),
            src=Endpoint(ip=src),
            dst=Endpoint(ip=u.dst_ip, port=u.port, domain=u.domain),
            summary=summary,
            reasons=reasons,
            mitre=self.mitre,
            uids=u.uids.uids(),
        )
