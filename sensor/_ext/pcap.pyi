"""Type stub for the compiled capture reader (ext/pcap.pyx).

Same interface as its pure-Python twin, sensor.capture.pcapfile.CaptureFile.
"""

from collections.abc import Iterator
from os import PathLike
from typing import Self

from sensor.capture.batch import Batch

class CaptureFile:
    """A pcap or pcapng file (optionally gzip-compressed), read in batches."""

    path: str
    format: str
    problems: list[str]
    problems_dropped: int
    packets: int
    @property
    def bytes(self) -> int: ...
    def __init__(self, path: str | PathLike[str], batch_size: int = 4096) -> None: ...
    def __iter__(self) -> Iterator[Batch]: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...
    def close(self) -> None: ...
    def batches(self) -> Iterator[Batch]: ...
