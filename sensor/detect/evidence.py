"""Bounded evidence for the alerts of window detections.

Nothing here is a detection. An alert cites at most twenty uids, the first
and the latest ten of the connections it rests on; :class:`UidSample` keeps
exactly those, so that a window that lasts hours costs twenty strings.
"""

from __future__ import annotations

from collections import deque


class UidSample:
    """The first ``half`` and the latest ``half`` uids added, in order."""

    __slots__ = ("first", "half", "last")

    def __init__(self, half: int = 10) -> None:
        self.half = half
        self.first: list[str] = []
        self.last: deque[str] = deque(maxlen=half)

    def add(self, uid: object) -> None:
        """Remember ``uid`` if it is a non-empty text not just added."""
        if not isinstance(uid, str) or not uid:
            return
        if (self.last and self.last[-1] == uid) or (
            not self.last and self.first and self.first[-1] == uid
        ):
            return  # the same connection again (one record per DNS query)
        if len(self.first) < self.half:
            self.first.append(uid)
        else:
            self.last.append(uid)

    def uids(self) -> list[str]:
        """The sample, first uids then latest."""
        return self.first + list(self.last)
