"""A batch of captured packets, stored as arrays instead of objects."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Batch:
    """Up to a few thousand packets, back to back in one buffer.

    Packet ``i`` is ``data[offsets[i] : offsets[i] + caplens[i]]``; it was
    ``wirelens[i]`` bytes long on the wire, seen at ``ts[i]`` nanoseconds
    since the epoch, with link type ``linktypes[i]`` (a LINKTYPE_* value).
    """

    data: bytes
    offsets: npt.NDArray[np.int64]
    caplens: npt.NDArray[np.uint32]
    wirelens: npt.NDArray[np.uint32]
    ts: npt.NDArray[np.int64]
    linktypes: npt.NDArray[np.uint16]

    def __len__(self) -> int:
        return len(self.offsets)

    def packet(self, i: int) -> bytes:
        """The captured bytes of packet ``i`` (a copy; for tests and tools)."""
        start = int(self.offsets[i])
        return self.data[start : start + int(self.caplens[i])]

    @classmethod
    def from_packets(
        cls, packets: list[tuple[int, int, bytes]], wirelens: list[int] | None = None
    ) -> Batch:
        """Build a batch from ``(ts_ns, linktype, data)`` tuples (tests, tools)."""
        data = b"".join(p[2] for p in packets)
        lens = np.array([len(p[2]) for p in packets], dtype=np.uint32)
        offsets = np.zeros(len(packets), dtype=np.int64)
        if len(packets):
            offsets[1:] = np.cumsum(lens[:-1], dtype=np.int64)
        return cls(
            data=data,
            offsets=offsets,
            caplens=lens,
            wirelens=np.array(wirelens if wirelens is not None else lens, dtype=np.uint32),
            ts=np.array([p[0] for p in packets], dtype=np.int64),
            linktypes=np.array([p[1] for p in packets], dtype=np.uint16),
        )
