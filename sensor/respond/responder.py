"""The responder: alerts in, actions out, and the operator's controls.

:class:`Responder` is the pipeline's response stage (the ``Responder``
protocol of :mod:`sensor.pipeline`) and the object the API drives. It turns
each alert into intents (:mod:`sensor.respond.intent`), lets the policy
(:mod:`sensor.respond.policy`) decide their mode, hands those in force to
the back-ends (:mod:`sensor.respond.backends`), and writes every change as
one ``actions.log`` record naming who made it.

Pipeline side (packet time is the clock)::

    observe(log, record) -> records   # conn: blast radius; dns: follow domains
    consider(alert)      -> records   # the policy step for one alert
    finish(now)          -> records   # end of input (replay) or stop
    tick(now)            -> records   # live: expiries, back-end news,
                                      # reconciler, operator changes

Operator side (the API's ``ActionBook``; thread-safe; each change returns
the new ``actions.log`` record, for the caller to write, and raises
:class:`ResponseError` with one line and a ``kind`` when it cannot be
done; ``now`` defaults to the latest time the responder has seen)::

    listed(states=None)                     -> [Intent]
    get(id)                                 -> Intent
    approve(id, who, reason)                -> record   # pending -> active
    clear(id, who, reason)                  -> record   # lift; suppress the
                                                        # same action for the
                                                        # same reason until
                                                        # its original expiry
    extend(id, seconds, who, reason)        -> record
    block(src, dst, port, proto, seconds, who, reason) -> record
    create(action, target, who=, reason=, seconds=, dst_ip=, dst_net=,
           dst_domain=, port=, proto=, conn=, allow=) -> record

Every ``actions.log`` record is the intent's fields (see
:meth:`Intent.record`, among them ``state``) plus ``ts``, ``change`` (what
happened: ``propose``, ``apply``, ``create``, ``approve``, ``refuse``,
``clear``, ``extend``, ``follow``, ``reset``, ``expire``, ``fail``,
``end``), ``who`` (``sensor``, a back-end, or the operator),
``change_reason`` (the alert's summary, the operator's reason, why it was
refused), ``changed`` (wall time of the change) and ``backend``.

Blast radius: every later connection record whose two ends fall under an
open intent (observed, pending or active) and that overlaps its lifetime
counts as one connection it would have cut (or did cut); the count is in
the intent's ``expired`` or ``ended`` record. In a replay (dry run, mode
observe by default) this tells how disruptive each action would have been.

State (live): with ``state_path``, the open intents and the operator's
mode are saved there at every change and read back at start. The file is
locked (``<state_path>.lock``) from start to :meth:`Responder.close`; a
second responder on it raises :class:`sensor.lockfile.InUse`.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sensor.detect.alert import Alert
from sensor.lockfile import InUse, LockFile
from sensor.respond.backends import Backend, BackendError
from sensor.respond.backends.dryrun import DryRun
from sensor.respond.intent import (
    FINAL,
    Intent,
    IntentError,
    domain_problem,
    from_record,
    not_a_host,
)
from sensor.respond.policy import MODES, Policy

log = logging.getLogger(__name__)

Record = tuple[str, dict[str, Any]]

#: States whose intents count blast radius and can expire.
OPEN = frozenset({"observed", "pending", "active"})


#: ``who`` of the changes the sensor makes itself.
SENSOR = "sensor"

#: ``change_reason`` of an intent refused because an operator cleared the
#: same action for the same reason (any other refusal is a never-act rule).
SUPPRESSED = "an operator cleared the same action for the same reason"


class ResponseError(Exception):
    """An operator request that cannot be done; the message says why.

    ``kind`` is ``not_found`` (no such action), ``invalid`` (a bad
    argument), ``precondition`` (the action's state does not allow it) or
    ``exists`` (an operator's create of an action already in force that
    would not move its expiry later)."""

    def __init__(self, msg: str, kind: str = "invalid") -> None:
        super().__init__(msg)
        self.kind = kind


#: The policy settings an operator changes through the API (SetMode); the
#: live daemon keeps them in its state file, so that a restart keeps them.
MODE_FIELDS = ("mode", "autonomous", "confirm", "observe_tags", "confirm_tags")


class Responder:
    """The response stage: policy, intents, back-ends, operator controls."""

    def __init__(
        self,
        policy: Policy | None = None,
        backends: list[Backend] | None = None,
        *,
        tags: Callable[[str], list[str]] | None = None,
        state_path: str | None = None,
        reconcile_seconds: float = 10.0,
    ) -> None:
        self.policy = policy or Policy()
        self.backends: list[Backend] = backends if backends is not None else [DryRun()]
        #: Tags (and roles) the models know for an address.
        self.tags = tags or (lambda ip: [])
        self.state_path = state_path
        self.reconcile_seconds = reconcile_seconds
        #: Every intent by id, final ones included (the API lists them).
        self.intents: dict[str, Intent] = {}
        #: Address -> ids of open intents about it (target or reset peer).
        self._by_ip: dict[str, set[str]] = {}
        self._next_expiry = float("inf")
        self._next_reconcile = 0.0
        #: Latest time seen (packet time in a replay, wall time live).
        self.now = 0.0
        self.lock = threading.RLock()
        #: The mode an operator set (MODE_FIELDS, who, reason, changed), or
        #: None while the configuration's holds.
        self.mode_set: dict[str, Any] | None = None
        self._state_lock: LockFile | None = None
        self._save_failed = False
        if state_path:
            self._hold(state_path)
        if state_path and os.path.exists(state_path):
            self._load(state_path)

    # -- pipeline --------------------------------------------------------

    def observe(self, log: str, record: dict[str, Any]) -> list[Record]:
        """See one finished record: count blast radius, follow domains."""
        with self.lock:
            ts = record.get("ts")
            out: list[Record] = []
            if isinstance(ts, (int, float)):
                self.now = max(self.now, float(ts))
                out = self._expire(float(ts))
            if log == "conn" and self._by_ip:
                self._count(record)
            elif log == "dns" and record.get("answers"):
                out += self._follow(record)
            return out

    def consider(self, alert: Alert) -> list[Record]:
        """The policy step for one alert; the records of what it decided."""
        with self.lock:
            self.now = max(self.now, alert.ts)
            out = self._expire(alert.ts)
            target = alert.device.ip or alert.src.ip
            if not target:
                return out
            tags = self.policy.tags(target, self.tags(target))
            mode = self.policy.mode(alert.detection, alert.score, tags)
            for action in self.policy.actions_for(alert.detection):
                intent = self._intent(action, target, alert)
                if intent is None or self._duplicate(intent):
                    continue
                intent.mode = mode
                out += self._decide(
                    intent, tags, intent.created, SENSOR, why=alert.summary
                )
            self._save()
            return out

    def finish(self, now: float) -> list[Record]:
        """End of input: what expired, then one ``ended`` record per open
        intent with its blast radius. Kernel state is left to its timeouts."""
        with self.lock:
            out = self.tick(now)
            for intent in self.intents.values():
                if intent.state in OPEN:
                    out.append(self._record(intent, now, "end", SENSOR, "end of input"))
            self._save()
            return out

    def tick(self, now: float) -> list[Record]:
        """Live upkeep at wall time ``now``: expiries, back-end news, the
        breaker, the reconciler, and the records of operator changes."""
        with self.lock:
            self.now = max(self.now, now)
            out = self._expire(now)
            out += self._backend_news(now)
            _, alerts = self.policy.breaker(now, acting=False)
            out += [("alerts", a) for a in alerts]
            if now >= self._next_reconcile:
                self._next_reconcile = now + self.reconcile_seconds
                # Once a reconcile period: the ticks come with every batch.
                out += self._never_act_now(now)
                out += self.reconcile(now)
            return out

    def reconcile(self, now: float) -> list[Record]:
        """Re-assert every active intent in every back-end."""
        with self.lock:
            active = [
                i
                for i in self.intents.values()
                if i.state == "active" and i.expires > now
            ]
            out: list[Record] = []
            for b in self.backends:
                try:
                    b.reconcile([i for i in active if i.action in b.actions], now)
                except BackendError as e:
                    log.error("response: %s: reconcile failed: %s", b.name, e)
            return out

    # -- operator --------------------------------------------------------

    def listed(self, states: set[str] | None = None) -> list[Intent]:
        """Intents, oldest first; only those in ``states`` when given."""
        with self.lock:
            return [
                i for i in self.intents.values() if states is None or i.state in states
            ]

    def get(self, id: str) -> Intent:
        """The intent with ``id``; ResponseError (not_found) when none."""
        with self.lock:
            try:
                return self.intents[id]
            except KeyError:
                raise ResponseError(f"no action {id!r}", "not_found") from None

    def approve(
        self, action_id: str, who: str, reason: str = "", now: float | None = None
    ) -> dict[str, Any]:
        """Put a pending intent in force; its new ``actions`` record."""
        with self.lock:
            now = self._clock(now)
            intent = self.get(action_id)
            if intent.state != "pending":
                raise ResponseError(
                    f"action {action_id} is {intent.state}, not pending: only a pending action can be approved",
                    "precondition",
                )
            if now >= intent.expires:
                raise ResponseError(
                    f"action {action_id} expired at {intent.expires:.0f}",
                    "precondition",
                )
            records = self._apply(intent, now, who, "approve", reason)
            self._save()
            return records[-1][1]

    def clear(
        self, action_id: str, who: str, reason: str = "", now: float | None = None
    ) -> dict[str, Any]:
        """Lift an intent and suppress the same action for the same reason
        until its original expiry; its new ``actions`` record."""
        with self.lock:
            now = self._clock(now)
            intent = self.get(action_id)
            if intent.state in FINAL:
                raise ResponseError(
                    f"action {action_id} is already {intent.state}", "precondition"
                )
            self._lift(intent, "cleared", now)
            self.policy.suppress(intent)
            self._save()
            return self._record(intent, now, "clear", who, reason)[1]

    def extend(
        self,
        action_id: str,
        seconds: float,
        who: str,
        reason: str = "",
        now: float | None = None,
        max_seconds: float | None = None,
    ) -> dict[str, Any]:
        """Move an open intent's expiry ``seconds`` later (counted from now
        if it has passed); its new ``actions`` record. With ``max_seconds``,
        an expiry more than that from now is refused (``invalid``), naming
        the latest one possible: repeated extends stay under the cap."""
        with self.lock:
            now = self._clock(now)
            intent = self.get(action_id)
            if intent.state not in OPEN:
                raise ResponseError(
                    f"action {action_id} is {intent.state}; only open actions can be extended",
                    "precondition",
                )
            if seconds <= 0:
                raise ResponseError(
                    f"extend by {seconds:g} s: must be more than 0", "invalid"
                )
            expires = max(intent.expires, now) + seconds
            if max_seconds is not None and expires > now + max_seconds:
                raise ResponseError(
                    beyond_cap(action_id, expires, now, max_seconds), "invalid"
                )
            return self._move_expiry(intent, expires, now, who, reason)

    def _move_expiry(
        self, intent: Intent, expires: float, now: float, who: str, reason: str
    ) -> dict[str, Any]:
        # The back-ends are given the intent again: nftables sets the new
        # timeout of its element.
        intent.expires = expires
        self._next_expiry = min(self._next_expiry, intent.expires)
        self._reapply(intent, now, "extend", intent.id)
        self._save()
        return self._record(intent, now, "extend", who, reason)[1]

    def block(
        self,
        src: str,
        dst: str,
        port: int | None,
        proto: str | None,
        seconds: float,
        who: str,
        reason: str,
        now: float | None = None,
    ) -> dict[str, Any]:
        """An operator's block of ``src`` to ``dst`` (address, network or
        domain), in force at once; its ``actions`` record."""
        where: dict[str, Any] = {
            "port": port or None,
            "proto": proto or ("tcp" if port else None),
        }
        if "/" in dst:
            where["dst_net"] = dst
        elif any(c.isalpha() for c in dst) and ":" not in dst:
            where["dst_domain"] = dst
        else:
            where["dst_ip"] = dst
        return self.create(
            "block", src, who=who, reason=reason, seconds=seconds, now=now, **where
        )

    def create(
        self,
        action: str,
        target: str,
        *,
        who: str,
        reason: str = "operator",
        seconds: float | None = None,
        now: float | None = None,
        **where: Any,
    ) -> dict[str, Any]:
        """An operator's own action (any of the four), in force at once
        unless the never-act list or a suppression refuses it; its record.
        ``where``: dst_ip, dst_net, dst_domain, port, proto, conn, allow,
        target_mac."""
        with self.lock:
            now = self._clock(now)
            if seconds is not None and seconds <= 0:
                raise ResponseError(
                    f"duration {seconds:g} s: must be more than 0", "invalid"
                )
            if action not in self.policy.config.durations:
                raise ResponseError(
                    f"action {action!r}: must be one of reset, block, enforce, quarantine",
                    "invalid",
                )
            domain = where.get("dst_domain")
            problem = domain_problem(str(domain)) if domain is not None else None
            if problem is not None:
                raise ResponseError(
                    f"destination {domain!r}: neither an IP address, a network (CIDR) "
                    f"nor a domain name: {problem}",
                    "invalid",
                )
            expires = (
                now + seconds
                if seconds
                else self.policy.expiry(now, action, f"{target}{now}")
            )
            try:
                intent = Intent(
                    action=action,
                    target=target,
                    reason=reason or "operator",
                    requested_by=who,
                    created=now,
                    expires=expires,
                    **where,
                )
            except (IntentError, TypeError) as e:
                raise ResponseError(str(e), "invalid") from None
            # The same action already in force (whatever its reason): a
            # create never shortens it. A later expiry extends it (recorded
            # as an extend); an earlier or equal one is refused.
            current = self._in_force(intent)
            if current is not None:
                if intent.expires <= current.expires:
                    raise ResponseError(
                        f"action {current.id} is already in force until "
                        f"{utc_time(current.expires)}, and this create would end at "
                        f"{utc_time(intent.expires)}, no later; a create never shortens an action "
                        f"(to keep it longer: sensorctl extend {current.id} --for DURATION)",
                        "exists",
                    )
                return self._move_expiry(current, intent.expires, now, who, reason)
            intent.mode = "autonomous"
            tags = self.policy.tags(target, self.tags(target))
            records = self._decide(intent, tags, now, who, operator=True, why=reason)
            self._save()
            return [r for n, r in records if n == "actions"][-1]

    def restored(self) -> list[dict[str, Any]]:
        """The ``actions`` records of the open intents read from the state
        file at start (what the API lists before anything changes them)."""
        with self.lock:
            return [
                self._record(
                    i, i.created, "apply" if i.state == "active" else "propose",
                    SENSOR, RESTORED,
                )[1]
                for i in self.intents.values()
                if i.state in OPEN
            ]

    def mode_changed(self, who: str, reason: str) -> None:
        """An operator changed the policy's mode or its overrides: keep the
        settings now in force, with who changed them, across restarts."""
        with self.lock:
            c = self.policy.config
            self.mode_set = {f: _copy(getattr(c, f)) for f in MODE_FIELDS}
            self.mode_set.update(who=who, reason=reason, changed=time.time())
            self._save()

    def mode_from_configuration(self) -> bool:
        """The configuration was re-read (SIGHUP) and its mode applied: the
        mode an operator set through the API is no longer kept. Whether
        there was one."""
        with self.lock:
            if self.mode_set is None:
                return False
            self.mode_set = None
            self._save()
            return True

    def close(self) -> None:
        """Stop the back-ends (kernel blocks stay until their timeouts)."""
        with self.lock:
            self._save()
            for b in self.backends:
                b.close()
            if self._state_lock is not None:
                self._state_lock.release()

    # -- inside ----------------------------------------------------------

    def _intent(self, action: str, target: str, alert: Alert) -> Intent | None:
        reason = alert.incident or alert.id
        kw: dict[str, Any] = {}
        if action == "reset":
            s, d = alert.src, alert.dst
            if not (s.ip and s.port and d.ip and d.port):
                return None  # no single connection to end
            kw["conn"] = (
                (s.ip, s.port, d.ip, d.port)
                if s.ip == target
                else (d.ip, d.port, s.ip, s.port)
            )
        elif action == "block":
            peer = (
                alert.dst
                if alert.src.ip == target or alert.dst.ip != target
                else alert.src
            )
            if peer.domain:
                kw["dst_domain"] = peer.domain
            elif peer.ip and _blockable(target, peer.ip):
                kw["dst_ip"] = peer.ip
            else:
                return None
        # An alert's ts is its first evidence; the action starts now, when
        # the decision is made (a scan is judged once it has gone quiet).
        now = max(self.now, alert.ts)
        expires = self.policy.expiry(now, action, f"{alert.id}{action}{target}")
        try:
            return Intent(
                action=action,
                target=target,
                reason=reason,
                requested_by=f"detection:{alert.detection}",
                created=now,
                expires=expires,
                detection=alert.detection,
                target_mac=alert.device.mac,
                **kw,
            )
        except IntentError as e:
            log.warning(
                "response: %s: cannot act on alert %s: %s", alert.detection, alert.id, e
            )
            return None

    def _in_force(self, intent: Intent) -> Intent | None:
        same = intent.same_action()
        for i in self.intents.values():
            if i.state == "active" and i.target == intent.target:
                if i.same_action() == same:
                    return i
        return None

    def _duplicate(self, intent: Intent) -> bool:
        same = intent.same_action()
        return any(
            i.state in OPEN and i.same_action() == same
            for i in self.intents.values()
            if i.target == intent.target
        )

    def _decide(
        self,
        intent: Intent,
        tags: list[str],
        now: float,
        by: str,
        operator: bool = False,
        why: str = "",
    ) -> list[Record]:
        self.intents[intent.id] = intent
        refusal = self._never_act(intent, tags)
        if refusal is None and self.policy.is_suppressed(intent, now):
            refusal = SUPPRESSED
        if refusal is not None:
            intent.state = "refused"
            return [self._record(intent, now, "refuse", by, refusal)]
        self._index(intent)
        out: list[Record] = []
        if intent.mode == "autonomous" and not operator:
            ok, alerts = self.policy.breaker(now)
            out += [("alerts", a) for a in alerts]
            if not ok:
                intent.mode = "confirm"
        if intent.mode == "observe":
            intent.state = "observed"
            return out + [self._record(intent, now, "propose", by, why)]
        if intent.mode == "confirm":
            intent.state = "pending"
            return out + [self._record(intent, now, "propose", by, why)]
        if not operator:
            self.policy.count(now)
        return out + self._apply(
            intent, now, by, "create" if operator else "apply", why
        )

    def _apply(
        self, intent: Intent, now: float, by: str, change: str, why: str = ""
    ) -> list[Record]:
        backends = self._backends_for(intent)
        if not backends:
            self._close(intent, "failed")
            return [
                self._record(
                    intent, now, "fail", by, f"no back-end carries {intent.action}"
                )
            ]
        intent.state = "active"
        for b in backends:
            try:
                b.apply(intent, now)
            except BackendError as e:
                self._close(intent, "failed")
                return [self._record(intent, now, "fail", by, str(e))]
        return [self._record(intent, now, change, by, why)]

    def _reapply(self, intent: Intent, now: float, doing: str, what: str) -> None:
        # An active intent changed (its expiry, its addresses): its back-ends
        # are given it again. A failure is logged; the intent stays as it is.
        if intent.state != "active":
            return
        for b in self._backends_for(intent):
            try:
                b.apply(intent, now)
            except BackendError as e:
                log.error("response: %s: cannot %s %s: %s", b.name, doing, what, e)

    def _backends_for(self, intent: Intent) -> list[Backend]:
        return [b for b in self.backends if intent.action in b.actions]

    def _index(self, intent: Intent) -> None:
        ips = {intent.target} | ({intent.conn[2]} if intent.conn else set())
        for ip in ips:
            self._by_ip.setdefault(ip, set()).add(intent.id)
        self._next_expiry = min(self._next_expiry, intent.expires)

    def _close(self, intent: Intent, state: str) -> None:
        intent.state = state
        for ids in self._by_ip.values():
            ids.discard(intent.id)

    def _never_act(self, intent: Intent, tags: list[str] | None = None) -> str | None:
        """Why ``intent`` may not act (its device, or a reset's peer, whose
        connection it ends too, is never-act), or None. ``tags``: the
        device's, when the caller has them."""
        if tags is None:
            tags = self.policy.tags(intent.target, self.tags(intent.target))
        why = self.policy.never_act(intent.target, tags)
        if why is None and intent.conn is not None:
            peer = intent.conn[2]
            why = self.policy.never_act(peer, self.policy.tags(peer, self.tags(peer)))
        return why

    def _lift(self, intent: Intent, state: str, now: float) -> None:
        """Close ``intent`` as ``state``; an active one's back-ends let go."""
        was_active = intent.state == "active"
        self._close(intent, state)
        if not was_active:
            return
        for b in self._backends_for(intent):
            try:
                b.remove(intent, now)
            except BackendError as e:
                log.error("response: %s: cannot lift %s: %s", b.name, intent.id, e)

    def _expire(self, now: float) -> list[Record]:
        if now < self._next_expiry:
            return []
        out: list[Record] = []
        nxt = float("inf")
        for intent in self.intents.values():
            if intent.state not in OPEN:
                continue
            if intent.expires > now:
                nxt = min(nxt, intent.expires)
                continue
            self._lift(intent, "expired", now)
            out.append(self._record(intent, now, "expire", SENSOR, "expiry reached"))
        self._next_expiry = nxt
        if out:
            self._save()
        return out

    def _count(self, r: dict[str, Any]) -> None:
        orig, resp = str(r.get("id.orig_h")), str(r.get("id.resp_h"))
        ids = self._by_ip.get(orig, set()) | self._by_ip.get(resp, set())
        if not ids:
            return
        start = float(r.get("ts", 0.0))
        end = start + float(r.get("duration") or 0.0)
        for id in ids:
            i = self.intents[id]
            if (
                i.state in OPEN
                and end >= i.created
                and start < i.expires
                and i.matches(
                    orig,
                    resp,
                    r.get("id.resp_p"),
                    r.get("proto"),
                )
            ):
                i.blast_radius += 1

    def _follow(self, r: dict[str, Any]) -> list[Record]:
        out: list[Record] = []
        query = str(r.get("query") or "")
        ts = float(r.get("ts", 0.0))
        for intent in self.intents.values():
            if intent.state not in OPEN or not intent.dst_domain:
                continue
            new = intent.follow(query, [str(a) for a in r["answers"]])
            if not new:
                continue
            self._reapply(intent, ts, "follow", intent.dst_domain)
            out.append(
                self._record(
                    intent, ts, "follow", SENSOR, f"{query} -> {', '.join(new)}"
                )
            )
        return out

    def _never_act_now(self, now: float) -> list[Record]:
        # A device that became never-act (the configuration was re-read, or
        # the models learned its role) has its open actions lifted.
        out: list[Record] = []
        for intent in [i for i in self.intents.values() if i.state in OPEN]:
            why = self._never_act(intent)
            if why is None:
                continue
            self._lift(intent, "cleared", now)
            log.warning("response: %s lifted: %s (never-act)", intent.id, why)
            out.append(self._record(intent, now, "clear", SENSOR, f"{why} (never-act)"))
        if out:
            self._save()
        return out

    def _backend_news(self, now: float) -> list[Record]:
        out: list[Record] = []
        for b in self.backends:
            for ev in b.poll():
                intent = self.intents.get(ev.get("id", ""))
                if intent is None:
                    continue
                change = ev["change"]
                if change == "reset":
                    self._close(intent, "done")
                elif change in ("fail", "expire"):
                    self._close(intent, "failed" if change == "fail" else "expired")
                extra = {
                    k: v for k, v in ev.items() if k not in ("id", "change", "msg")
                }
                out.append(
                    self._record(
                        intent, now, change, b.name, ev.get("msg", ""), **extra
                    )
                )
        if out:
            self._save()
        return out

    def _record(
        self,
        intent: Intent,
        ts: float,
        change: str,
        who: str,
        why: str = "",
        **extra: Any,
    ) -> Record:
        r = {
            "ts": ts,
            **intent.record(),
            "change": change,
            "who": who,
            "change_reason": why or None,
            "changed": time.time(),
            "backend": "+".join(b.name for b in self._backends_for(intent)) or None,
        }
        r.update(extra)
        return ("actions", {k: v for k, v in r.items() if v is not None})

    def _clock(self, now: float | None) -> float:
        # Packet time in a replay (the latest record or tick), else wall time.
        if now is not None:
            return now
        return self.now if self.now > 0 else time.time()

    def _hold(self, path: str) -> None:
        # The state file belongs to its directory, not to one model state:
        # two daemons sharing it would take over each other's intents and
        # mode. It is replaced whole at every save, so the lock is on a
        # file beside it that stays put.
        lock = LockFile(f"{path}.lock", path)
        try:
            lock.acquire()
        except InUse:
            raise
        except OSError as e:
            # Saving will fail too, and says so; the response still runs.
            log.warning("response: %s: cannot lock the state: %s", path, e.strerror)
            return
        self._state_lock = lock

    def _save(self) -> None:
        if not self.state_path:
            return
        keep = [i.record() for i in self.intents.values() if i.state in OPEN]
        data: dict[str, Any] = {"intents": keep}
        if self.mode_set is not None:
            data["mode"] = self.mode_set
        tmp = f"{self.state_path}.tmp"
        try:
            Path(tmp).write_text(json.dumps(data))
            os.replace(tmp, self.state_path)
        except OSError as e:
            # Said once until a save works again: every change tries.
            if not self._save_failed:
                log.warning(
                    "response: %s: cannot save state: %s (said once until it can)",
                    self.state_path, e.strerror,
                )  # fmt: skip
            self._save_failed = True
            return
        if self._save_failed:
            self._save_failed = False
            log.warning("response: %s: state saved again", self.state_path)

    def _load(self, path: str) -> None:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            log.warning("response: %s: cannot read state, starting empty: %s", path, e)
            return
        saved = data.get("intents") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(saved, (list, type(None))):
            log.warning(
                "response: %s: cannot read state, starting empty: not the "
                "object of intents this sensor writes",
                path,
            )
            return
        # One unreadable action costs only itself, not the others nor the mode.
        bad: list[str] = []
        for r in saved or []:
            try:
                if not isinstance(r, dict):
                    raise IntentError("not an object")
                intent = from_record(r)
            except (KeyError, TypeError, ValueError, IntentError) as e:
                bad.append(str(e) or type(e).__name__)
                continue
            self.intents[intent.id] = intent
            self._index(intent)
        if bad:
            log.warning(
                "response: %s: %d of %d saved actions are unreadable and left "
                "out (the first: %s)",
                path, len(bad), len(saved or []), bad[0][:200],
            )  # fmt: skip
        if data.get("mode") is not None:
            self._load_mode(path, data["mode"])

    def _load_mode(self, path: str, saved: Any) -> None:
        # The mode an operator set before the restart wins over the
        # configuration's; what does not read as one is ignored, loudly.
        fields = saved if isinstance(saved, dict) else {}
        wrong = [
            f
            for f in MODE_FIELDS
            if not (
                fields.get(f) in MODES
                if f == "mode"
                else isinstance(fields.get(f), list)
                and all(isinstance(x, str) for x in fields[f])
            )
        ]
        if wrong:
            log.warning(
                "response: %s: the saved mode is not readable (%s), the "
                "configuration's mode holds",
                path,
                ", ".join(wrong),
            )
            return
        c = self.policy.config
        if all(getattr(c, f) == fields[f] for f in MODE_FIELDS):
            self.mode_set = dict(fields)
            return
        log.warning(
            "response: mode %s (overrides: %s), as set by %s through the API, "
            "replaces the configuration's mode %s; sensorctl mode changes it",
            fields["mode"],
            _overrides(fields),
            fields.get("who", "an operator"),
            c.mode,
        )
        for f in MODE_FIELDS:
            setattr(c, f, _copy(fields[f]))
        self.mode_set = dict(fields)


