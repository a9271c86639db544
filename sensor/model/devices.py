"""Device identity: which device an address belongs to, and what it is called.

Design note. A device is known by its MAC address when one can be tied to
it, else by its IP address. Evidence comes in two strengths:

- strong: a DHCP lease (``mac``, ``assigned_addr``), an ARP packet (its
  sender's MAC and IP), an IPv6 link-local address built from the MAC
  (EUI-64, RFC 4291 appendix A). Strong evidence moves an address to the
  MAC's device, taking it from whichever device had it.
- weak: the MAC beside an address in a conn record (``orig_l2_addr``,
  ``resp_l2_addr``). On a routed network the MAC beside an outside address
  is the gateway's, and bridges (a host bridging virtual machines over
  Wi-Fi rewrites their MACs to its own) put one MAC beside several inside
  addresses. Weak evidence therefore only names the device of an address
  not seen before, and never moves an address that already has a device.

Only internal addresses (in the configured local networks) are devices;
outside addresses are peers, counted by :mod:`sensor.model.rarity`. A MAC
that a second IPv4 address arrives with while its first was used in the
last :data:`IP_CHANGE_GAP` seconds is taken as shared (router, bridge): new
addresses behind it get devices of their own, keyed by IP. One that
arrives after a quiet gap is the same device under a new address (a DHCP
renewal that the sensor did not see).

Vendors come from the IEEE registry as Debian's ``ieee-data`` package
installs it (``/usr/share/ieee-data``); a locally administered MAC (a
randomised one, bit 1 of the first octet) has no vendor.
"""

from __future__ import annotations

import csv
import ipaddress
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from sensor.model import groups

log = logging.getLogger(__name__)

#: Local networks by default: RFC 1918, shared address space (RFC 6598),
#: IPv6 unique local (RFC 4193) and link-local addresses of both families.
DEFAULT_LOCAL_NETWORKS = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "fc00::/7",
    "fe80::/10",
)
#: Seconds an IPv4 address of a MAC must be quiet before a new one counts
#: as the same device changing address rather than a shared MAC.
IP_CHANGE_GAP = 600.0
#: Addresses remembered per device (the latest first); older ones drop off.
MAX_IPS = 6
#: Names remembered per device.
MAX_NAMES = 4
IEEE_DATA = Path("/usr/share/ieee-data")

#: Name sources, strongest first: a later source never hides an earlier one.
NAME_SOURCES = ("dhcp", "kerberos", "ntlm", "dns")


#: The empty list that devices share until they have roles or tags of their
#: own (56 bytes per list and device saved): never append to a device's list
#: in place without replacing this one first.
NONE: list[str] = []


@dataclass(slots=True)
class Device:
    """One device's identity. Fields follow :class:`sensor.model.view.DeviceInfo`.

    A device costs a few hundred bytes besides its profile row, so what
    can be derived is a property, not a field: ``ip`` and ``name`` (the
    first of ``ips`` and ``names``), ``group`` (from ``roles``) and
    ``internal`` (every device is: outside addresses are peers); and the
    short lists that change seldom (addresses, names, users) are tuples,
    replaced on change (a tuple of one costs 48 bytes, a list 88).
    """

    id: str
    slot: int  # row of the device in the profile arrays
    mac: str | None = None
    ips: tuple[str, ...] = ()  # latest first
    names: tuple[str, ...] = ()  # best first
    name_source: str = ""
    users: tuple[str, ...] = ()  # Kerberos/NTLM users, latest last
    vendor: str | None = None
    first_seen: float = 0.0
    last_seen: float = 0.0
    v4_last: float = 0.0  # packet time its IPv4 address was last seen
    roles: list[str] = field(default_factory=lambda: NONE)
    tags: list[str] = field(default_factory=lambda: NONE)

    @property
    def ip(self) -> str | None:
        """The latest address."""
        return self.ips[0] if self.ips else None

    @property
    def name(self) -> str | None:
        """The best name."""
        return self.names[0] if self.names else None

    @property
    def group(self) -> str | None:
        """The peer group (see :func:`sensor.model.groups.group`)."""
        return groups.group(self.roles)

    @property
    def internal(self) -> bool:
        """Always True: only addresses in the local networks are devices."""
        return True

    def state(self) -> dict[str, Any]:
        """What the store keeps of the identity (every field)."""
        return {
            k: getattr(self, k)
            for k in (
                "id", "slot", "mac", "ips", "names", "name_source", "users",
                "vendor", "first_seen", "last_seen", "v4_last", "roles", "tags",
            )
        }  # fmt: skip

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> Device:
        """The inverse of :meth:`state` (derived fields of schema 1 ignored)."""
        d = {k: v for k, v in d.items() if k not in _DERIVED}
        for k in ("ips", "names", "users"):
            d[k] = tuple(d.get(k) or ())
        if not d.get("tags"):
            d["tags"] = NONE
        d["roles"] = groups.shared(d.get("roles") or ())
        return cls(**d)


