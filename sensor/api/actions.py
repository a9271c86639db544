"""Operator changes to actions: approve, clear, extend, and manual blocks.

The response stage (``sensor.respond``) owns actions; the API asks it to
change them through an :class:`ActionBook`. Until a responder that takes
operator changes is wired in, :class:`DryRunBook` keeps the actions itself:
it reads the ``actions`` records the pipeline writes, and, when no response
stage runs at all, proposes one pending ``block`` per alert (mode confirm),
so that a replay can be explored and steered with ``sensorctl``. Its
back-end is the dry run: nothing is put in force outside the sensor.

Every change needs a reason and names who made it; each one gives a new
``actions.log`` record (the intent's fields plus ``change``, ``who``,
``change_reason`` and ``changed``, the wall-clock time of the change).
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable
from typing import Any, Protocol

from sensor.api.errors import (
    AlreadyExists,
    ApiError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    quote,
)
from sensor.respond.intent import domain_problem, not_a_host
from sensor.respond.responder import SUPPRESSED, beyond_cap, utc_time

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Where IPv6 holds the IPv4 addresses it maps (RFC 4291 2.5.5.2).
_MAPPED = ipaddress.ip_network("::ffff:0:0/96")

#: Longest duration an operator may give (an action must expire), and the
#: farthest from now an extend may move an expiry, however often repeated.
MAX_DURATION = 90 * 86400.0

#: Life of an action the fallback proposes for an alert.
PROPOSED_SECONDS = 3600.0

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")

#: States in which an action is over (as sensor.respond.intent.FINAL).
FINAL = frozenset({"cleared", "expired", "refused", "failed"})


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``90``, ``90s``, ``30m``, ``2h``, ``1d``, ``1h30m``.

    Raises :class:`InvalidArgument` naming the text and what was expected.
    """
    t = text.strip().lower()
    if not t:
        raise InvalidArgument(
            "duration is missing: give one such as 90s, 30m, 2h or 1d"
        )
    try:
        seconds = float(t)
    except ValueError:
        parts = _PART.findall(t)
        if not parts or "".join(n + u for n, u in parts) != t:
            raise InvalidArgument(
                f"duration {quote(text)}: expected a number with a unit s, m, h, d or w, "
                "such as 90s, 30m, 2h or 1h30m"
            ) from None
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not 0 < seconds <= MAX_DURATION:
        raise InvalidArgument(
            f"duration {quote(text)}: must be more than 0 and at most {MAX_DURATION / 86400:g} days"
        )
    return seconds


def need_reason(reason: str, what: str) -> str:
    """The reason, stripped; InvalidArgument when there is none."""
    r = reason.strip()
    if not r:
        raise InvalidArgument(
            f"{what} needs a reason (--reason): say why, for the audit trail"
        )
    return r


class ActionBook(Protocol):
    """What the API asks of the response stage. Each method returns the
    new ``actions.log`` record of the action it changed or made."""

    def approve(self, action_id: str, who: str, reason: str) -> dict[str, Any]: ...
    def clear(self, action_id: str, who: str, reason: str) -> dict[str, Any]: ...
    def extend(
        self, action_id: str, seconds: float, who: str, reason: str
    ) -> dict[str, Any]: ...
    def block(
        self,
        src: str,
        dst: str,
        port: int | None,
        proto: str | None,
        seconds: float,
        who: str,
        reason: str,
    ) -> dict[str, Any]: ...


