"""Packets per second of decode + connection tracking, both implementations.

    python3 bench/flow.py [CAPTURE ...] [--repeat N] [--only compiled|python]
    python3 bench/flow.py --memory N

Reads the captures into memory first (reading is not timed), then runs a
fresh ConnTable over each capture (the captures come from different years,
and network time never goes back, so one table over all of them in a row
would end every connection at once), ``--repeat`` times, timing decode,
tracking, record making and flush in CPU seconds of this process (so that
other work on the machine does not count). Prints packets/s for each
implementation over all captures, and for the compiled table the memory it
held at its fullest, per tracked connection: the pool (struct size times
capacity), TCP state, index slots and timer entries, divided by the
connections open at that moment. Without arguments it uses every capture
under ../shared/pcaps.
"""

from __future__ import annotations

import os

# numpy's BLAS threads spin after loading and take a core from the timed
# loop on a small machine; nothing here needs them.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import struct
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sensor.capture.batch import Batch
from sensor.capture.pcapfile import CaptureFile

MAGICS = (
    b"\xd4\xc3\xb2\xa1",
    b"\xa1\xb2\xc3\xd4",
    b"\x4d\x3c\xb2\xa1",
    b"\xa1\xb2\x3c\x4d",
    b"\x0a\x0d\x0d\x0a",
)


def captures(args: list[str]) -> list[Path]:
    """The captures named, or every shared capture."""
    if args:
        return [Path(a) for a in args]
    found = []
    for path in sorted((ROOT.parent / "shared" / "pcaps").rglob("*")):
        if path.is_file() and "zeek-logs" not in path.parts:
            with open(path, "rb") as f:
                if f.read(4) in MAGICS:
                    found.append(path)
    return found


def load(paths: list[Path]) -> list[list[Batch]]:
    """Every packet of each capture, in batches of 4096."""
    out: list[list[Batch]] = []
    for path in paths:
        with CaptureFile(path, batch_size=4096) as capture:
            out.append(list(capture))
    return out


def run(
    table_cls: type, captures: list[list[Batch]], repeat: int
) -> tuple[float, int, dict[str, int]]:
    """Seconds, packets and the fullest memory figures of one implementation."""
    packets = 0
    seconds = 0.0
    peak: dict[str, int] = {}
    for _ in range(repeat):
        for batches in captures:
            table = table_cls()
            start = time.process_time()
            for batch in batches:
                table.process(batch)
            table.flush()
            seconds += time.process_time() - start
            packets += sum(len(b) for b in batches)
            if hasattr(table, "memory"):
                # Measured again, untimed: the table at its fullest.
                table = table_cls()
                for batch in batches:
                    table.process(batch)
                    mem = table.memory()
                    if mem["conns_open"] > peak.get("conns_open", 0):
                        peak = mem
    return seconds, packets, peak


def synthetic(n: int, proto: int) -> list[Batch]:
    """n concurrent connections: TCP handshakes with a data segment each way,
    or UDP query/response pairs, between distinct address pairs, within a
    second (so none has expired when the table is measured)."""
    frames: list[tuple[int, int, bytes]] = []
    mac = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"
    for i in range(n):
        a = bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255])
        b = bytes([192, 168, 0, 1])
        t = 1_600_000_000 * 10**9 + i * (10**9 // max(n, 1))
        if proto == 6:
            steps = [(a, b, 40000, 80, 0x02, b""), (b, a, 80, 40000, 0x12, b""),
                     (a, b, 40000, 80, 0x18, b"GET / HTTP/1.1\r\n\r\n"),
                     (b, a, 80, 40000, 0x18, b"HTTP/1.1 200 OK\r\n\r\n")]  # fmt: skip
        else:
            steps = [(a, b, 40000, 53, 0, b"\x00\x01\x01\x00" + bytes(8)),
                     (b, a, 53, 40000, 0, b"\x00\x01\x81\x80" + bytes(8))]  # fmt: skip
        for k, (src, dst, sp, dp, flags, data) in enumerate(steps):
            if proto == 6:
                l4 = struct.pack(
                    "!HHIIBBHHH", sp, dp, 1000 + k, 1000 + k, 0x50, flags, 8192, 0, 0
                )
            else:
                l4 = struct.pack("!HHHH", sp, dp, 8 + len(data), 0)
            ip = struct.pack(
                "!BBHHHBBH4s4s",
                0x45,
                0,
                20 + len(l4) + len(data),
                0,
                0,
                64,
                proto,
                0,
                src,
                dst,
            )
            frames.append((t + k * 1000, 1, mac + b"\x08\x00" + ip + l4 + data))
    return [
        Batch.from_packets(frames[i : i + 4096]) for i in range(0, len(frames), 4096)
    ]


def memory(n: int) -> None:
    """Bytes held per tracked connection with n TCP, then n UDP, open."""
    from sensor._ext.flow import ConnTable as CompiledTable

    for name, proto in (("TCP", 6), ("UDP", 17)):
        table = CompiledTable()
        for batch in synthetic(n, proto):
            table.process(batch)
        m = table.memory()
        held = m["pool"] + m["tcp"] + m["index"] + m["timers"]
        c = m["conns_open"]
        print(
            f"{name}: {c} conns open: {held / c:.0f} B/conn (pool {m['pool'] / c:.0f}, "
            f"TCP state {m['tcp'] / c:.0f}, index {m['index'] / c:.0f}, timers "
            f"{m['timers'] / c:.0f}; structs {m['conn_struct']} + {m['tcp_struct']} B)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("captures", nargs="*")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["compiled", "python"])
    parser.add_argument(
        "--memory",
        type=int,
        metavar="N",
        help="only measure memory with N synthetic connections",
    )
    opts = parser.parse_args()
    if opts.memory:
        memory(opts.memory)
        return

    loaded = load(captures(opts.captures))
    print(
        f"{sum(len(b) for bs in loaded for b in bs)} packets in {len(loaded)} captures x {opts.repeat}"
    )

    from sensor.flow.table import ConnTable as PythonTable

    tables: list[tuple[str, type]] = []
    if opts.only != "python":
        from sensor._ext.flow import ConnTable as CompiledTable

        tables.append(("compiled", CompiledTable))
    if opts.only != "compiled":
        tables.append(("python", PythonTable))

    for name, cls in tables:
        seconds, packets, peak = run(cls, loaded, opts.repeat)
        print(
            f"{name:9s} {packets / seconds:12,.0f} packets/s  ({packets} in {seconds:.2f} s)"
        )
        if peak:
            n = peak["conns_open"]
            held = peak["pool"] + peak["tcp"] + peak["index"] + peak["timers"]
            print(
                f"{'':9s} fullest table: {n} conns ({peak['tcp_open']} TCP; the pool grows "
                f"by 4096); structs: conn "
                f"{peak['conn_struct']} B, TCP state {peak['tcp_struct']} B; held "
                f"{held / n:.0f} B/conn (pool {peak['pool'] / n:.0f}, TCP "
                f"{peak['tcp'] / n:.0f}, index {peak['index'] / n:.0f}, timers "
                f"{peak['timers'] / n:.0f})"
            )


if __name__ == "__main__":
    main()