#: Fields that state schema 1 saved and that are now derived.
_DERIVED = frozenset(("ip", "name", "group", "internal"))


@lru_cache(maxsize=1)
def _oui_table() -> dict[str, str]:
    # MA-L (24-bit), MA-M (28-bit) and MA-S (36-bit) prefixes, as hex digits.
    table: dict[str, str] = {}
    for name in ("oui.csv", "mam.csv", "oui36.csv"):
        path = IEEE_DATA / name
        try:
            with open(path, encoding="utf-8", newline="") as f:
                for row in csv.reader(f):
                    if len(row) >= 3 and row[0] != "Registry":
                        table[row[1].strip().upper()] = row[2].strip()
        except OSError as e:
            log.warning("%s: cannot read the MAC vendor registry: %s", path, e.strerror)
    return table


def vendor(mac: str) -> str | None:
    """The registered organisation of ``mac``'s prefix, None when unknown."""
    digits = mac.replace(":", "").replace("-", "").upper()
    if len(digits) < 6 or int(digits[:2], 16) & 0x02:
        return None  # locally administered (randomised, virtual): no vendor
    table = _oui_table()
    for n in (9, 7, 6):
        org = table.get(digits[:n])
        if org:
            return org
    return None


def eui64_mac(ip: str) -> str | None:
    """The MAC an IPv6 address was built from (modified EUI-64), if it was."""
    if ":" not in ip:
        return None
    try:
        b = ipaddress.IPv6Address(ip).packed
    except ValueError:
        return None
    if b[11] != 0xFF or b[12] != 0xFE:
        return None
    mac = bytes([b[8] ^ 0x02, b[9], b[10], b[13], b[14], b[15]])
    return ":".join(f"{x:02x}" for x in mac)


class LocalNetworks:
    """Which addresses are inside: the configured networks."""

    _OUTSIDE, _INSIDE, _GROUP = 0, 1, 2

    def __init__(self, networks: Iterable[str] = DEFAULT_LOCAL_NETWORKS) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]
        #: Addresses known to be inside without a look-up: the devices'
        #: addresses (Identities.by_ip), which the cache then need not hold.
        self.known: Mapping[str, object] = {}
        # One small int per other address seen, up to 100,000 (then started
        # anew).
        self._cache: dict[str, int] = {}

    def _kind(self, ip: str) -> int:
        if ip in self.known:
            return self._INSIDE
        hit = self._cache.get(ip)
        if hit is None:
            hit = self.classify(ip)
            if len(self._cache) >= 100_000:
                self._cache.clear()
            self._cache[ip] = hit
        return hit

    def classify(self, ip: str) -> int:
        """0 for an outside address, 1 inside, 2 a group address (uncached)."""
        if is_group_address(ip):
            return self._GROUP
        a = ipaddress.ip_address(ip)
        inside = any(a in n for n in self.networks if n.version == a.version)
        return self._INSIDE if inside else self._OUTSIDE

    def forget(self, ip: str) -> None:
        """Drop ``ip`` from the cache (it became a device's: see ``known``)."""
        self._cache.pop(ip, None)

    def __contains__(self, ip: str) -> bool:
        return self._kind(ip) == self._INSIDE

    def group(self, ip: str) -> bool:
        """Multicast, broadcast, unspecified or not an address: no one's."""
        return self._kind(ip) == self._GROUP