class DryRunBook:
    """Actions kept by the API itself, carried out by the dry run.

    ``now`` gives the clock that expiries are measured on: packet time in a
    replay, wall time live. ``propose`` makes a pending block per alert.
    """

    def __init__(self, now: Callable[[], float], propose: bool = False) -> None:
        self.now = now
        self.propose = propose
        #: Latest record of every action, by id.
        self.actions: dict[str, dict[str, Any]] = {}
        self._count = 0

    def observe(self, record: dict[str, Any]) -> None:
        """Take an ``actions`` record written by the response stage."""
        if record.get("id"):
            self.actions[str(record["id"])] = dict(record)

    def consider(self, alert: dict[str, Any]) -> dict[str, Any] | None:
        """A pending block for an alert record, when proposing; else None."""
        src = (alert.get("src") or {}).get("ip") or (alert.get("device") or {}).get(
            "ip"
        )
        dst = (alert.get("dst") or {}).get("ip")
        if not self.propose or not src or not dst or src == dst:
            return None
        ts = float(alert.get("ts") or self.now())
        port = (alert.get("dst") or {}).get("port")
        record = self._new(
            "block", src, dst, port, "tcp" if port else None, ts, PROPOSED_SECONDS,
            reason=str(alert.get("id") or ""), requested_by=str(alert.get("detection") or ""),
            state="pending", mode="confirm",
        )  # fmt: skip
        record.update(
            change="propose", who="sensor", change_reason=alert.get("summary", "")
        )
        return record

    def approve(self, action_id: str, who: str, reason: str) -> dict[str, Any]:
        """Put a pending action in force."""
        a = self._get(action_id)
        if a["state"] != "pending":
            raise FailedPrecondition(
                f"action {action_id} is {a['state']}, not pending: only a pending action can be approved"
            )
        if a["expires"] <= self.now():
            return self._change(
                a, "expire", "sensor", "expired before approval", "expired"
            )
        return self._change(a, "approve", who, reason, "active")

    def clear(self, action_id: str, who: str, reason: str) -> dict[str, Any]:
        """Lift an action that is pending or in force."""
        a = self._get(action_id)
        if a["state"] in FINAL or a["state"] == "observed":
            raise FailedPrecondition(
                f"action {action_id} is already {a['state']}: only a pending or active action can be cleared"
            )
        return self._change(a, "clear", who, reason, "cleared")

    def extend(
        self, action_id: str, seconds: float, who: str, reason: str
    ) -> dict[str, Any]:
        """Add ``seconds`` to the expiry (counted from now if it has passed);
        an expiry more than MAX_DURATION from now is InvalidArgument."""
        a = self._get(action_id)
        if a["state"] in FINAL:
            raise FailedPrecondition(
                f"action {action_id} is already {a['state']}: only a pending or active action can be extended"
            )
        now = self.now()
        expires = max(float(a["expires"]), now) + seconds
        if expires > now + MAX_DURATION:
            raise InvalidArgument(beyond_cap(action_id, expires, now, MAX_DURATION))
        a = dict(a, expires=expires)
        return self._change(a, "extend", who, reason, a["state"])

    def block(
        self,
        src: str,
        dst: str,
        port: int | None,
        proto: str | None,
        seconds: float,
        who: str,
        reason: str,
    ) -> dict[str, Any]:
        """A manual block of ``src`` to ``dst``, in force at once. The same
        block already in force is extended when this one ends later, and
        refused (AlreadyExists) when it would not: a create never shortens."""
        src, dst = _check_block(src, dst, port, proto)
        if port and not proto:
            proto = "tcp"
        current = self._in_force(src, dst, port, proto)
        if current is not None:
            expires = self.now() + seconds
            if expires <= current["expires"]:
                raise AlreadyExists(
                    f"action {current['id']} is already in force until "
                    f"{utc_time(current['expires'])}, and this create would end at "
                    f"{utc_time(expires)}, no later; a create never shortens an action (to "
                    f"keep it longer: sensorctl extend {current['id']} --for DURATION)"
                )
            return self._change(
                dict(current, expires=expires), "extend", who, reason, "active"
            )
        record = self._new(
            "block", src, dst, port, proto, self.now(), seconds, reason=reason,
            requested_by=who, state="active", mode="manual",
        )  # fmt: skip
        record.update(
            change="create", who=who, change_reason=reason, changed=time.time()
        )
        self.actions[record["id"]] = record
        return record

    def _in_force(
        self, src: str, dst: str, port: int | None, proto: str | None
    ) -> dict[str, Any] | None:
        # The fields _new() gives a block, compared with each active one's.
        probe = self._new_fields(src, dst, port, proto)
        for a in self.actions.values():
            if a["state"] == "active" and a["action"] == "block" and all(
                a.get(k) == v for k, v in probe.items()
            ):
                return a
        return None

    def expire(self) -> list[dict[str, Any]]:
        """Records of the actions whose expiry has passed, now expired."""
        now = self.now()
        due = [
            a for a in self.actions.values()
            if a["state"] in ("pending", "active") and a["expires"] <= now
        ]  # fmt: skip
        return [
            self._change(a, "expire", "sensor", "expiry reached", "expired")
            for a in due
        ]

    def _new(
        self,
        action: str,
        src: str,
        dst: str,
        port: int | None,
        proto: str | None,
        created: float,
        seconds: float,
        **fields: Any,
    ) -> dict[str, Any]:
        self._count += 1
        record: dict[str, Any] = {
            "id": f"X{self._count:06d}",
            "action": action,
            **self._new_fields(src, dst, port, proto),
            "created": created,
            "expires": created + seconds,
            "backend": "dry-run",
            **fields,
        }
        record = {k: v for k, v in record.items() if v is not None}
        self.actions[record["id"]] = record
        return record

    @staticmethod
    def _new_fields(
        src: str, dst: str, port: int | None, proto: str | None
    ) -> dict[str, Any]:
        # Where an action acts: its target, destination, port and protocol.
        where: dict[str, Any] = {"target": src, "port": port, "proto": proto,
                                 "dst_ip": None, "dst_net": None, "dst_domain": None}  # fmt: skip
        if "/" in dst:
            where["dst_net"] = dst
        else:
            try:
                ipaddress.ip_address(dst)
                where["dst_ip"] = dst
            except ValueError:
                where["dst_domain"] = dst.lower().rstrip(".")
        return where

    def _get(self, action_id: str) -> dict[str, Any]:
        a = self.actions.get(action_id)
        if a is None:
            raise NotFound(f"no action {quote(action_id)} (sensorctl actions lists them)")
        return a

    def _change(
        self, a: dict[str, Any], change: str, who: str, reason: str, state: str
    ) -> dict[str, Any]:
        record = dict(a, state=state, change=change, who=who, change_reason=reason)
        record["changed"] = time.time()
        self.actions[record["id"]] = record
        return record


