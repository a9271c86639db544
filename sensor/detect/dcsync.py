"""credential.dcsync: a host that is not a domain controller replicates secrets (T1003.006).

Domain controllers replicate the directory among themselves with the
DRSUAPI call ``DRSGetNCChanges`` ([MS-DRSR] 4.1.10). Mimikatz' lsadump::dcsync
and Impacket's secretsdump make the same call from an ordinary machine to
pull password hashes (dce_rpc.log: endpoint ``drsuapi``, operation
``DRSGetNCChanges``). The caller is judged a domain controller when the
device models give it the ``domain_controller`` role, or when this
detection has seen it answer as one: serve Kerberos (kerberos.log, conn.log
service ``krb``/``krb_tcp``), LDAP, or DRSUAPI calls itself.

One alert per (client, server) pair and ``window``, at the first call; the
summary counts the calls seen by then and what marks the server as a DC.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sensor.detect.alert import Alert, DeviceRef, Endpoint, Reason
from sensor.detect.base import SCORE, SECONDS, Detection, Threshold, register

_DC_SERVICES = frozenset({"krb", "krb_tcp", "ldap"})
#: Hosts remembered as domain controllers, and pairs alerted, at most.
MAX_HOSTS = 10_000


@register
class DCSync(Detection):
    """DRSGetNCChanges from a device that is not a domain controller."""

    name: ClassVar[str] = "credential.dcsync"
    mitre: ClassVar[str] = "T1003.006"
    logs: ClassVar[tuple[str, ...]] = (
        "dce_rpc",
        "kerberos",
        "conn",
        "ldap",
        "ldap_search",
    )
    thresholds: ClassVar[tuple[Threshold, ...]] = (
        Threshold(
            "score",
            85,
            "score of an alert (the call has no benign use off a DC)",
            SCORE,
        ),
        Threshold(
            "window", 86400.0, "seconds before the same pair may alert again", SECONDS
        ),
    )

    def __init__(self, models: Any, overrides: dict[str, Any] | None = None) -> None:
        super().__init__(models, overrides)
        self.dcs: dict[str, str] = {}  # ip -> how it showed itself a DC
        self.alerted: dict[tuple[str, str], float] = {}
        self.calls: dict[tuple[str, str], int] = {}

    def _dc(self, ip: str, why: str) -> None:
        if ip not in self.dcs:
            if len(self.dcs) >= MAX_HOSTS:
                del self.dcs[next(iter(self.dcs))]
            self.dcs[ip] = why

    def _is_dc(self, ip: str) -> bool:
        if ip in self.dcs:
            return True
        dev = self.models.device(ip) if self.models is not None else None
        return dev is not None and "domain_controller" in (
            getattr(dev, "roles", None) or []
        )

    def observe(self, log: str, record: dict[str, Any]) -> list[Alert]:
        """Learn DCs from what they serve; alert on replication by others."""
        server = record.get("id.resp_h")
        if not isinstance(server, str):
            return []
        if log == "kerberos":
            # AP records are Kerberos inside SMB or RPC: any server has them.
            if record.get("request_type") in ("AS", "TGS"):
                self._dc(server, "answers Kerberos")
            return []
        if log in ("ldap", "ldap_search"):
            self._dc(server, "answers LDAP")
            return []
        if log == "conn":
            services = set(str(record.get("service", "")).split(","))
            if services & _DC_SERVICES and record.get("resp_bytes"):
                self._dc(server, "answers " + "/".join(sorted(services & _DC_SERVICES)))
            return []
        if log != "dce_rpc" or record.get("endpoint") != "drsuapi":
            return []
        self._dc(server, "answers DRSUAPI")
        if record.get("operation") != "DRSGetNCChanges":
            return []

        client, ts = record["id.orig_h"], float(record["ts"])
        pair = (client, server)
        self.calls[pair] = self.calls.get(pair, 0) + 1
        if self._is_dc(client):
            return []
        last = self.alerted.get(pair)
        if last is not None and ts - last < self.t["window"]:
            return []
        if len(self.alerted) >= MAX_HOSTS:
            del self.alerted[next(iter(self.alerted))]
        self.alerted[pair] = ts
        return [self._alert(ts, client, server, record)]

    def _alert(
        self, ts: float, client: str, server: str, record: dict[str, Any]
    ) -> Alert:
        why = self.dcs.get(server, "answers DRSUAPI")
        summary = (
            f"{client} asked domain controller {server} ({why}) to replicate "
            f"directory changes (drsuapi DRSGetNCChanges), as DCSync does to "
            f"pull password hashes; {client} has never acted as a domain controller"
        )
        dev = self.models.device(client) if self.models is not None else None
        port = record.get("id.resp_p")
        return Alert(
            ts=ts,
            detection=self.name,
            score=self.t["score"],
            device=DeviceRef(
                ip=client,
                mac=getattr(dev, "mac", None),
                name=getattr(dev, "name", None),
            ),
            src=Endpoint(ip=client),
            dst=Endpoint(ip=server, port=port if isinstance(port, int) else None),
            summary=summary,
            reasons=[
                Reason(
                    "drsuapi_operation", "DRSGetNCChanges", "domain controllers only"
                ),
                Reason(
                    "client_is_domain_controller", False, "replication partners are DCs"
                ),
                Reason("server_role", why, None),
            ],
            mitre=self.mitre,
            uids=[record["uid"]],
        )
