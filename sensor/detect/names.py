"""Names as detections read them: registered domains, randomness, lookups.

Nothing here is a detection. :func:`registered_domain` cuts a host name to
the part a registrant owns (``a.b.example.co.uk`` -> ``example.co.uk``)
with the Public Suffix List as ``tldextract`` bundles it: the snapshot in
the package, never a fetch. A name under no known suffix (``pirate.sea``,
``corp.local``) keeps its last two labels.

:class:`NameCache` remembers which name a connection went to, from the
records that come before its conn.log record (ssl.log ``server_name``,
http.log ``host``) and from DNS answers (address -> the name that
resolved to it), so that a detection judging a connection can name the
domain. Both tables are bounded and count their evictions.
"""

from __future__ import annotations

import ipaddress
import math
from collections import Counter
from functools import lru_cache
from typing import Any

import tldextract

from sensor.detect.support import BoundedTable

# No network: the list bundled with the package, no cache directory.
_EXTRACT = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

_VOWELS = frozenset("aeiouy")


@lru_cache(maxsize=65536)
def is_ip_literal(host: str) -> bool:
    """True when ``host`` is an address (``10.0.0.1``, ``[::1]``), not a name."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def host_only(host: str) -> str:
    """A Host header or URL authority without port, userinfo and final dot."""
    host = host.rsplit("@", 1)[-1].strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


@lru_cache(maxsize=65536)
def registered_domain(name: str) -> str:
    """The registered domain of a host name, lowercased; an address as is.

    ``www.bbc.co.uk`` -> ``bbc.co.uk``; ``x.pirate.sea`` (no public suffix)
    -> ``pirate.sea``; ``isatap`` -> ``isatap``.
    """
    name = host_only(name)
    if not name or is_ip_literal(name):
        return name
    parts = _EXTRACT(name)
    if parts.suffix and parts.domain:
        return f"{parts.domain}.{parts.suffix}"
    labels = name.split(".")
    return ".".join(labels[-2:])


def subdomain(name: str, domain: str) -> str:
    """The labels of ``name`` left of ``domain`` (``""`` when none)."""
    name = host_only(name)
    if name == domain or not name.endswith("." + domain):
        return ""
    return name[: -len(domain) - 1]


def entropy(text: str) -> float:
    """Shannon entropy of the characters of ``text``, bits per character."""
    n = len(text)
    if n == 0:
        return 0.0
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


@lru_cache(maxsize=65536)
def looks_generated(label: str) -> bool:
    """True when a DNS label reads as machine-made rather than a word.

    A label of at least 6 characters counts when two of these hold: almost
    no vowels among its letters (under 10%), a run of 6 consonants, digits
    mixed into letters (at least 2 of each, not only a number at the end),
    or, over 10 characters or more, a character entropy near the most its
    length allows (85% of log2 of the length, at most 3.5 bits). Words
    and most brands (``windowsupdate``, ``espncdn``, ``msftncsi``) show one
    sign at most; generated names (``xktzjm``, ``q3kx9vzm2b``) two. It is a
    weak sign on its own (``tlscdn`` passes too): detections use it only
    beside stronger evidence, such as a burst of failed lookups.
    """
    label = label.lower()
    if len(label) < 6 or label.startswith("xn--"):  # too short, or an IDN
        return False
    letters = [c for c in label if c.isalpha()]
    digits = sum(c.isdigit() for c in label)
    signs = 0
    if letters and sum(c in _VOWELS for c in letters) / len(letters) < 0.1:
        signs += 1
    run = best = 0
    for c in label:
        run = run + 1 if c.isalpha() and c not in _VOWELS else 0
        best = max(best, run)
    if best >= 6:
        signs += 1
    if digits >= 2 and len(letters) >= 2 and not label.rstrip("0123456789").isalpha():
        signs += 1
    if len(label) >= 10 and entropy(label) >= min(3.5, 0.85 * math.log2(len(label))):
        signs += 1
    return signs >= 2


class NameCache:
    """Which name a connection or an address stands for, bounded.

    Feed it ssl, http and dns records (:meth:`observe`); ask
    :meth:`domain_of` with a conn record's uid and responder address.
    """

    def __init__(self, limit: int = 50_000) -> None:
        self._by_uid: BoundedTable[str, str] = BoundedTable(limit)
        self._by_ip: BoundedTable[str, str] = BoundedTable(limit)

    @property
    def evicted(self) -> int:
        """Entries dropped at the limits so far."""
        return self._by_uid.evicted + self._by_ip.evicted

    def observe(self, log: str, record: dict[str, Any]) -> None:
        """Learn a name from an ssl, http or dns record; others are ignored."""
        if log == "ssl":
            name = record.get("server_name")
            uid = record.get("uid")
            if name and uid:
                self._by_uid.put(uid, host_only(name))
        elif log == "http":
            host = record.get("host")
            uid = record.get("uid")
            if host and uid and not is_ip_literal(host_only(host)):
                self._by_uid.put(uid, host_only(host))
        elif log == "dns":
            query = record.get("query")
            if not query or record.get("qtype_name") not in ("A", "AAAA"):
                return
            for answer in record.get("answers") or ():
                if isinstance(answer, str) and is_ip_literal(answer):
                    self._by_ip.put(answer, host_only(query))

    def name_of(self, uid: str | None, ip: str | None) -> str | None:
        """The host name of the connection ``uid``, else the name that last
        resolved to ``ip``; None when neither is known."""
        if uid:
            name = self._by_uid.get(uid)
            if name:
                return name
        if ip:
            return self._by_ip.get(ip)
        return None
