"""email.rare_link: a mail whose link points somewhere no one here goes.

A phishing mail, even from a trusted (or stolen) sender, links to a domain
that the sender's earlier mails never linked to, that the recipients never
got in a link, and that no device on the network uses. smtp.log gives the
links found in each mail (``urls``, from the body and attached PDFs); the
detection remembers, bounded, which link domains each sender and each
recipient has had, and asks the models how many devices use the domain.

A link qualifies when its registered domain is new for the sender, new for
every recipient, used by at most ``rare_devices`` devices, and not the
sender's own domain. Points: 40 for that; +15 when the link's host sits
under a shared suffix where anyone can get a name (the private section of
the Public Suffix List: dynamic DNS, free hosting, blog platforms) or is
an address; +10 when the sender is known (has mailed before: the trusted
sender case; a new sender has no history to weigh). A mail is reported once, for its highest-scoring link, from
``report_score``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import tldextract

from sensor.detect.alert import Alert, Endpoint, Reason
from sensor.detect.base import (
    COUNT,
    NON_NEGATIVE,
    SCORE,
    Detection,
    Threshold,
    register,
)
from sensor.detect.names import is_ip_literal, registered_domain
from sensor.detect.support import BoundedTable, device_ref
from sensor.model.view import ModelView

# With the private section: ``x.duckdns.org`` is under the shared suffix
# ``duckdns.org``. The bundled snapshot, never fetched.
_PRIVATE = tldextract.TLDExtract(
    suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True
)


def address(text: str) -> str:
    """The bare mail address of ``Name <a@b>`` or ``<a@b>``, lowercased."""
    if "<" in text and ">" in text:
        text = text[text.index("<") + 1 : text.rindex(">")]
    return text.strip().lower()


def shared_host(host: str) -> bool:
    """True when ``host`` is under a private-section public suffix."""
    return bool(_PRIVATE(host).is_private)


@register
class RareMailLink(Detection):
    """Links in mail to domains rare for sender, recipients and network."""

    name = "email.rare_link"
    mitre = "T1566.002"
    logs = ("smtp",)
    thresholds = (
        Threshold("rare_devices", 1, "A link domain used by more devices than this is not rare.", NON_NEGATIVE),
        Threshold("report_score", 40.0, "Score from which a mail is reported.", SCORE),
        Threshold("max_people", 20000, "Senders and recipients whose link domains are remembered.", COUNT),
        Threshold("max_domains", 256, "Link domains remembered per sender or recipient.", COUNT),
    )  # fmt: skip

    def __init__(
        self, models: ModelView, overrides: dict[str, Any] | None = None
    ) -> None:
        super().__init__(models, overrides)
        # Per "from:addr" / "to:addr", hashes of the link domains seen.
        self.people: BoundedTable[str, set[int]] = BoundedTable(self.t["max_people"])

    def observe(self, log: str, record: dict[str, Any]) -> list[Alert]:
        """Judge the links of one mail, then remember them."""
        urls = [u for u in record.get("urls") or () if isinstance(u, str)]
        sender = address(str(record.get("mailfrom") or record.get("from") or ""))
        recipients = [
            address(str(r)) for r in record.get("rcptto") or record.get("to") or ()
        ]
        if not urls or not sender:
            return []
        known_sender = self.people.get(f"from:{sender}")
        sender_domain = registered_domain(sender.rsplit("@", 1)[-1])
        from_domain = registered_domain(
            address(str(record.get("from") or "")).rsplit("@", 1)[-1]
        )

        best: tuple[float, str, str, list[Reason]] | None = None
        links: set[int] = set()
        for url in urls[:50]:
            try:
                host = (urlsplit(url).hostname or "").lower()
            except ValueError:  # a link the sender wrote badly ("http://[::1")
                continue
            if not host:
                continue
            domain = registered_domain(host)
            links.add(hash(domain))
            judged = self._judge(
                host, domain, sender_domain, from_domain, known_sender, recipients
            )
            if judged is not None and (best is None or judged[0] > best[0]):
                best = (judged[0], url, domain, judged[1])

        for key in [f"from:{sender}"] + [f"to:{r}" for r in recipients]:
            seen = self.people.get(key) or set()
            if len(seen) < self.t["max_domains"]:
                seen |= set(list(links)[: self.t["max_domains"] - len(seen)])
            self.people.put(key, seen)
        if best is None or best[0] < self.t["report_score"]:
            return []
        return [self._alert(record, sender, recipients, len(urls), *best)]

    def _judge(
        self,
        host: str,
        domain: str,
        sender_domain: str,
        from_domain: str,
        known_sender: set[int] | None,
        recipients: list[str],
    ) -> tuple[float, list[Reason]] | None:
        if domain in (sender_domain, from_domain):
            return None
        if known_sender is not None and hash(domain) in known_sender:
            return None
        for r in recipients:
            got = self.people.get(f"to:{r}")
            if got is not None and hash(domain) in got:
                return None
        users = self.models.network_devices("domain", domain)
        if users > self.t["rare_devices"]:
            return None

        score = 40.0
        reasons = [
            Reason(
                "link_domain_new_for_sender",
                True,
                "domains of the sender's earlier links",
            ),
            Reason(
                "link_domain_new_for_recipients",
                True,
                "domains of links the recipients got",
            ),
            Reason(
                "devices_using_link_domain",
                users,
                f"rare up to {self.t['rare_devices']}",
            ),
        ]
        if is_ip_literal(host) or shared_host(host):
            score += 15
            reasons.append(
                Reason(
                    "link_host_shared_or_address", host, "a name its owner registered"
                )
            )
        if known_sender is not None:
            score += 10
            reasons.append(
                Reason("sender_known", True, f"{len(known_sender)} link domains before")
            )
        else:
            reasons.append(
                Reason("sender_known", False, "no earlier mail to compare with")
            )
        return score, reasons

    def _alert(
        self,
        record: dict[str, Any],
        sender: str,
        recipients: list[str],
        nurls: int,
        score: float,
        url: str,
        domain: str,
        reasons: list[Reason],
    ) -> Alert:
        to = ", ".join(recipients[:3]) + (" ..." if len(recipients) > 3 else "")
        history = (
            "a sender with no earlier mail here"
            if any(r.feature == "sender_known" and r.value is False for r in reasons)
            else "a sender seen before"
        )
        summary = (
            f"a mail from {sender} ({history}) to {to} links to {url} ({nurls} links in "
            f"all); {domain} was never linked in this sender's or these recipients' "
            f"mail and is rare on the network"
        )
        return Alert(
            ts=float(record.get("ts") or 0.0),
            detection=self.name,
            score=score,
            device=device_ref(self.models, record.get("id.orig_h"), None),
            src=Endpoint(ip=record.get("id.orig_h"), port=record.get("id.orig_p")),
            dst=Endpoint(
                ip=record.get("id.resp_h"), port=record.get("id.resp_p"), domain=domain
            ),
            summary=summary,
            reasons=reasons,
            mitre=self.mitre,
            uids=[str(record.get("uid"))],
        )
