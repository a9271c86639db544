"""Small helpers the detections share: bounded tables, scores, wording.

Nothing here is a detection; the runner imports every module of the
package, and this one registers none.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Iterator
from functools import lru_cache
from typing import Any, Generic, TypeVar

from sensor.detect.alert import DeviceRef
from sensor.model.view import ModelView

K = TypeVar("K")
V = TypeVar("V")


class BoundedTable(Generic[K, V]):
    """A dict with a size limit: at the limit the least recently touched
    entry is evicted and :attr:`evicted` counts it.

    Detections keep their per-source state here so that a flood of sources
    (spoofed addresses) costs memory up to the bound and no more.
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.evicted = 0
        self._d: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        """The entry, marked as recently used; None when absent."""
        v = self._d.get(key)
        if v is not None:
            self._d.move_to_end(key)
        return v

    def put(self, key: K, value: V) -> None:
        """Add or replace an entry, evicting the oldest at the limit."""
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.limit:
            self._d.popitem(last=False)
            self.evicted += 1

    def pop(self, key: K) -> V | None:
        """Remove an entry and return it; None when absent."""
        return self._d.pop(key, None)

    def items(self) -> list[tuple[K, V]]:
        """A snapshot of the entries, oldest first (safe to pop while looping)."""
        return list(self._d.items())

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, key: object) -> bool:
        return key in self._d

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._d))


@lru_cache(maxsize=65536)
def is_unicast(ip: str) -> bool:
    """True for a unicast address a host can own (not multicast, broadcast,
    unspecified or loopback)."""
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if a.is_multicast or a.is_unspecified or a.is_loopback:
        return False
    return not (a.version == 4 and str(a) == "255.255.255.255")


@lru_cache(maxsize=65536)
def is_private(ip: str) -> bool:
    """RFC 1918 / ULA / link-local: the fallback for "internal" when no
    models are configured."""
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return a.is_private or a.is_link_local


def device_ref(models: ModelView, ip: str | None, mac: str | None = None) -> DeviceRef:
    """The device behind ``ip``/``mac`` as an alert names it."""
    info = models.device(ip, mac) if ip else None
    if info is None:
        return DeviceRef(ip=ip, mac=mac)
    return DeviceRef(ip=ip, mac=info.mac or mac, name=info.name)


def device_id(models: ModelView, ip: str | None, mac: str | None = None) -> str | None:
    """The models' id of the device, None when they do not know it."""
    info = models.device(ip, mac) if ip else None
    return info.id if info is not None else None


def learning_scale(
    models: ModelView, ip: str | None, mac: str | None, now: float, score: float
) -> tuple[float, bool]:
    """``score`` scaled down to half while the device is still learning.

    For detections that compare with the device's own history; those that
    judge plain attack behaviour (a scan of 100 ports) do not call this.
    Returns the score and whether it was scaled.
    """
    did = device_id(models, ip, mac)
    if did is not None and models.learning(did, now):
        return score * 0.5, True
    return score, False


def log_score(
    count: float, threshold: float, base: float = 55.0, top: float = 95.0
) -> float:
    """A score that is ``base`` at the threshold and grows by 30 points per
    tenfold, capped at ``top``."""
    if count <= 0 or threshold <= 0:
        return 0.0
    return float(min(top, max(0.0, base + 30.0 * math.log10(count / threshold))))


def utc(ts: float) -> str:
    """Packet time as ``2016-08-19 18:14:44 UTC`` for summaries."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def human_bytes(n: float) -> str:
    """Bytes in the unit a person reads: 512 B, 48 kB, 3.1 MB."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            v = n / size
            return f"{v:.1f} {unit}" if v < 10 else f"{v:.0f} {unit}"
    return f"{int(n)} B"


def duration(seconds: float) -> str:
    """Seconds as ``12 s``, ``4.5 min`` or ``2.0 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def within(seconds: float) -> str:
    """``in 12 s``, or ``within a second`` for a burst shorter than one."""
    return "within a second" if seconds < 1 else f"in {duration(seconds)}"


def uid_sample(uids: list[str], limit: int = 20) -> list[str]:
    """At most ``limit`` uids, the first and the last ones kept."""
    if len(uids) <= limit:
        return list(uids)
    half = limit // 2
    return uids[:half] + uids[-half:]


def conn_ends(record: dict[str, Any]) -> tuple[str, int, str, int]:
    """``(orig_h, orig_p, resp_h, resp_p)`` of a Zeek-style record."""
    return (
        record.get("id.orig_h", ""),
        int(record.get("id.orig_p") or 0),
        record.get("id.resp_h", ""),
        int(record.get("id.resp_p") or 0),
    )
