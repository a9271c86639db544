"""The network detections take hostile and incomplete records in stride.

Records come from the engine, but their contents come from the wire: a
query of 300 dots, a Host of colons, a link that is not a URL, fields
missing. No detection may raise on them (the runner would count an error
and skip the record, losing the evidence after it).
"""

from __future__ import annotations

from typing import Any

import pytest

from sensor.detect.runner import load_all
from tests.detect.netfakes import FakeNet

MINE = [
    "c2.beacon",
    "tunnel.dns",
    "tunnel.icmp",
    "dns.dga",
    "exfil.volume",
    "endpoint.rare",
    "email.rare_link",
    "file.rare_download",
    "tls.rare_fingerprint",
]

HOSTILE: list[dict[str, Any]] = [
    {},
    {"ts": 1.0},
    {"ts": 1.0, "uid": None, "id.orig_h": None, "id.resp_h": None},
    {
        "ts": 2.0,
        "uid": "C1",
        "id.orig_h": "192.168.1.1",
        "id.resp_h": "not-an-address",
        "id.resp_p": None,
        "proto": "icmp",
        "id.orig_p": 8,
        "urls": ["http://[::1", "::::", ""],
        "mailfrom": "a@b",
        "rcptto": None,
    },
    {
        "ts": 3.0,
        "uid": "C2",
        "id.orig_h": "192.168.1.1",
        "id.resp_h": "8.8.8.8",
        "id.resp_p": 53,
        "query": "." * 300,
        "rcode_name": "NXDOMAIN",
        "qtype_name": "TXT",
        "answers": [1, None, "x" * 70000],
    },
    {
        "ts": 4.0,
        "uid": "C3",
        "id.orig_h": "192.168.1.1",
        "host": ":::",
        "uri": None,
        "server_name": "",
        "ja3": "",
        "source": "HTTP",
        "is_orig": False,
        "seen_bytes": None,
        "filename": "a" * 5000,
    },
]


@pytest.mark.parametrize("name", MINE)
def test_no_record_raises(name: str) -> None:
    det = load_all()[name](FakeNet())
    for log in (*det.logs, "files", "smtp"):
        for record in HOSTILE:
            det.observe(log, dict(record))
    det.tick(10.0)
    det.finish(11.0)
