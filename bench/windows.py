"""Throughput of the engine with the Windows protocol analyzers on.

    python3 bench/windows.py [--repeat N]

Replays the shared captures of Windows networks (the lateral-movement
attacks, the Windows lab, the SMB brute force and scan, Suricata's
DCE-RPC cases) in one process through the engine three ways, each the
best of ``--repeat`` runs of CPU time (user + system):

- ``bare``: decode, connection table and service detection, no analyzer;
- ``windows``: plus the SMB, DCE-RPC, Kerberos, NTLM (inside SMB and
  DCE-RPC) and LDAP analyzers;
- ``all``: every registered analyzer.

Prints packets, records written, packets and megabits per second of CPU
(captured bytes), and the share
of CPU the Windows analyzers add to the bare engine. The captures are read
into memory first, so the reader's cost is outside the figures.
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sensor.capture.merge import merge
from sensor.capture.pcapfile import CaptureFile
from sensor.engine import Engine
from sensor.proto.analyzers.dcerpc import DCERPCAnalyzer
from sensor.proto.analyzers.kerberos import KerberosAnalyzer
from sensor.proto.analyzers.ldap import LDAPAnalyzer
from sensor.proto.analyzers.smb import SMBAnalyzer
from sensor.proto.dispatch import Dispatcher
from sensor.proto.registry import ANALYZERS

PCAPS = ROOT.parent / "shared" / "pcaps"
CAPTURES = [
    *sorted(str(p) for p in (PCAPS / "attacks/lateral").glob("*.pcap*")),
    *sorted(str(p) for p in (PCAPS / "benign").glob("winlab_*.pcapng")),
    str(PCAPS / "attacks/bruteforce/elcabezzonn_aug19_smb_bruteforce.pcapng"),
    str(PCAPS / "attacks/scan/evilfingers_xscan_capture.pcap"),
    *sorted(str(p) for p in (PCAPS / "suricata").glob("dcerpc*/input.pcap")),
    str(PCAPS / "suricata/bug-5162/input.pcap"),
]
WINDOWS = (DCERPCAnalyzer, SMBAnalyzer, KerberosAnalyzer, LDAPAnalyzer)


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(batches: list[list[Any]], analyzers: tuple[type, ...]) -> tuple[float, int]:
    """CPU seconds and records of one replay of every capture."""
    start = cpu()
    records = 0
    for capture in batches:
        engine = Engine()
        engine.analyzers = Dispatcher(analyzers)
        for batch in capture:
            records += len(engine.process(batch))
        records += len(engine.flush())
    return cpu() - start, records


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    batches = [list(merge([CaptureFile(c)])) for c in CAPTURES if Path(c).exists()]
    packets = sum(len(b) for cap in batches for b in cap)
    size = sum(int(b.caplens.sum()) for cap in batches for b in cap)
    print(f"{len(batches)} captures, {packets:,} packets, {size / 1e6:.1f} MB")
    best: dict[str, tuple[float, int]] = {}
    for _ in range(args.repeat):
        for name, classes in (("bare", ()), ("windows", WINDOWS), ("all", ANALYZERS)):
            took, recs = run(batches, classes)
            if name not in best or took < best[name][0]:
                best[name] = (took, recs)
    print(
        f"{'engine':10} {'CPU s':>8} {'records':>8} {'pkts/s CPU':>11} {'Mbit/s CPU':>11}"
    )
    for name, (took, recs) in best.items():
        rate = 8 * size / took / 1e6
        print(f"{name:10} {took:8.2f} {recs:8,} {packets / took:11,.0f} {rate:11,.0f}")
    bare, win = best["bare"][0], best["windows"][0]
    print(f"Windows analyzers: {100 * (win - bare) / win:.0f}% of the engine's CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
