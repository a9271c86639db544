"""HTTP against Wireshark's dissectors, on the small shared captures.

Wireshark (through tshark) reads the same packets independently of Zeek:
every request's Host and URI must be among ours, and every object its HTTP
export writes (bodies with chunked framing and gzip undone) must be one of
our files, byte for byte, which the SHA-256 in files.log shows.
"""

from __future__ import annotations

import collections
import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sensor.capture.merge import merge
from sensor.capture.pcapfile import CaptureFile
from sensor.engine import Engine
from sensor.proto.parsers.http import unescape_uri
from tests.conftest import PCAPS

#: Small captures with HTTP: plain, chunked, gzip, POST bodies, QinQ, IPv6.
CAPTURES = [
    "zeek/traces/http__get.pcap",
    "zeek/traces/wikipedia.pcap",
    "zeek/traces/http__cooper-grill-dvwa.pcapng",
    "zeek/traces/http-qinq-0.pcap",
    "zeek/traces/mixed-vlan-mpls.pcap",
    "attacks/c2/chrissanders_cryptowall4_c2.pcapng",
    "attacks/exploit/chrissanders_ek_to_cryptowall4.pcapng",
    "attacks/exploit/corelight_log4j-attack.pcap",
    "suricata/decode-teredo-01/input.pcap",
]

#: Captures whose bodies Wireshark exports differently, and why.
OBJECTS_DIFFER = {
    "zeek/traces/mixed-vlan-mpls.pcap": "a reply on a connection without its handshake: Wireshark exports each of its three segments as an object, Zeek and we one body of 3429 bytes",
}

pytestmark = pytest.mark.skipif(
    shutil.which("tshark") is None,
    reason="tshark not installed (scripts/install-system installs it)",
)


def ours(capture: Path) -> dict[str, list[dict[str, Any]]]:
    engine = Engine()
    out: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for batch in merge([CaptureFile(str(capture))]):
        for name, record in engine.process(batch):
            out[name].append(record)
    for name, record in engine.flush():
        out[name].append(record)
    return out


def wireshark(
    capture: Path, tmp: Path
) -> tuple[collections.Counter[tuple[str, str]], set[str]]:
    """(host, URI) of every request, and the SHA-256 of every exported object
    (one tshark run: its start-up is most of its time here)."""
    result = subprocess.run(
        [
            "tshark", "-r", str(capture), "--export-objects", f"http,{tmp}",
            "-T", "fields", "-e", "http.host", "-e", "http.request.uri",
        ],
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    requests: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in result.stdout.splitlines():
        host, _, uri = line.partition("\t")
        if uri:
            # tshark prints the target as sent; ours has %XX decoded once (Zeek).
            requests[(host, unescape_uri(uri.encode()))] += 1
    objects = {
        hashlib.sha256(p.read_bytes()).hexdigest()
        for p in tmp.iterdir()
        if p.stat().st_size
    }
    return requests, objects


@pytest.mark.parametrize("capture", CAPTURES)
def test_hosts_uris_and_bodies_agree_with_wireshark(
    capture: str, tmp_path: Path
) -> None:
    path = PCAPS / capture
    logs = ours(path)

    want, objects = wireshark(path, tmp_path)
    got = collections.Counter(
        (r.get("host", ""), r.get("uri", "")) for r in logs["http"] if "method" in r
    )
    assert want, "tshark found no request"
    missing = want - got
    assert not missing, f"requests Wireshark reads and we do not: {missing}"

    if capture in OBJECTS_DIFFER:
        return
    hashes = {r["sha256"] for r in logs["files"]}
    assert objects <= hashes, (
        f"{len(objects - hashes)} of {len(objects)} Wireshark objects not among our files"
    )
