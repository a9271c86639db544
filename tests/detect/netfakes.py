"""A small ModelView for the network detections' tests, and record makers.

:class:`FakeNet` answers the rarity questions from what the test tells it:
which values each device already knows, how many devices use a value,
which devices are learning, and the devices' baselines. Records are built
by :func:`conn`, :func:`dns` and :func:`ssl` with the fields the engine
writes, so the tests read like the logs.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from sensor.detect.alert import Alert
from sensor.detect.base import Detection
from tests.detect.fakes import FakeDevice

_LOCAL = [
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
]


@dataclass
class FakeNet:
    """Rarity and baselines as the test sets them; RFC 1918 addresses are
    internal, every device is known (its id is its address, its name
    ``host-<ip>``)."""

    known: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    users: dict[tuple[str, str], int] = field(default_factory=dict)
    first_seen: dict[tuple[str, str], float] = field(default_factory=dict)
    learning_devices: set[str] = field(default_factory=set)
    baselines: dict[tuple[str, str], float] = field(default_factory=dict)

    def device(self, ip: str, mac: str | None = None) -> FakeDevice | None:
        return FakeDevice(ip, ip, mac=mac, name=f"host-{ip}")

    def is_internal(self, ip: str) -> bool:
        # RFC 1918 only: the documentation ranges play the Internet here.
        try:
            a = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(a in n for n in _LOCAL)

    def learning(self, device_id: str, now: float) -> bool:
        return device_id in self.learning_devices

    def is_new_for_device(self, device_id: str, kind: str, value: str) -> bool:
        return (kind, value) not in self.known.get(device_id, set())

    def network_devices(self, kind: str, value: str) -> int:
        return self.users.get((kind, value), 0)

    def network_first_seen(self, kind: str, value: str) -> float | None:
        return self.first_seen.get((kind, value))

    def baseline(self, device_id: str, feature: str) -> float | None:
        return self.baselines.get((device_id, feature))

    def peer_group(self, device_id: str) -> str | None:
        return None


def conn(
    ts: float,
    src: str,
    dst: str,
    port: int,
    *,
    uid: str = "",
    proto: str = "tcp",
    sent: int = 300,
    back: int = 1200,
    state: str = "SF",
    service: str | None = None,
    orig_p: int = 50000,
    duration: float = 0.5,
    pkts: int = 6,
) -> tuple[str, dict[str, Any]]:
    """A conn.log record."""
    r: dict[str, Any] = {
        "ts": ts,
        "uid": uid or f"C{int(ts * 1000)}{port}",
        "id.orig_h": src,
        "id.orig_p": orig_p,
        "id.resp_h": dst,
        "id.resp_p": port,
        "proto": proto,
        "duration": duration,
        "orig_bytes": sent,
        "resp_bytes": back,
        "conn_state": state,
        "orig_pkts": pkts,
        "resp_pkts": pkts,
        "orig_l2_addr": "02:00:00:00:00:05",
    }
    if service:
        r["service"] = service
    return "conn", r


def dns(
    ts: float,
    src: str,
    query: str,
    *,
    qtype: str = "A",
    rcode: str = "NOERROR",
    answers: list[str] | None = None,
    resolver: str = "192.168.1.1",
    uid: str = "Cdns",
) -> tuple[str, dict[str, Any]]:
    """A dns.log record."""
    return "dns", {
        "ts": ts,
        "uid": uid,
        "id.orig_h": src,
        "id.orig_p": 53000,
        "id.resp_h": resolver,
        "id.resp_p": 53,
        "proto": "udp",
        "query": query,
        "qtype_name": qtype,
        "rcode_name": rcode,
        "answers": answers or [],
    }


def ssl(
    ts: float,
    src: str,
    dst: str,
    *,
    uid: str,
    sni: str | None = None,
    ja3: str = "j" * 32,
) -> tuple[str, dict[str, Any]]:
    """An ssl.log record."""
    r: dict[str, Any] = {
        "ts": ts,
        "uid": uid,
        "id.orig_h": src,
        "id.orig_p": 50000,
        "id.resp_h": dst,
        "id.resp_p": 443,
        "ja3": ja3,
    }
    if sni:
        r["server_name"] = sni
    return "ssl", r


def run(
    det: Detection, records: list[tuple[str, dict[str, Any]]], tick: float = 1.0
) -> list[Alert]:
    """Feed records as the runner does (ticks as packet time passes, then
    finish); return every alert."""
    out: list[Alert] = []
    now = 0.0
    next_tick = 0.0
    for log, record in records:
        now = max(now, float(record.get("ts") or 0.0))
        if now >= next_tick:
            out.extend(det.tick(now))
            next_tick = now + tick
        if log in det.logs:
            out.extend(det.observe(log, record))
    out.extend(det.tick(now))
    out.extend(det.finish(now))
    for a in out:
        assert a.reasons, f"{a.detection}: alert without reasons"
        assert a.summary and a.mitre == det.mitre and 0 <= a.score <= 100
    return out
