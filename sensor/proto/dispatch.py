"""Attach protocol analyzers to connections and feed them payload in order.

The engine hands every payload event of the connection table to
:meth:`Dispatcher.payload` and every finished connection to
:meth:`Dispatcher.finish`; the records the analyzers emit collect in
:attr:`Dispatcher.records` for the engine to write. An analyzer that raises
is a bug, not an attack: it is detached, counted and logged once, and the
rest of the pipeline carries on.

TCP segments go through a bounded :class:`~sensor.proto.stream.Reassembler`,
so analyzers see each direction in sequence order, exactly once, with
``gap()`` for bytes that will never come; UDP datagrams go straight
through. Analyzers are chosen on the first in-order bytes of each
direction (asking only the classes whose
:class:`~sensor.proto.analyzer.SniffHint` lets the ports or the first byte
through). Once every analyzer of a connection is done (or none was
chosen for either direction), its segments are no longer reassembled and
:meth:`Dispatcher.wants_more` tells the connection table to stop sending
them.
"""

from __future__ import annotations

import logging
from typing import Any

from sensor.proto.analyzer import Analyzer, ConnInfo
from sensor.proto.registry import ANALYZERS
from sensor.proto.stream import Reassembler, StreamConfig

log = logging.getLogger(__name__)

Record = tuple[str, dict[str, Any]]

#: Most connections followed at once; past it, new connections are not
#: analysed (counted in ``stats["dispatch_table_full"]``).
MAX_CONNS = 262_144


#: ``_Followed.sniffed`` bits: the direction's first bytes were sniffed.
_RESP, _ORIG, _BOTH = 1, 2, 3


class _Followed:
    __slots__ = ("analyzers", "info", "live", "sniffed")

    def __init__(self, info: ConnInfo) -> None:
        self.info = info
        self.analyzers: list[Analyzer] = []
        self.sniffed = 0  # _RESP | _ORIG
        # Whether an analyzer still reads the payload, as of the last call
        # into one (only an analyzer's own calls set its ``done``).
        self.live = False

    def listening(self) -> bool:
        """Whether an analyzer of this connection still reads its payload."""
        return any(not a.done for a in self.analyzers)


class _Sniffers:
    """The analyzer classes of one transport, and which to ask about a payload.

    A class with a :class:`~sensor.proto.analyzer.SniffHint` is asked only
    when the hint lets the connection's ports or the payload's first byte
    through; the others always. Each class is a bit of a mask, so that the
    candidates keep the registry's order (the order analyzers are attached
    and fed in).
    """

    def __init__(self, analyzers: tuple[type[Analyzer], ...], proto: str) -> None:
        classes = [cls for cls in analyzers if proto in cls.protos]
        self._order = [(cls, cls.sniff) for cls in classes]
        self._always = 0
        self._ports: dict[int, int] = {}
        self._orig_ports: dict[int, int] = {}
        self._first: tuple[list[int], list[int]] = ([0] * 256, [0] * 256)
        for i, cls in enumerate(classes):
            bit = 1 << i
            hint = cls.sniff_hint
            if hint is None:
                self._always |= bit
                continue
            for port in hint.ports:
                self._ports[port] = self._ports.get(port, 0) | bit
            for port in hint.orig_ports:
                self._orig_ports[port] = self._orig_ports.get(port, 0) | bit
            for first, table in ((hint.resp_first, 0), (hint.orig_first, 1)):
                for byte in first:
                    self._first[table][byte] |= bit
        self._chosen: dict[int, list[tuple[type[Analyzer], Any]]] = {}

    def candidates(
        self, info: ConnInfo, is_orig: bool, data: bytes
    ) -> list[tuple[type[Analyzer], Any]]:
        """The classes (with their sniff methods) worth asking about ``data``."""
        mask = (
            self._always
            | self._ports.get(info.resp_p, 0)
            | self._orig_ports.get(info.orig_p, 0)
        )
        if data:
            mask |= self._first[is_orig][data[0]]
        chosen = self._chosen.get(mask)
        if chosen is None:
            # At most 2**len(classes) masks; in practice a handful.
            chosen = self._chosen[mask] = [
                pair for i, pair in enumerate(self._order) if mask >> i & 1
            ]
        return chosen


