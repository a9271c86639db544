"""The one exception the capture readers raise: nothing at all can be read."""

from __future__ import annotations


class CaptureError(Exception):
    """A capture file could not be opened or is not a capture at all.

    Raised only when opening, and only when no packet can be read: a missing
    file, a directory, an empty file, an unknown magic number. The message is
    one line that names the file first and the problem after it, for example
    ``"x.pcap: not a capture file (magic 0x3c68746d)"``. Damage found while
    reading (a truncated last record, a broken block) is not an error: the
    reader keeps what it could read and lists the damage in ``problems``.
    """

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        #: The path as given to the reader.
        self.path = path
        #: What is wrong, without the path.
        self.problem = problem
