"""DNS, HTTP and TLS names against pyshark, on small shared captures.

pyshark drives tshark, so Wireshark's dissectors read the same packets
independently of our parsers and of Zeek. Per connection (the two endpoints,
in either order) and, for DNS, per transaction id, the test collects what
Wireshark reads:

- DNS: each message's question (name and type) and, for responses, the A,
  AAAA and CNAME records of the answer section;
- HTTP: each request's Host header and target;
- TLS: the server name of each ClientHello;

and asserts that dns.log, http.log and ssl.log say the same, in both
directions, for the compiled fast paths and for the pure-Python twins.

Where Wireshark's reading and Zeek's log semantics part by design, the test
says so next to the constant or line that handles it, and counts what it
left out: NBNS on port 137 (Zeek's DNS analyzer, Wireshark's NBNS
dissector), DNS quoted inside ICMP errors, names with non-UTF-8 bytes,
type names (ANY, unknown types), SRV owner names split by Wireshark 4.0,
qtype_name only for a seen request, and Teredo on a non-standard port.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import shutil
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PCAPS

pyshark = pytest.importorskip("pyshark")

pytestmark = pytest.mark.skipif(
    shutil.which("tshark") is None,
    reason="tshark not installed (scripts/install-system installs it)",
)

#: Small captures (under 170 KiB, at most 450 packets each) and the
#: kinds of record each must yield, so that a silent oracle fails the test.
CAPTURES: dict[str, set[str]] = {
    "zeek/traces/wikipedia.pcap": {"dns", "http"},
    "zeek/traces/dns53.pcap": {"dns"},
    "zeek/traces/dns__dns-binds.pcap": {"dns"},
    "zeek/traces/dns-txt-multiple.pcap": {"dns"},
    "zeek/traces/dns__mdns.pcap": {"dns"},
    "zeek/traces/http-qinq-0.pcap": {"http"},
    "zeek/traces/mixed-vlan-mpls.pcap": {"http"},
    "zeek/traces/http__cooper-grill-dvwa.pcapng": {"http"},
    "attacks/exploit/corelight_log4j-attack.pcap": {"http"},
    "zeek/traces/tls__tls-conn-with-extensions.pcap": {"tls"},
    "suricata/community-id-ipv6/input.pcap": {"tls"},
    "fingerprints/ja3_ssl-chrome.pcap": {"tls"},
    "fingerprints/ndpi/ndpi__tls_malicious_sha1.pcapng": {"tls"},
    "attacks/exploit/ndpi__malware.pcapng": {"dns", "tls"},
    "fingerprints/ja4_latest.pcapng": {"dns", "http", "tls"},
    "suricata/ethernet-eve/test.pcap": {"dns", "http"},
    "suricata/decode-teredo-01/input.pcap": {"dns", "http"},
    "suricata/dns__bug-1158/input.pcap": {"dns"},
    "attacks/c2/pcapattack_cmds_over_dns_txt.pcap": {"dns"},
    "attacks/dns-tunnel/ndpi__dns-tunnel-iodine.pcap": {"dns"},
    "attacks/dns-tunnel/ndpi__bad-dns-traffic.pcap": {"dns"},
    "attacks/lateral/eternalsafety_doublepulsar-backdoor-connect-win7.pcap": {"dns"},
}

#: Wireshark's names for query types where Zeek's differ (Zeek's
#: base/protocols/dns/consts.zeek names type 255 "*").
QTYPE_NAMES = {"ANY": "*"}

#: UDP port of the NetBIOS name service (RFC 1002). Zeek's DNS analyzer also
#: parses it, so dns.log holds NBNS names (first-level decoded, type NIMLOC
#: for NB); Wireshark hands it to its NBNS dissector, which is not DNS.
NBNS_PORT = 137

#: Stands for a name with bytes that are not UTF-8 (a DNS tunnel's labels):
#: Wireshark shows each as U+FFFD, Zeek as \xNN, so neither text can be
#: rebuilt from the other. Such names are compared by connection and id only.
BINARY_NAME = "<binary>"

#: Answer-section types whose data both sides print the same way.
ADDRESS_TYPES = {"A", "AAAA", "CNAME"}

Key = frozenset[tuple[str, int]]


@dataclass
class Seen:
    """What one side read from one capture; multisets, so repeats count."""

    #: (key, id, query) of every message; dns.log logs a query/response pair
    #: once, so these are compared as sets.
    names: collections.Counter[tuple[Key, int, str]] = field(
        default_factory=collections.Counter
    )
    #: (key, id, query, type) of requests: dns.log has a qtype_name only when
    #: it saw the request (Zeek sets it in dns_request).
    queries: collections.Counter[tuple[Key, int, str, str]] = field(
        default_factory=collections.Counter
    )
    #: (key, id, query) -> answers in order, and whether every answer-section
    #: record was A, AAAA or CNAME (then the whole list must match).
    answers: dict[tuple[Key, int, str], list[tuple[list[str], bool]]] = field(
        default_factory=lambda: collections.defaultdict(list)
    )
    requests: collections.Counter[tuple[Key, str, str]] = field(
        default_factory=collections.Counter
    )
    server_names: collections.Counter[tuple[Key, str]] = field(
        default_factory=collections.Counter
    )
    #: dns.log records left out of the comparison (NBNS), to be reported.
    skipped: int = 0
    #: Packets Wireshark read inside an ICMP error, left out likewise.
    quoted: int = 0
    #: dns.log records whose query is compared as BINARY_NAME.
    binary: int = 0


def fields(layer: Any, name: str) -> list[Any]:
    """Every occurrence of a DNS field in a layer, in packet order.

    The mdns and llmnr layers keep the ``dns.`` prefix on their field names
    (Wireshark's DNS dissector decodes all three), which pyshark turns into
    ``dns_``.
    """
    found = layer.get_field(name)
    if found is None:
        found = layer.get_field("dns_" + name)
    return [] if found is None else list(found.all_fields)


def values(layer: Any, name: str) -> list[str]:
    """Every value of a field, as tshark shows it."""
    return [str(f.show) for f in fields(layer, name)]


def type_names(layer: Any, name: str) -> list[str]:
    """Record type mnemonics ("AAAA (IPv6 Address) (28)" gives "AAAA").

    A type Wireshark has no name for is named as Zeek does ("query-65534",
    the default of base/protocols/dns/consts.zeek).
    """
    out = []
    for f in fields(layer, name):
        mnemonic = str(f.showname_value).split(" ")[0]
        out.append(f"query-{f.show}" if mnemonic == "Unknown" else mnemonic)
    return out


def first_owner(dns: Any) -> str:
    """The owner name of a message's first resource record ("" if none).

    Wireshark 4.0 reads an SRV owner as RFC 2782's _Service._Proto.Name and
    shows it in three fields (srv.service, srv.proto, srv.name) instead of
    resp.name; joined with dots they give the name back.
    """
    types = type_names(dns, "resp_type")
    srv = [values(dns, f"srv_{part}") for part in ("service", "proto", "name")]
    if types[:1] == ["SRV"] and all(srv):
        return ".".join(part[0] for part in srv)
    return next(iter(values(dns, "resp_name")), "")


def endpoints(packet: Any, transport: str) -> Key:
    """The innermost addresses and ports (a tunnel carries an outer pair)."""
    ip = [x for x in packet.layers if x.layer_name in ("ip", "ipv6")][-1]
    ports = [x for x in packet.layers if x.layer_name == transport][-1]
    return frozenset(
        {(str(ip.src), int(ports.srcport)), (str(ip.dst), int(ports.dstport))}
    )


def read_dns(seen: Seen, key: Key, dns: Any) -> None:
    """One DNS message: its question, and for a response its answers."""
    if values(dns, "flags_opcode") != ["0"]:
        return  # dns.log names queries of standard queries only
    ident = int(values(dns, "id")[0], 16)

    # dns.log keeps the last question (Zeek's dns_request overwrites the
    # one before), in lower case; Wireshark shows the root as <Root>. A
    # message without a question (an mDNS announcement) goes under its first
    # answer's name.
    names, types = values(dns, "qry_name"), type_names(dns, "qry_type")
    is_response = values(dns, "flags_response") == ["1"]
    query = names[-1] if names else first_owner(dns)
    query = "" if query == "<Root>" else query.lower()
    query = BINARY_NAME if "\ufffd" in query else query
    seen.names[(key, ident, query)] += 1
    if names and not is_response:
        seen.queries[(key, ident, query, QTYPE_NAMES.get(types[-1], types[-1]))] += 1
    if not is_response:
        return

    # The records of all three sections come in packet order, the answer
    # section first (RFC 1035 section 4.1), and so do the values of each
    # data field: the first count_answers records are the answers.
    data = {t: iter(values(dns, t.lower())) for t in ADDRESS_TYPES}
    answers: list[str] = []
    only_addresses = True
    for rtype in type_names(dns, "resp_type")[: int(values(dns, "count_answers")[0])]:
        if rtype in data:
            answers.append(next(data[rtype]))
        else:
            only_addresses = False
    seen.answers[(key, ident, query)].append((answers, only_addresses))


@contextlib.contextmanager
def event_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A loop of our own for pyshark's tshark subprocess, closed after.

    Passed to pyshark, it keeps pyshark from installing a SafeChildWatcher on
    the process-wide policy. Before Python 3.12 the default watcher is a
    thread per child calling waitpid; here, from the second capture on, it
    found its child gone ("Unknown child process pid ..., will report
    returncode 255") and pyshark took that for a tshark crash. A pidfd watcher
    (Linux 5.3) waits on the one process through the loop itself, as Python
    3.12 and later do on their own.
    """
    loop = asyncio.new_event_loop()
    previous = None
    if sys.version_info < (3, 12):
        previous = asyncio.get_child_watcher()
        watcher = asyncio.PidfdChildWatcher()
        watcher.attach_loop(loop)
        asyncio.set_child_watcher(watcher)
    try:
        yield loop
    finally:
        if previous is not None:
            asyncio.get_child_watcher().close()
            asyncio.set_child_watcher(previous)
        loop.close()


def wireshark(capture: Path) -> Seen:
    """Read one capture through pyshark, in one tshark run."""
    seen = Seen()
    with event_loop() as loop:
        packets = pyshark.FileCapture(
            str(capture),
            display_filter="dns or mdns or llmnr or http.request or tls.handshake.type == 1",
            keep_packets=False,
            eventloop=loop,
            # Teredo (RFC 4380) on a port other than 3544 is found by its
            # content, as Zeek and we find it; Wireshark's heuristic for
            # that is off by default.
            override_prefs={"teredo.heuristic_teredo": "TRUE"},
        )
        # When reading stops early (a failed assertion), pyshark would kill
        # tshark but leave its stdout pipe open, to be reported unclosed
        # after the loop is gone; reading to the end lets tshark exit and
        # asyncio close the pipes. The first error is the one to report.
        stream = iter(packets)
        try:
            for packet in stream:
                names = [x.layer_name for x in packet.layers]
                if "icmp" in names or "icmpv6" in names:
                    # Wireshark also decodes the message quoted in an ICMP
                    # error (RFC 792, RFC 4443); that is no DNS exchange.
                    seen.quoted += 1
                    continue
                key = endpoints(packet, "tcp" if "tcp" in names else "udp")
                for layer in packet.layers:
                    if layer.layer_name in ("dns", "mdns", "llmnr"):
                        read_dns(seen, key, layer)
                    elif layer.layer_name == "http":
                        read_http(seen, key, layer)
                    elif layer.layer_name == "tls":
                        read_tls(seen, key, layer)
        finally:
            with contextlib.suppress(Exception):
                collections.deque(stream, maxlen=0)
            packets.close()
    return seen


def read_http(seen: Seen, key: Key, http: Any) -> None:
    """One HTTP request's Host header and target, %XX decoded once.

    Zeek (and so http.log) decodes percent escapes in the target once and
    leaves malformed ones as they are; so does ``unquote_to_bytes``.
    """
    for uri in fields(http, "request_uri"):
        hosts = values(http, "host")
        target = urllib.parse.unquote_to_bytes(str(uri.show))
        seen.requests[(key, hosts[0] if hosts else "", printable(target))] += 1


def read_tls(seen: Seen, key: Key, tls: Any) -> None:
    """The server name of every ClientHello in a TLS layer."""
    for name in values(tls, "handshake_extensions_server_name"):
        seen.server_names[(key, name)] += 1


def printable(raw: bytes) -> str:
    """Bytes as http.log writes them: UTF-8, other bytes as ``\\xNN``."""
    return raw.decode("utf-8", "backslashreplace")


def replay(capture: Path, logdir: Path, impl: str) -> dict[str, list[dict[str, Any]]]:
    """Our logs for a capture, from sensord in a subprocess so that the
    implementation is picked at import (SENSOR_NO_EXTENSIONS=1: the twins)."""
    env = dict(os.environ)
    if impl == "python":
        env["SENSOR_NO_EXTENSIONS"] = "1"
    else:
        env.pop("SENSOR_NO_EXTENSIONS", None)
    result = subprocess.run(
        [sys.executable, "-m", "sensor.cli.sensord", "--replay", str(capture), "--logdir", str(logdir), "--progress", "never"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    logs = {}
    for name in ("dns", "http", "ssl"):
        path = logdir / f"{name}.log"
        text = path.read_text() if path.exists() else ""
        logs[name] = [json.loads(line) for line in text.splitlines()]
    return logs


def ours(logs: dict[str, list[dict[str, Any]]]) -> Seen:
    """The same names, read from our dns.log, http.log and ssl.log."""
    seen = Seen()
    for name, records in logs.items():
        for r in records:
            key = frozenset(
                {(r["id.orig_h"], r["id.orig_p"]), (r["id.resp_h"], r["id.resp_p"])}
            )
            if name == "dns" and "query" in r:
                if NBNS_PORT in (r["id.orig_p"], r["id.resp_p"]):
                    seen.skipped += 1
                    continue
                query = BINARY_NAME if "\\x" in r["query"] else r["query"]
                seen.binary += query == BINARY_NAME
                seen.names[(key, r["trans_id"], query)] += 1
                if "qtype_name" in r:
                    seen.queries[(key, r["trans_id"], query, r["qtype_name"])] += 1
                if "rcode" in r:
                    seen.answers[(key, r["trans_id"], query)].append(
                        (r.get("answers", []), True)
                    )
            elif name == "http" and "method" in r:
                seen.requests[(key, r.get("host", ""), r.get("uri", ""))] += 1
            elif name == "ssl" and "server_name" in r:
                seen.server_names[(key, r["server_name"])] += 1
    return seen


def compare_dns(theirs: Seen, mine: Seen) -> dict[str, int]:
    """Questions both ways, answers of every response; how many compared."""
    assert set(theirs.names) == set(mine.names), (
        f"only Wireshark: {set(theirs.names) - set(mine.names)}; "
        f"only dns.log: {set(mine.names) - set(theirs.names)}"
    )
    assert set(theirs.queries) == set(mine.queries), (
        f"only Wireshark: {set(theirs.queries) - set(mine.queries)}; "
        f"only dns.log: {set(mine.queries) - set(theirs.queries)}"
    )

    # A retransmitted response is one dns.log record, so each Wireshark
    # response must match some record under its name; when every answer is
    # A, AAAA or CNAME the whole list must be equal, in order.
    compared = {"dns names": len(set(theirs.names))}
    compared["dns types"] = len(set(theirs.queries))
    compared["dns responses"] = compared["dns answers"] = 0
    for name, responses in theirs.answers.items():
        logged = [answers for answers, _ in mine.answers.get(name, [])]
        for answers, whole in responses:
            if whole:
                assert answers in logged, (
                    f"{name}: Wireshark {answers}, dns.log {logged}"
                )
            else:
                assert any(
                    not (collections.Counter(answers) - collections.Counter(got))
                    for got in logged
                ), f"{name}: Wireshark {answers} not within dns.log {logged}"
            compared["dns responses"] += 1
            compared["dns answers"] += len(answers)
    assert set(mine.answers) <= set(theirs.answers), (
        f"responses Wireshark did not read: {set(mine.answers) - set(theirs.answers)}"
    )
    return compared


def compare_counts(
    what: str, theirs: collections.Counter[Any], mine: collections.Counter[Any]
) -> int:
    """Equal multisets; how many items compared."""
    assert theirs == mine, (
        f"{what}: only Wireshark {theirs - mine}; only ours {mine - theirs}"
    )
    return sum(theirs.values())


@pytest.fixture(scope="module")
def oracle() -> dict[str, Seen]:
    """pyshark's reading of each capture, read once for both implementations."""
    return {}


@pytest.mark.parametrize("capture", sorted(CAPTURES))
def test_names_agree_with_pyshark(
    capture: str, impl: str, oracle: dict[str, Seen], tmp_path: Path
) -> None:
    path = PCAPS / capture
    if capture not in oracle:
        oracle[capture] = wireshark(path)
    theirs = oracle[capture]
    mine = ours(replay(path, tmp_path, impl))

    compared = compare_dns(theirs, mine)
    compared["http requests"] = compare_counts(
        "http requests", theirs.requests, mine.requests
    )
    compared["tls server names"] = compare_counts(
        "tls server names", theirs.server_names, mine.server_names
    )
    compared["nbns skipped"] = mine.skipped
    compared["icmp-quoted skipped"] = theirs.quoted
    compared["dns binary names"] = mine.binary
    print(f"{capture} [{impl}]: {compared}")

    kinds = {
        "dns": compared["dns names"] and compared["dns responses"],
        "http": compared["http requests"],
        "tls": compared["tls server names"],
    }
    empty = {kind for kind in CAPTURES[capture] if not kinds[kind]}
    assert not empty, f"nothing compared for {empty}: the oracle read nothing"
