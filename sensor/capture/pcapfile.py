"""Read pcap and pcapng files into batches: the pure-Python reader.

This is the clear, slow twin of the compiled reader ``ext/pcap.pyx``; both
have the same interface and give identical batches, problems and counters
for the same file (``tests/capture`` checks it on every shared capture and
on fuzzed input). Opening goes through :func:`sensor.capture.source.open_capture`
for both, so they accept and refuse the same files.

Damage is data, not an exception: a record or block that cannot be read is
described in :attr:`CaptureFile.problems`, and the reader keeps every packet
before it. A length that lies about the rest of the file (a truncated last
record, an absurd length, a broken block length) stops the reading, because
nothing after it can be found reliably; a block that is only wrong inside
(an unknown interface, a packet longer than its block) is skipped.
Offsets in problems count bytes from the start of the capture (of the
decompressed data, for a gzip-compressed file).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from os import PathLike
from typing import Self

from sensor.capture import formats as f
from sensor.capture.batch import Batch
from sensor.capture.pcapng import Packet, Report, pcapng_packets
from sensor.capture.source import FileHeader, Source, open_capture

log = logging.getLogger(__name__)


class CaptureFile:
    """A pcap or pcapng file (optionally gzip-compressed), read in batches.

    Opening checks the file header and raises
    :class:`~sensor.capture.errors.CaptureError` when nothing can be read.
    Iterating (once) yields :class:`~sensor.capture.batch.Batch` objects of at
    most ``batch_size`` packets (fewer when a batch's data reaches
    :data:`~sensor.capture.formats.BATCH_BYTES`, and at the end).
    """

    def __init__(self, path: str | PathLike[str], batch_size: int = 4096) -> None:
        if not 1 <= batch_size <= f.MAX_BATCH_SIZE:
            raise ValueError(
                f"batch_size must be 1 to {f.MAX_BATCH_SIZE}, not {batch_size}"
            )
        #: The path as given.
        self.path = str(path)
        self._source, self._header = open_capture(self.path)
        self._batch_size = batch_size
        self._started = False
        #: "pcap" or "pcapng".
        self.format = self._header.format
        #: Packets and captured bytes handed out so far.
        self.packets = 0
        self.bytes = 0
        #: Recoverable damage, one line each, naming the file and the offset.
        self.problems: list[str] = []
        #: Problems past :data:`~sensor.capture.formats.MAX_PROBLEMS`, only counted.
        self.problems_dropped = 0

    def __iter__(self) -> Iterator[Batch]:
        return self.batches()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file; iterating afterwards yields nothing more."""
        self._started = True
        self._source.close()

    def batches(self) -> Iterator[Batch]:
        """Yield the file's packets in batches, in file order; one pass only."""
        if self._started:
            return
        self._started = True
        if self._header.format == "pcap":
            packets = _pcap_packets(self._source, self._header, self._problem)
        else:
            packets = pcapng_packets(self._source, self._header, self._problem)

        pending: list[Packet] = []
        size = 0
        try:
            for packet in packets:
                pending.append(packet)
                size += len(packet[3])
                if len(pending) == self._batch_size or size >= f.BATCH_BYTES:
                    yield self._emit(pending)
                    pending, size = [], 0
            if pending:
                yield self._emit(pending)
        finally:
            if self._source.error:
                self._problem(self._source.error)
            self._source.close()

    def _emit(self, packets: list[Packet]) -> Batch:
        batch = Batch.from_packets(
            [(ts, linktype, data) for ts, linktype, _, data in packets],
            wirelens=[wirelen for _, _, wirelen, _ in packets],
        )
        self.packets += len(batch)
        self.bytes += len(batch.data)
        return batch

    def _problem(self, message: str) -> None:
        if len(self.problems) < f.MAX_PROBLEMS:
            self.problems.append(f"{self.path}: {message}")
            log.debug("%s: %s", self.path, message)
        else:
            self.problems_dropped += 1


def _pcap_packets(
    source: Source, header: FileHeader, problem: Report
) -> Iterator[Packet]:
    """The records of a pcap file (draft-ietf-opsawg-pcap section 5)."""
    record = struct.Struct(">IIII" if header.big_endian else "<IIII")
    scale = 1 if header.nanosecond else 1000
    limit = f.pcap_record_limit(header.snaplen)
    over_snaplen_reported = False

    while True:
        offset = source.offset
        head = source.read(f.PCAP_RECORD_HEADER_LEN)
        if len(head) < f.PCAP_RECORD_HEADER_LEN:
            if head:
                problem(
                    f"truncated record header at offset {offset}: {f.PCAP_RECORD_HEADER_LEN} bytes needed, {len(head)} left"
                )
            return
        sec, frac, caplen, wirelen = record.unpack(head)

        # A length past any sane limit means the header is garbage, and so
        # is every "record" after it. A caplen over the file's own snaplen
        # is merely odd (Zeek's trunc-hdr.pcap has one): keep it, say so once.
        # A snaplen of 0 means the writer set none.
        if caplen > limit:
            problem(
                f"bad record header at offset {offset}: captured length {caplen} > limit {limit}; reading stopped"
            )
            return
        if caplen > header.snaplen > 0 and not over_snaplen_reported:
            problem(
                f"record at offset {offset}: captured length {caplen} > snaplen {header.snaplen} (reported once)"
            )
            over_snaplen_reported = True

        data = source.read(caplen)
        if len(data) < caplen:
            problem(
                f"truncated record at offset {offset}: header says {caplen} bytes, {len(data)} left"
            )
            return
        yield sec * 1_000_000_000 + frac * scale, header.linktype, wirelen, data
