"""dns.log against Zeek on every shared capture that has one (see agreement.py)."""

from __future__ import annotations

from tests.proto.agreement import check

#: Captures and baselines below 95%, and why.
KNOWN_BELOW = {
    "zeek/traces/dns-txt-multiple.pcap @ zeek/baselines/scripts.base.protocols"
    ".dns.multiple-txt-strings/dns.log": "the query's UDP checksum is wrong and "
    "Zeek's test ran without -C, so its baseline has the reply alone; the "
    "sensor, like the zeek-logs run, ignores checksums",
}


def test_dns_agreement(impl: str) -> None:
    check("dns", impl, KNOWN_BELOW, overall=1.0)
