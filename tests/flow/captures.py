"""Read the shared captures as batches, for differential tests and benches.

Uses dpkt for now, so that these tests do not depend on the capture stage.
TODO: switch to sensor.capture.pcapfile.CaptureFile once it is committed
and reads every shared capture.
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
    yield from _dpkt_batches(path, size)


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