class Dispatcher:
    """Runs the registered analyzers over the connections they recognise."""

    def __init__(
        self,
        analyzers: tuple[type[Analyzer], ...] = ANALYZERS,
        streams: StreamConfig | None = None,
    ) -> None:
        self.classes = analyzers
        self._sniffers = {
            proto: _Sniffers(analyzers, proto) for proto in ("tcp", "udp")
        }
        self.records: list[Record] = []
        self.stats: dict[str, int] = {}
        self.streams = Reassembler(self._data, self._gap, streams)
        self.streams.salvage = self._salvage
        self._segment = self.streams.segment
        self._conns: dict[str, _Followed] = {}
        self._failed: set[str] = set()

    def payload(
        self,
        uid: str,
        is_orig: bool,
        ts: float,
        data: bytes,
        proto: str,
        orig_h: str,
        orig_p: int,
        resp_h: str,
        resp_p: int,
        seq: int = 0,
        *_: Any,
    ) -> None:
        """One payload event of the connection table (docs/internals.md)."""
        followed = self._conns.get(uid)
        if followed is None:
            if len(self._conns) >= MAX_CONNS:
                self._count("dispatch_table_full")
                return
            info = ConnInfo(uid, proto, orig_h, orig_p, resp_h, resp_p)
            followed = self._conns[uid] = _Followed(info)
        elif followed.sniffed == _BOTH and not followed.live:
            return

        if proto != "tcp":
            self._data(followed, is_orig, ts, data)
            return
        self.streams.segment(followed, is_orig, ts, seq, data)
        if followed.sniffed == _BOTH and not followed.live:
            self.streams.drop(followed)  # nobody will read what it holds

    def event(self, event: tuple[Any, ...]) -> None:
        """:meth:`payload`, given the connection table's event tuple whole.

        The engine's path for every segment: a connection already followed
        goes to the reassembler with no unpacking and repacking of the
        event; a new one takes :meth:`payload`.
        """
        followed = self._conns.get(event[0])
        if followed is None:
            self.payload(*event)
        elif followed.sniffed != _BOTH or followed.live:
            if event[4] != "tcp":
                self._data(followed, event[1], event[2], event[3])
                return
            self._segment(followed, event[1], event[2], event[9], event[3])
            if followed.sniffed == _BOTH and not followed.live:
                self.streams.drop(followed)  # nobody will read what it holds

    def gap(self, uid: str, is_orig: bool, ts: float, length: int) -> None:
        """``length`` bytes of one direction of ``uid`` were never seen."""
        followed = self._conns.get(uid)
        if followed is not None:
            self._gap(followed, is_orig, ts, length)

    def wants_more(self, uid: str) -> bool:
        """Whether ``uid``'s payload may still matter: it has not been seen
        yet, an analyzer of it is not done, or a direction's first bytes
        wait behind a hole (the table sends the first packets of each
        direction regardless)."""
        followed = self._conns.get(uid)
        if followed is None:
            # Not seen yet: the table cut the first payload short (or sends
            # none for service detection); whole segments let us sniff it.
            return len(self._conns) < MAX_CONNS
        return followed.live or (
            followed.sniffed != _BOTH and self.streams.holding(followed)
        )

    def finish(
        self,
        uid: str,
        ts: float,
        orig_bytes: int = -1,
        resp_bytes: int = -1,
        missed_bytes: int = -1,
    ) -> list[str]:
        """The connection is over: deliver what the reassembler holds (see
        :meth:`~sensor.proto.stream.Reassembler.finish` for what conn.log's
        sizes change), flush the analyzers; return their services."""
        followed = self._conns.pop(uid, None)
        if followed is None:
            return []
        self.streams.finish(followed, ts, orig_bytes, resp_bytes, missed_bytes)
        for analyzer in followed.analyzers:
            self._call(analyzer, "end", ts)
            self._collect(analyzer)
        return [a.service for a in followed.analyzers if a.service]

    def _collect(self, analyzer: Analyzer) -> None:
        # An analyzer's counters outlive it in the dispatcher's stats, as
        # ``<service>_anomalies`` and ``<service>_<counter>``.
        prefix = analyzer.service or type(analyzer).__name__
        if analyzer.anomalies:
            self._count(f"{prefix}_anomalies", analyzer.anomalies)
        counters = getattr(analyzer, "counters", None)
        if isinstance(counters, dict):
            for key, value in counters.items():
                if isinstance(value, int) and value:
                    self._count(f"{prefix}_{key}", value)

    def _data(self, followed: _Followed, is_orig: bool, ts: float, data: bytes) -> None:
        # The reassembler's delivery: the next in-order bytes of a direction.
        # This runs for every segment: _call is inlined.
        if followed.sniffed != _BOTH:
            bit = _ORIG if is_orig else _RESP
            if not followed.sniffed & bit:
                followed.sniffed |= bit
                self._attach(followed, is_orig, data)
        live = False
        for analyzer in followed.analyzers:
            if analyzer.done:
                continue
            try:
                analyzer.data(is_orig, ts, data)
            except Exception:  # noqa: BLE001 - see the module docstring
                analyzer.done = True
                self._bug(type(analyzer).__name__, "data")
            live = live or not analyzer.done
        followed.live = live

    def _gap(self, followed: _Followed, is_orig: bool, ts: float, length: int) -> None:
        for analyzer in followed.analyzers:
            if not analyzer.done:
                self._call(analyzer, "gap", is_orig, ts, length)
        followed.live = followed.listening()

    def _attach(self, followed: _Followed, is_orig: bool, data: bytes) -> None:
        info = followed.info
        sniffers = self._sniffers.get(info.proto)
        if sniffers is None:
            return
        have = {type(a) for a in followed.analyzers} if followed.analyzers else ()
        for cls, sniff in sniffers.candidates(info, is_orig, data):
            if cls in have:
                continue
            try:
                recognised = sniff(info, is_orig, data)
            except Exception:  # noqa: BLE001 - a sniffing bug must not stop the sensor
                self._bug(cls.__name__, "sniff")
                continue
            if recognised:
                followed.analyzers.append(cls(info, self._emit))
                self._count(f"analyzer_{cls.__name__}")

    def _salvage(
        self, followed: _Followed, is_orig: bool, ts: float, segments: list[bytes]
    ) -> None:
        # Segments dropped behind an unacknowledged hole, for the analyzers
        # that define ``salvage`` (see Reassembler.salvage).
        for analyzer in followed.analyzers:
            if hasattr(analyzer, "salvage"):
                self._call(analyzer, "salvage", is_orig, ts, segments)

    def _call(self, analyzer: Analyzer, method: str, *args: Any) -> None:
        try:
            getattr(analyzer, method)(*args)
        except Exception:  # noqa: BLE001 - see the module docstring
            analyzer.done = True
            self._bug(type(analyzer).__name__, method)

    def _emit(self, name: str, record: dict[str, Any]) -> None:
        self.records.append((name, record))

    def _bug(self, name: str, method: str) -> None:
        self._count("analyzer_errors")
        if name not in self._failed:
            self._failed.add(name)
            log.exception(
                "%s.%s failed; analyzer detached from this connection", name, method
            )

    def _count(self, key: str, n: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + n
