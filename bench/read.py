"""Records per second of both capture readers.

    python3 bench/read.py [FILE ...] [--records N] [--seconds S]

With FILEs, each is read by the compiled reader (sensor._ext.pcap) and the
pure-Python twin (sensor.capture.pcapfile), repeatedly until S seconds have
passed, and the best pass is reported. Without FILEs, two test captures are
written to a temporary directory (never into the repository): the records of
a shared capture repeated to N records, once as pcap and once as pcapng
with Enhanced Packet Blocks. The files are in the page cache after the first
pass, so this measures parsing and batching, not the disk.
"""

from __future__ import annotations

import argparse
import importlib
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "pcaps"
SOURCE = SHARED / "attacks/c2/slips_test-cc-capture-1_periodic2s.pcap"
READERS = {"compiled": "sensor._ext.pcap", "python": "sensor.capture.pcapfile"}


def one_pass(reader: Any, path: Path) -> tuple[int, int, float]:
    """Read ``path`` once; return (records, captured bytes, seconds)."""
    started = time.perf_counter()
    capture = reader(path)
    for _ in capture:
        pass
    return capture.packets, capture.bytes, time.perf_counter() - started


def measure(reader: Any, path: Path, seconds: float) -> tuple[int, int, float]:
    """The fastest of as many passes as fit in ``seconds`` (at least one)."""
    best: tuple[int, int, float] | None = None
    deadline = time.perf_counter() + seconds
    while best is None or time.perf_counter() < deadline:
        result = one_pass(reader, path)
        if best is None or result[2] < best[2]:
            best = result
    return best


def write_test_captures(source: Path, records: int, folder: Path) -> list[Path]:
    """``source``'s records repeated to ``records``, as pcap and as pcapng."""
    from sensor.capture.pcapfile import CaptureFile

    packets = []
    for batch in CaptureFile(source):
        for i in range(len(batch)):
            packets.append((int(batch.ts[i]), int(batch.wirelens[i]), batch.packet(i)))
    linktype = int(batch.linktypes[0])

    pcap, pcapng = folder / "bench.pcap", folder / "bench.pcapng"
    with open(pcap, "wb") as a, open(pcapng, "wb") as b:
        a.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))
        b.write(struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28))
        b.write(struct.pack("<IIHHII", 1, 20, linktype, 0, 262144, 20))
        for n in range(records):
            ts, wirelen, data = packets[n % len(packets)]
            sec, usec = divmod(ts // 1000, 1_000_000)
            a.write(struct.pack("<IIII", sec, usec, len(data), wirelen) + data)
            pad = b"\0" * (-len(data) % 4)
            size = 32 + len(data) + len(pad)
            units = ts // 1000
            b.write(
                struct.pack(
                    "<IIIIIII",
                    6,
                    size,
                    0,
                    units >> 32,
                    units & 0xFFFFFFFF,
                    len(data),
                    wirelen,
                )
            )
            b.write(data + pad + struct.pack("<I", size))
    return [pcap, pcapng]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, help="captures to read")
    parser.add_argument(
        "--records", type=int, default=2_000_000, help="records in the test captures"
    )
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="time per reader and file"
    )
    args = parser.parse_args()

    readers = {}
    for name, module in READERS.items():
        try:
            readers[name] = importlib.import_module(module).CaptureFile
        except ImportError as e:
            print(f"read: {name} reader not available: {e}", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="sensor-bench-") as tmp:
        files = args.files or write_test_captures(SOURCE, args.records, Path(tmp))
        for path in files:
            rates = {}
            for name, reader in readers.items():
                records, size, elapsed = measure(reader, path, args.seconds)
                rates[name] = records / elapsed
                print(
                    f"{path.name}: {name:8} {records:>10,} records {size / 1e6:8.1f} MB "
                    f"in {elapsed:6.3f} s: {records / elapsed:>12,.0f} records/s, "
                    f"{size / 1e6 / elapsed:7.1f} MB/s"
                )
            if len(rates) == 2:
                print(
                    f"{path.name}: compiled is {rates['compiled'] / rates['python']:.0f}x the twin"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
