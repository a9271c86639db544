"""Network-wide rarity: how many devices used a value, and since when.

One entry per value (an external address, a domain, a TLS server name, a
JA3 or JA4, a user agent, a service), keyed by its 63-bit hash
(:func:`sensor.model.sketch.hash64`): ``[kind, value, devices, first_seen, seq]`` (``seq`` orders the entries
by insertion, for eviction and for reloading in the same order).
Look-ups and updates are one dictionary access. ``devices`` grows when a
device uses the value for the first time, as its Bloom filter says (so a
false positive of a device's filter, see :mod:`sensor.model.profile`,
makes the count one short).

Device profiles keep a 32-bit fingerprint of a value's hash in their top-k
tables, not the value: ``by_fp`` names a fingerprint (the first value kept
with it wins; with ``v`` values kept, a fingerprint names the wrong value
with probability about ``v * 2**-32``, 2e-4 at a million).

The table holds at most ``max_values`` entries; past that the entry added
longest ago is dropped (first in, first out, constant time) and
``evicted`` counts it. A dropped value that comes back starts again from
the devices that meet it anew.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sensor.model.profile import FP_MASK
from sensor.model.sketch import hash64

#: Entries kept by default: about 340 bytes each (bench/models.py), so
#: about 340 MB at the limit.
MAX_VALUES = 1_000_000


class Rarity:
    """Values by hash, with the number of devices that used each."""

    def __init__(self, max_values: int = MAX_VALUES) -> None:
        self.max_values = max_values
        self.entries: dict[int, list[Any]] = {}
        #: Fingerprint (profile.fingerprint) -> hash of the value it names.
        self.by_fp: dict[int, int] = {}
        self.dirty: set[int] = set()
        self.evicted = 0
        #: Hashes dropped since the last save, for the store to delete.
        self.dropped: set[int] = set()
        self.seq = 0

    def use(self, h: int, kind: str, value: str, ts: float, new_device: bool) -> None:
        """Note a use of ``value``; ``new_device`` when new to that device."""
        e = self.entries.get(h)
        if e is None:
            if len(self.entries) >= self.max_values:
                old = next(iter(self.entries))
                del self.entries[old]
                fp = (old & FP_MASK) or 1
                if self.by_fp.get(fp) == old:
                    del self.by_fp[fp]
                self.dirty.discard(old)
                self.dropped.add(old)
                self.evicted += 1
            self.seq += 1
            self.entries[h] = [kind, value, 1, ts, self.seq]
            self.by_fp.setdefault((h & FP_MASK) or 1, h)
            self.dirty.add(h)
            self.dropped.discard(h)
            return
        if new_device:
            e[2] += 1
            self.dirty.add(h)
        if ts < e[3]:
            e[3] = ts
            self.dirty.add(h)

    def devices(self, kind: str, value: str) -> int:
        """How many devices used ``value``; 0 when none has."""
        e = self.entries.get(hash64(kind, value))
        return int(e[2]) if e else 0

    def first_seen(self, kind: str, value: str) -> float | None:
        """Packet time ``value`` was first used, None if never."""
        e = self.entries.get(hash64(kind, value))
        return float(e[3]) if e else None

    def label(self, h: int) -> tuple[str, str] | None:
        """(kind, value) of a hash, None when not (or no longer) kept."""
        e = self.entries.get(h)
        return (e[0], e[1]) if e else None

    def named(self, fp: int) -> tuple[str, str] | None:
        """(kind, value) of a top-k fingerprint, None when not kept."""
        h = self.by_fp.get(fp)
        return None if h is None else self.label(h)

    def restore(self, rows: Iterable[tuple[int, str, str, int, float, int]]) -> None:
        """Load saved entries (in insertion order), replacing the table."""
        self.entries.clear()
        self.by_fp.clear()
        for h, kind, value, n, first, seq in rows:
            self.entries[h] = [kind, value, n, first, seq]
            self.by_fp.setdefault((h & FP_MASK) or 1, h)
