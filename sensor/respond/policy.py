"""The one policy step between an alert and an action.

For each alert the policy decides, from the detection, the alert's score
and the device's tags, one of three modes:

``observe``
    record what would be done (``actions.log``), do nothing;
``confirm``
    record it as *pending* until an operator approves it;
``autonomous``
    carry it out at once.

The mode starts from the detection (``response.autonomous`` and
``response.confirm`` list detection names; others get ``response.mode``),
and can only become more careful after that: a score under
``response.autonomous_min_score`` turns autonomous into confirm, one under
``response.min_score`` into observe; a device tag in
``response.confirm_tags`` or ``response.observe_tags`` caps it; degraded
capture caps it at confirm (a partial view is no ground for acting alone);
and so does the circuit breaker.

Never-act: a target in ``response.never_act_networks``, or a device with a
tag (or model role) in ``response.never_act_tags`` (gateways, DNS servers,
domain controllers by default), is never acted on, whoever asks; the intent
is written as ``refused``.

Circuit breaker: when ``response.breaker_limit`` autonomous actions were
taken within ``response.breaker_window`` seconds, further ones fall back to
confirm and one health alert (``RESPONSE_BREAKER_TRIPPED``) is written;
``RESPONSE_BREAKER_RESET`` follows once the window holds fewer again. A
sensor that suddenly wants to block half the network is more likely wrong
than right, and must not become the outage.

Suppression: an operator's clear suppresses the same action for the same
reason until the cleared intent's original expiry, so the detection that
keeps firing does not put it straight back.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sensor.respond.intent import ACTIONS, Intent

MODES = ("observe", "confirm", "autonomous")

#: Detections whose alerts report no wrongdoing to stop (a device joined
#: the network): they ask for no action unless ``response.actions`` names
#: one for them.
NO_ACTION = frozenset({"device.new"})

#: Health alert names the policy writes to ``alerts.log``.
BREAKER_TRIPPED = "RESPONSE_BREAKER_TRIPPED"
BREAKER_RESET = "RESPONSE_BREAKER_RESET"


def _careful(a: str, b: str) -> str:
    """The more careful of two modes."""
    return a if MODES.index(a) <= MODES.index(b) else b


@dataclass
class PolicyConfig:
    """The policy's settings; :func:`from_config` reads ``[response]``."""

    mode: str = "observe"
    autonomous: list[str] = field(default_factory=list)
    confirm: list[str] = field(default_factory=list)
    observe_tags: list[str] = field(default_factory=list)
    confirm_tags: list[str] = field(default_factory=list)
    min_score: float = 0.0
    autonomous_min_score: float = 0.0
    #: ``detection=action[+action]``, e.g. ``"scan.port=block"``.
    actions: list[str] = field(default_factory=list)
    never_act_networks: list[str] = field(default_factory=list)
    never_act_tags: list[str] = field(
        default_factory=lambda: ["gateway", "dns_server", "domain_controller"]
    )
    #: ``address=tag[,tag]``: tags for devices the models do not know.
    device_tags: list[str] = field(default_factory=list)
    breaker_limit: int = 20
    breaker_window: float = 60.0
    durations: dict[str, float] = field(
        default_factory=lambda: {
            "reset": 10.0,
            "block": 3600.0,
            "enforce": 3600.0,
            "quarantine": 3600.0,
        }
    )
    #: Expiries are spread over up to this share of the duration.
    jitter: float = 0.1
    quarantine_allow: list[str] = field(default_factory=list)

    def action_map(self) -> dict[str, list[str]]:
        """Detection name -> actions, from ``actions``."""
        out: dict[str, list[str]] = {}
        for item in self.actions:
            name, _, acts = item.partition("=")
            out[name.strip()] = [a.strip() for a in acts.split("+") if a.strip()]
        return out

    def tag_map(self) -> dict[str, list[str]]:
        """Address -> tags, from ``device_tags``."""
        out: dict[str, list[str]] = {}
        for item in self.device_tags:
            addr, _, tags = item.partition("=")
            out.setdefault(addr.strip(), []).extend(
                t.strip() for t in tags.split(",") if t.strip()
            )
        return out

    def problems(self) -> list[str]:
        """What is wrong with the settings, one line each."""
        out = []
        if self.mode not in MODES:
            out.append(
                f"response.mode = {self.mode!r}: must be one of {', '.join(MODES)}"
            )
        for item in self.actions:
            name, eq, acts = item.partition("=")
            bad = [a for a in acts.split("+") if a.strip() not in ACTIONS]
            if not eq or not name.strip() or bad:
                out.append(
                    f"response.actions: {item!r}: must be detection=action[+action], "
                    f"actions from {', '.join(ACTIONS)}"
                )
        for item in self.device_tags:
            addr, eq, _ = item.partition("=")
            try:
                ipaddress.ip_address(addr.strip())
            except ValueError:
                eq = ""
            if not eq:
                out.append(f"response.device_tags: {item!r}: must be address=tag[,tag]")
        for name in ("never_act_networks", "quarantine_allow"):
            for net in getattr(self, name):
                try:
                    ipaddress.ip_network(net, strict=False)
                except ValueError:
                    out.append(f"response.{name}: {net!r}: not a network")
        return out


