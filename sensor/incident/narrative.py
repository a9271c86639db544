"""Titles, severities and narratives of incidents, from templates.

Everything here is a pure function of the alerts, so the same alerts
always tell the same story; no model or network service is asked.

Attack stages put detections in the order an intrusion goes through them
(delivery, reconnaissance, credential access, lateral movement, command
and control, exfiltration); an incident whose alerts cover several stages
in that order reads as an attack chain.
"""

from __future__ import annotations

from dataclasses import dataclass

from sensor.detect.support import utc

#: Stage of each detection: (order in an attack, name of the stage).
STAGES: dict[str, tuple[int, str]] = {
    "email.rare_link": (0, "phishing"),
    "file.rare_download": (1, "delivery"),
    "scan.sweep": (2, "scan"),
    "scan.port": (2, "scan"),
    "bruteforce.login": (3, "brute force"),
    "credential.kerberoast": (4, "credential theft"),
    "credential.dcsync": (4, "credential theft"),
    "lateral.remote_exec": (5, "remote execution"),
    "c2.beacon": (6, "command and control"),
    "tunnel.dns": (6, "command and control"),
    "tunnel.icmp": (6, "command and control"),
    "dns.dga": (6, "command and control"),
    "exfil.volume": (7, "exfiltration"),
}

#: Detections whose target becomes the attacker's next foothold: an alert
#: about that target later belongs to the same attack.
FOOTHOLD = frozenset(
    {"scan.port", "bruteforce.login", "lateral.remote_exec", "credential.dcsync"}
)

#: What one alert of a detection is called in a title.
TITLES: dict[str, str] = {
    "scan.port": "Port scan",
    "scan.sweep": "Host sweep",
    "bruteforce.login": "Login brute force",
    "c2.beacon": "Command-and-control beaconing",
    "tunnel.dns": "DNS tunnel",
    "tunnel.icmp": "ICMP tunnel",
    "dns.dga": "Generated domain lookups",
    "exfil.volume": "Unusual upload",
    "lateral.remote_exec": "Remote execution",
    "credential.kerberoast": "Kerberoasting",
    "credential.dcsync": "DCSync replication request",
    "endpoint.rare": "Contact with a rare endpoint",
    "email.rare_link": "Mail with a rare link",
    "file.rare_download": "Download from a rare domain",
    "tls.rare_fingerprint": "Rare TLS client",
    "protocol.mismatch": "Protocol on an unexpected port",
    "dos.flood": "Flood",
    "device.new": "New device",
}


@dataclass
class AlertNote:
    """What an incident keeps of one alert."""

    id: str
    ts: float
    detection: str
    score: float
    summary: str
    mitre: str
    device: str
    target: str
    uids: list[str]


def stages(notes: list[AlertNote]) -> list[str]:
    """The attack stages the alerts cover, in attack order."""
    found = sorted({STAGES[n.detection] for n in notes if n.detection in STAGES})
    return [name for _, name in found]


def severity(notes: list[AlertNote]) -> str:
    """``critical``, ``high``, ``medium`` or ``low``.

    Critical: three or more attack stages, or a stage past credential
    access scored 70 or more. High: a score of 80, or two stages. Medium:
    a notable score (50). Low: the rest.
    """
    top = max(n.score for n in notes)
    steps = stages(notes)
    late = any(
        STAGES.get(n.detection, (0, ""))[0] >= 4 and n.score >= 70 for n in notes
    )
    if len(steps) >= 3 or late:
        return "critical"
    if top >= 80 or len(steps) >= 2:
        return "high"
    if top >= 50:
        return "medium"
    return "low"


def title(notes: list[AlertNote], devices: list[str]) -> str:
    """One line: the chain of stages, or what the alerts are and who."""
    who = devices[0] if len(devices) == 1 else f"{len(devices)} devices"
    steps = stages(notes)
    if len(steps) >= 2:
        return f"Attack chain from {who}: " + ", then ".join(steps)
    kinds = sorted({n.detection for n in notes})
    if len(kinds) == 1:
        name = TITLES.get(kinds[0], kinds[0])
        targets = sorted({n.target for n in notes if n.target})
        against = f" against {targets[0]}" if len(targets) == 1 else ""
        return f"{name} by {who}{against}"
    # The most alarming first.
    best = {k: max(n.score for n in notes if n.detection == k) for k in kinds}
    names = [TITLES.get(k, k) for k in sorted(kinds, key=lambda k: (-best[k], k))]
    return f"{who}: " + ", ".join(names[:3]) + (" and more" if len(names) > 3 else "")


def narrative(notes: list[AlertNote], devices: list[str], max_alerts: int = 20) -> str:
    """A short account that cites every alert (up to ``max_alerts``) and
    the first connections each rests on."""
    first = min(n.ts for n in notes)
    last = max(n.ts for n in notes)
    who = ", ".join(devices[:5]) + (" and others" if len(devices) > 5 else "")
    plural = "s" if len(notes) != 1 else ""
    parts = [
        f"Between {utc(first)} and {utc(last)}, {len(notes)} alert{plural} concerned {who}."
    ]
    for n in sorted(notes, key=lambda n: (n.ts, n.id))[:max_alerts]:
        summary = n.summary if n.summary.endswith((".", "!", "?")) else n.summary + "."
        cited = ", ".join(n.uids[:3]) + (" and others" if len(n.uids) > 3 else "")
        conns = f" Connections: {cited}." if cited else ""
        parts.append(
            f"At {utc(n.ts)}, {n.id} ({n.detection}, score {n.score:.0f}): {summary}{conns}"
        )
    if len(notes) > max_alerts:
        parts.append(
            f"{len(notes) - max_alerts} more alerts are listed in the incident's alert ids."
        )
    steps = stages(notes)
    if len(steps) >= 2:
        parts.append(
            "The alerts follow the order of an attack: " + ", then ".join(steps) + "."
        )
    return " ".join(parts)
