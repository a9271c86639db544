"""dns.dga: a burst of failed lookups of machine-made domain names.

Malware with a domain generation algorithm tries many generated names a
day until one its operator registered answers; most of them do not exist.
So the sign is, per source within ``window`` seconds, many distinct
registered domains answered NXDOMAIN, most of which read as generated
(:func:`sensor.detect.names.looks_generated` on the label left of the
public suffix). Typos and a stale search suffix fail too, but under one
or two domains, and read as words.

The score is 55 at ``min_generated`` generated failed domains and grows
by 30 points per tenfold (capped at 95), provided at least ``min_share``
of the failed domains look generated. A window is reported when it first
qualifies and again when its score rose by 15 points. Reverse lookups
(``.arpa``), ``.local`` and single-label names are not judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sensor.detect.alert import Alert, Endpoint, Reason
from sensor.detect.base import COUNT, SECONDS, SHARE, Detection, Threshold, register
from sensor.detect.evidence import UidSample
from sensor.detect.names import looks_generated, registered_domain
from sensor.detect.support import (
    BoundedTable,
    device_ref,
    duration,
    log_score,
)
from sensor.model.view import ModelView


@dataclass
class Failures:
    """The failed lookups of one source since ``first``."""

    first: float
    last: float = 0.0
    domains: set[int] = field(default_factory=set)  # hashes of the names
    generated: int = 0
    examples: list[str] = field(default_factory=list)  # the first three
    latest: str = ""
    uids: UidSample = field(default_factory=UidSample)
    resolver: str | None = None
    mac: str | None = None
    reported: float = 0.0


@register
class DGA(Detection):
    """Many failed lookups of generated names (see module)."""

    name = "dns.dga"
    mitre = "T1568.002"
    logs = ("dns",)
    thresholds = (
        Threshold("window", 600.0, "Seconds over which one source's failed lookups are added up.", SECONDS),
        Threshold("min_generated", 8, "Distinct generated-looking domains answered NXDOMAIN for a score of 55.", COUNT),
        Threshold("min_share", 0.5, "Share of the failed domains that must look generated.", SHARE),
        Threshold("max_domains", 256, "Failed domains remembered per source and window (beyond, no more are counted).", COUNT),
        Threshold("max_sources", 20000, "Sources tracked at once (the least recently active are dropped).", COUNT),
    )  # fmt: skip

    def __init__(
        self, models: ModelView, overrides: dict[str, Any] | None = None
    ) -> None:
        super().__init__(models, overrides)
        self.sources: BoundedTable[str, Failures] = BoundedTable(self.t["max_sources"])

    def observe(self, log: str, record: dict[str, Any]) -> list[Alert]:
        """Count an NXDOMAIN answer; alert when the burst qualifies."""
        if (
            record.get("rcode_name") != "NXDOMAIN"
            or int(record.get("id.resp_p") or 0) != 53
        ):
            return []
        query = str(record.get("query") or "").lower().rstrip(".")
        domain = registered_domain(query)
        if "." not in domain or domain.endswith((".arpa", ".local")):
            return []
        ts = float(record.get("ts") or 0.0)
        src = record.get("id.orig_h", "")
        f = self.sources.get(src)
        if f is None or ts - f.first > self.t["window"]:
            f = Failures(first=ts)
            self.sources.put(src, f)
        f.last = ts
        f.resolver = record.get("id.resp_h")
        f.mac = f.mac or record.get("orig_l2_addr")
        key = hash(domain)
        if key in f.domains or len(f.domains) >= self.t["max_domains"]:
            return []
        f.domains.add(key)
        f.uids.add(record.get("uid"))
        if looks_generated(domain.split(".", 1)[0]):
            f.generated += 1
            f.latest = domain
            if len(f.examples) < 3:
                f.examples.append(domain)

        generated = f.generated
        share = generated / len(f.domains)
        if generated < self.t["min_generated"] or share < self.t["min_share"]:
            return []
        score = log_score(generated, self.t["min_generated"])
        if score < f.reported + 15:
            return []
        f.reported = score
        return [self._alert(src, f, score, share)]

    def _alert(self, src: str, f: Failures, score: float, share: float) -> Alert:
        examples = ", ".join(f.examples)
        summary = (
            f"{src} failed to resolve {len(f.domains)} different domains in "
            f"{duration(f.last - f.first)}, {f.generated} of them machine-made "
            f"names such as {examples}; a person's typos fail under a domain or two"
        )
        reasons = [
            Reason("failed_domains", len(f.domains), None),
            Reason("generated_looking_failed_domains", f.generated, f"scores 55 at {self.t['min_generated']}"),
            Reason("generated_share", round(share, 2), f"at least {self.t['min_share']}"),
        ]  # fmt: skip
        return Alert(
            ts=f.first,
            detection=self.name,
            score=score,
            device=device_ref(self.models, src, f.mac),
            src=Endpoint(ip=src),
            dst=Endpoint(ip=f.resolver, port=53, domain=f.latest),
            summary=summary,
            reasons=reasons,
            mitre=self.mitre,
            uids=f.uids.uids(),
        )
