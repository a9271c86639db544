"""The interface between the engine and the protocol analyzers.

A protocol analyzer follows one connection: it is given the payload of each
direction in order (TCP: the reassembled byte stream, delivered in chunks;
UDP: one datagram at a time), and hands back log records through ``emit``.
It does no I/O and keeps no global state; everything it knows of the
connection is in :class:`ConnInfo`.

The dispatcher (:mod:`sensor.proto.dispatch`) asks every registered analyzer
class whether it recognises the first payload of a connection
(:meth:`Analyzer.sniff`) and attaches those that do. An analyzer that has
seen all it needs sets :attr:`Analyzer.done`, and the connection table then
stops delivering that connection's payload once no analyzer wants it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

#: How an analyzer hands back a record: ``emit(log_name, record)``.
Emit = Callable[[str, dict[str, Any]], None]

#: Every byte value: a direction whose payload may start with anything.
ANY_BYTE = frozenset(range(256))


@dataclass(frozen=True, slots=True)
class SniffHint:
    """A cheap necessary condition for an analyzer's :meth:`Analyzer.sniff`.

    The dispatcher asks every analyzer class about the first payload of
    every connection; most say no after a look at the ports or the first
    byte. A class that declares a hint is asked only when its connection's
    responder port is in ``ports``, its originator port is in
    ``orig_ports``, or the payload's first byte is in ``orig_first`` (from
    the originator) or ``resp_first`` (from the responder). The hint may
    let through what ``sniff`` then refuses, never the reverse
    (tests/proto/test_dispatch.py checks every registered hint).
    """

    ports: frozenset[int] = frozenset()
    orig_ports: frozenset[int] = frozenset()
    orig_first: frozenset[int] = frozenset()
    resp_first: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class ConnInfo:
    """What an analyzer knows of its connection, oriented as in conn.log."""

    uid: str
    proto: str  # "tcp" or "udp"
    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int

    def id_fields(self) -> dict[str, Any]:
        """The ``uid`` and ``id.*`` fields that start every Zeek log record."""
        return {
            "uid": self.uid,
            "id.orig_h": self.orig_h,
            "id.orig_p": self.orig_p,
            "id.resp_h": self.resp_h,
            "id.resp_p": self.resp_p,
        }


class Analyzer:
    """Base class of the per-connection protocol analyzers.

    Subclasses set :attr:`service` (the conn.log service name) and
    :attr:`logs` (the log names they write), and override :meth:`sniff`,
    :meth:`data` and, where they hold records back, :meth:`end`.
    Malformed input is data: count it in :attr:`anomalies`, emit a weird
    through ``emit("weird", ...)`` when it matters, and carry on; no
    exception may escape.
    """

    service: ClassVar[str] = ""
    logs: ClassVar[tuple[str, ...]] = ()
    protos: ClassVar[tuple[str, ...]] = ("tcp",)
    #: When :meth:`sniff` can say yes (None: it is always asked).
    sniff_hint: ClassVar[SniffHint | None] = None

    def __init__(self, conn: ConnInfo, emit: Emit) -> None:
        self.conn = conn
        self.emit = emit
        self.done = False
        self.anomalies = 0

    @classmethod
    def sniff(cls, conn: ConnInfo, is_orig: bool, data: bytes) -> bool:
        """Whether ``data``, the first payload seen in one direction, is ours."""
        return False

    def data(self, is_orig: bool, ts: float, data: bytes) -> None:
        """The next payload bytes of one direction, in stream order."""

    def gap(self, is_orig: bool, ts: float, length: int) -> None:
        """``length`` bytes of one direction are missing from the capture."""

    def end(self, ts: float) -> None:
        """The connection is over: emit whatever is still held back."""
