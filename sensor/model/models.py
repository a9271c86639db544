"""The models stage of the pipeline: learns from records, answers detections.

:class:`Models` takes every finished record (``observe``), keeps the device
identities (:mod:`sensor.model.devices`), their behaviour
(:mod:`sensor.model.profile`), network-wide rarity
(:mod:`sensor.model.rarity`) and roles (:mod:`sensor.model.groups`), saves
them to SQLite (:mod:`sensor.model.store`) every ``checkpoint_seconds`` of
packet time, and at the end (``finish``) gives one ``devices.log`` record per
device. It implements :class:`sensor.model.view.ModelView` for detections.

What each log teaches:

- ``conn``: the device of each internal end (by IP and MAC), peers,
  services used and answered, bytes, hours, rates;
- ``dns``: names and registered domains asked; A, AAAA and PTR answers
  that name an internal address name its device;
- ``ssl``: server name, JA3, JA4; ``http``: user agent, Host;
- ``dhcp``: MAC and address (strong), host name, the server;
- ``arp`` (``src_mac``, ``src_ip``): MAC and address (strong);
- ``kerberos``: host accounts (``NAME$/REALM``) name the client, other
  accounts are its users; ``ntlm``: host names of both ends, the user.

A protocol record usually comes before the conn record of its connection;
when its device is not known yet it waits (at most :data:`PENDING_PER_IP`
records for :data:`PENDING_IPS` addresses) until the conn record places
the device, so that the device gets its MAC first.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, ClassVar

from sensor.model import groups
from sensor.model.devices import (
    DEFAULT_LOCAL_NETWORKS,
    Device,
    Identities,
    LocalNetworks,
)
from sensor.model.profile import Profiles, T
from sensor.model.rarity import MAX_VALUES, Rarity
from sensor.model.sketch import hash64
from sensor.model.store import StateError, Store

log = logging.getLogger(__name__)

Record = tuple[str, dict[str, Any]]

PENDING_PER_IP = 64
PENDING_IPS = 4096
#: Summary entries per top-k table in devices.log.
SUMMARY_TOP = 5
_NOT_ANSWERED = frozenset(("S0", "REJ", "RSTOS0", "RSTRH", "SH", "SHR"))
_PROTOCOL_LOGS = frozenset(("dns", "ssl", "http", "kerberos", "ntlm"))


@lru_cache(maxsize=1)
def _extractor() -> Any:
    import tldextract

    # The Public Suffix List snapshot that the package ships; never fetched.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


@lru_cache(maxsize=65536)
def registered_domain(name: str) -> str | None:
    """The registered domain of a host name (``www.bbc.co.uk`` -> ``bbc.co.uk``).

    Public-suffix aware; a name under no known suffix (``host.corp.local``)
    gives its last two labels; an address literal gives None.
    """
    name = name.strip().rstrip(".").lower()
    if not name or name.endswith(".arpa"):
        return None
    try:
        ipaddress.ip_address(name.strip("[]"))
        return None
    except ValueError:
        pass
    if "." not in name:
        return None  # a single label (NetBIOS, mDNS): no domain
    r = _extractor()(name)
    if r.suffix and r.domain:
        return f"{r.domain}.{r.suffix}"
    labels = [x for x in name.split(".") if x]
    return ".".join(labels[-2:]) if labels else None


def _family(proto: str, port: int, service: str) -> str | None:
    """The service family of an answered connection, for roles."""
    if port == 88 or "krb" in service:
        return "kerberos"
    if port in (389, 636, 3268, 3269) or "ldap" in service:
        return "ldap"
    if port == 135 or (service and service.endswith("dce_rpc")):
        return "dce_rpc"
    if port in (445, 139) or "smb" in service:
        return "smb"
    if port == 53 and proto in ("udp", "tcp"):
        return "dns"
    if port == 67 and proto == "udp":
        return "dhcp"
    if port == 3389:
        return "rdp"
    if port in (80, 443, 8080, 8443) or "http" in service:
        return "web"
    if port in (9100, 515, 631):
        return "print"
    if port == 123 and proto == "udp":
        return "ntp"
    if port == 22 or "ssh" in service:
        return "ssh"
    if port in (25, 465, 587) or "smtp" in service:
        return "smtp"
    return None


class Models:
    """Device models for the pipeline, and the :class:`ModelView` of them."""

    def __init__(
        self,
        state: str | None = None,
        *,
        local_networks: Iterable[str] = DEFAULT_LOCAL_NETWORKS,
        learning_days: float = 7.0,
        decay_days: float = 7.0,
        checkpoint_seconds: float = 10.0,
        max_values: int = MAX_VALUES,
    ) -> None:
        self.local = LocalNetworks(local_networks)
        self.learning_seconds = learning_days * 86400.0
        self.checkpoint_seconds = checkpoint_seconds
        self.ids = Identities(self.local)
        self.profiles = Profiles(tau=decay_days * 86400.0)
        self.rarity = Rarity(max_values)
        self.store = Store(state or ":memory:")
        #: Packet time of the latest record.
        self.now = 0.0
        #: Packet time of the last checkpoint.
        self.saved_at = 0.0
        self._roles_at = 0.0
        self.pending: dict[str, list[Record]] = {}
        self.pending_dropped = 0
        self._w = 1.0  # weight of the protocol record in hand (Profiles.advance)
        self._changed: set[str] = set()  # devices whose roles may have changed
        if not self.store.persistent:
            # Nothing is saved but on snapshot(), which saves everything:
            # do not keep sets of what changed.
            self.ids.dirty = _Discard()
            self.rarity.dirty = _Discard()
        self._load()

    # --- the pipeline's interface --------------------------------------------

    def observe(self, log: str, record: dict[str, Any]) -> None:
        """Learn from one finished record."""
        ts = record.get("ts")
        if isinstance(ts, (int, float)) and ts > self.now:
            self.now = float(ts)
        handler = self._handlers.get(log)
        if handler is not None:
            handler(self, record)
        if self.now - self._roles_at >= self.checkpoint_seconds:
            self._refresh_roles()
            if self.store.persistent:
                self.checkpoint()

    def finish(self, now: float) -> list[Record]:
        """End of input: save the state; one devices.log record per device."""
        self.now = max(self.now, now)
        for ip in list(self.pending):
            self._drain(ip)
        self._refresh_roles(everything=True)
        if self.store.persistent:
            self.checkpoint()
            self.store.fold()
        return [
            ("devices", self.summary(d))
            for d in sorted(self.ids.devices.values(), key=lambda d: d.id)
        ]

    def close(self) -> None:
        """Close the state database."""
        self.store.close()

    # --- ModelView -----------------------------------------------------------

    def device(self, ip: str, mac: str | None = None) -> Device | None:
        """The device that had ``ip`` (or ``mac``) last; None if never seen."""
        return self.ids.get(ip, mac)

    def is_internal(self, ip: str) -> bool:
        """True when ``ip`` is in the configured local networks."""
        return ip in self.local

    def learning(self, device_id: str, now: float) -> bool:
        """True while the device is in its learning period."""
        dev = self.ids.devices.get(device_id)
        return dev is None or now - dev.first_seen < self.learning_seconds

    def is_new_for_device(self, device_id: str, kind: str, value: str) -> bool:
        """True when the device has not used ``value`` (of ``kind``) before."""
        dev = self.ids.devices.get(device_id)
        return dev is None or not self.profiles.knows(dev.slot, hash64(kind, value))

    def network_devices(self, kind: str, value: str) -> int:
        """How many devices have used ``value``; 0 when none has."""
        return self.rarity.devices(kind, value)

    def network_first_seen(self, kind: str, value: str) -> float | None:
        """Packet time ``value`` was first used on the network, None if never."""
        return self.rarity.first_seen(kind, value)

    def baseline(self, device_id: str, feature: str) -> float | None:
        """A learned figure of the device (see ModelView.baseline)."""
        dev = self.ids.devices.get(device_id)
        return None if dev is None else self.profiles.baseline(dev.slot, feature)

    def peer_group(self, device_id: str) -> str | None:
        """The id of the device's peer group, None when it has none yet."""
        dev = self.ids.devices.get(device_id)
        return None if dev is None else dev.group

    # --- learning ------------------------------------------------------------

    def _use(
        self,
        dev: Device,
        kind: str,
        value: str,
        table: int | None,
        ts: float,
        w: float = 1.0,
    ) -> None:
        # One value used by a device: its filter, the network's count, a table.
        h = hash64(kind, value)
        new = self.profiles.remember(dev.slot, h)
        self.rarity.use(h, kind, value, ts, new)
        if table is not None:
            self.profiles.add(dev.slot, table, h, w)

    def _conn(self, r: dict[str, Any]) -> None:
        ts = float(r["ts"])
        oh, rh = r["id.orig_h"], r["id.resp_h"]
        od = self.ids.seen(oh, r.get("orig_l2_addr"), ts)
        rd = self.ids.seen(rh, r.get("resp_l2_addr"), ts)
        if od is None and rd is None:
            return
        proto = str(r.get("proto", ""))
        port = int(r.get("id.resp_p", 0))
        service = str(r.get("service") or "")
        answered = (
            r.get("resp_pkts", 0) > 0 and r.get("conn_state") not in _NOT_ANSWERED
        )
        ob, rb = int(r.get("orig_bytes") or 0), int(r.get("resp_bytes") or 0)
        svc = f"{proto}/{port}"
        prof = self.profiles

        if od is not None:
            prof.ensure(od.slot)
            w = prof.advance(od.slot, ts)
            if not self.local.group(rh):
                internal = rd is not None or rh in self.local
                table = T["peers_internal"] if internal else T["peers_external"]
                self._use(od, "ip", rh, table, ts, w)
            if answered:
                self._use(od, "service", svc, T["services_used"], ts, w)
                for name in service.split(","):
                    if name:
                        self._use(od, "service", name, None, ts)
            prof.conn(od.slot, ts, hash64("ip", rh), True, ob, rb, w)
            self._changed.add(od.id)
            if oh in self.pending:
                self._drain(oh)

        if rd is not None and answered:
            prof.ensure(rd.slot)
            w = prof.advance(rd.slot, ts)
            internal = od is not None or oh in self.local
            table = T["peers_internal"] if internal else T["peers_external"]
            self._use(rd, "ip", oh, table, ts, w)
            self._use(rd, "service", svc, T["services_offered"], ts, w)
            family = _family(proto, port, service)
            if family is not None:
                prof.served(rd.slot, family, w)
            prof.conn(rd.slot, ts, hash64("ip", oh), False, rb, ob, w)
            self._changed.add(rd.id)
        if rd is not None and rh in self.pending:
            self._drain(rh)

    def _orig(self, log: str, r: dict[str, Any]) -> Device | None:
        # The device of a protocol record's originator, or None (the record
        # waits for its conn record when the address is internal and new).
        ip = r.get("id.orig_h")
        if not isinstance(ip, str):
            return None
        dev = self.ids.get(ip)
        if dev is None and ip in self.local:
            waiting = self.pending.get(ip)
            if waiting is None:
                if len(self.pending) >= PENDING_IPS:
                    self.pending_dropped += 1
                    return None
                waiting = self.pending[ip] = []
            if len(waiting) < PENDING_PER_IP:
                waiting.append((log, r))
            else:
                self.pending_dropped += 1
        if dev is not None:
            self.profiles.ensure(dev.slot)
            self._w = self.profiles.advance(dev.slot, float(r.get("ts", self.now)))
        return dev

    def _drain(self, ip: str) -> None:
        waiting = self.pending.pop(ip, [])
        if self.ids.get(ip) is None and waiting:
            self.ids.seen(ip, None, float(waiting[0][1].get("ts", self.now)))
        for log, r in waiting:
            self._handlers[log](self, r)

    def _dns(self, r: dict[str, Any]) -> None:
        dev = self._orig("dns", r)
        query = r.get("query")
        if not isinstance(query, str) or not query:
            return
        ts = float(r["ts"])
        if dev is not None:
            self._use(dev, "name", query.lower(), T["names_asked"], ts, self._w)
            domain = registered_domain(query)
            if domain:
                self._use(dev, "domain", domain, T["domains"], ts, self._w)

        # Answers that name an internal address name its device.
        answers = r.get("answers") or []
        qtype = r.get("qtype_name")
        if qtype in ("A", "AAAA"):
            for a in answers:
                if a in self.local and (named := self.ids.get(a)) is not None:
                    self.ids.name(named, query, "dns")
        elif qtype == "PTR" and answers and query.endswith(".arpa"):
            ip = _ptr_address(query)
            if ip and (named := self.ids.get(ip)) is not None:
                self.ids.name(named, str(answers[0]), "dns")

    def _ssl(self, r: dict[str, Any]) -> None:
        dev = self._orig("ssl", r)
        if dev is None:
            return
        ts = float(r["ts"])
        sni = r.get("server_name")
        if isinstance(sni, str) and sni:
            self._use(dev, "sni", sni.lower(), T["names_asked"], ts, self._w)
            domain = registered_domain(sni)
            if domain:
                self._use(dev, "domain", domain, T["domains"], ts, self._w)
        for kind in ("ja3", "ja4"):
            v = r.get(kind)
            if isinstance(v, str) and v:
                self._use(dev, kind, v, T[kind], ts, self._w)

    def _http(self, r: dict[str, Any]) -> None:
        dev = self._orig("http", r)
        if dev is None:
            return
        ts = float(r["ts"])
        ua = r.get("user_agent")
        if isinstance(ua, str) and ua:
            self._use(dev, "ua", ua, T["user_agents"], ts, self._w)
        host = r.get("host")
        if isinstance(host, str) and host:
            domain = registered_domain(
                host.rsplit(":", 1)[0] if host.count(":") == 1 else host
            )
            if domain:
                self._use(dev, "domain", domain, T["domains"], ts, self._w)

    def _dhcp(self, r: dict[str, Any]) -> None:
        ts = float(r["ts"])
        mac = r.get("mac")
        ip = r.get("assigned_addr") or r.get("client_addr")
        if isinstance(mac, str) and mac:
            dev = self.ids.bind(ip if isinstance(ip, str) else None, mac.lower(), ts)
            if dev is not None:
                self.profiles.ensure(dev.slot)
                host = r.get("host_name")
                if isinstance(host, str) and host:
                    self.ids.name(dev, host, "dhcp")
        server = r.get("server_addr")
        if isinstance(server, str) and (sd := self.ids.get(server)) is not None:
            self.profiles.ensure(sd.slot)
            self.profiles.served(sd.slot, "dhcp")
            self._changed.add(sd.id)

    def _arp(self, r: dict[str, Any]) -> None:
        mac, ip = r.get("src_mac"), r.get("src_ip")
        if isinstance(mac, str) and isinstance(ip, str) and ip not in ("0.0.0.0", "::"):
            dev = self.ids.bind(ip, mac.lower(), float(r.get("ts", self.now)))
            if dev is not None:
                self.profiles.ensure(dev.slot)

    def _kerberos(self, r: dict[str, Any]) -> None:
        dev = self._orig("kerberos", r)
        client = r.get("client")
        if dev is None or not isinstance(client, str) or not client:
            return
        account = client.split("/", 1)[0]
        if not account:
            return
        if account.endswith("$"):
            self.ids.name(dev, account[:-1].upper(), "kerberos")
        elif r.get("success") is not False:
            self.ids.user(dev, client)

    def _ntlm(self, r: dict[str, Any]) -> None:
        dev = self._orig("ntlm", r)
        if dev is not None:
            host = r.get("hostname")
            if isinstance(host, str) and host:
                self.ids.name(dev, host.upper(), "ntlm")
            user = r.get("username")
            if isinstance(user, str) and user and r.get("success") is not False:
                domain = r.get("domainname")
                self.ids.user(dev, f"{user}/{domain}" if domain else user)
        server = r.get("server_nb_computer_name")
        rh = r.get("id.resp_h")
        if isinstance(server, str) and server and isinstance(rh, str):
            sd = self.ids.get(rh)
            if sd is not None:
                self.ids.name(sd, server.upper(), "ntlm")

    _handlers: ClassVar[dict[str, Callable[[Models, dict[str, Any]], None]]] = {
        "conn": _conn,
        "dns": _dns,
        "ssl": _ssl,
        "http": _http,
        "dhcp": _dhcp,
        "arp": _arp,
        "kerberos": _kerberos,
        "ntlm": _ntlm,
    }

    # --- roles ---------------------------------------------------------------

    def _refresh_roles(self, everything: bool = False) -> None:
        self._roles_at = self.now
        changed, self._changed = self._changed, set()
        ids = self.ids.devices
        for dev in (
            ids.values()
            if everything
            else (ids[i] for i in sorted(changed) if i in ids)
        ):
            self.profiles.ensure(dev.slot)
            roles = groups.roles(
                self.profiles.served_counts(dev.slot),
                dev.mac is not None and dev.mac in self.ids.gateway_macs,
                self.profiles.scalar(dev.slot, "conns_out"),
            )
            if roles != dev.roles:
                dev.roles = roles
                self.ids.dirty.add(dev.id)

    # --- summary -------------------------------------------------------------

    def summary(self, dev: Device) -> dict[str, Any]:
        """The devices.log record of ``dev``: identity and model summary."""
        prof = self.profiles
        prof.ensure(dev.slot)
        rec: dict[str, Any] = {
            "ts": self.now,
            "id": dev.id,
            "mac": dev.mac,
            "ips": list(dev.ips),
            "name": dev.name,
            "names": list(dev.names),
            "users": list(dev.users),
            "vendor": dev.vendor,
            "internal": dev.internal,
            "first_seen": dev.first_seen,
            "last_seen": dev.last_seen,
            "roles": list(dev.roles),
            "group": dev.group,
            "learning": self.learning(dev.id, self.now),
        }
        for table in T:
            items = prof.top(dev.slot, table)[:SUMMARY_TOP]
            if not items:
                continue
            out = []
            for fp, count in items:
                label = self.rarity.named(fp)
                out.append(
                    {
                        "value": label[1] if label else f"#{fp:08x}",
                        "count": round(count, 2),
                    }
                )
            rec[table] = out
        rec.update(prof.summary(dev.slot))
        baselines = {}
        for feature in ("bytes_out_per_hour", "bytes_in_per_hour", "conns_per_hour",
                        "distinct_peers_per_hour", "max_upload_bytes"):  # fmt: skip
            v = prof.baseline(dev.slot, feature)
            if v is not None:
                baselines[feature] = round(v, 2)
        if baselines:
            rec["baselines"] = baselines
        return {k: v for k, v in rec.items() if v is not None and v != []}

    # --- state ---------------------------------------------------------------

    def checkpoint(self, everything: bool = False) -> None:
        """Save what changed since the last checkpoint, in one transaction."""
        ids, rar = self.ids, self.rarity
        devices = []
        for did in sorted(ids.devices if everything else ids.dirty):
            dev = ids.devices.get(did)
            if dev is not None:
                self.profiles.ensure(dev.slot)
                devices.append((did, dev.state(), self.profiles.row_bytes(dev.slot)))
        rarity = [
            (h, e[0], e[1], e[2], e[3], e[4])
            for h in sorted(rar.entries if everything else rar.dirty)
            if (e := rar.entries.get(h)) is not None
        ]
        meta = {
            "packet_time": self.now,
            "identities": ids.state(),
            "rarity_seq": rar.seq,
            "rarity_evicted": rar.evicted,
        }
        self.store.save(meta, devices, rarity, sorted(rar.dropped))
        ids.dirty.clear()
        rar.dirty.clear()
        rar.dropped.clear()
        self.saved_at = self.now
        log.debug(
            "%s: checkpoint at packet time %.6f: %d devices, %d values written",
            self.store.path,
            self.now,
            len(devices),
            len(rarity),
        )

    def _load(self) -> None:
        try:
            self._read_state()
        except (KeyError, TypeError, ValueError) as e:
            raise StateError(self.store.path, f"damaged model state: {e!r}") from e

    def _read_state(self) -> None:
        meta = self.store.meta()
        devices = []
        for identity, row in self.store.devices():
            dev = Device.from_state(identity)
            self.profiles.load_row(dev.slot, row)
            devices.append(dev)
        self.ids.load(meta.get("identities", {}), devices)
        self.rarity.restore(self.store.rarity())
        self.rarity.seq = int(meta.get("rarity_seq", 0))
        self.rarity.evicted = int(meta.get("rarity_evicted", 0))
        self.now = float(meta.get("packet_time", 0.0))
        self.saved_at = self._roles_at = self.now
        if devices:
            log.info(
                "%s: %d devices and %d values loaded, packet time %.6f",
                self.store.path,
                len(devices),
                len(self.rarity.entries),
                self.now,
            )

    def snapshot(self, label: str) -> int:
        """Save the models as a new version; return its number."""
        self._refresh_roles(everything=True)
        self.checkpoint(everything=not self.store.persistent)
        return self.store.snapshot(label, self.now)

    def versions(self) -> list[dict[str, Any]]:
        """The saved versions, oldest first."""
        return self.store.versions()

    def rollback(self, version: int) -> None:
        """Go back to a saved version: the models become what they were then."""
        self.store.rollback(version)
        self.ids = Identities(self.local)
        self.profiles = Profiles(tau=self.profiles.tau)
        self.rarity = Rarity(self.rarity.max_values)
        if not self.store.persistent:
            self.ids.dirty = _Discard()
            self.rarity.dirty = _Discard()
        self.pending.clear()
        self._load()


class _Discard(set):  # type: ignore[type-arg]
    """A set that keeps nothing (change tracking when nothing is saved)."""

    def add(self, item: object) -> None:
        pass


def _ptr_address(query: str) -> str | None:
    """The address a reverse-lookup name stands for (``4.3.2.1.in-addr.arpa``)."""
    q = query.lower().rstrip(".")
    try:
        if q.endswith(".in-addr.arpa"):
            parts = q[: -len(".in-addr.arpa")].split(".")
            if len(parts) == 4:
                return str(ipaddress.IPv4Address(".".join(reversed(parts))))
        elif q.endswith(".ip6.arpa"):
            nibbles = q[: -len(".ip6.arpa")].split(".")
            if len(nibbles) == 32:
                h = "".join(reversed(nibbles))
                return str(ipaddress.IPv6Address(int(h, 16)))
    except ValueError:
        return None
    return None
