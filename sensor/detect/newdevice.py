"""device.new: a device the models have never seen joins the network
(ATT&CK T1200, hardware additions).

The first connection from an internal address (or DHCP request from a
MAC) that the device models do not know. Detections see a record before
the models learn it, so "unknown" means new. On a network watched for
less than ``settled_seconds`` every device is new, so the alert stays
informational (``score``); afterwards a newcomer scores
``score_settled``, still below notable by default: a new laptop is
usually a new laptop. The score is for the analyst's queue and the
incident that a later alert about the same device opens.
"""

from __future__ import annotations

from typing import Any

from sensor.detect.alert import Alert, DeviceRef, Endpoint, Reason
from sensor.detect.base import COUNT, SCORE, SECONDS, Detection, Threshold, register
from sensor.detect.support import BoundedTable, duration, is_unicast, utc


@register
class NewDevice(Detection):
    """A device never seen before on the local network."""

    name = "device.new"
    mitre = "T1200"
    logs = ("conn", "dhcp")
    thresholds = (
        Threshold("score", 20.0, "Score while the network has been watched for less than settled_seconds.", SCORE),
        Threshold("score_settled", 40.0, "Score once the network's devices are known.", SCORE),
        Threshold("settled_seconds", 7 * 86400.0, "Watching time after which the set of devices counts as known.", SECONDS),
        Threshold("max_seen", 100_000, "Devices remembered by this detection (besides the models); the least recent is forgotten.", COUNT),
    )  # fmt: skip

    def __init__(self, models: Any, overrides: dict[str, Any] | None = None) -> None:
        super().__init__(models, overrides)
        self.seen: BoundedTable[str, bool] = BoundedTable(self.t["max_seen"])
        self.start: float | None = None

    def observe(self, log: str, record: dict[str, Any]) -> list[Alert]:
        ts = float(record["ts"])
        if self.start is None:
            self.start = ts
        if log == "dhcp":
            ip = record.get("assigned_addr") or record.get("client_addr")
            mac = record.get("mac")
            name = record.get("host_name")
            if not mac:
                return []
        else:
            ip = record.get("id.orig_h")
            mac = record.get("orig_l2_addr")
            name = None
            if (
                not ip
                or not is_unicast(ip)
                or ip == "0.0.0.0"
                or not self.models.is_internal(ip)
            ):
                return []
        key = mac or ip or ""
        if not key or key in self.seen:
            return []
        self.seen.put(key, True)
        if ip and self.models.device(ip, mac) is not None:
            return []

        watched = ts - self.start
        settled = watched >= self.t["settled_seconds"]
        score = self.t["score_settled"] if settled else self.t["score"]
        who = ip or mac
        summary = (
            f"{who}{f' ({mac})' if mac and ip else ''}{f' named {name}' if name else ''} "
            f"appeared at {utc(ts)}; the models had no record of it "
            + (
                f"after {duration(watched)} of watching this network."
                if watched >= 60
                else "(the network had been watched for under a minute)."
            )
        )
        return [
            Alert(
                ts=ts,
                detection=self.name,
                score=score,
                device=DeviceRef(ip=ip, mac=mac, name=name),
                src=Endpoint(ip=ip),
                dst=Endpoint(ip=record.get("id.resp_h"), port=record.get("id.resp_p")),
                summary=summary,
                reasons=[
                    Reason("device_known", False, "every device seen before"),
                    Reason(
                        "network_watched_s",
                        round(watched, 1),
                        f"settled after {self.t['settled_seconds']:.0f}",
                    ),
                ],
                mitre=self.mitre,
                uids=[record["uid"]] if "uid" in record else [],
            )
        ]