#: ``change_reason`` of an intent kept across a restart.
RESTORED = "kept across a restart (response-state.json)"


def _blockable(target: str, dst: str) -> bool:
    """Whether a block of ``target`` to ``dst`` would stop one device's
    traffic to another host: not to itself, a group, no address or the
    other address family (such a block matches nothing or everything)."""
    try:
        a, b = ipaddress.ip_address(target), ipaddress.ip_address(dst)
    except ValueError:
        return False
    return a.version == b.version and a != b and not_a_host(b) is None


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def _overrides(fields: dict[str, Any]) -> str:
    """The per-detection and per-tag modes of saved settings, for a log line."""
    parts = [
        f"{name}={mode}"
        for mode, key in (
            ("autonomous", "autonomous"),
            ("confirm", "confirm"),
            ("observe", "observe_tags"),
            ("confirm", "confirm_tags"),
        )
        for name in fields[key]
    ]
    return ", ".join(parts) or "none"


def beyond_cap(action_id: str, expires: float, now: float, cap: float) -> str:
    """The refusal of an extend to ``expires``, more than ``cap`` seconds
    from ``now``."""
    return (
        f"action {action_id} would expire at {utc_time(expires)}, more than "
        f"{cap / 86400:g} days from now: an action expires at most "
        f"{cap / 86400:g} days ahead, however often it is extended; the latest "
        f"possible expiry is {utc_time(now + cap)}"
    )


def utc_time(ts: float) -> str:
    """``ts`` as a UTC time for messages: 2024-05-01 12:00:00 UTC."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))
