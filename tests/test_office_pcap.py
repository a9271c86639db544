"""The bundled office capture is what pcaps/README.md says, and regenerates."""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path

import dpkt
import pytest

ROOT = Path(__file__).resolve().parent.parent
OFFICE = ROOT / "pcaps" / "office" / "office.pcap"


def test_regenerates_byte_for_byte(tmp_path: Path) -> None:
    pytest.importorskip("scapy")
    out = tmp_path / "office.pcap"
    subprocess.run(
        [sys.executable, str(ROOT / "pcaps/office/make_office.py"), str(out)],
        check=True,
        capture_output=True,
    )
    assert out.read_bytes() == OFFICE.read_bytes()


def test_contents_match_readme() -> None:
    syns: collections.Counter[tuple[str, int]] = collections.Counter()
    answers: collections.Counter[str] = collections.Counter()
    times = []
    with OFFICE.open("rb") as f:
        for ts, data in dpkt.pcap.Reader(f):
            times.append(ts)
            ip = dpkt.ethernet.Ethernet(data).data
            if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.tcp.TCP):
                continue
            tcp = ip.data
            src = ".".join(map(str, ip.src))
            if src == "192.168.10.102" and tcp.sport == 40993:
                syns[(src, tcp.dport)] += 1
            if src == "192.168.10.10" and tcp.dport == 40993:
                answers["open" if tcp.flags & dpkt.tcp.TH_SYN else "closed"] += 1
    assert len(times) == 2555
    assert times[0] == 1793610002.0  # 2026-11-02 09:00:02 UTC
    assert times == sorted(times)
    # 300 ports; 3 filtered ones probed twice; 7 open answered, 290 reset.
    assert len(syns) == 300 and sum(syns.values()) == 300 + 7 + 3
    assert answers == {"open": 7, "closed": 290}
