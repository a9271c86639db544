"""Dev harness: replay captures through the Engine with the dns, dhcp and ssh analyzers.

It writes the logs of every capture for which Zeek wrote the log, scores
them with ../shared/tools/zeek-compare against Zeek's logs and the
zeek-pairs.jsonl baselines, and validates every record against its
schema::

    python3 tests/proto/analyzer_harness.py dns|dhcp|ssh [--full] [--json]

``--full`` also lifts the connection table's payload limits (every packet
of every connection reaches the analyzers, as it did before the table
followed streams); without it the Engine's defaults hold, as in sensord.
"""

from __future__ import annotations

import argparse
import collections
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
        print(res.stderr.strip(), file=sys.stderr)
    return json.loads(res.stdout.strip().splitlines()[-2])


def captures_with(log: str) -> list[str]:
    """Every capture (relative path) for which Zeek wrote ``log``."""
    return sorted(
        str(p.parent.relative_to(ZEEK_LOGS)) for p in ZEEK_LOGS.rglob(f"{log}.log")
    )


def baselines(log: str) -> list[tuple[str, str]]:
    """``(capture, baseline)`` pairs of zeek-pairs.jsonl for ``log``."""
    pairs = []
    for line in (PCAPS / "zeek-pairs.jsonl").read_text().splitlines():
        pair = json.loads(line)
        if pair["log"] == log:
            pairs.append((pair["trace"], pair["baseline"]))
    return pairs


def schema_errors(log: str, logdir: Path) -> list[str]:
    """Every record of ``log`` that its JSON Schema rejects, with the reason."""
    import jsonschema

    path = ROOT / "sensor" / "output" / "schemas" / f"{log}.schema.json"
    check = jsonschema.Draft202012Validator(
        json.loads(path.read_text()), format_checker=jsonschema.FormatChecker()
    )
    written = logdir / f"{log}.log"
    lines = written.read_text().splitlines() if written.exists() else []
    return [
        f"{line[:200]}: {e.message}"
        for line in lines
        for e in check.iter_errors(json.loads(line))
    ]


#: Fields left out of the whole-record comparison: ids that differ by design
#: (uids) and fields that Zeek's default scripts do not write.
NOT_COMPARED = frozenset(
    {"uid", "uids", "host_key", "hasshVersion", "hassh", "hasshServer"}
    | {"hasshAlgorithms", "hasshServerAlgorithms"}
)


def identical(log: str, logdir: Path, zeek_log: Path) -> int:
    """How many of Zeek's records we wrote field for field (times to 10 us)."""

    def key(line: str) -> str:
        rec = json.loads(line)
        for name in ("ts", "duration", "rtt"):
            if isinstance(rec.get(name), float):
                rec[name] = round(rec[name], 5)
        return json.dumps({k: v for k, v in rec.items() if k not in NOT_COMPARED})

    ours = logdir / f"{log}.log"
    mine = collections.Counter(
        map(key, ours.read_text().splitlines() if ours.exists() else [])
    )
    theirs = collections.Counter(map(key, zeek_log.read_text().splitlines()))
    return sum((mine & theirs).values())


def agreement(log: str, full: bool) -> dict[str, dict[str, object]]:
    """Per capture and per baseline: zeek-compare's summary and schema errors.

    For Zeek's logs (not the TSV baselines) ``identical`` also counts the
    records that are equal field for field, order included.
    """
    jobs = [(rel, rel, None) for rel in captures_with(log)]
    jobs += [(f"{rel} @ {base}", rel, PCAPS / base) for rel, base in baselines(log)]
    out: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        replayed: dict[str, Path] = {}
        for name, rel, expected in jobs:
            if rel not in replayed:
                replayed[rel] = Path(tmp) / rel
                replay(PCAPS / rel, replayed[rel], full)
            summary = score(log, rel, replayed[rel], expected)
            out[name] = {**summary, "schema_errors": schema_errors(log, replayed[rel])}
            if expected is None:
                zeek_log = ZEEK_LOGS / rel / f"{log}.log"
                out[name]["identical"] = identical(log, replayed[rel], zeek_log)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()
    results = agreement(args.log, args.full)
    if args.json:
        print(json.dumps(results))
        return 0
    total = equal = same = 0
    for name, s in results.items():
        if "@" not in name:
            total += int(s["expected"])  # type: ignore[call-overload]
            equal += int(s["equal"])  # type: ignore[call-overload]
            same += int(s["identical"])  # type: ignore[call-overload]
        print(f"{name}: {s['equal']}/{s['expected']} equal, {s['extra']} extra")
        for err in s["schema_errors"][:3]:  # type: ignore[index]
            print("  schema:", err)
    pct = 100.0 * equal / max(total, 1)
    print(f"{args.log}: {equal}/{total} fully equal ({pct:.1f}%) over Zeek's logs")
    print(f"{args.log}: {same}/{total} identical field for field (uids aside)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
