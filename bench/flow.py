"""Packets per second of decode + connection tracking, both implementations.

    python3 bench/flow.py [CAPTURE ...] [--repeat N] [--only compiled|python]

Reads the captures into memory first (reading is not timed), then runs each
ConnTable over the batches ``--repeat`` times, shifting timestamps by a day
per round so that every round makes fresh connections. Prints packets/s for
each implementation, and for the compiled table the memory it held at its
peak per tracked connection: pool (struct size times capacity), index slots
and timer entries, divided by the connections open at that moment.
Without arguments it uses every capture under ../shared/pcaps.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sensor.capture.batch import Batch
from sensor.capture.pcapfile import CaptureFile

DAY_NS = 86_400 * 1_000_000_000
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


def load(paths: list[Path]) -> list[Batch]:
    """Every packet of the captures, in batches of 4096, in file order."""
    out: list[Batch] = []
    for path in paths:
        with CaptureFile(path, batch_size=4096) as capture:
            out.extend(capture)
    return out


def shifted(batches: list[Batch], shift: int) -> list[Batch]:
    return [
        Batch(
            b.data,
            b.offsets,
            b.caplens,
            b.wirelens,
            b.ts + np.int64(shift),
            b.linktypes,
        )
        for b in batches
    ]


def run(
    table_cls: type, rounds: list[list[Batch]]
) -> tuple[float, int, dict[str, int]]:
    """Seconds, packets and the peak memory figures of one implementation."""
    table = table_cls()
    packets = 0
    peak: dict[str, int] = {}
    start = time.perf_counter()
    for batches in rounds:
        for batch in batches:
            table.process(batch)
            packets += len(batch)
            if hasattr(table, "memory"):
                mem = table.memory()
                if mem["conns_open"] > peak.get("conns_open", 0):
                    peak = mem
    table.flush()
    return time.perf_counter() - start, packets, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("captures", nargs="*")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["compiled", "python"])
    opts = parser.parse_args()

    batches = load(captures(opts.captures))
    rounds = [shifted(batches, r * DAY_NS) for r in range(opts.repeat)]
    print(f"{sum(len(b) for b in batches)} packets x {opts.repeat} rounds")

    from sensor.flow.table import ConnTable as PythonTable

    tables: list[tuple[str, type]] = []
    if opts.only != "python":
        from sensor._ext.flow import ConnTable as CompiledTable

        tables.append(("compiled", CompiledTable))
    if opts.only != "compiled":
        tables.append(("python", PythonTable))

    for name, cls in tables:
        seconds, packets, peak = run(cls, rounds)
        print(
            f"{name:9s} {packets / seconds:12,.0f} packets/s  ({packets} in {seconds:.2f} s)"
        )
        if peak:
            held = peak["pool"] + peak["index"] + peak["timers"]
            print(
                f"{'':9s} peak {peak['conns_open']} conns: struct {peak['conn_struct']} B, "
                f"held {held / peak['conns_open']:.0f} B/conn "
                f"(pool {peak['pool'] / peak['conns_open']:.0f}, index "
                f"{peak['index'] / peak['conns_open']:.0f}, timers "
                f"{peak['timers'] / peak['conns_open']:.0f})"
            )


if __name__ == "__main__":
    main()
