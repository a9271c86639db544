"""Response: the least disruptive action against a threat, and its undoing.

``intent`` (what to do), ``policy`` (whether to do it), ``backends`` (how:
dry run, nftables, TCP reset), ``responder`` (the pipeline stage and the
operator's controls). :func:`build` makes the responder from the
``[response]`` configuration; see ``docs/response.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from sensor.respond.backends import Backend, BackendError, make
from sensor.respond.policy import Policy, PolicyConfig
from sensor.respond.responder import Responder, ResponseError

#: The live daemon's response state (open intents, the operator's mode),
#: in the state directory; kept under this name for existing installs.
STATE_FILE = "response-state.json"

__all__ = [
    "STATE_FILE",
    "Responder",
    "ResponseError",
    "build",
    "cleanup",
    "model_tags",
    "policy_config",
]


def policy_config(values: dict[str, Any]) -> PolicyConfig:
    """The policy's settings from ``response.*`` option values."""
    v = {
        k[len("response.") :]: x for k, x in values.items() if k.startswith("response.")
    }
    return PolicyConfig(
        mode=v.get("mode", "observe"),
        autonomous=list(v.get("autonomous", [])),
        confirm=list(v.get("confirm", [])),
        observe_tags=list(v.get("observe_tags", [])),
        confirm_tags=list(v.get("confirm_tags", [])),
        min_score=float(v.get("min_score", 0.0)),
        autonomous_min_score=float(v.get("autonomous_min_score", 0.0)),
        actions=list(v.get("actions", [])),
        never_act_networks=list(v.get("never_act_networks", [])),
        never_act_tags=list(
            v.get("never_act_tags", ["gateway", "dns_server", "domain_controller"])
        ),
        device_tags=list(v.get("device_tags", [])),
        breaker_limit=int(v.get("breaker_limit", 20)),
        breaker_window=float(v.get("breaker_window", 60.0)),
        durations={
            a: float(v.get(f"{a}_seconds", d))
            for a, d in (
                ("reset", 10.0),
                ("block", 3600.0),
                ("enforce", 3600.0),
                ("quarantine", 3600.0),
            )
        },
        jitter=float(v.get("jitter", 0.1)),
        quarantine_allow=list(v.get("quarantine_allow", [])),
    )


def build(
    values: dict[str, Any],
    *,
    capture_interface: str = "",
    state_dir: str | None = None,
    tags: Callable[[str], list[str]] | None = None,
    replay: bool = False,
) -> Responder:
    """The responder the ``[response]`` options describe. A replay always
    gets the dry run, whatever the back-ends say."""
    cfg = policy_config(values)
    names = (
        ["dry-run"] if replay else list(values.get("response.backends", ["dry-run"]))
    )
    iface = values.get("response.interface") or capture_interface
    backends: list[Backend] = [
        make(
            n,
            interface=iface,
            watch=capture_interface or iface,
            quarantine_allow=cfg.quarantine_allow,
        )
        for n in names
    ]
    state = None if replay or not state_dir else os.path.join(state_dir, STATE_FILE)
    return Responder(
        Policy(cfg),
        backends,
        tags=tags,
        state_path=state,
        reconcile_seconds=float(values.get("response.reconcile_seconds", 10.0)),
    )


def model_tags(models: Any) -> Callable[[str], list[str]]:
    """Tags and roles the device models know for an address (none without
    models), for the policy's never-act and per-tag modes."""

    def tags(ip: str) -> list[str]:
        find = getattr(models, "device", None)
        device = find(ip) if find is not None else None
        if device is None:
            return []
        return list(getattr(device, "tags", []) or []) + list(
            getattr(device, "roles", []) or []
        )

    return tags


def cleanup() -> str:
    """Remove the nftables table (``sensord --cleanup``); one line saying
    what was done. Raises BackendError when nftables cannot be reached, or
    when a running daemon owns the table (its reconciler would put it back
    within one period)."""
    from sensor.lockfile import holder_text
    from sensor.respond.backends.nftables import _has_net_admin, table_owner
    from sensor.respond.backends.nftables import cleanup as drop

    owner = table_owner()
    if owner is not None and _has_net_admin():
        raise BackendError(
            f"cannot remove table inet sensor: {holder_text(owner)} owns it in "
            "this network namespace and would put it back; stop it first"
        )
    return "removed table inet sensor" if drop() else "no table inet sensor to remove"
