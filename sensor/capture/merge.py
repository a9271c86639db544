"""Merge the batches of several captures into one stream in time order.

The order is the one :func:`heapq.merge` gives when fed packets keyed by
timestamp: repeatedly the packet with the smallest timestamp among the next
packets of every file, the earlier file first on a tie. Each file's own
order is never changed, even where its timestamps go backwards (captures
stitched together by their authors do), and a single file passes through
untouched.

Design note. Doing that packet by packet in Python would cost more than
reading. Instead each file's timestamps are replaced by their running
maximum, the *key*: keys never decrease within a file, and merging by key
(ties to the earlier file) emits exactly what the packet-by-packet merge
emits, because a packet below its file's running maximum only becomes the
file's next packet once everything smaller elsewhere has gone. With sorted
keys, a stable numpy argsort merges whole batches at once. What may be
emitted is bounded by the file that is furthest behind: no file can later
deliver a key below its last buffered key, so every buffered packet that
sorts at or before the smallest (last key, file index) pair is final.
Each file holds at most one batch in the buffer: a file is read again only
once its buffered packets have all gone out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from sensor.capture.batch import Batch


class _Stream:
    """One input: its unmerged packets (a suffix of one batch) and their keys."""

    def __init__(self, index: int, batches: Iterable[Batch]) -> None:
        self.index = index
        self.batches = iter(batches)
        self.batch: Batch | None = None
        self.keys: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self.start = 0
        self.exhausted = False
        self._carry: int | None = None

    @property
    def pending(self) -> int:
        return len(self.keys) - self.start

    def current(self) -> Batch:
        """The buffered batch (there is one whenever packets are pending)."""
        assert self.batch is not None
        return self.batch

    def pull(self) -> None:
        """Buffer the next non-empty batch, or mark the stream exhausted."""
        for batch in self.batches:
            if len(batch):
                self.batch = _compact(batch)
                keys = np.maximum.accumulate(batch.ts)
                if self._carry is not None:
                    keys = np.maximum(keys, self._carry)
                self.keys, self.start = keys, 0
                self._carry = int(keys[-1])
                return
        self.exhausted = True
        self.batch, self.keys, self.start = None, self.keys[:0], 0


def merge(files: Sequence[Iterable[Batch]]) -> Iterator[Batch]:
    """Yield the packets of all ``files`` in timestamp order, in batches.

    ``files`` are :class:`~sensor.capture.pcapfile.CaptureFile` objects (of
    either implementation) or any iterables of batches. A merged batch holds
    at most one batch's worth of packets from each file.
    """
    if len(files) == 1:
        yield from files[0]
        return
    streams = [_Stream(i, f) for i, f in enumerate(files)]

    while True:
        for s in streams:
            if not s.pending and not s.exhausted:
                s.pull()
        live = [s for s in streams if s.pending]
        if not live:
            return
        if len(live) == 1:
            # Only one file left: the rest of it passes through as it is.
            yield _take(live[0], live[0].pending)
            yield from live[0].batches
            return

        # Everything that sorts at or before the furthest-behind file's
        # last buffered packet is final (see the design note above).
        bound, first = min((int(s.keys[-1]), s.index) for s in live)
        counts = [
            int(
                np.searchsorted(
                    s.keys[s.start :], bound, "right" if s.index <= first else "left"
                )
            )
            for s in live
        ]
        yield _merged([(s, n) for s, n in zip(live, counts, strict=True) if n])


def _merged(parts: list[tuple[_Stream, int]]) -> Batch:
    """Take ``n`` packets from each stream and merge them by key."""
    if len(parts) == 1:
        return _take(*parts[0])
    spans = [(s.current(), s.start, s.start + n) for s, n in parts]
    keys = np.concatenate(
        [s.keys[lo:hi] for (s, _), (_, lo, hi) in zip(parts, spans, strict=True)]
    )
    order = np.argsort(keys, kind="stable")
    for s, n in parts:
        s.start += n

    def gather(name: str) -> Any:
        return np.concatenate([getattr(b, name)[lo:hi] for b, lo, hi in spans])[order]

    # Copy the packet bytes run by run: a run is a stretch of consecutive
    # output packets from the same input, back to back in that input.
    source = np.repeat(np.arange(len(spans)), [hi - lo for _, lo, hi in spans])[order]
    offsets, caplens = gather("offsets"), gather("caplens")
    cuts = np.flatnonzero(source[1:] != source[:-1]) + 1
    firsts = np.concatenate(([0], cuts))
    lasts = np.concatenate((cuts, [len(order)])) - 1
    views = [memoryview(b.data) for b, _, _ in spans]
    data = b"".join(
        views[src][start:end]
        for src, start, end in zip(
            source[firsts].tolist(),
            offsets[firsts].tolist(),
            (offsets[lasts] + caplens[lasts]).tolist(),
            strict=True,
        )
    )

    new_offsets = np.zeros(len(order), dtype=np.int64)
    np.cumsum(caplens[:-1], dtype=np.int64, out=new_offsets[1:])
    return Batch(
        data=data,
        offsets=new_offsets,
        caplens=caplens,
        wirelens=gather("wirelens"),
        ts=gather("ts"),
        linktypes=gather("linktypes"),
    )


def _take(s: _Stream, n: int) -> Batch:
    """The next ``n`` buffered packets of ``s`` as a batch of their own."""
    b, lo, hi = s.current(), s.start, s.start + n
    s.start = hi
    if lo == 0 and hi == len(b):
        return b
    base = int(b.offsets[lo])
    end = int(b.offsets[hi - 1]) + int(b.caplens[hi - 1])
    return Batch(
        data=b.data[base:end],
        offsets=b.offsets[lo:hi] - base,
        caplens=b.caplens[lo:hi],
        wirelens=b.wirelens[lo:hi],
        ts=b.ts[lo:hi],
        linktypes=b.linktypes[lo:hi],
    )


def _compact(b: Batch) -> Batch:
    """``b`` with its packets back to back from offset 0, as the readers make them."""
    ends = b.offsets + b.caplens
    if (
        b.offsets[0] == 0
        and np.array_equal(b.offsets[1:], ends[:-1])
        and ends[-1] == len(b.data)
    ):
        return b
    return Batch.from_packets(
        [
            (int(t), int(lt), b.packet(i))
            for i, (t, lt) in enumerate(zip(b.ts, b.linktypes, strict=True))
        ],
        wirelens=b.wirelens.tolist(),
    )