def is_group_address(ip: str) -> bool:
    """Multicast, broadcast or unspecified: an address that is no one's.

    Text that is no address counts as one too: it is no device.
    """
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return True
    if a.is_multicast or a.is_unspecified:
        return True
    return a.version == 4 and (ip == "255.255.255.255" or ip.endswith(".255"))


class Identities:
    """Devices by MAC and by address; see the module's design note."""

    def __init__(self, local: LocalNetworks) -> None:
        self.local = local
        self.devices: dict[str, Device] = {}
        self.by_ip: dict[str, str] = {}
        local.known = self.by_ip
        #: MACs of devices whose id is not their MAC (a device keyed by its
        #: MAC is found in ``devices`` under it: see :meth:`_mac_owner`).
        self.by_mac: dict[str, str] = {}
        #: MACs seen with several addresses at once (routers, bridges).
        self.shared_macs: set[str] = set()
        #: MACs seen beside outside addresses: gateways.
        self.gateway_macs: set[str] = set()
        self.dirty: set[str] = set()
        self._next_slot = 0

    # --- lookups ------------------------------------------------------------

    def get(self, ip: str | None, mac: str | None = None) -> Device | None:
        """The device that had ``ip`` last (or owns ``mac``); None if unknown."""
        did = self.by_ip.get(ip) if ip else None
        if did is None and mac:
            did = self._mac_owner(mac)
        return self.devices.get(did) if did else None

    def _mac_owner(self, mac: str) -> str | None:
        # The id of the device that owns ``mac``: an exception in by_mac, or
        # the device keyed by the MAC itself.
        did = self.by_mac.get(mac)
        if did is None and mac in self.devices:
            did = mac
        return did

    # --- evidence -----------------------------------------------------------

    def seen(self, ip: str, mac: str | None, ts: float) -> Device | None:
        """Weak evidence from a conn record; the device of ``ip`` or None.

        None for outside and group addresses (a MAC beside an outside
        address marks a gateway).
        """
        if self.local.group(ip):
            return None
        if ip not in self.local:
            if mac:
                self.gateway_macs.add(mac)
            return None
        did = self.by_ip.get(ip)
        if did is not None:
            dev = self.devices[did]
            self._touch(dev, ip, ts)
            return dev
        return self._place(ip, mac, ts, strong=False)

    def bind(self, ip: str | None, mac: str, ts: float) -> Device | None:
        """Strong evidence (DHCP, ARP, EUI-64): ``ip`` belongs to ``mac``."""
        if not mac or mac in ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"):
            return None
        if ip and (self.local.group(ip) or ip not in self.local):
            return None
        if not ip:
            did = self._mac_owner(mac)
            return self.devices[did] if did else self._new(mac, None, ts)
        return self._place(ip, mac, ts, strong=True)

    def name(self, dev: Device, name: str, source: str) -> None:
        """Record a host name for ``dev`` from ``source`` (see NAME_SOURCES)."""
        name = name.strip().rstrip(".")
        if not name or name in dev.names[:1]:
            return
        rank = NAME_SOURCES.index(source)
        best = (
            NAME_SOURCES.index(dev.name_source)
            if dev.name_source
            else len(NAME_SOURCES)
        )
        low = name.lower()
        if any(n.lower() == low for n in dev.names):
            if rank < best:  # the same name from a stronger source
                dev.names = (name, *(n for n in dev.names if n.lower() != low))
                dev.name_source = source
                self.dirty.add(dev.id)
            return
        if rank < best or not dev.names:
            dev.names = (name, *dev.names)[:MAX_NAMES]
            dev.name_source = source
        else:
            dev.names = (*dev.names, name)[:MAX_NAMES]
        self.dirty.add(dev.id)

    def user(self, dev: Device, user: str) -> None:
        """Record an account name that authenticated from ``dev``."""
        if user and user not in dev.users:
            dev.users = (*dev.users, user)[-MAX_NAMES:]
            self.dirty.add(dev.id)

    # --- internals ----------------------------------------------------------

    def _place(self, ip: str, mac: str | None, ts: float, strong: bool) -> Device:
        mac_dev = self.devices.get(self._mac_owner(mac) or "") if mac else None
        if ip.startswith("fe80:") and (m := eui64_mac(ip)):
            # The address names its own MAC: that is strong evidence.
            mac, strong = m, True
            mac_dev = self.devices.get(self._mac_owner(m) or "")
        if mac_dev is not None and not strong and mac in self.shared_macs:
            mac_dev = None
        if mac_dev is not None and not strong and ":" not in ip:
            has_v4 = any(":" not in a and a != ip for a in mac_dev.ips)
            if has_v4 and (
                ts - mac_dev.v4_last < IP_CHANGE_GAP or mac in self.gateway_macs
            ):
                # A second IPv4 address behind one MAC at once: shared.
                self.shared_macs.add(mac or "")
                mac_dev = None

        owner = self.by_ip.get(ip)
        if mac_dev is None:
            if owner is not None and not strong:
                return self.devices[owner]
            if owner is not None and strong and mac:
                dev = self.devices[owner]
                if dev.mac is None:  # an IP-keyed device learns its MAC
                    dev.mac = mac
                    dev.vendor = vendor(mac)
                    self.by_mac[mac] = dev.id
                    self._touch(dev, ip, ts)
                    return dev
            use_mac = mac if mac and mac not in self.shared_macs else None
            if use_mac and self._mac_owner(use_mac) is not None:
                use_mac = None
            mac_dev = self._new(use_mac, ip, ts)
        if owner is not None and owner != mac_dev.id:
            old = self.devices[owner]
            old.ips = tuple(a for a in old.ips if a != ip)
            self.dirty.add(old.id)
        self.by_ip[ip] = mac_dev.id
        self.local.forget(ip)
        self._touch(mac_dev, ip, ts)
        return mac_dev

    def _new(self, mac: str | None, ip: str | None, ts: float) -> Device:
        did = mac or f"ip:{ip}"
        dev = Device(
            id=did,
            slot=self._next_slot,
            mac=mac,
            vendor=vendor(mac) if mac else None,
            first_seen=ts,
            last_seen=ts,
        )
        self._next_slot += 1
        self.devices[did] = dev
        self.dirty.add(did)
        return dev

    def _touch(self, dev: Device, ip: str, ts: float) -> None:
        if dev.ip != ip:
            dev.ips = (ip, *(a for a in dev.ips if a != ip))[:MAX_IPS]
        if ts > dev.v4_last and ":" not in ip:
            dev.v4_last = ts
        if ts > dev.last_seen:
            dev.last_seen = ts
        elif ts < dev.first_seen:
            dev.first_seen = ts
        # Identity changes are few; times are saved with the profile row.
        self.dirty.add(dev.id)

    # --- state --------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything but the devices themselves (saved one by one)."""
        return {
            "shared_macs": sorted(self.shared_macs),
            "gateway_macs": sorted(self.gateway_macs),
            "next_slot": self._next_slot,
        }

    def load(self, meta: dict[str, Any], devices: Iterable[Device]) -> None:
        """Restore from :meth:`state` and the saved devices."""
        self.shared_macs = set(meta.get("shared_macs", ()))
        self.gateway_macs = set(meta.get("gateway_macs", ()))
        self._next_slot = int(meta.get("next_slot", 0))
        self.devices.clear()
        self.by_ip.clear()
        self.by_mac.clear()
        for dev in devices:
            self.devices[dev.id] = dev
            if dev.mac and dev.mac != dev.id:
                self.by_mac[dev.mac] = dev.id
            for ip in dev.ips:
                # Only inside addresses are devices' (local networks may
                # have changed since the state was saved).
                if self.local.classify(ip) == LocalNetworks._INSIDE:
                    self.by_ip[ip] = dev.id
                    self.local.forget(ip)
            self._next_slot = max(self._next_slot, dev.slot + 1)
        self.dirty.clear()
