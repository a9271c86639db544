"""Packets per second of decode + connection tracking, both implementations.

    python3 bench/flow.py [CAPTURE ...] [--repeat N] [--only compiled|python]

Reads the captures into memory first (reading is not timed), then runs a
fresh ConnTable over each capture (the captures come from different years,
and network time never goes back, so one table over all of them in a row
would end every connection at once), ``--repeat`` times, timing decode,
tracking, record making and flush. Prints packets/s for each
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
            start = time.perf_counter()
            for batch in batches:
                table.process(batch)
            table.flush()
            seconds += time.perf_counter() - start
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("captures", nargs="*")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["compiled", "python"])
    opts = parser.parse_args()

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
                f"{'':9s} fullest: {n} conns ({peak['tcp_open']} TCP); structs: conn "
                f"{peak['conn_struct']} B, TCP state {peak['tcp_struct']} B; held "
                f"{held / n:.0f} B/conn (pool {peak['pool'] / n:.0f}, TCP "
                f"{peak['tcp'] / n:.0f}, index {peak['index'] / n:.0f}, timers "
                f"{peak['timers'] / n:.0f})"
            )


if __name__ == "__main__":
    main()
