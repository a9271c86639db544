"""Dev harness: run the HTTP analyzer over naively reassembled TCP streams.

It stands in for the connection table's full in-order streams while those
are being written: every TCP packet of a shared capture is assigned to the
Zeek conn.log record with the same 4-tuple (the last one that started at or
before it), each direction is put back in sequence order (duplicates and
overlaps dropped, holes skipped when the capture ends), and the bytes go to
:class:`~sensor.proto.analyzers.http.HTTPAnalyzer` in capture order. The
records are scored against Zeek's http.log with ``zeek-compare`` and against
files.log with :func:`compare_files`.

    python3 tests/proto/http_harness.py [-v] [CAPTURE ...]
    python3 tests/proto/http_harness.py --engine OUTDIR CAPTURE ...
"""

from __future__ import annotations

import bisect
import importlib.machinery
import importlib.util
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import dpkt

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sensor.proto.analyzer import ConnInfo
from sensor.proto.analyzers.http import HTTPAnalyzer
from tests.proto.service_harness import PCAPS, ZEEK_LOGS, _ip_str, _network_layer, _open

TOOLS = PCAPS.parent / "tools"


def zeek_compare() -> Any:
    """The shared ``zeek-compare`` script as a module (its readers and norms)."""
    loader = importlib.machinery.SourceFileLoader(
        "zeek_compare", str(TOOLS / "zeek-compare")
    )
    spec = importlib.util.spec_from_loader("zeek_compare", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


class _Direction:
    def __init__(self) -> None:
        self.next: int | None = None
        self.held: dict[int, tuple[bytes, float]] = {}


def _deliver(
    d: _Direction, seq: int, data: bytes, ts: float, flags: int
) -> list[tuple[float, bytes]]:
    if d.next is None:
        d.next = seq + 1 if flags & dpkt.tcp.TH_SYN else seq
        if flags & dpkt.tcp.TH_SYN:
            seq += 1
    if data:
        d.held.setdefault(seq, (data, ts))
    out = []
    while True:
        ready = [s for s in d.held if s <= d.next and s + len(d.held[s][0]) > d.next]
        for s in [s for s in d.held if s + len(d.held[s][0]) <= d.next]:
            del d.held[s]
        if not ready:
            return out
        s = ready[0]
        piece, pts = d.held.pop(s)
        piece = piece[d.next - s :]
        d.next += len(piece)
        out.append((pts, piece))


def run(capture: Path) -> list[tuple[str, dict[str, Any]]]:
    """The http and files records for one capture."""
    conns: dict[tuple[str, int, str, int], list[tuple[float, dict[str, Any]]]] = (
        defaultdict(list)
    )
    for line in (ZEEK_LOGS / capture.relative_to(PCAPS) / "conn.log").open():
        rec = json.loads(line)
        if rec["proto"] == "tcp":
            key = (
                rec["id.orig_h"],
                rec["id.orig_p"],
                rec["id.resp_h"],
                rec["id.resp_p"],
            )
            conns[key].append((rec["ts"], rec))
    for items in conns.values():
        items.sort(key=lambda t: t[0])

    out: list[tuple[str, dict[str, Any]]] = []
    emit = lambda name, rec: out.append((name, rec))
    state: dict[str, tuple[HTTPAnalyzer | None, list[_Direction]]] = {}
    for ts, linktype, frame in _open(capture):
        ip = _network_layer(linktype, frame)
        tcp = getattr(ip, "data", None)
        if not isinstance(tcp, dpkt.tcp.TCP):
            continue
        src, dst = _ip_str(ip.src), _ip_str(ip.dst)  # type: ignore[union-attr]
        is_orig = True
        items = conns.get((src, tcp.sport, dst, tcp.dport))
        if items is None:
            is_orig, items = False, conns.get((dst, tcp.dport, src, tcp.sport))
        if not items:
            continue
        i = bisect.bisect_right([t for t, _ in items], ts + 1e-6) - 1
        rec = items[max(i, 0)][1]
        uid = rec["uid"]
        if uid not in state:
            info = ConnInfo(
                uid,
                "tcp",
                rec["id.orig_h"],
                rec["id.orig_p"],
                rec["id.resp_h"],
                rec["id.resp_p"],
            )
            state[uid] = (None, [_Direction(), _Direction()], info)  # type: ignore[assignment]
        entry = state[uid]
        dirs = entry[1]
        pieces: list[tuple[bool, float, bytes | int]] = [
            (is_orig, pts, piece)
            for pts, piece in _deliver(
                dirs[is_orig], tcp.seq, bytes(tcp.data), ts, tcp.flags
            )
        ]
        # A hole the other side has acknowledged will never be filled: a gap.
        other = dirs[not is_orig]
        if tcp.flags & dpkt.tcp.TH_ACK and other.next is not None and other.held:
            first = min(other.held)
            if other.next < first and (tcp.ack - first) % 2**32 < 2**31:
                pieces.append((not is_orig, ts, first - other.next))
                other.next = first
                pieces.extend(
                    (not is_orig, p, d) for p, d in _deliver(other, first, b"", ts, 0)
                )
        for side, pts, piece in pieces:
            analyzer = entry[0]
            if analyzer is None:
                info = entry[2]  # type: ignore[misc]
                if isinstance(piece, int) or not HTTPAnalyzer.sniff(info, side, piece):
                    continue
                analyzer = HTTPAnalyzer(info, emit)
                entry = state[uid] = (analyzer, dirs, info)  # type: ignore[assignment]
            if analyzer.done:
                continue
            if isinstance(piece, int):
                analyzer.gap(side, pts, piece)
            else:
                analyzer.data(side, pts, piece)
    for uid, entry in state.items():
        if entry[0] is not None:
            entry[0].end(max((r["ts"] for n, r in out), default=0.0))
    return out


def compare_files(
    want: list[dict[str, Any]], got: list[dict[str, Any]], show: int = 0
) -> tuple[int, int, dict[str, int]]:
    """Pair files.log records by 4-tuple and direction in time order; return
    (fully equal, expected, per-field agreement)."""
    zc = zeek_compare()
    fields = [
        "source",
        "depth",
        "analyzers",
        "mime_type",
        "filename",
        "duration",
        "is_orig",
        "seen_bytes",
        "total_bytes",
        "missing_bytes",
        "overflow_bytes",
        "timedout",
    ]

    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        return (
            r["id.orig_h"],
            r["id.orig_p"],
            r["id.resp_h"],
            r["id.resp_p"],
            r["is_orig"],
        )

    mine: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in sorted(got, key=lambda r: r["ts"]):
        mine[key(r)].append(r)
    theirs: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in sorted(want, key=lambda r: r["ts"]):
        theirs[key(r)].append(r)
    equal, agree = 0, dict.fromkeys(fields, 0)
    for k, items in theirs.items():
        for w, g in zip(items, mine.get(k, [])):
            diff = [f for f in fields if zc.norm(f, w.get(f)) != zc.norm(f, g.get(f))]
            if (
                "duration" in diff
                and abs(w.get("duration", 0) - g.get("duration", 0)) < 1e-5
            ):
                diff.remove("duration")
            for f in fields:
                agree[f] += f not in diff
            equal += not diff
            if diff and show:
                show -= 1
                print(
                    "files differs:",
                    k,
                    {f: (w.get(f), g.get(f)) for f in diff},
                    file=sys.stderr,
                )
    return equal, len(want), agree


def score_http(
    want: list[dict[str, Any]], got: list[dict[str, Any]], verbose: bool = False
) -> int:
    """How many of Zeek's http.log records ``want`` are fully equal in ``got``
    (paired and compared as ``zeek-compare --log http`` does)."""
    zc = zeek_compare()
    present = {k for row in want for k in row}
    fields = [f for f in zc.FIELDS["http"] if f in present]
    wg, gg = zc.group("http", want), zc.group("http", got)
    equal = 0
    for k, items in wg.items():
        for (_, _, w), (_, _, g) in zip(items, gg.get(k, [])):
            diff = [f for f in fields if zc.norm(f, w.get(f)) != zc.norm(f, g.get(f))]
            equal += not diff
            if diff and verbose:
                print("  http differs", k[:4], {f: (w.get(f), g.get(f)) for f in diff})
    return equal


def captures(log: str = "http") -> list[Path]:
    """Every capture for which Zeek wrote ``log``."""
    found = []
    for path in sorted(ZEEK_LOGS.rglob(f"{log}.log")):
        capture = PCAPS / path.parent.relative_to(ZEEK_LOGS)
        if capture.is_file():
            found.append(capture)
    return found


def replay_engine(chosen: list[Path], outroot: Path) -> None:
    """Replay each capture through the real Engine into ``outroot/<capture>/``.

    Run in a subprocess with ``SENSOR_NO_EXTENSIONS=1`` for the Python twin.
    """
    from sensor.capture.merge import merge
    from sensor.capture.pcapfile import CaptureFile
    from sensor.engine import Engine
    from sensor.output.zeeklog import LogWriter

    for capture in chosen:
        engine = Engine()
        with LogWriter(outroot / capture.relative_to(PCAPS)) as out:
            for batch in merge([CaptureFile(str(capture))]):
                for name, record in engine.process(batch):
                    out.write(name, record)
            for name, record in engine.flush():
                out.write(name, record)
        print(engine.implementation, capture.relative_to(PCAPS))


def main(argv: list[str]) -> None:
    if argv[:1] == ["--engine"]:
        replay_engine([PCAPS / n for n in argv[2:]], Path(argv[1]))
        return
    verbose = "-v" in argv
    names = [a for a in argv if not a.startswith("-")]
    chosen = (
        [PCAPS / n for n in names]
        if names
        else sorted(set(captures("http")) | set(captures("files")))
    )
    zc = zeek_compare()
    tot = {"http": [0, 0], "files": [0, 0]}
    fagree: dict[str, int] = defaultdict(int)
    for capture in chosen:
        records = run(capture)
        rel = capture.relative_to(PCAPS)
        line = f"{rel}:"
        http_log = ZEEK_LOGS / rel / "http.log"
        if http_log.exists():
            want = zc.read_log(str(http_log))
            got = [r for n, r in records if n == "http"]
            eq = score_http(want, got, verbose)
            tot["http"][0] += eq
            tot["http"][1] += len(want)
            line += f" http {eq}/{len(want)} (got {len(got)})"
        files_log = ZEEK_LOGS / rel / "files.log"
        if files_log.exists():
            want = [r for r in zc.read_log(str(files_log)) if r.get("source") == "HTTP"]
            got = [r for n, r in records if n == "files"]
            eq, n, agree = compare_files(want, got, show=10**6 if verbose else 0)
            for f, v in agree.items():
                fagree[f] += v
            tot["files"][0] += eq
            tot["files"][1] += n
            line += f" files {eq}/{n} (got {len(got)})"
        print(line)
    for log, (eq, n) in tot.items():
        print(f"{log}: {eq}/{n} fully equal ({100.0 * eq / max(n, 1):.1f}%)")
    print("files fields:", dict(fagree))


if __name__ == "__main__":
    main(sys.argv[1:])
