"""Responses as intents: what to do, to whom, why, and until when.

An :class:`Intent` is one action the sensor means to take (or was asked to
take): the *target* device, the *action* (from the narrowest, ``reset``,
to the widest, ``quarantine``), the destination it concerns, the *reason*
(the alert or incident id), who asked, and an expiry that is never missing.
The policy (:mod:`sensor.respond.policy`) decides whether an intent is only
recorded, waits for an operator, or is carried out; a back-end
(:mod:`sensor.respond.backends`) carries it out.

Actions:

``reset``
    End one TCP connection: ``conn`` names it (device address and port,
    peer address and port). Nothing stays in force afterwards; the expiry
    only bounds how long the back-end may wait for a packet of it.
``block``
    The device may not reach one destination: an address (``dst_ip``), a
    network (``dst_net``, CIDR) or a domain (``dst_domain``: the addresses
    it resolves to, followed through DNS answers as they change, see
    :meth:`Intent.follow`), optionally only one ``port`` and ``proto``.
``enforce``
    The device may reach only the peers listed in ``allow`` (its usual
    peers); everything else it sends is dropped.
``quarantine``
    The device may reach only the configured infrastructure (DNS, DHCP,
    the gateway: ``response.quarantine_allow``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

#: Actions, from the narrowest to the widest.
ACTIONS = ("reset", "block", "enforce", "quarantine")

#: States of an intent.
#: ``observed``: recorded only (mode observe, or a dry run's simulation);
#: ``pending``: waits for an operator's approval; ``active``: in force;
#: ``cleared``: lifted by an operator; ``expired``: its time ran out;
#: ``refused``: the never-act list or a suppression stopped it;
#: ``failed``: the back-end could not carry it out; ``done``: a reset was sent.
STATES = (
    "observed",
    "pending",
    "active",
    "cleared",
    "expired",
    "refused",
    "failed",
    "done",
)

#: States in which an intent is over.
FINAL = frozenset({"cleared", "expired", "refused", "failed", "done"})

PROTOS = ("tcp", "udp")

# A DNS label as names in the wild have them: letters, digits, hyphens
# (not at either end, RFC 1123 2.1) and underscores (service names such as
# _ldap._tcp, RFC 2782), 1 to 63 octets (RFC 1035 2.3.4).
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def not_a_host(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> str | None:
    """Why ``address`` names no single host of the network (a group of
    hosts, none, or this host's own), or None when it names one. A block
    to or of such an address matches every packet to that group, or none."""
    if address.is_unspecified:
        return "the unspecified address (no device has it)"
    if address.is_multicast:
        return "a multicast address (a group, not a device)"
    if address == _BROADCAST:
        return "the broadcast address (every host, not a device)"
    if address.is_loopback:
        return "a loopback address (the host's own, no device on the network)"
    return None


def domain_problem(name: str) -> str | None:
    """Why ``name`` is not a domain name a block can follow, or None.

    Operators' blocks are checked (:meth:`Responder.create`); names from
    alerts are taken as the traffic gave them, and intents reloaded from
    the state file as they were saved.

    A trailing dot is allowed; at most 253 characters; every label as
    :data:`_LABEL`; the last label not all digits (RFC 3696 2), so that a
    mistyped address such as ``10.0.0.300`` is not taken for a name.
    """
    n = name.lower().removesuffix(".")
    if not n:
        return "an empty name"
    if len(n) > 253:
        return f"{len(n)} characters, more than the 253 of a domain name"
    labels = n.split(".")
    for label in labels:
        if not label:
            return "an empty label (a leading dot, or two dots in a row)"
        if len(label) > 63:
            return f"label {label[:16]!r}...: {len(label)} characters, more than 63"
        if not _LABEL.fullmatch(label):
            return (
                f"label {label!r}: expected 1 to 63 letters, digits, hyphens or "
                "underscores, not beginning or ending with a hyphen"
            )
    if labels[-1].isdigit():
        return f"last label {labels[-1]!r} is all digits (neither an address nor a name)"
    return None


class IntentError(ValueError):
    """An intent that cannot be carried out as given; the message says why."""


@dataclass
class Intent:
    """One response action. ``expires`` is packet (or wall) time in seconds."""

    action: str
    target: str
    reason: str
    requested_by: str
    created: float
    expires: float
    detection: str = ""
    dst_ip: str | None = None
    dst_net: str | None = None
    dst_domain: str | None = None
    port: int | None = None
    proto: str | None = None
    #: For ``reset``: (device ip, device port, peer ip, peer port).
    conn: tuple[str, int, str, int] | None = None
    #: For ``enforce``: the peers the device may still reach.
    allow: list[str] = field(default_factory=list)
    #: The device's MAC when known (reset frames, records).
    target_mac: str | None = None
    id: str = ""
    state: str = "observed"
    #: observe, confirm or autonomous: what the policy decided.
    mode: str = "observe"
    #: Addresses a domain resolved to, as DNS answers came (``block`` only).
    addresses: set[str] = field(default_factory=set)
    #: Later connections this intent would have cut (or did cut).
    blast_radius: int = 0

    def __post_init__(self) -> None:
        self._check()
        if not self.id:
            self.id = self.make_id()

    def _check(self) -> None:
        if self.action not in ACTIONS:
            raise IntentError(
                f"action {self.action!r}: must be one of {', '.join(ACTIONS)}"
            )
        if not self.expires > self.created:
            raise IntentError(
                f"expiry {self.expires} is not after creation {self.created}: an intent needs one"
            )
        _address("target", self.target)
        if self.dst_ip is not None:
            _address("dst_ip", self.dst_ip)
        if self.dst_net is not None:
            try:
                ipaddress.ip_network(self.dst_net, strict=False)
            except ValueError:
                raise IntentError(f"dst_net {self.dst_net!r}: not a network") from None
        if self.proto is not None and self.proto not in PROTOS:
            raise IntentError(f"proto {self.proto!r}: must be tcp or udp")
        if self.port is not None and not 0 < self.port < 65536:
            raise IntentError(f"port {self.port}: must be 1 to 65535")
        if self.port is not None and self.proto is None:
            raise IntentError(f"port {self.port} needs a proto (tcp or udp)")
        if self.action == "reset" and self.conn is None:
            raise IntentError("reset needs conn (device ip, port, peer ip, port)")
        if self.action == "block" and not (
            self.dst_ip or self.dst_net or self.dst_domain
        ):
            raise IntentError(
                "block needs a destination: dst_ip, dst_net or dst_domain"
            )
        if self.dst_domain is not None:
            self.dst_domain = self.dst_domain.lower().rstrip(".")

    def make_id(self) -> str:
        """A stable id from what the intent is (``R`` and 12 hex digits)."""
        key = "|".join(
            str(x)
            for x in (
                self.action,
                self.target,
                self.destination(),
                self.port,
                self.proto,
                self.conn,
                self.reason,
                self.created,
            )
        )
        return "R" + hashlib.sha1(key.encode()).hexdigest()[:12]

    def destination(self) -> str | None:
        """The destination as one text: address, network or domain."""
        return self.dst_ip or self.dst_net or self.dst_domain

    def key(self) -> tuple[Any, ...]:
        """What makes two intents "the same action for the same reason"."""
        return (
            self.action,
            self.target,
            self.destination(),
            self.port,
            self.proto,
            self.conn,
            self.reason,
        )

    def same_action(self) -> tuple[Any, ...]:
        """What makes two intents the same action, whatever the reason."""
        return self.key()[:-1]

    def networks(self) -> list[str]:
        """Destinations as networks (``addr/len``) for a block; resolved
        domain addresses included."""
        out = []
        if self.dst_ip:
            out.append(str(ipaddress.ip_network(self.dst_ip)))
        if self.dst_net:
            out.append(str(ipaddress.ip_network(self.dst_net, strict=False)))
        out.extend(str(ipaddress.ip_network(a)) for a in sorted(self.addresses))
        return out

    def follow(self, query: str, answers: list[str]) -> list[str]:
        """Take the addresses of a DNS answer for this intent's domain (or
        a name under it); return the addresses new to the intent."""
        if not self.dst_domain:
            return []
        q = query.lower().rstrip(".")
        if q != self.dst_domain and not q.endswith("." + self.dst_domain):
            return []
        new = []
        for a in answers:
            try:
                ipaddress.ip_address(a)
            except ValueError:
                continue  # a CNAME or another name in the answer
            if a not in self.addresses:
                self.addresses.add(a)
                new.append(a)
        return new

    def matches(
        self, orig_h: str, resp_h: str, resp_p: int | None, proto: str | None
    ) -> bool:
        """True when a connection from ``orig_h`` to ``resp_h`` (or back)
        falls under this intent: what it would cut."""
        if self.action == "reset":
            assert self.conn is not None
            ends = {self.conn[0], self.conn[2]}
            return {orig_h, resp_h} == ends and resp_p in (self.conn[1], self.conn[3])
        if self.target == orig_h:
            peer, port = resp_h, resp_p
        elif self.target == resp_h:
            peer, port = orig_h, None  # the device answering: any of its ports
        else:
            return False
        if self.action == "quarantine":
            return True  # infrastructure is subtracted by the caller
        if self.action == "enforce":
            return peer not in self.allow
        if self.proto is not None and proto != self.proto:
            return False
        if self.port is not None and port is not None and port != self.port:
            return False
        try:
            addr = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(addr in ipaddress.ip_network(n) for n in self.networks())

    def record(self) -> dict[str, Any]:
        """The fields of the intent as they go into ``actions.log``."""
        r: dict[str, Any] = {
            "id": self.id,
            "action": self.action,
            "state": self.state,
            "mode": self.mode,
            "target": self.target,
            "target_mac": self.target_mac,
            "dst_ip": self.dst_ip,
            "dst_net": self.dst_net,
            "dst_domain": self.dst_domain,
            "port": self.port,
            "proto": self.proto,
            "conn": list(self.conn) if self.conn else None,
            "allow": list(self.allow) or None,
            "addresses": sorted(self.addresses) or None,
            "reason": self.reason,
            "detection": self.detection or None,
            "requested_by": self.requested_by,
            "created": self.created,
            "expires": self.expires,
            "blast_radius": self.blast_radius,
        }
        return {k: v for k, v in r.items() if v is not None}


def from_record(r: dict[str, Any]) -> Intent:
    """The intent an :meth:`Intent.record` describes (the state file)."""
    kw: dict[str, Any] = {
        k: r[k]
        for k in (
            "action",
            "target",
            "reason",
            "requested_by",
            "created",
            "expires",
            "id",
            "state",
            "mode",
            "blast_radius",
        )
        if k in r
    }
    for k in (
        "detection",
        "dst_ip",
        "dst_net",
        "dst_domain",
        "port",
        "proto",
        "target_mac",
    ):
        if r.get(k) is not None:
            kw[k] = r[k]
    if r.get("conn"):
        a, ap, b, bp = r["conn"]
        kw["conn"] = (str(a), int(ap), str(b), int(bp))
    kw["allow"] = list(r.get("allow") or [])
    kw["addresses"] = set(r.get("addresses") or [])
    return Intent(**kw)


def _address(name: str, value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise IntentError(f"{name} {value!r}: not an IP address") from None
