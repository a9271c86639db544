"""Dev harness: replay captures through the Engine with chosen analyzers.

Until the connection table delivers whole streams, this raises its payload
limits so that every UDP datagram and every TCP segment (in capture order,
not reassembled) reaches the analyzers, writes the logs, and scores them
with ../shared/tools/zeek-compare against Zeek's logs of the same capture::

    python3 tests/proto/analyzer_harness.py dns [--full] [CAPTURE ...]

``--full`` lifts the payload limits; without it the Engine's defaults hold.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sensor.capture.merge import merge  # noqa: E402
from sensor.capture.pcapfile import CaptureFile  # noqa: E402
from sensor.engine import Engine  # noqa: E402
from sensor.flow.table import FlowConfig  # noqa: E402
from sensor.output.zeeklog import LogWriter  # noqa: E402
from sensor.proto.dispatch import Dispatcher  # noqa: E402

SHARED = ROOT.parent / "shared"
PCAPS = SHARED / "pcaps"
ZEEK_LOGS = PCAPS / "zeek-logs"
COMPARE = SHARED / "tools" / "zeek-compare"


def analyzer_classes() -> tuple[type, ...]:
    from sensor.proto.analyzers.dhcp import DHCPAnalyzer
    from sensor.proto.analyzers.dns import DNSAnalyzer
    from sensor.proto.analyzers.ssh import SSHAnalyzer

    return (DNSAnalyzer, DHCPAnalyzer, SSHAnalyzer)


def replay(capture: Path, logdir: Path, full: bool) -> None:
    """Run ``capture`` through an Engine and write its logs to ``logdir``."""
    config = (
        FlowConfig(payload_packets=1 << 40, payload_bytes=1 << 50) if full else None
    )
    engine = Engine(config)
    engine.analyzers = Dispatcher(analyzer_classes())
    with LogWriter(logdir) as out:
        for batch in merge([CaptureFile(str(capture))]):
            for name, record in engine.process(batch):
                out.write(name, record)
        for name, record in engine.flush():
            out.write(name, record)


def score(
    log: str, capture_rel: str, logdir: Path, expected: Path | None = None
) -> dict[str, int]:
    """zeek-compare's JSON summary for one log of one capture."""
    want = expected or ZEEK_LOGS / capture_rel / f"{log}.log"
    got = logdir / f"{log}.log"
    if not got.exists():
        got.write_text("")
    res = subprocess.run(
        [
            sys.executable,
            str(COMPARE),
            "--log",
            log,
            str(want),
            str(got),
            "--json",
            "--show",
            "3",
        ],
        capture_output=True,
        text=True,
    )
    if res.stderr.strip():
        print(res.stderr.strip())
    return json.loads(res.stdout.strip().splitlines()[-2])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("captures", nargs="*")
    ap.add_argument("--full", action="store_true")
    args = ap.parse_args()
    captures = args.captures or sorted(
        str(p.parent.relative_to(ZEEK_LOGS)) for p in ZEEK_LOGS.rglob(f"{args.log}.log")
    )
    total = equal = 0
    with tempfile.TemporaryDirectory() as tmp:
        for rel in captures:
            logdir = Path(tmp) / rel
            replay(PCAPS / rel, logdir, args.full)
            s = score(args.log, rel, logdir)
            total += s["expected"]
            equal += s["equal"]
            print(f"{rel}: {s['equal']}/{s['expected']} equal, {s['extra']} extra")
    print(
        f"{args.log}: {equal}/{total} fully equal ({100.0 * equal / max(total, 1):.1f}%)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
