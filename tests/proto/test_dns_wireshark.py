"""DNS against Wireshark's dissector, on the small shared captures.

Wireshark (through tshark) reads the same packets independently of Zeek:
every standard query it decodes must be in our dns.log under its
transaction id (the last question's name, which is the one dns.log keeps),
and every address we list as an answer must be one that
Wireshark read from the same message.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sensor.capture.merge import merge
from sensor.capture.pcapfile import CaptureFile
from sensor.engine import Engine
from tests.conftest import PCAPS

#: Small captures with DNS over UDP and TCP, mDNS and LLMNR, IPv6, Teredo.
CAPTURES = [
    "zeek/traces/wikipedia.pcap",
    "zeek/traces/dns-txt-multiple.pcap",
    "zeek/traces/dns53.pcap",
    "zeek/traces/dns__dns-binds.pcap",
    "zeek/traces/dns__mdns.pcap",
    "suricata/bug-5162/input.pcap",
    "suricata/ethernet-eve/test.pcap",
    "suricata/decode-teredo-01/input.pcap",
    "benign/apps/ndpi__netflix.pcap",
    "benign/chrissanders_http_espn.pcapng",
    "attacks/lateral/pcapattack_LM_rdp_sharprdp.pcapng",
]

#: Captures with addresses only outside the answer section, which dns.log
#: does not list (Zeek skips the authority and additional sections).
NO_ADDRESS_ANSWERS = {
    "zeek/traces/dns-txt-multiple.pcap": "TXT answers; the addresses are glue",
}

pytestmark = pytest.mark.skipif(
    shutil.which("tshark") is None, reason="tshark not installed"
)


def ours(capture: Path) -> list[dict[str, Any]]:
    engine = Engine()
    out = [
        r
        for b in merge([CaptureFile(str(capture))])
        for n, r in engine.process(b)
        if n == "dns"
    ]
    return out + [r for n, r in engine.flush() if n == "dns"]


def wireshark(capture: Path) -> list[tuple[int, bool, int, list[str], set[str]]]:
    """(id, is reply, opcode, question names, A and AAAA addresses) per message."""
    result = subprocess.run(
        [
            "tshark", "-r", str(capture), "-Y", "dns or mdns or llmnr", "-T", "fields",
            "-e", "dns.id", "-e", "dns.flags.response", "-e", "dns.flags.opcode",
            "-e", "dns.qry.name", "-e", "dns.a", "-e", "dns.aaaa",
        ],
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    messages = []
    for line in result.stdout.splitlines():
        ident, reply, opcode, names, a, aaaa = (line.split("\t") + [""] * 6)[:6]
        if not ident:
            continue
        addrs = {x for x in (a + "," + aaaa).split(",") if x}
        qnames = [n for n in names.split(",") if n]
        messages.append(
            (int(ident, 16), reply in ("1", "True"), int(opcode or 0), qnames, addrs)
        )
    return messages


@pytest.mark.parametrize("capture", CAPTURES)
def test_queries_and_answers_agree_with_wireshark(capture: str) -> None:
    path = PCAPS / capture
    records = ours(path)
    theirs = wireshark(path)
    assert records and theirs

    logged = collections.defaultdict(set)
    for rec in records:
        logged[rec["trans_id"]].add(rec.get("query", ""))
    read: dict[int, set[str]] = collections.defaultdict(set)
    for ident, reply, opcode, qnames, addrs in theirs:
        read[ident] |= addrs
        if not reply and opcode == 0 and qnames:
            # dns.log keeps one name per query, the last question's (Zeek's
            # dns_request overwrites it); names in lower case; the root is
            # <Root> in Wireshark and empty in dns.log.
            qname = qnames[-1]
            want = "" if qname == "<Root>" else qname.lower()
            assert want in logged[ident], (
                f"{capture}: query {qname!r} (id {ident}) not in dns.log"
            )

    checked = 0
    for rec in records:
        for answer in rec.get("answers", []):
            if answer.replace(".", "").isdigit() or ":" in answer:
                assert answer in read[rec["trans_id"]], (
                    f"{capture}: {answer} not read by Wireshark"
                )
                checked += 1
    assert checked or capture in NO_ADDRESS_ANSWERS or not any(read.values())
