"""Dev harness: ssl.log and x509.log of the shared captures against Zeek's.

Replays each capture that has a Zeek ssl.log or x509.log through the Engine
with every registered analyzer (``--tls-only``: the TLS analyzer alone) and
scores:

- ssl.log with ../shared/tools/zeek-compare (its default fields: version,
  cipher, curve, server_name, resumed, established), and by this harness on
  every field Zeek wrote (``ssl_history``, ``next_protocol``,
  ``last_alert``, the certificate fingerprints, ``sni_matches_cert``);
- x509.log, which zeek-compare does not know: records are paired by
  ``fingerprint``, ``host_cert`` and ``client_cert`` and every field Zeek
  wrote but ``ts`` is compared.

``--dump FILE`` writes the records instead of scoring them (the tests run
the harness in a subprocess per implementation). ``--full`` lifts the connection table's payload limits (every segment, in
capture order) for as long as the table does not deliver whole streams::

    python3 tests/proto/tls_harness.py [--full] [-v] [CAPTURE ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sensor.capture.merge import merge
from sensor.capture.pcapfile import CaptureFile
from sensor.engine import Engine
from sensor.flow.table import FlowConfig
from sensor.output.zeeklog import LogWriter
from sensor.proto.analyzers.tls import TLSAnalyzer
from sensor.proto.dispatch import Dispatcher

PCAPS = ROOT.parent / "shared" / "pcaps"
ZEEK_LOGS = PCAPS / "zeek-logs"

SSL_FIELDS = (
    "version", "cipher", "curve", "server_name", "resumed", "established",
    "ssl_history", "next_protocol", "last_alert", "cert_chain_fps",
    "client_cert_chain_fps", "sni_matches_cert",
)  # fmt: skip
TUPLE = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p")


def captures() -> list[str]:
    """Every capture with a Zeek ssl.log or x509.log, relative to the pcaps."""
    found = {p.parent for p in ZEEK_LOGS.rglob("ssl.log")}
    found |= {p.parent for p in ZEEK_LOGS.rglob("x509.log")}
    return sorted(str(p.relative_to(ZEEK_LOGS)) for p in found)


def replay(
    capture: Path, full: bool, tls_only: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """The records the Engine writes for ``capture``, by log name.

    Every registered analyzer runs (SMTP hands STARTTLS streams to TLS)
    unless ``tls_only``.
    """
    config = (
        FlowConfig(payload_packets=1 << 40, payload_bytes=1 << 50) if full else None
    )
    engine = Engine(config)
    if tls_only:
        engine.analyzers = Dispatcher((TLSAnalyzer,))
    out: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        with LogWriter(tmp) as writer:
            for batch in merge([CaptureFile(str(capture))]):
                for name, record in engine.process(batch):
                    writer.write(name, record)
            for name, record in engine.flush():
                writer.write(name, record)
        for log in Path(tmp).glob("*.log"):
            out[log.stem] = [json.loads(line) for line in log.read_text().splitlines()]
    return out


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def pair(
    want: list[dict[str, Any]], got: list[dict[str, Any]], key: tuple[str, ...]
) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Pair records on ``key`` in time order (as zeek-compare does)."""
    pool: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for rec in sorted(got, key=lambda r: r.get("ts", 0.0)):
        pool.setdefault(tuple(rec.get(k) for k in key), []).append(rec)
    out = []
    for rec in sorted(want, key=lambda r: r.get("ts", 0.0)):
        mine = pool.get(tuple(rec.get(k) for k in key))
        out.append((rec, mine.pop(0) if mine else None))
    return out


def score(
    want: list[dict[str, Any]], got: list[dict[str, Any]], log: str
) -> tuple[int, int, Counter[str], list[str]]:
    """(records, fully equal, differing field counts, difference lines)."""
    if log == "ssl":
        key, fields = TUPLE, SSL_FIELDS
    else:
        key = ("fingerprint", "host_cert", "client_cert")
        fields = tuple(sorted({k for r in want for k in r} - {"ts"}))
    equal, diffs, lines = 0, Counter[str](), []
    for w, g in pair(want, got, key):
        if g is None:
            diffs["<unpaired>"] += 1
            lines.append(f"unpaired {[w.get(k) for k in key]}")
            continue
        bad = [f for f in fields if w.get(f) != g.get(f)]
        diffs.update(bad)
        if not bad:
            equal += 1
        else:
            lines.append(
                f"{[w.get(k) for k in key]}: "
                + "; ".join(f"{f}: want {w.get(f)!r} got {g.get(f)!r}" for f in bad)
            )
    return len(want), equal, diffs, lines


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("captures", nargs="*")
    ap.add_argument("--full", action="store_true")
    ap.add_argument("-v", action="store_true")
    ap.add_argument("--tls-only", action="store_true")
    ap.add_argument(
        "--dump", help="write {capture: {log: records}} as JSON here and stop"
    )
    args = ap.parse_args()
    if args.dump:
        dump = {
            rel: replay(PCAPS / rel, args.full) for rel in args.captures or captures()
        }
        Path(args.dump).write_text(json.dumps(dump))
        return 0
    totals = {log: [0, 0, Counter[str]()] for log in ("ssl", "x509")}
    for rel in args.captures or captures():
        got = replay(PCAPS / rel, args.full, args.tls_only)
        for log in ("ssl", "x509"):
            want = read(ZEEK_LOGS / rel / f"{log}.log")
            if not want:
                continue
            n, eq, diffs, lines = score(want, got.get(log, []), log)
            t = totals[log]
            t[0] += n  # type: ignore[operator]
            t[1] += eq  # type: ignore[operator]
            t[2].update(diffs)  # type: ignore[union-attr]
            extra = len(got.get(log, [])) - n
            print(f"{log} {rel}: {eq}/{n} equal ({extra:+d} records) {dict(diffs)}")
            if args.v:
                for line in lines[:10]:
                    print("   ", line)
    for log, (n, eq, diffs) in totals.items():
        print(
            f"{log}: {eq}/{n} fully equal ({100.0 * eq / max(n, 1):.1f}%) {dict(diffs)}"
        )  # type: ignore[call-overload]
    return 0


if __name__ == "__main__":
    sys.exit(main())
