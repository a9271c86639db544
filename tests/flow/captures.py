"""Read the shared captures as batches, for differential tests and benches.

Uses the project's reader (sensor.capture.pcapfile.CaptureFile), or dpkt
when that does not import, so that these tests do not depend on the capture
stage being installed; both give the same packets.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from sensor.capture.batch import Batch

#: Batch size used by the differential tests: small, so that expiry and
#: batch boundaries are exercised often.
BATCH = 512


def batches(path: Path, size: int = BATCH) -> Iterator[Batch]:
    """The packets of one capture in batches of at most ``size``."""
    try:
        from sensor.capture.pcapfile import CaptureFile
    except ImportError:
        yield from _dpkt_batches(path, size)
        return
    with CaptureFile(path, batch_size=size) as capture:
        yield from capture


def _dpkt_batches(path: Path, size: int) -> Iterator[Batch]:
    import dpkt

    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(0)
        reader = dpkt.pcapng.Reader(f) if head == b"\n\r\r\n" else dpkt.pcap.Reader(f)
        linktype = reader.datalink()
        chunk: list[tuple[int, int, bytes]] = []
        for ts, data in reader:
            chunk.append((round(ts * 1e9), linktype, bytes(data)))
            if len(chunk) == size:
                yield Batch.from_packets(chunk)
                chunk = []
        if chunk:
            yield Batch.from_packets(chunk)


def packets(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(linktype, bytes)`` of every packet of one capture."""
    for batch in batches(path):
        for i in range(len(batch)):
            yield int(batch.linktypes[i]), batch.packet(i)