def _check_block(
    src: str, dst: str, port: int | None, proto: str | None
) -> tuple[str, str]:
    """The device and destination of a manual block in canonical form (an
    IPv4-mapped IPv6 address is the IPv4 address it maps, so that it meets
    the never-act list and the self check as itself); InvalidArgument for
    what blocks nothing or the wrong thing."""
    try:
        device = _canonical(ipaddress.ip_address(src))
    except ValueError:
        raise InvalidArgument(
            f"source {quote(src)}: not an IP address (the device to block)"
        ) from None
    _check_device(device)
    if not dst:
        raise InvalidArgument(
            "destination is missing: an IP address, a network or a domain"
        )
    if "/" in dst:
        try:
            net = _canonical_net(ipaddress.ip_network(dst, strict=False))
        except ValueError:
            raise InvalidArgument(f"destination {quote(dst)}: not a network") from None
        if net.prefixlen == 0:
            raise InvalidArgument(
                f"destination {quote(dst)}: every address; blocking all of a device's "
                "traffic cuts it off, which is a quarantine (that keeps DNS, DHCP "
                "and the gateway: response.quarantine_allow), not a block: block "
                "the destinations themselves"
            )
        if device in net:
            raise InvalidArgument(
                f"destination {quote(dst)} holds the device {device} itself: give the "
                "destinations outside it (narrower networks or addresses)"
            )
        if net.is_loopback:
            raise InvalidArgument(
                f"destination {quote(dst)}: loopback addresses never cross the "
                "network; a block is of traffic to other hosts"
            )
        _same_family(device, net.version, dst)
        dst = str(net)
    elif _is_address(dst):
        address = _canonical(ipaddress.ip_address(dst))
        if address == device:
            raise InvalidArgument(
                f"destination {quote(dst)} is the device itself: a block is of a device's "
                "traffic to another address, network or domain"
            )
        if address.is_loopback:
            raise InvalidArgument(
                f"destination {quote(dst)}: a loopback address never crosses the "
                "network; a block is of traffic to other hosts"
            )
        _same_family(device, address.version, dst)
        dst = str(address)
    else:
        problem = domain_problem(dst)
        if problem is not None:
            raise InvalidArgument(
                f"destination {quote(dst)}: neither an IP address, a network (CIDR) "
                f"nor a domain name: {problem}"
            )
    if port is not None and not 0 <= port < 65536:
        raise InvalidArgument(f"port {port}: must be 1 to 65535")
    if proto and proto not in ("tcp", "udp"):
        raise InvalidArgument(f"protocol {quote(proto)}: must be tcp or udp")
    return str(device), dst


