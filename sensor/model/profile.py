"""Per-device behaviour, learned online with exponential decay.

Design note. Every device has one row in a handful of numpy arrays (its
``slot``), so that a device costs a fixed number of bytes and no Python
object per feature:

- ``hours``: connections by hour of the week (168 float32, Monday 00:00
  UTC first);
- ``keys``/``counts``: one Space-Saving top-k table per feature of
  :data:`TABLES` (:data:`K` slots of a 63-bit value hash and a count);
- ``bloom``: every value the device used, of every kind, for "new for
  this device" (see :mod:`sensor.model.sketch` for the false-positive
  rate: 1.1% after 300 distinct values);
- ``hll``: distinct peers in the current hour (HyperLogLog, 32 registers);
- ``flags``: decayed counts of the services the device answered, by role
  (:data:`SERVED`), which :mod:`sensor.model.groups` reads;
- ``scalars``: totals, the current hour's counters and the decayed means
  over past hours (:data:`SCALARS`).

Decay: every count is multiplied by ``exp(-dt/tau)`` (``tau`` is the
decay time, 7 days by default, so a habit loses half its weight in about
4.9 days). The multiplication happens once per device per hour of packet
time, when the device is next updated, so counts are never more than one
hour "too fresh" (a relative error of at most 1 - exp(-1h/tau), 0.6% for
7 days). ``max_upload_bytes`` decays over :data:`UPLOAD_TAU` instead.

Hourly figures (bytes out and in, connections, distinct peers) are summed
for the hour in progress and folded into decayed means when a later hour
begins; a mean is over the hours in which the device was active.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sensor.model import sketch

#: Top-k tables per device, by feature.
TABLES = (
    "peers_internal",  # internal addresses it talked with (either side)
    "peers_external",  # external addresses it talked with
    "domains",  # registered domains it asked for (DNS, TLS SNI, HTTP Host)
    "names_asked",  # full names as asked (DNS query, TLS SNI)
    "services_used",  # "tcp/443" or the detected service, as client
    "services_offered",  # the same, as server
    "user_agents",
    "ja3",
    "ja4",
)
T = {name: i for i, name in enumerate(TABLES)}
K = 6
HOURS = 168
BLOOM_BYTES = 384
BLOOM_K = 4
HLL_M = 32
#: Service families a device can answer, for roles (see sensor.model.groups).
SERVED = (
    "kerberos", "ldap", "smb", "dce_rpc", "dns", "dhcp", "web", "print",
    "ntp", "rdp", "ssh", "smtp",
)  # fmt: skip
F = {name: i for i, name in enumerate(SERVED)}
SCALARS = (
    "decay_hour",  # hour index (ts // 3600) of the last decay step
    "hour",  # hour index of the hour in progress
    "bytes_out",  # decayed totals
    "bytes_in",
    "conns_out",  # connections it opened
    "conns_in",  # connections it answered
    "h_bytes_out",  # the hour in progress
    "h_bytes_in",
    "h_conns",
    "ew_weight",  # decayed number of active hours folded in
    "ew_bytes_out",  # decayed sums over those hours
    "ew_bytes_in",
    "ew_conns",
    "ew_peers",
    "max_upload",  # largest orig_bytes of one connection it opened, decayed
    "max_upload_at",
)
S = {name: i for i, name in enumerate(SCALARS)}
#: Decay time of ``max_upload_bytes``: 30 days, as the model view says.
UPLOAD_TAU = 30 * 86400.0
#: Monday 00:00 UTC is 72 hours before the epoch's Thursday midnight ends.
_WEEK_OFFSET = 72


def hour_of_week(ts: float) -> int:
    """0 for Monday 00:00-00:59 UTC up to 167 for Sunday 23:00-23:59."""
    return (int(ts // 3600) + _WEEK_OFFSET) % HOURS


class Profiles:
    """The behaviour rows of every device (see the module's design note)."""

    def __init__(self, tau: float = 7 * 86400.0, capacity: int = 64) -> None:
        self.tau = tau
        self._alloc(capacity)

    def _alloc(self, n: int) -> None:
        self.hours = np.zeros((n, HOURS), np.float32)
        self.keys = np.zeros((n, len(TABLES), K), np.uint64)
        self.counts = np.zeros((n, len(TABLES), K), np.float32)
        self.bloom = np.zeros((n, BLOOM_BYTES), np.uint8)
        self.hll = np.zeros((n, HLL_M), np.uint8)
        self.flags = np.zeros((n, len(SERVED)), np.float32)
        self.scalars = np.zeros((n, len(SCALARS)), np.float64)

    @property
    def capacity(self) -> int:
        """Rows allocated."""
        return len(self.hours)

    def ensure(self, slot: int) -> None:
        """Grow the arrays (doubling) so that ``slot`` exists."""
        n = self.capacity
        if slot < n:
            return
        new = max(2 * n, slot + 1)
        for name in ("hours", "keys", "counts", "bloom", "hll", "flags", "scalars"):
            old = getattr(self, name)
            grown = np.zeros((new, *old.shape[1:]), old.dtype)
            grown[:n] = old
            setattr(self, name, grown)

    # --- time ---------------------------------------------------------------

    def advance(self, slot: int, ts: float) -> float:
        """Bring the row to packet time ``ts``: close the hour, decay.

        Returns the weight of a record at ``ts``: 1 for the hour in
        progress or a later one; for a record that comes late (a long
        connection finished after the device's newer traffic), the decay
        it would have had since its own hour, so that the order in which
        records arrive changes the counts only by rounding.
        """
        s = self.scalars[slot]
        hour = float(ts // 3600)
        if s[1] == 0.0:  # a fresh row
            s[0] = s[1] = hour
            return 1.0
        if hour < s[1]:
            return math.exp(-(s[1] - hour) * 3600.0 / self.tau)
        if hour == s[1]:
            return 1.0

        # Fold the hour that ended into the decayed means.
        if s[8] > 0:
            s[9] += 1.0
            s[10] += s[6]
            s[11] += s[7]
            s[12] += s[8]
            s[13] += sketch.hll_count(self.hll[slot])
        s[6] = s[7] = s[8] = 0.0
        self.hll[slot] = 0
        s[1] = hour

        # Decay every count by the hours gone by.
        f = math.exp(-(hour - s[0]) * 3600.0 / self.tau)
        self.hours[slot] *= f
        self.counts[slot] *= f
        self.flags[slot] *= f
        for i in (2, 3, 4, 5, 9, 10, 11, 12, 13):
            s[i] *= f
        s[0] = hour
        return 1.0

    # --- updates ------------------------------------------------------------

    def add(self, slot: int, table: int, h: int, w: float = 1.0) -> None:
        """Count value hash ``h`` in top-k ``table`` of the device."""
        sketch.topk_add(self.keys[slot, table], self.counts[slot, table], h, w)

    def remember(self, slot: int, h: int) -> bool:
        """Note that the device used value hash ``h``; True when new to it."""
        return sketch.bloom_add(self.bloom[slot], h, BLOOM_K)

    def knows(self, slot: int, h: int) -> bool:
        """True when the device used value hash ``h`` before (Bloom filter)."""
        return sketch.bloom_has(self.bloom[slot], h, BLOOM_K)

    def conn(
        self,
        slot: int,
        ts: float,
        peer: int,
        outgoing: bool,
        bytes_out: int,
        bytes_in: int,
        w: float = 1.0,
    ) -> None:
        """One connection of the device: it opened it when ``outgoing``.

        ``bytes_out`` is what the device sent, ``bytes_in`` what it got;
        ``peer`` the hash of the other end, for distinct peers per hour;
        ``w`` the weight :meth:`advance` gave. A late connection (w < 1)
        goes straight into the decayed hourly sums, as its hour's fold
        would have put it, but not into distinct peers of the hour.
        """
        s = self.scalars[slot]
        self.hours[slot, hour_of_week(ts)] += w
        s[2] += bytes_out * w
        s[3] += bytes_in * w
        s[4 if outgoing else 5] += w
        if w < 1.0:
            s[10] += bytes_out * w
            s[11] += bytes_in * w
            s[12] += w
        else:
            s[6] += bytes_out
            s[7] += bytes_in
            s[8] += 1.0
            sketch.hll_add(self.hll[slot], peer)
        if outgoing and bytes_out > 0:
            kept = s[14] * math.exp(-max(ts - s[15], 0.0) / UPLOAD_TAU)
            if bytes_out >= kept:
                s[14], s[15] = float(bytes_out), max(ts, s[15])
            else:
                s[14], s[15] = kept, max(ts, s[15])

    def served(self, slot: int, family: str, w: float = 1.0) -> None:
        """The device answered a connection of service ``family``."""
        self.flags[slot, F[family]] += w

    # --- reading ------------------------------------------------------------

    def top(self, slot: int, table: str) -> list[tuple[int, float]]:
        """(value hash, decayed count) of a top-k table, largest first."""
        t = T[table]
        return sketch.topk_items(self.keys[slot, t], self.counts[slot, t])

    def baseline(self, slot: int, feature: str) -> float | None:
        """A learned figure (see ModelView.baseline); None before there is one."""
        s = self.scalars[slot]
        if feature == "max_upload_bytes":
            return float(s[14]) if s[14] > 0 else None
        column = {
            "bytes_out_per_hour": 10,
            "bytes_in_per_hour": 11,
            "conns_per_hour": 12,
            "distinct_peers_per_hour": 13,
        }.get(feature)
        if column is None or s[9] <= 0:
            return None
        return float(s[column] / s[9])

    def served_counts(self, slot: int) -> dict[str, float]:
        """Decayed count of answered connections per service family."""
        return {
            name: float(v)
            for name, v in zip(SERVED, self.flags[slot].tolist())
            if v > 0
        }

    def scalar(self, slot: int, name: str) -> float:
        """One of :data:`SCALARS`."""
        return float(self.scalars[slot, S[name]])

    def active_hours(self, slot: int, top: int = 5) -> list[int]:
        """The busiest hours of the week (0 = Monday 00:00 UTC), busiest first."""
        row = self.hours[slot]
        order = np.argsort(-row, kind="stable")[:top]
        return [int(i) for i in order if row[i] > 0]

    # --- state --------------------------------------------------------------

    def row_bytes(self, slot: int) -> bytes:
        """The device's row, as one blob (what the store saves)."""
        return b"".join(
            getattr(self, n)[slot].tobytes()
            for n in ("hours", "keys", "counts", "bloom", "hll", "flags", "scalars")
        )

    def load_row(self, slot: int, blob: bytes) -> None:
        """The inverse of :meth:`row_bytes`."""
        self.ensure(slot)
        at = 0
        for n in ("hours", "keys", "counts", "bloom", "hll", "flags", "scalars"):
            arr = getattr(self, n)
            size = arr[slot].nbytes
            arr[slot] = np.frombuffer(
                blob, arr.dtype, count=arr[slot].size, offset=at
            ).reshape(arr.shape[1:])
            at += size
        if at != len(blob):
            raise ValueError(f"profile row: {len(blob)} bytes, expected {at}")

    @staticmethod
    def row_size() -> int:
        """Bytes of one device's row."""
        return (
            HOURS * 4
            + len(TABLES) * K * (8 + 4)
            + BLOOM_BYTES
            + HLL_M
            + len(SERVED) * 4
            + len(SCALARS) * 8
        )

    def summary(self, slot: int) -> dict[str, Any]:
        """Totals for devices.log (the top-k tables are named by the caller)."""
        s = self.scalars[slot]
        return {
            "bytes_out": round(float(s[2])),
            "bytes_in": round(float(s[3])),
            "conns_out": round(float(s[4]), 2),
            "conns_in": round(float(s[5]), 2),
            "active_hours": self.active_hours(slot),
        }
