"""ARP records: who claims which IPv4 address, and who asks for which.

Both connection tables (the twin :mod:`sensor.flow.table` and the compiled
``ext/flow.pyx``) hand every decoded Ethernet/IPv4 ARP packet (RFC 826:
hardware type 1, protocol type 0x0800, address lengths 6 and 4) to one
:class:`ARPAggregator`, so that both give the same records by construction.

Design note: a busy LAN repeats the same ARP question many times a second
(hosts retry, switches flood broadcasts to every port), and each one would
otherwise become a Python record. The aggregator merges packets with the
same (op, sender MAC, sender IP, target IP) seen within ``ARP_WINDOW_NS`` of
the first into one record with a ``count``; a record is handed out when its
window has passed in network time (or at the end of input). Windows open in
network-time order, so the oldest open window is always first in the dict
and expiry is a walk from the front. At most ``ARP_MEMORY`` windows are
open: past that the oldest is handed out early and ``arp_table_full``
counts it.

Record fields: ``ts`` (first packet, seconds), ``op`` (``request`` or
``reply``), ``src_mac``, ``src_ip`` (sender hardware and protocol
addresses), ``dst_mac``, ``dst_ip`` (target's; a request's ``dst_mac`` is
usually all zeros), ``gratuitous`` (sender and target IP equal: an
announcement, RFC 5227 section 3), ``count`` (packets merged), and ``vlan``
when the frame was tagged.

Counters (``stats()``): ``arp_packets`` (every ARP packet with an op),
``arp_unsupported`` (another hardware or protocol type, or cut short
before the target address), ``arp_table_full``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

SEC = 1_000_000_000

#: Repeats of one (op, sender MAC, sender IP, target IP) this soon after the
#: first are merged into its record.
ARP_WINDOW_NS = 5 * SEC
#: Most aggregation windows open at once (oldest handed out first).
ARP_MEMORY = 65536
#: "No window open": later than any packet time.
NEVER = 2**63 - 1

OPS = {1: "request", 2: "reply"}


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


class ARPAggregator:
    """Merges repeated ARP packets into records (see the module docstring)."""

    def __init__(
        self, window_ns: int = ARP_WINDOW_NS, memory: int = ARP_MEMORY
    ) -> None:
        self.window_ns = window_ns
        self.memory = memory
        # key -> [due_ns, record]; insertion order is due order.
        self.open: dict[bytes, list[Any]] = {}
        self.counters = {"arp_packets": 0, "arp_unsupported": 0, "arp_table_full": 0}

    def unsupported(self) -> None:
        """Count an ARP packet that carries no Ethernet/IPv4 addresses."""
        self.counters["arp_packets"] += 1
        self.counters["arp_unsupported"] += 1

    def add(
        self,
        ts: int,
        now: int,
        op: int,
        sha: bytes,
        spa: bytes,
        tha: bytes,
        tpa: bytes,
        vlan: int,
        out: list[dict[str, Any]],
    ) -> int:
        """Take one ARP packet seen at ``ts`` (network time ``now``, ns).

        Records pushed out by the memory bound go to ``out``. Returns the
        network time at which the oldest open window is due.
        """
        self.counters["arp_packets"] += 1
        if op not in OPS:
            self.counters["arp_unsupported"] += 1
            return self.due()
        key = bytes((op,)) + sha + spa + tpa + vlan.to_bytes(4, "big", signed=True)
        entry = self.open.get(key)
        if entry is not None:
            entry[1]["count"] += 1
            return self.due()

        if len(self.open) >= self.memory:
            self.counters["arp_table_full"] += 1
            oldest = next(iter(self.open))
            out.append(self.open.pop(oldest)[1])
        record: dict[str, Any] = {
            "ts": ts / SEC,
            "op": OPS[op],
            "src_mac": _mac(sha),
            "src_ip": str(ipaddress.IPv4Address(spa)),
            "dst_mac": _mac(tha),
            "dst_ip": str(ipaddress.IPv4Address(tpa)),
            "gratuitous": spa == tpa,
            "count": 1,
        }
        if vlan >= 0:
            record["vlan"] = vlan
        self.open[key] = [now + self.window_ns, record]
        return self.due()

    def due(self) -> int:
        """Network time at which the oldest open window is due (NEVER: none)."""
        for entry in self.open.values():
            return int(entry[0])
        return NEVER

    def expire(self, now: int, out: list[dict[str, Any]]) -> int:
        """Hand the records whose window ended by ``now`` to ``out``;
        returns when the next is due."""
        opened = self.open
        while opened:
            key = next(iter(opened))
            entry = opened[key]
            if entry[0] > now:
                return int(entry[0])
            del opened[key]
            out.append(entry[1])
        return NEVER

    def flush(self, out: list[dict[str, Any]]) -> None:
        """End of input: hand out every open record, oldest first."""
        out.extend(entry[1] for entry in self.open.values())
        self.open.clear()

    def stats(self) -> dict[str, int]:
        """The counters that are not zero."""
        return {k: v for k, v in self.counters.items() if v}
