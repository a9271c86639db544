"""tunnel.dns: data carried in DNS names and answers under one domain.

A tunnel (iodine, dnscat2, a stager reading commands from TXT records)
has to move its bytes through the resolver: upstream in the query names,
so that every query asks for a new, long, encoded name under the
tunnel's domain; downstream in the answers, so that it asks for record
types that carry text (TXT, NULL, MX, CNAME). Ordinary lookups of one
domain ask for a few names and get addresses back.

Per source and registered domain, over a window of ``window`` seconds
from the first query, the detection counts queries, distinct names (up to
a bound), the bytes of the distinct names left of the domain plus the
bytes of the text-carrying answers, queries of the text-carrying types,
and names that look encoded (a part left of the domain of
``long_label`` characters or more, or of 16 or more with an entropy of
3.5 bits per character). The score is

    100 * (0.5 * volume + 0.5 * max(distinct, carrier, encoded))

where ``volume`` is the bytes over ``data_bytes``, ``distinct`` the
distinct names over ``distinct_names``, ``carrier`` the text-carrying
queries over ``carrier_queries`` (each capped at 1) and ``encoded`` the
share of encoded names. It is multiplied by ``popular_factor`` (0.4:
below notable) for a domain that ``popular_devices`` devices resolve
(security products look files up over DNS from every machine). A window
is reported when it first scores ``report_score`` with at least
``min_queries`` queries, and again each time its score has risen by 20
points since. Multicast name services (mDNS, LLMNR, NetBIOS), reverse
lookups (``.arpa``), ``.local`` and single-label names are not judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sensor.detect.alert import Alert, Endpoint, Reason
from sensor.detect.base import (
    COUNT,
    SCORE,
    SECONDS,
    SHARE,
    Detection,
    Threshold,
    register,
)
from sensor.detect.evidence import UidSample
from sensor.detect.names import entropy, registered_domain, subdomain
from sensor.detect.support import (
    BoundedTable,
    device_ref,
    duration,
    human_bytes,
)
from sensor.model.view import ModelView

#: Record types whose answers carry text or names a tunnel can fill.
CARRIER_TYPES = frozenset({"TXT", "NULL", "MX", "CNAME", "ANY", "SRV", "PRIVATE"})


@dataclass
class Window:
    """What one source asked under one domain since ``first``."""

    first: float
    last: float = 0.0
    queries: int = 0
    names: set[int] = field(default_factory=set)  # hashes of the names
    distinct: int = 0
    data: int = 0
    carrier: int = 0
    encoded: int = 0
    types: dict[str, int] = field(default_factory=dict)
    uids: UidSample = field(default_factory=UidSample)
    resolver: str | None = None
    mac: str | None = None
    reported: float = 0.0


@register
class DNSTunnel(Detection):
    """Data moved through DNS names and answers (see module)."""

    name = "tunnel.dns"
    mitre = "T1071.004"
    logs = ("dns",)
    thresholds = (
        Threshold("window", 3600.0, "Seconds a source's queries under one domain are added up.", SECONDS),
        Threshold("min_queries", 10, "Fewest queries under one domain in a window before it is judged.", COUNT),
        Threshold("data_bytes", 3000, "Bytes in distinct names plus text answers at which volume counts fully.", COUNT),
        Threshold("distinct_names", 50, "Distinct names under one domain at which that sign counts fully.", COUNT),
        Threshold("carrier_queries", 20, "TXT/NULL/MX/CNAME queries at which that sign counts fully.", COUNT),
        Threshold("long_label", 30, "Characters left of the domain from which a name counts as encoded.", COUNT),
        Threshold("report_score", 40.0, "Score from which a window is reported.", SCORE),
        Threshold("popular_devices", 5, "A domain resolved by this many devices is popular.", COUNT),
        Threshold("popular_factor", 0.4, "Factor on the score of a popular domain.", SHARE),
        Threshold("max_names", 128, "Distinct names remembered per window (beyond, each name counts as new).", COUNT),
        Threshold("max_windows", 20000, "Windows tracked at once (the least recently active are dropped).", COUNT),
    )  # fmt: skip

    def __init__(
        self, models: ModelView, overrides: dict[str, Any] | None = None
    ) -> None:
        super().__init__(models, overrides)
        self.windows: BoundedTable[tuple[str, str], Window] = BoundedTable(
            self.t["max_windows"]
        )

    def observe(self, log: str, record: dict[str, Any]) -> list[Alert]:
        """Add one query to its window; alert when the window first scores."""
        query = record.get("query")
        if not query or int(record.get("id.resp_p") or 0) != 53:
            return []
        query = str(query).lower().rstrip(".")
        domain = registered_domain(query)
        if "." not in domain or domain.endswith((".arpa", ".local")):
            return []
        ts = float(record.get("ts") or 0.0)
        src = record.get("id.orig_h", "")
        key = (src, domain)
        w = self.windows.get(key)
        if w is None or ts - w.first > self.t["window"]:
            w = Window(first=ts)
            self.windows.put(key, w)

        self._count(w, record, query, domain, ts)
        if w.queries < self.t["min_queries"]:
            return []
        score, parts = self._score(w)
        users = self.models.network_devices("domain", domain)
        if users >= self.t["popular_devices"]:
            score *= self.t["popular_factor"]
        if score < max(self.t["report_score"], w.reported + 20):
            return []
        w.reported = score
        return [self._alert(src, domain, w, score, parts, users)]

    def _count(
        self, w: Window, record: dict[str, Any], query: str, domain: str, ts: float
    ) -> None:
        w.last = ts
        w.queries += 1
        w.resolver = record.get("id.resp_h")
        w.mac = w.mac or record.get("orig_l2_addr")
        w.uids.add(record.get("uid"))
        qtype = str(record.get("qtype_name") or "")
        w.types[qtype] = w.types.get(qtype, 0) + 1

        sub = subdomain(query, domain)
        key = hash(sub)
        if sub and key not in w.names:
            w.distinct += 1
            w.data += len(sub)
            if len(w.names) < self.t["max_names"]:
                w.names.add(key)
            flat = sub.replace(".", "")
            if len(flat) >= self.t["long_label"] or (
                len(flat) >= 16 and entropy(flat) >= 3.5
            ):
                w.encoded += 1
        if qtype in CARRIER_TYPES:
            w.carrier += 1
            for answer in record.get("answers") or ():
                w.data += len(str(answer))

    def _score(self, w: Window) -> tuple[float, dict[str, float]]:
        parts = {
            "volume": min(1.0, w.data / self.t["data_bytes"]),
            "distinct": min(1.0, w.distinct / self.t["distinct_names"]),
            "carrier": min(1.0, w.carrier / self.t["carrier_queries"]),
            "encoded": w.encoded / w.queries,
        }
        strongest = max(parts["distinct"], parts["carrier"], parts["encoded"])
        return 100 * (0.5 * parts["volume"] + 0.5 * strongest), parts

    def _alert(
        self,
        src: str,
        domain: str,
        w: Window,
        score: float,
        parts: dict[str, float],
        users: int,
    ) -> Alert:
        carriers = {t: n for t, n in w.types.items() if t in CARRIER_TYPES}
        kinds = ", ".join(
            f"{t} {n}" for t, n in sorted(carriers.items(), key=lambda x: -x[1])
        )
        summary = (
            f"{src} sent {w.queries} queries for {w.distinct} different names under "
            f"{domain} in {duration(w.last - w.first)}, carrying "
            f"{human_bytes(w.data)} in names and text answers"
            + (f" ({kinds})" if kinds else "")
            + f"; ordinary lookups of a domain use a few names and stay well under "
            f"{human_bytes(self.t['data_bytes'])} in {duration(self.t['window'])}"
        )
        reasons = [
            Reason("queries", w.queries, f"judged from {self.t['min_queries']}"),
            Reason("distinct_names", w.distinct, f"counts fully at {self.t['distinct_names']}"),
            Reason("bytes_in_names_and_text_answers", w.data, f"counts fully at {self.t['data_bytes']}"),
            Reason("text_record_queries", w.carrier, f"counts fully at {self.t['carrier_queries']}"),
            Reason("encoded_name_share", round(parts["encoded"], 2), f"names of {self.t['long_label']}+ characters or high entropy"),
            Reason("devices_resolving_domain", users, f"popular from {self.t['popular_devices']}: score times {self.t['popular_factor']}"),
        ]  # fmt: skip
        return Alert(
            ts=w.first,
            detection=self.name,
            score=score,
            device=device_ref(self.models, src, w.mac),
            src=Endpoint(ip=src),
            dst=Endpoint(ip=w.resolver, port=53, domain=domain),
            summary=summary,
            reasons=reasons,
            mitre=self.mitre,
            uids=w.uids.uids(),
        )