def _same_family(device: Address, version: int, dst: str) -> None:
    # An IPv4 device never sends to an IPv6 address: such a block would
    # match nothing, in force in name only.
    if device.version != version:
        raise InvalidArgument(
            f"destination {quote(dst)} is IPv{version} and the device {device} "
            f"IPv{device.version}: that block would match nothing; block the "
            f"device's IPv{version} address, if it has one (sensorctl device "
            f"{device} lists its addresses)"
        )


def _canonical(address: Address) -> Address:
    if getattr(address, "scope_id", None):
        raise InvalidArgument(
            f"{address}: an address with a zone (%{address.scope_id}) names an "
            "interface of this host, not one of the network; give the address "
            "without it"
        )
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


def _canonical_net(net: Network) -> Network:
    _canonical(net.network_address)  # refuses a zone
    if isinstance(net, ipaddress.IPv6Network) and net.subnet_of(_MAPPED):
        base = net.network_address.ipv4_mapped
        return ipaddress.ip_network(f"{base}/{net.prefixlen - 96}")
    return net


def _check_device(device: Address) -> None:
    what = not_a_host(device)
    if what is not None:
        raise InvalidArgument(
            f"source {device}: {what}; give the IP address of the device to "
            "block (sensorctl devices lists them)"
        )


def refusal(record: dict[str, Any]) -> ApiError | None:
    """The error for an operator's action that the policy refused, or None.

    The refusal is recorded (``actions.log``, state ``refused``) before the
    caller hears of it. A never-act device is PermissionDenied: no one may
    act on it, operators included. A suppression (an operator cleared the
    same action for the same reason) is FailedPrecondition: it lapses.
    """
    if record.get("state") != "refused":
        return None
    why = str(record.get("change_reason") or "refused by the policy")
    where = f"action {record.get('id')} refused: {why}"
    if why == SUPPRESSED:
        return FailedPrecondition(
            f"{where} (suppressed until the cleared action's original expiry)"
        )
    return PermissionDenied(
        f"{where}; never-act devices are never acted on, operators included "
        "(response.never_act_networks, response.never_act_tags, response.device_tags)"
    )


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class ResponderBook:
    """The response stage's own operator controls (sensor.respond's
    Responder), with its errors as API errors: ``not_found`` -> NotFound,
    ``precondition`` -> FailedPrecondition, ``exists`` -> AlreadyExists,
    anything else -> InvalidArgument.
    """

    def __init__(self, responder: Any) -> None:
        self.responder = responder

    def _call(self, fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
        try:
            return fn(*args)
        except Exception as e:
            kind = getattr(e, "kind", None)
            if kind is None:
                raise
            if kind == "not_found":
                raise NotFound(f"{e} (sensorctl actions lists them)") from None
            if kind == "precondition":
                raise FailedPrecondition(str(e)) from None
            if kind == "exists":
                raise AlreadyExists(str(e)) from None
            raise InvalidArgument(str(e)) from None

    def approve(self, action_id: str, who: str, reason: str) -> dict[str, Any]:
        """Put a pending action in force."""
        return self._call(self.responder.approve, action_id, who, reason)

    def clear(self, action_id: str, who: str, reason: str) -> dict[str, Any]:
        """Lift an action."""
        return self._call(self.responder.clear, action_id, who, reason)

    def extend(
        self, action_id: str, seconds: float, who: str, reason: str
    ) -> dict[str, Any]:
        """Move an action's expiry, at most MAX_DURATION from now."""
        return self._call(
            lambda: self.responder.extend(
                action_id, seconds, who, reason, max_seconds=MAX_DURATION
            )
        )

    def block(
        self,
        src: str,
        dst: str,
        port: int | None,
        proto: str | None,
        seconds: float,
        who: str,
        reason: str,
    ) -> dict[str, Any]:
        """A manual block, in force at once unless the never-act list refuses it."""
        src, dst = _check_block(src, dst, port, proto)
        return self._call(
            self.responder.block, src, dst, port, proto, seconds, who, reason
        )
