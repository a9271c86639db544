"""credential.kerberoast: service tickets gathered to crack offline (T1558.003).

Kerberoasting has two visible steps, and either may be all a capture
holds:

1. Finding the accounts: an LDAP search for user accounts that have a
   service principal name, such as Rubeus' and Impacket's
   ``(&(samAccountType=805306368)(servicePrincipalName=*))``
   (ldap_search.log). A filter asking for any SPN counts; restricted to
   user accounts (``samAccountType=805306368``, ``objectCategory=person``,
   ``objectClass=user``) it counts more, since computers are what normal
   clients look up.
2. Asking for the tickets: TGS requests for many distinct services from
   one client, with RC4 (``rc4-hmac``, etype 23) asked for alone or first,
   or returned (kerberos.log ``req_ciphers`` and ``cipher``): an RC4
   ticket is encrypted with the account's NT hash and cracks fast.

Evidence is kept per client for ``window`` seconds; the alert goes out when
the score reaches ``min_score`` and names the filter, the services and
their count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sensor.detect.alert import Alert, DeviceRef, Endpoint, Reason
from sensor.detect.base import COUNT, SCORE, SECONDS, Detection, Threshold, register

_SPN_ANY = re.compile(r"\(serviceprincipalname=\*\)", re.IGNORECASE)
_USERS = re.compile(
    r"samaccounttype=805306368|objectcategory=person|objectclass=user|"
    r"objectcategory=user",
    re.IGNORECASE,
)
RC4 = "rc4-hmac"
#: Clients followed at once; the oldest is forgotten at the bound.
MAX_CLIENTS = 10_000


@dataclass
class _Client:
    first: float
    spn_search: str | None = None
    users_only: bool = False
    rc4_services: list[str] = field(default_factory=list)
    server: str | None = None
    uids: list[str] = field(default_factory=list)
    alerted: int = 0


@register
class Kerberoast(Detection):
    """SPN enumeration over LDAP and RC4 service-ticket requests for many SPNs."""

    name: ClassVar[str] = "credential.kerberoast"
    mitre: ClassVar[str] = "T1558.003"
    logs: ClassVar[tuple[str, ...]] = ("ldap_search", "kerberos")
    thresholds: ClassVar[tuple[Threshold, ...]] = (
        Threshold("min_score", 50, "score (0-100) at which a client is alerted", SCORE),
        Threshold(
            "min_rc4_services",
            3,
            "distinct services a client must ask RC4 tickets for to count as a harvest",
            COUNT,
        ),
        Threshold(
            "window", 3600.0, "seconds a client's evidence is kept together", SECONDS
        ),
    )

    def __init__(self, models: Any, overrides: dict[str, Any] | None = None) -> None:
        super().__init__(models, overrides)
        self.clients: dict[str, _Client] = {}

    def observe(self, log: str, record: dict[str, Any]) -> list[Alert]:
        """Add LDAP SPN searches and RC4 TGS requests; alert at the bar."""
        src, ts = record["id.orig_h"], float(record["ts"])
        if log == "ldap_search":
            filt = str(record.get("filter", ""))
            if not _SPN_ANY.search(filt):
                return []
            c = self._client(src, ts)
            c.spn_search = filt
            c.users_only = c.users_only or bool(_USERS.search(filt))
        elif log == "kerberos":
            if record.get("request_type") != "TGS":
                return []
            service = str(record.get("service", ""))
            if not service or service.lower().startswith("krbtgt"):
                return []
            asked = record.get("req_ciphers") or []
            rc4 = (asked[:1] == [RC4]) or record.get("cipher") == RC4
            if not rc4:
                return []
            c = self._client(src, ts)
            if service not in c.rc4_services and len(c.rc4_services) < 1000:
                c.rc4_services.append(service)
        else:
            return []
        c.server = record["id.resp_h"]
        if record["uid"] not in c.uids and len(c.uids) < 20:
            c.uids.append(record["uid"])

        score, reasons = self._score(c)
        if score < self.t["min_score"] or score <= c.alerted:
            return []
        c.alerted = score
        return [self._alert(ts, src, c, score, reasons)]

    def _client(self, src: str, ts: float) -> _Client:
        c = self.clients.get(src)
        if c is None or ts - c.first > self.t["window"]:
            if len(self.clients) >= MAX_CLIENTS:
                del self.clients[next(iter(self.clients))]
            c = self.clients[src] = _Client(ts)
        return c

    def _score(self, c: _Client) -> tuple[int, list[Reason]]:
        score, reasons = 0, []
        if c.spn_search is not None:
            score += 40
            reasons.append(
                Reason("ldap_spn_search", c.spn_search, "clients rarely list every SPN")
            )
            if c.users_only:
                score += 25
                reasons.append(
                    Reason(
                        "spn_search_for_user_accounts",
                        True,
                        "normal lookups name computers",
                    )
                )
        n = len(c.rc4_services)
        if n:
            need = self.t["min_rc4_services"]
            part = 55 + 5 * (n - need) if n >= need else 15 * n
            score += min(part, 80)
            reasons.append(
                Reason("rc4_service_tickets", n, f"{need} distinct services alert")
            )
        return min(score, 100), reasons

    def _alert(
        self, ts: float, src: str, c: _Client, score: int, reasons: list[Reason]
    ) -> Alert:
        parts = []
        if c.spn_search is not None:
            who = "user accounts with" if c.users_only else "accounts with"
            parts.append(
                f"searched LDAP on {c.server} for {who} a service principal name"
            )
        if c.rc4_services:
            shown = ", ".join(c.rc4_services[:3])
            more = (
                f" and {len(c.rc4_services) - 3} more"
                if len(c.rc4_services) > 3
                else ""
            )
            parts.append(
                f"asked for RC4 service tickets for {len(c.rc4_services)} services "
                f"({shown}{more})"
            )
        summary = (
            f"{src} " + " and ".join(parts) + f", as Kerberoasting does; score {score}"
        )
        dev = self.models.device(src) if self.models is not None else None
        return Alert(
            ts=ts,
            detection=self.name,
            score=score,
            device=DeviceRef(
                ip=src, mac=getattr(dev, "mac", None), name=getattr(dev, "name", None)
            ),
            src=Endpoint(ip=src),
            dst=Endpoint(ip=c.server),
            summary=summary,
            reasons=reasons,
            mitre=self.mitre,
            uids=list(c.uids),
        )
