"""Roles and peer groups, derived from the models, deterministically.

A role says what a device does for others, from the services it answered
(decayed counts in the profile, at least :data:`MIN_SERVED` of them) and
from where its MAC was seen:

| role | when |
|---|---|
| ``domain_controller`` | answers Kerberos and LDAP, or Kerberos, SMB and DCE-RPC |
| ``gateway`` | its MAC carries outside addresses |
| ``dns_server`` | answers DNS on port 53 |
| ``dhcp_server`` | answers DHCP (port 67, or named as server in dhcp.log) |
| ``file_server`` | answers SMB and is not a domain controller |
| ``web_server`` | answers HTTP or TLS on a web port |
| ``printer`` | answers on 9100, 515 or 631 (IPP) |
| ``ntp_server``, ``rdp_server``, ``ssh_server``, ``mail_server`` | answers those |
| ``client`` | has none of the roles above and opened connections |

The peer group is the device's first role in that order (``"role:client"``,
``"role:domain_controller"``), so that devices that do the same job are
compared with each other; a device with no role has no group yet.

TODO: group clients further by their behaviour (services used, vendor),
e.g. phones apart from workstations; roles alone do not tell them apart.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Decayed answered connections needed before a service makes a role.
MIN_SERVED = 2.0

#: Roles in order of precedence (the first is the group).
ROLES = (
    "domain_controller",
    "gateway",
    "dns_server",
    "dhcp_server",
    "file_server",
    "web_server",
    "printer",
    "mail_server",
    "ntp_server",
    "rdp_server",
    "ssh_server",
    "client",
)


_INTERNED: dict[tuple[str, ...], list[str]] = {}


def roles(served: dict[str, float], gateway: bool, conns_out: float) -> list[str]:
    """The roles of a device, in the order of :data:`ROLES`.

    Devices with the same roles share one list (a few bytes per device
    matter): callers must not change it.
    """
    has = {k for k, v in served.items() if v >= MIN_SERVED}
    out: set[str] = set()
    dc = "kerberos" in has and ("ldap" in has or {"smb", "dce_rpc"} <= has)
    if dc:
        out.add("domain_controller")
    if "dns" in has:
        out.add("dns_server")
    if "dhcp" in has or served.get("dhcp", 0.0) > 0:
        out.add("dhcp_server")
    if gateway:
        out.add("gateway")
    if "smb" in has and not dc:
        out.add("file_server")
    for family, role in (
        ("web", "web_server"),
        ("print", "printer"),
        ("smtp", "mail_server"),
        ("ntp", "ntp_server"),
        ("rdp", "rdp_server"),
        ("ssh", "ssh_server"),
    ):
        if family in has:
            out.add(role)
    if not out and conns_out > 0:
        out.add("client")
    key = tuple(r for r in ROLES if r in out)
    return _INTERNED.setdefault(key, list(key))


def shared(device_roles: Iterable[str]) -> list[str]:
    """The shared list of these roles (as :func:`roles` gives), for loading."""
    key = tuple(device_roles)
    return _INTERNED.setdefault(key, list(key))


def group(device_roles: list[str]) -> str | None:
    """The peer group of a device with these roles; None without a role."""
    return _GROUPS[device_roles[0]] if device_roles else None


_GROUPS = {r: f"role:{r}" for r in ROLES}
