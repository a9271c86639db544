"""Per-device behaviour, learned online with exponential decay.

Design note. Every device has one row in a handful of flat buffers (its
``slot``), so that a device costs a fixed number of bytes and no Python
object per feature:

- ``hours``: connections by hour of the week (168 uint16 sharing one
  scale, a block floating point: the real count is ``q * hours_scale``;
  Monday 00:00 UTC first). An hour's connections are added once, when the
  hour ends; the bucket keeps 16 bits of precision relative to the
  busiest hour of the device;
- ``keys``/``counts``: one Space-Saving top-k table per feature of
  :data:`TABLES` (:data:`K` slots of a 32-bit fingerprint of the value
  hash and a float32 count; the value itself is kept once for the whole
  network, by :mod:`sensor.model.rarity`, which names a fingerprint);
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
from array import array
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
#: Bits of a value hash that a top-k slot keeps (see :func:`fingerprint`).
FP_MASK = 0xFFFFFFFF
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
    "hours_scale",  # the real count of an hour bucket is its uint16 times this
)
S = {name: i for i, name in enumerate(SCALARS)}
#: Decay time of ``max_upload_bytes``: 30 days, as the model view says.
UPLOAD_TAU = 30 * 86400.0
#: The epoch began on a Thursday, 72 hours into a week that starts on Monday.
_WEEK_OFFSET = 72


def fingerprint(h: int) -> int:
    """The 32 bits of value hash ``h`` that a top-k slot keeps (never 0).

    Two values of one table share a fingerprint with probability about
    ``n * 2**-32`` for ``n`` values met by the table (their counts would
    merge); the name of a fingerprint is looked up network-wide, where
    ``v`` values kept make a wrong name about ``v * 2**-32`` likely
    (2e-4 at a million values).
    """
    return (h & FP_MASK) or 1


def hour_of_week(ts: float) -> int:
    """0 for Monday 00:00-00:59 UTC up to 167 for Sunday 23:00-23:59."""
    return (int(ts // 3600) + _WEEK_OFFSET) % HOURS


#: Per-device width of each buffer, in items, and its array type code
#: (``B`` for the bytearrays).
_FIELDS: tuple[tuple[str, str, int], ...] = (
    ("hours", "H", HOURS),
    ("keys", "I", len(TABLES) * K),
    ("counts", "f", len(TABLES) * K),
    ("bloom", "B", BLOOM_BYTES),
    ("hll", "B", HLL_M),
    ("flags", "f", len(SERVED)),
    ("scalars", "d", len(SCALARS)),
)
_ITEM = {"f": 4, "I": 4, "d": 8, "B": 1, "H": 2}
_NUMPY = {
    "f": np.float32,
    "I": np.uint32,
    "d": np.float64,
    "B": np.uint8,
    "H": np.uint16,
}


class Profiles:
    """The behaviour rows of every device (see the module's design note).

    Each field of :data:`_FIELDS` is one flat buffer holding every device's
    row back to back (``slot * width`` onwards): an ``array.array`` for
    numbers, a ``bytearray`` for bits and registers. Element updates index
    them directly; the hourly decay multiplies a row through a numpy view.
    """

    def __init__(self, tau: float = 7 * 86400.0) -> None:
        self.tau = tau
        self.hours: array[int] = array("H")
        self.keys: array[int] = array("I")
        self.counts: array[float] = array("f")
        self.bloom = bytearray()
        self.hll = bytearray()
        self.flags: array[float] = array("f")
        self.scalars: array[float] = array("d")
        self.rows = 0

    def ensure(self, slot: int) -> None:
        """Grow the buffers so that ``slot`` exists (new rows are zero)."""
        if slot < self.rows:
            return
        more = slot + 1 - self.rows
        for name, code, width in _FIELDS:
            zeros = bytes(more * width * _ITEM[code])
            buf = getattr(self, name)
            if code == "B":
                buf.extend(zeros)
            else:
                buf.frombytes(zeros)
        self.rows = slot + 1

    def _view(self, name: str, slot: int) -> Any:
        # A numpy view of one device's row (released by the caller at once:
        # an array.array cannot grow while a view of it exists).
        code, width = next((c, w) for n, c, w in _FIELDS if n == name)
        buf = getattr(self, name)
        return np.frombuffer(
            buf, _NUMPY[code], count=width, offset=slot * width * _ITEM[code]
        )

    # --- time ---------------------------------------------------------------

    def advance(self, slot: int, ts: float) -> float:
        """Bring the row to packet time ``ts``: close the hour, decay.

        Returns the weight of a record at ``ts``: 1 for the hour in
        progress or a later one; for a record that comes late (a long
        connection finished after the device's newer traffic), the decay
        it would have had since its own hour, so that the order in which
        records arrive changes the counts only by rounding.
        """
        s = self.scalars
        b = slot * len(SCALARS)
        hour = float(ts // 3600)
        current = s[b + 1]
        if hour == current:
            return 1.0
        if current == 0.0:  # a fresh row
            s[b] = s[b + 1] = hour
            s[b + 16] = 1.0
            return 1.0
        if hour < current:
            return math.exp(-(current - hour) * 3600.0 / self.tau)

        # Fold the hour that ended into the decayed means and its bucket.
        if s[b + 8] > 0:
            self._hours_add(slot, (int(current) + _WEEK_OFFSET) % HOURS, s[b + 8])
            s[b + 9] += 1.0
            s[b + 10] += s[b + 6]
            s[b + 11] += s[b + 7]
            s[b + 12] += s[b + 8]
            s[b + 13] += sketch.hll_count(self.hll, slot * HLL_M, HLL_M)
        s[b + 6] = s[b + 7] = s[b + 8] = 0.0
        self.hll[slot * HLL_M : (slot + 1) * HLL_M] = bytes(HLL_M)
        s[b + 1] = hour

        # Decay every count by the hours gone by.
        f = math.exp(-(hour - s[b]) * 3600.0 / self.tau)
        s[b + 16] *= f
        for name in ("counts", "flags"):
            v = self._view(name, slot)
            v *= np.float32(f)
            del v
        for i in (2, 3, 4, 5, 9, 10, 11, 12, 13):
            s[b + i] *= f
        s[b] = hour
        return 1.0

    # --- updates ------------------------------------------------------------

    def add(self, slot: int, table: int, h: int, w: float = 1.0) -> None:
        """Count value hash ``h`` in top-k ``table`` of the device."""
        at = (slot * len(TABLES) + table) * K
        sketch.topk_add(self.keys, self.counts, at, K, (h & FP_MASK) or 1, w)

    def remember(self, slot: int, h: int) -> bool:
        """Note that the device used value hash ``h``; True when new to it."""
        return sketch.bloom_add(self.bloom, slot * BLOOM_BYTES, BLOOM_BYTES, h, BLOOM_K)

    def knows(self, slot: int, h: int) -> bool:
        """True when the device used value hash ``h`` before (Bloom filter)."""
        return sketch.bloom_has(self.bloom, slot * BLOOM_BYTES, BLOOM_BYTES, h, BLOOM_K)

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
        s = self.scalars
        b = slot * len(SCALARS)
        s[b + 2] += bytes_out * w
        s[b + 3] += bytes_in * w
        s[b + (4 if outgoing else 5)] += w
        if w < 1.0:
            self._hours_add(slot, hour_of_week(ts), w)
            s[b + 10] += bytes_out * w
            s[b + 11] += bytes_in * w
            s[b + 12] += w
        else:
            s[b + 6] += bytes_out
            s[b + 7] += bytes_in
            s[b + 8] += 1.0
            sketch.hll_add(self.hll, slot * HLL_M, HLL_M, peer)
        if outgoing and bytes_out > 0:
            last = s[b + 15]
            kept = s[b + 14] * math.exp(-max(ts - last, 0.0) / UPLOAD_TAU)
            s[b + 14] = float(bytes_out) if bytes_out >= kept else kept
            s[b + 15] = max(ts, last)

    def _hours_add(self, slot: int, bucket: int, count: float) -> None:
        # Block floating point: grow the shared scale by powers of two when
        # a bucket would pass 65,535.
        b = slot * len(SCALARS) + 16
        at = slot * HOURS
        scale = self.scalars[b] or 1.0
        q = self.hours[at + bucket] + count / scale
        if q > 65535.0:
            factor = 2.0 ** math.ceil(math.log2(q / 65535.0))
            v = self._view("hours", slot)
            v[:] = np.floor(v / factor + 0.5).astype(np.uint16)
            del v
            scale *= factor
            q = self.hours[at + bucket] + count / scale
        self.hours[at + bucket] = min(int(q + 0.5), 65535)
        self.scalars[b] = scale

    def served(self, slot: int, family: str, w: float = 1.0) -> None:
        """The device answered a connection of service ``family``."""
        self.flags[slot * len(SERVED) + F[family]] += w

    # --- reading ------------------------------------------------------------

    def top(self, slot: int, table: str) -> list[tuple[int, float]]:
        """(fingerprint, decayed count) of a top-k table, largest first.

        :meth:`sensor.model.rarity.Rarity.named` names a fingerprint.
        """
        at = (slot * len(TABLES) + T[table]) * K
        return sketch.topk_items(self.keys, self.counts, at, K)

    def scalar(self, slot: int, name: str) -> float:
        """One of :data:`SCALARS`."""
        return float(self.scalars[slot * len(SCALARS) + S[name]])

    def baseline(self, slot: int, feature: str) -> float | None:
        """A learned figure (see ModelView.baseline); None before there is one."""
        if feature == "max_upload_bytes":
            v = self.scalar(slot, "max_upload")
            return v if v > 0 else None
        name = {
            "bytes_out_per_hour": "ew_bytes_out",
            "bytes_in_per_hour": "ew_bytes_in",
            "conns_per_hour": "ew_conns",
            "distinct_peers_per_hour": "ew_peers",
        }.get(feature)
        weight = self.scalar(slot, "ew_weight")
        if name is None or weight <= 0:
            return None
        return self.scalar(slot, name) / weight

    def served_counts(self, slot: int) -> dict[str, float]:
        """Decayed count of answered connections per service family."""
        at = slot * len(SERVED)
        row = self.flags[at : at + len(SERVED)]
        return {name: float(v) for name, v in zip(SERVED, row) if v > 0}

    def active_hours(self, slot: int, top: int = 5) -> list[int]:
        """The busiest hours of the week (0 = Monday 00:00 UTC), busiest first."""
        scale = self.scalar(slot, "hours_scale") or 1.0
        row = [q * scale for q in self.hours[slot * HOURS : (slot + 1) * HOURS]]
        hour = self.scalar(slot, "hour")
        if hour:  # the hour in progress counts too
            row[(int(hour) + _WEEK_OFFSET) % HOURS] += self.scalar(slot, "h_conns")
        order = sorted(range(HOURS), key=lambda i: (-row[i], i))[:top]
        return [i for i in order if row[i] > 0]

    # --- state --------------------------------------------------------------

    def row_bytes(self, slot: int) -> bytes:
        """The device's row, as one blob (what the store saves)."""
        out = []
        for name, code, width in _FIELDS:
            buf = getattr(self, name)
            part = buf[slot * width : (slot + 1) * width]
            out.append(bytes(part) if code == "B" else part.tobytes())
        return b"".join(out)

    def load_row(self, slot: int, blob: bytes) -> None:
        """The inverse of :meth:`row_bytes`; also reads rows of state schema 1."""
        if len(blob) == _ROW_V1:
            blob = _upgrade_v1(blob)
        if len(blob) != self.row_size():
            raise ValueError(
                f"profile row: {len(blob)} bytes, expected {self.row_size()}"
            )
        self.ensure(slot)
        at = 0
        for name, code, width in _FIELDS:
            size = width * _ITEM[code]
            buf = getattr(self, name)
            chunk = blob[at : at + size]
            buf[slot * width : (slot + 1) * width] = (
                chunk if code == "B" else array(code, chunk)
            )
            at += size

    @staticmethod
    def row_size() -> int:
        """Bytes of one device's row."""
        return sum(width * _ITEM[code] for _, code, width in _FIELDS)

    def summary(self, slot: int) -> dict[str, Any]:
        """Totals for devices.log (the top-k tables are named by the caller)."""
        return {
            "bytes_out": round(self.scalar(slot, "bytes_out")),
            "bytes_in": round(self.scalar(slot, "bytes_in")),
            "conns_out": round(self.scalar(slot, "conns_out"), 2),
            "conns_in": round(self.scalar(slot, "conns_in"), 2),
            "active_hours": self.active_hours(slot),
        }


# State schema 1 kept 64-bit value hashes in the top-k slots (8 bytes each):
# its rows are read by keeping each slot's fingerprint.
_KEYS_AT = HOURS * 2
_KEYS_V1 = len(TABLES) * K * 8
_ROW_V1 = Profiles.row_size() + len(TABLES) * K * 4


def _upgrade_v1(blob: bytes) -> bytes:
    old = array("Q", blob[_KEYS_AT : _KEYS_AT + _KEYS_V1])
    keys = array("I", [(h & FP_MASK) or 1 if h else 0 for h in old])
    return blob[:_KEYS_AT] + keys.tobytes() + blob[_KEYS_AT + _KEYS_V1 :]