class Policy:
    """Decides the mode of each intent; holds the breaker and suppressions."""

    def __init__(self, config: PolicyConfig | None = None) -> None:
        self.config = config or PolicyConfig()
        self._actions = self.config.action_map()
        self._tags = self.config.tag_map()
        self._never = [
            ipaddress.ip_network(n, strict=False)
            for n in self.config.never_act_networks
        ]
        #: Times of the autonomous actions in the breaker's window.
        self.recent: deque[float] = deque()
        self.tripped = False
        #: Set by the daemon while capture is degraded.
        self.degraded = False
        #: Intent.key() -> time until which it is suppressed.
        self.suppressed: dict[tuple[Any, ...], float] = {}

    def reconfigure(self, config: PolicyConfig) -> None:
        """Take new settings (SIGHUP), keeping the breaker and suppressions."""
        self.config = config
        self._actions = config.action_map()
        self._tags = config.tag_map()
        self._never = [
            ipaddress.ip_network(n, strict=False) for n in config.never_act_networks
        ]

    # -- what to do ------------------------------------------------------

    def actions_for(self, detection: str) -> list[str]:
        """The actions a detection asks for (``block`` unless configured;
        none for the detections in :data:`NO_ACTION`)."""
        default = [] if detection in NO_ACTION else ["block"]
        return self._actions.get(detection, default)

    def expiry(self, now: float, action: str, salt: str) -> float:
        """When an intent made at ``now`` ends: the action's duration,
        spread by up to ``jitter`` of it (stable per ``salt``), so that
        blocks made together do not all lapse in the same second."""
        duration = self.config.durations[action]
        share = int(hashlib.sha1(salt.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        return now + duration * (1.0 + self.config.jitter * share)

    def tags(self, ip: str, known: list[str]) -> list[str]:
        """Tags of a device: from the models (``known``) and the configuration."""
        return list(known) + self._tags.get(ip, [])

    def never_act(self, ip: str, tags: list[str]) -> str | None:
        """Why the device at ``ip`` must never be acted on, or None."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return f"{ip!r} is not an address"
        for net in self._never:
            if addr in net:
                return f"{ip} is in never-act network {net}"
        for tag in tags:
            if tag in self.config.never_act_tags:
                return f"{ip} is tagged {tag} (never-act)"
        return None

    def mode(self, detection: str, score: float, tags: list[str]) -> str:
        """The mode for an alert of ``detection`` with ``score`` on a device
        with ``tags``, before the breaker."""
        c = self.config
        if detection in c.autonomous:
            mode = "autonomous"
        elif detection in c.confirm:
            mode = "confirm"
        else:
            mode = c.mode
        if score < c.autonomous_min_score:
            mode = _careful(mode, "confirm")
        if score < c.min_score:
            mode = "observe"
        for tag in tags:
            if tag in c.observe_tags:
                mode = "observe"
            elif tag in c.confirm_tags:
                mode = _careful(mode, "confirm")
        if self.degraded:
            mode = _careful(mode, "confirm")
        return mode

    def is_suppressed(self, intent: Intent, now: float) -> bool:
        """True when an operator cleared the same action for the same reason
        and its original expiry has not passed."""
        until = self.suppressed.get(intent.key())
        if until is None:
            return False
        if now >= until:
            del self.suppressed[intent.key()]
            return False
        return True

    def suppress(self, intent: Intent) -> None:
        """Suppress ``intent``'s action for its reason until its expiry."""
        self.suppressed[intent.key()] = intent.expires

    # -- circuit breaker -------------------------------------------------

    def breaker(
        self, now: float, acting: bool = True
    ) -> tuple[bool, list[dict[str, Any]]]:
        """Whether one more autonomous action may go ahead at ``now``, and
        the health alert records the answer raises: a trip when an action
        is held back, a reset once the window has room again. With
        ``acting`` False (the periodic check) it can only reset."""
        c = self.config
        while self.recent and self.recent[0] <= now - c.breaker_window:
            self.recent.popleft()
        alerts = []
        full = len(self.recent) >= c.breaker_limit
        if full and acting and not self.tripped:
            self.tripped = True
            alerts.append(self._alert(now, BREAKER_TRIPPED))
        elif not full and self.tripped:
            self.tripped = False
            alerts.append(self._alert(now, BREAKER_RESET))
        return not full, alerts

    def count(self, now: float) -> None:
        """Count one autonomous action taken at ``now``."""
        self.recent.append(now)

    def _alert(self, ts: float, name: str) -> dict[str, Any]:
        c = self.config
        tripped = name == BREAKER_TRIPPED
        msg = (
            f"response: {len(self.recent)} autonomous actions in {c.breaker_window:g} s "
            f"(limit {c.breaker_limit}); new actions wait for an operator"
            if tripped
            else "response: back under the action limit; autonomous actions resume"
        )
        return {
            "ts": ts,
            "name": name,
            "severity": "high" if tripped else "info",
            "actions_in_window": len(self.recent),
            "limit": c.breaker_limit,
            "window": c.breaker_window,
            "response_mode": "confirm" if tripped else "auto",
            "msg": msg,
        }
