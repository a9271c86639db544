"""One measurement, run by bench/replay.py in a fresh interpreter.

    python3 bench/worker.py read|track|engine|engine-bare IMPL FILE [--packets N]
        [--analyzers HTTP,TLS,...]
    python3 bench/worker.py memory IMPL [--conns N] [--trace]

``read`` times the capture reader alone; ``track`` the reader, decoding and
the connection table as the engine drives them (batch by batch, flush at the
end). ``engine`` runs the whole :class:`sensor.engine.Engine` (table,
service detection, stream reassembly and every registered protocol
analyzer; records made but not written); ``engine-bare`` the same with no
analyzer registered, so that the difference is what the analyzers cost;
``--analyzers`` registers only the named ones with ``engine`` (class names
without "Analyzer": HTTP, DNS, TLS, SMB, ...), to tell what each costs.
``memory`` opens N fresh connections (SYN only, all open at once) and
divides the growth of the resident set by N; ``--trace`` adds tracemalloc's
count, which sees only Python allocations. IMPL is ``compiled`` or
``python``; the caller sets SENSOR_NO_EXTENSIONS=1 for ``python``. Prints
one JSON object; exits 3 with a message on stderr when a piece the mode
needs does not exist yet.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
MISSING = 3


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def load(piece: str, compiled: str, twin: str, impl: str) -> Any:
    """The module for ``impl``, or exit with what is missing."""
    from sensor import _impl

    if impl == "compiled" and not _impl.compiled_available(compiled):
        sys.exit(_missing(f"compiled {piece} (sensor._ext.{compiled}) is not built"))
    try:
        module = _impl.load(compiled, twin)
    except ImportError as e:
        sys.exit(_missing(f"{piece} ({twin}) cannot be imported: {e}"))
    want_compiled = impl == "compiled"
    if module.__name__.startswith("sensor._ext") != want_compiled:
        sys.exit(_missing(f"{piece}: asked for {impl}, got {module.__name__}"))
    return module


def _missing(message: str) -> int:
    print(f"bench worker: {message}", file=sys.stderr)
    return MISSING


def syn_batches(count: int, per_batch: int = 4096) -> Any:
    """Batches of ``count`` TCP SYNs, each opening a new connection.

    10.0.0.0/8 clients to one server, 10 us apart, so that all of them are
    open at once: Zeek's attempt timer (5 s) has not fired by the last one.
    """
    from sensor.capture.batch import Batch

    eth = bytes.fromhex("0200000000020200000000010800")
    start = 1_793_613_600 * 10**9
    for first in range(0, count, per_batch):
        packets = []
        for n in range(first, min(first + per_batch, count)):
            src = struct.pack("!I", 0x0A000000 + n // 50000 + 1)
            ip = struct.pack(
                "!BBHHHBBH4s4s",
                0x45,
                0,
                40,
                0,
                0x4000,
                64,
                6,
                0,
                src,
                bytes([192, 0, 2, 1]),
            )
            tcp = struct.pack(
                "!HHIIBBHHH", 10000 + n % 50000, 443, n, 0, 0x50, 0x02, 64240, 0, 0
            )
            packets.append((start + n * 10_000, 1, eth + ip + tcp))
        yield Batch.from_packets(packets)


def memory(impl: str, count: int, trace: bool) -> dict[str, Any]:
    """Bytes per tracked connection, with ``count`` fresh SYN-only connections."""
    flow = load("connection table", "flow", "sensor.flow.table", impl)
    batches = list(syn_batches(count))  # built before measuring
    table = flow.ConnTable(None)
    table.process(batches[0])
    rss_base, open_base = rss_bytes(), table.stats().get("conns_open", 0)
    if trace:
        tracemalloc.start()
    for batch in batches[1:]:
        table.process(batch)
    stats = table.stats()
    tracked = stats.get("conns_open", 0) - open_base
    result: dict[str, Any] = {"mode": "memory", "impl": impl, "conns_tracked": tracked}
    result["rss_bytes_per_conn"] = (
        (rss_bytes() - rss_base) / tracked if tracked > 0 else None
    )
    if trace:
        result["traced_bytes_per_conn"] = tracemalloc.get_traced_memory()[0] / max(
            tracked, 1
        )
    result.update(held_per_conn(table))
    return result


def held_per_conn(table: Any) -> dict[str, Any]:
    """What the compiled table says it holds per open connection, if it says.

    ``ConnTable.memory()`` (ext/flow.pyx) reports the pool of connection
    structs, the index slots and the timer heap; their sum divided by the
    open connections is the table's own bytes per connection. Memory for a
    connection's extras (pending weirds, payload copies) is not in it.
    """
    if not hasattr(table, "memory"):
        return {}
    m = table.memory()
    if not m.get("conns_open"):
        return {}
    held = m.get("pool", 0) + m.get("index", 0) + m.get("timers", 0)
    return {
        "held_bytes_per_conn": held / m["conns_open"],
        "conn_struct": m.get("conn_struct"),
    }


def run(mode: str, impl: str, path: str, limit: int) -> dict[str, Any]:
    """Time ``mode`` over the first ``limit`` packets (0: all) of ``path``.

    ``track`` also samples the resident set whenever the number of open
    connections reaches a new peak, for a bytes-per-connection figure on the
    real mix of traffic (an upper bound: it includes allocator slack left by
    connections already finished).
    """
    pcap = load("capture reader", "pcap", "sensor.capture.pcapfile", impl)
    flow = (
        load("connection table", "flow", "sensor.flow.table", impl)
        if mode == "track"
        else None
    )
    table = flow.ConnTable(None) if flow else None

    packets = wire_bytes = peak_open = 0
    rss_base = open_base = rss_at_peak = 0
    held: dict[str, Any] = {}
    started, cpu_started = time.perf_counter(), time.process_time()
    with pcap.CaptureFile(path) as capture:
        for batch in capture:
            packets += len(batch)
            wire_bytes += int(batch.wirelens.sum())
            if table is not None:
                table.process(batch)
                open_now = table.stats().get("conns_open", 0)
                if not rss_base:
                    rss_base, open_base = rss_bytes(), open_now
                if open_now > peak_open:
                    peak_open, rss_at_peak = open_now, rss_bytes()
                    held = held_per_conn(table)
            if limit and packets >= limit:
                break
        if table is not None:
            table.flush()
    seconds = time.perf_counter() - started
    result: dict[str, Any] = {
        "mode": mode,
        "impl": impl,
        "packets": packets,
        "wire_bytes": wire_bytes,
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu_started,
    }
    if table is not None:
        result["conns_created"] = table.stats().get("conns_created")
        result["peak_open"] = peak_open
        grown = peak_open - open_base
        result["rss_bytes_per_conn"] = (
            (rss_at_peak - rss_base) / grown if grown > 0 else None
        )
        result.update(held)
    return result


def run_engine(
    mode: str, impl: str, path: str, limit: int, only: str | None = None
) -> dict[str, Any]:
    """Time the whole engine over the first ``limit`` packets of ``path``;
    ``only``: a comma-separated list of the analyzers to register."""
    pcap = load("capture reader", "pcap", "sensor.capture.pcapfile", impl)
    load("connection table", "flow", "sensor.flow.table", impl)
    from sensor.engine import Engine
    from sensor.proto.dispatch import Dispatcher
    from sensor.proto.registry import ANALYZERS

    engine = Engine()
    if mode == "engine-bare":
        engine.analyzers = Dispatcher(())
    elif only is not None:
        by_name = {cls.__name__.removesuffix("Analyzer"): cls for cls in ANALYZERS}
        wanted = [name for name in only.split(",") if name]
        unknown = [name for name in wanted if name not in by_name]
        if unknown:
            sys.exit(
                f"bench worker: unknown analyzer {', '.join(unknown)}; "
                f"known: {', '.join(by_name)}"
            )
        engine.analyzers = Dispatcher(tuple(by_name[name] for name in wanted))
    packets = wire_bytes = records = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    with pcap.CaptureFile(path) as capture:
        for batch in capture:
            packets += len(batch)
            wire_bytes += int(batch.wirelens.sum())
            records += len(engine.process(batch))
            if limit and packets >= limit:
                break
        records += len(engine.flush())
    seconds = time.perf_counter() - started
    stats = engine.stats()
    return {
        "mode": mode,
        "impl": impl,
        "analyzers": [cls.__name__ for cls in engine.analyzers.classes],
        "packets": packets,
        "wire_bytes": wire_bytes,
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu_started,
        "records": records,
        "by_log": engine.totals.by_log,
        "stream": {k: v for k, v in stats.items() if k.startswith("stream_")},
        "analyzer_errors": stats.get("analyzer_errors", 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "mode", choices=["read", "track", "engine", "engine-bare", "memory"]
    )
    parser.add_argument("impl", choices=["compiled", "python"])
    parser.add_argument("file", nargs="?", help="the capture (read, track)")
    parser.add_argument("--packets", type=int, default=0, help="stop after N (0: all)")
    parser.add_argument(
        "--conns", type=int, default=200_000, help="memory: connections"
    )
    parser.add_argument("--trace", action="store_true", help="memory: also tracemalloc")
    parser.add_argument(
        "--analyzers", help="engine: only these analyzers (HTTP,DNS,TLS,SMB,...)"
    )
    args = parser.parse_args()
    if args.mode == "memory":
        result = memory(args.impl, args.conns, args.trace)
    elif args.file is None:
        parser.error(f"{args.mode} needs a capture file")
    elif args.mode.startswith("engine"):
        if args.analyzers is not None and args.mode != "engine":
            parser.error("--analyzers goes with the engine mode")
        result = run_engine(
            args.mode, args.impl, args.file, args.packets, args.analyzers
        )
    else:
        result = run(args.mode, args.impl, args.file, args.packets)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
