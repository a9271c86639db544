"""protocol.mismatch: a protocol where its port says otherwise (ATT&CK T1571).

Two cases, from conn.log's ``service`` (what the analyzers recognised)
and the responder port:

- a *known protocol on an odd port*: HTTP, TLS, SSH, DNS, SMTP or FTP
  on a port not listed for it in :data:`USUAL_PORTS` (malware often talks
  HTTP to port 7080 or 8443 of its server);
- an *unknown protocol on a well-known port*: a TCP connection seen from
  its handshake, with payload both ways, on a port of
  :data:`WELL_KNOWN`, that no analyzer recognised (a tunnel through 443).

Judged on the traffic itself, not on the device's history, so the score
is not lowered while the device learns. An external responder scores
higher than an internal one, and one that no other device has used
higher still. One alert per source, responder and port per run.
"""

from __future__ import annotations

from typing import Any

from sensor.detect.alert import Alert, Endpoint, Reason
from sensor.detect.base import (
    COUNT,
    NON_NEGATIVE,
    SCORE,
    Detection,
    Threshold,
    register,
)
from sensor.detect.support import BoundedTable, conn_ends, device_ref, human_bytes

#: Ports where each recognised protocol is expected (IANA assignments and
#: common alternates).
USUAL_PORTS: dict[str, frozenset[int]] = {
    "http": frozenset(
        {
            80,
            81,
            591,
            3128,
            5985,
            8000,
            8008,
            8080,
            8081,
            8088,
            8888,
            47001,
            3000,
            5000,
            9000,
            2869,
            5357,
            10243,
        }
    ),
    # STARTTLS turns SMTP, IMAP, POP3, LDAP, XMPP and FTP sessions into TLS.
    "ssl": frozenset(
        {
            21,
            25,
            110,
            143,
            389,
            587,
            5222,
            5269,
            443,
            465,
            563,
            585,
            636,
            853,
            989,
            990,
            992,
            993,
            994,
            995,
            3269,
            3389,
            4443,
            5061,
            5223,
            5986,
            8443,
            9443,
        }
    ),
    "ssh": frozenset({22, 2222}),
    "dns": frozenset({53, 137, 5353, 5355, 853}),
    "smtp": frozenset({25, 465, 587, 2525}),
    "ftp": frozenset({21, 2121}),
}

#: Ports on which an unrecognised protocol is odd: the analyzers know what
#: should be there.
WELL_KNOWN: dict[int, str] = {
    22: "SSH",
    25: "SMTP",
    53: "DNS",
    80: "HTTP",
    443: "TLS",
    21: "FTP",
}

_NAMES = {
    "http": "HTTP",
    "ssl": "TLS",
    "ssh": "SSH",
    "dns": "DNS",
    "smtp": "SMTP",
    "ftp": "FTP",
}


@register
class ProtocolMismatch(Detection):
    """A known protocol on an odd port, or an unknown one on a well-known port."""

    name = "protocol.mismatch"
    mitre = "T1571"
    logs = ("conn",)
    thresholds = (
        Threshold("score_external", 55.0, "Score when the responder is outside the local networks and no other device used it.", SCORE),
        Threshold("score_internal", 35.0, "Score when the responder is internal, or external but used by other devices too.", SCORE),
        Threshold("min_bytes", 64, "Payload bytes each way before an unrecognised protocol on a well-known port counts.", NON_NEGATIVE),
        Threshold("max_seen", 100_000, "Source/responder/port triples remembered so each alerts once; the least recent is forgotten at the limit.", COUNT),
    )  # fmt: skip

    def __init__(self, models: Any, overrides: dict[str, Any] | None = None) -> None:
        super().__init__(models, overrides)
        self.seen: BoundedTable[tuple[str, str, int], bool] = BoundedTable(
            self.t["max_seen"]
        )

    def observe(self, log: str, record: dict[str, Any]) -> list[Alert]:
        if record.get("proto") != "tcp" and record.get("proto") != "udp":
            return []
        src, _, dst, port = conn_ends(record)
        services = [s for s in (record.get("service") or "").split(",") if s]

        # What is wrong with this connection, if anything.
        found: tuple[str, str, Reason] | None = None
        for svc in services:
            usual = USUAL_PORTS.get(svc)
            if usual is not None and port not in usual:
                name = _NAMES[svc]
                found = (
                    name,
                    f"spoke {name} to port {port}, a port not used for {name}",
                    Reason(
                        "protocol_on_port",
                        f"{name} on {record['proto']}/{port}",
                        "ports " + ", ".join(str(p) for p in sorted(usual)[:8]),
                    ),
                )
                break
        if (
            found is None
            and not services
            and record.get("proto") == "tcp"
            and port in WELL_KNOWN
        ):
            history = record.get("history") or ""
            sent, got = record.get("orig_bytes") or 0, record.get("resp_bytes") or 0
            if history.startswith("Sh") and min(sent, got) >= self.t["min_bytes"]:
                name = WELL_KNOWN[port]
                found = (
                    name,
                    f"exchanged {human_bytes(sent)} / {human_bytes(got)} on port {port} in a protocol that is not {name}",
                    Reason(
                        "protocol_on_port",
                        f"unrecognised on tcp/{port}",
                        f"{name} expected",
                    ),
                )
        if found is None:
            return []
        key = (src, dst, port)
        if key in self.seen:
            return []
        self.seen.put(key, True)

        # Score: an external responder no other device uses is the odd one.
        name, what, reason = found
        external = not self.models.is_internal(dst)
        users = self.models.network_devices("ip", dst)
        rare = external and users <= 1
        score = self.t["score_external"] if rare else self.t["score_internal"]
        where = "an external address" if external else "an internal address"
        seen_by = (
            "no other device had used it" if users <= 1 else f"{users} devices use it"
        )
        summary = f"{src} {what} at {dst}, {where}; {seen_by}."
        return [
            Alert(
                ts=float(record["ts"]),
                detection=self.name,
                score=score,
                device=device_ref(self.models, src, record.get("orig_l2_addr")),
                src=Endpoint(ip=src),
                dst=Endpoint(ip=dst, port=port),
                summary=summary,
                reasons=[
                    reason,
                    Reason("responder_external", external, None),
                    Reason("devices_using_responder", users, "rare when <= 1"),
                ],
                mitre=self.mitre,
                uids=[record["uid"]] if "uid" in record else [],
            )
        ]
