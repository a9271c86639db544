"""Replay shared captures through ConnTable and score conn.log against Zeek's.

Usage (from the repository root)::

    python3 tests/flow/zeekconn.py                 # every capture, summary
    python3 tests/flow/zeekconn.py -v CAPTURE...   # named ones, with diffs
    python3 tests/flow/zeekconn.py --out DIR       # also write our conn logs

A capture is a path relative to ``../shared/pcaps``. Records are paired and
compared as ``/work/shared/tools/zeek-compare`` does (same key, same field
normalisation), on the fields in :data:`FIELDS` (``service`` is left out: it
belongs to service detection).

The small pcap/pcapng reader here keeps each packet's wire length and each
pcapng interface's link type, which the decoder needs; the real readers live
in ``sensor/capture``.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sensor.capture.batch import Batch
from sensor.flow.table import ConnTable

SHARED = Path(os.environ.get("SENSOR_SHARED", ROOT.parent / "shared")).resolve()
PCAPS = SHARED / "pcaps"
LOGS = PCAPS / "zeek-logs"
FIELDS = [
    "proto", "duration", "orig_bytes", "resp_bytes", "conn_state", "missed_bytes",
    "history", "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes",
]  # fmt: skip
TUPLE = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p")


def read_packets(path: Path) -> Iterator[tuple[int, int, bytes, int]]:
    """(ts_ns, linktype, data, wirelen) for each packet of a pcap or pcapng."""
    raw = path.read_bytes()
    magic = raw[:4]
    if magic == b"\x0a\x0d\x0d\x0a":
        yield from _pcapng(raw)
        return
    for endian, nano in (("<", False), (">", False), ("<", True), (">", True)):
        want = 0xA1B23C4D if nano else 0xA1B2C3D4
        if struct.unpack(endian + "I", magic)[0] == want:
            break
    else:
        raise ValueError(f"{path}: not a pcap file")
    linktype = struct.unpack_from(endian + "I", raw, 20)[0] & 0x0FFFFFFF
    off = 24
    scale = 1 if nano else 1000
    while off + 16 <= len(raw):
        sec, frac, incl, orig = struct.unpack_from(endian + "IIII", raw, off)
        off += 16
        yield sec * 1_000_000_000 + frac * scale, linktype, raw[off : off + incl], orig
        off += incl


def _pcapng(raw: bytes) -> Iterator[tuple[int, int, bytes, int]]:
    off = 0
    endian = "<"
    ifaces: list[tuple[int, int]] = []  # (linktype, ticks per second)
    while off + 12 <= len(raw):
        btype = struct.unpack_from(endian + "I", raw, off)[0]
        if btype == 0x0A0D0D0A:
            endian = "<" if raw[off + 8 : off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            ifaces = []
        blen = struct.unpack_from(endian + "I", raw, off + 4)[0]
        body = raw[off + 8 : off + blen - 4]
        if btype == 1:
            linktype = struct.unpack_from(endian + "H", body, 0)[0]
            res = 1_000_000
            o = 8
            while o + 4 <= len(body):
                code, olen = struct.unpack_from(endian + "HH", body, o)
                if code == 0:
                    break
                if code == 9:
                    v = body[o + 4]
                    res = 2 ** (v & 0x7F) if v & 0x80 else 10**v
                o += 4 + ((olen + 3) & ~3)
            ifaces.append((linktype, res))
        elif btype == 6:
            iface, hi, lo, cap, orig = struct.unpack_from(endian + "IIIII", body, 0)
            linktype, res = ifaces[iface]
            ticks = (hi << 32) | lo
            yield ticks * 1_000_000_000 // res, linktype, body[20 : 20 + cap], orig
        elif btype == 3:
            orig = struct.unpack_from(endian + "I", body, 0)[0]
            linktype, _ = ifaces[0]
            yield 0, linktype, body[4 : 4 + orig], orig
        if blen < 12:
            break
        off += blen


def run_capture(path: Path, batch_size: int = 2048) -> list[dict]:
    """Our conn records for one capture."""
    table = ConnTable()
    out: list[dict] = []
    pending: list[tuple[int, int, bytes]] = []
    wire: list[int] = []
    for ts, lt, data, orig in read_packets(path):
        pending.append((ts, lt, data))
        wire.append(orig)
        if len(pending) >= batch_size:
            out += table.process(Batch.from_packets(pending, wire)).conns
            pending, wire = [], []
    if pending:
        out += table.process(Batch.from_packets(pending, wire)).conns
    out += table.flush().conns
    return out


def _norm(value: object) -> object:
    if isinstance(value, float):
        return round(value, 6)
    return value


def compare(
    want: list[dict], got: list[dict]
) -> tuple[int, int, list[tuple[dict, dict, list[str]]]]:
    """(paired, fully equal, differing pairs), paired as zeek-compare does."""

    def group(rows: list[dict]) -> dict:
        by = defaultdict(list)
        for i, r in enumerate(rows):
            key = tuple(str(r.get(k)) for k in TUPLE) + (str(r.get("proto", "")),)
            by[key].append((r.get("ts") or 0.0, i, r))
        for items in by.values():
            items.sort(key=lambda t: (t[0] if isinstance(t[0], float) else 0.0, t[1]))
        return by

    present = {k for r in want for k in r}
    fields = [f for f in FIELDS if f in present]
    wg, gg = group(want), group(got)
    paired = equal = 0
    diffs = []
    for key, items in wg.items():
        for (_, _, w), (_, _, g) in zip(items, gg.get(key, [])):
            paired += 1
            d = [f for f in fields if _norm(w.get(f)) != _norm(g.get(f))]
            if d:
                diffs.append((w, g, d))
            else:
                equal += 1
    return paired, equal, diffs


def captures() -> list[str]:
    """Every capture that has a Zeek conn.log (relative paths)."""
    return sorted(str(p.parent.relative_to(LOGS)) for p in LOGS.rglob("conn.log"))


def load_zeek(rel: str) -> list[dict]:
    rows = []
    for line in (LOGS / rel / "conn.log").read_text().splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("captures", nargs="*")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--show", type=int, default=10)
    args = ap.parse_args()
    names = args.captures or captures()
    total = equal_all = 0
    buckets: Counter[str] = Counter()
    for rel in names:
        want = load_zeek(rel)
        got = run_capture(PCAPS / rel)
        if args.out:
            dest = args.out / rel
            dest.mkdir(parents=True, exist_ok=True)
            with open(dest / "conn.log", "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in got)
        paired, equal, diffs = compare(want, got)
        total += len(want)
        equal_all += equal
        for _, _, d in diffs:
            buckets[",".join(d)] += 1
        unpaired = len(want) - paired
        for _ in range(unpaired):
            buckets["unpaired"] += 1
        pct = 100.0 * equal / len(want) if want else 100.0
        print(
            f"{pct:6.1f}% {equal:5}/{len(want):<5} extra={len(got) - paired:<4} {rel}"
        )
        if args.verbose:
            for w, g, d in diffs[: args.show]:
                key = " ".join(str(w.get(k)) for k in TUPLE)
                print(
                    "   ",
                    key,
                    w.get("proto"),
                    "; ".join(f"{f}: want {w.get(f)!r} got {g.get(f)!r}" for f in d),
                )
    pct = 100.0 * equal_all / total if total else 100.0
    print(f"TOTAL {equal_all}/{total} fully equal ({pct:.2f}%)")
    for name, n in buckets.most_common(15):
        print(f"  {n:6}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
