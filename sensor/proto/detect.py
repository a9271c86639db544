"""Service detection: which application protocols a connection spoke.

The connection table hands the first payload-bearing packets of each
direction to :meth:`ServiceDetector.feed`; when the connection's record is
written, :meth:`ServiceDetector.finish` returns the names for conn.log's
``service`` field. The names and the moment a name is earned follow Zeek:
a protocol is named only once the analyzer for it would have *confirmed*
it (a port-80 SYN scan has no service; a NetBIOS name query that parses
as DNS does), and protocols nested in another (SPNEGO, NTLMSSP, Kerberos
and DCE-RPC inside SMB) add their own names.

Design: feed() only buffers (bounded per connection and in the number of
connections); all parsing happens in finish(), on both directions at once.
The one exception is FTP, whose PORT/PASV exchanges announce the data
connections that Zeek names ``ftp-data``; those are watched for at feed
time, because the data connection starts while its control connection is
still open.

Names given: ``dns``, ``http``, ``ssl``, ``ssh``, ``ftp``, ``ftp-data``,
``smtp``, ``rfb``, ``rdp``, ``krb``, ``krb_tcp``, ``smb``, ``gssapi``,
``ntlm``, ``dce_rpc`` (over TCP and SMB pipes), ``ntp``, ``dhcp``,
``radius``, ``teredo``, ``rdpeudp``. Known gaps, each costing a record or
a few on the shared captures (see tests/proto/service_harness.py):

- ``ftp-data`` needs the control connection's PASV/PORT exchange, which
  comes after the first packets: only a table that honours
  :meth:`ServiceDetector.wants_more` gets it.
- DCE-RPC on an SMB pipe opened after the first eight packets of each
  direction is missed, again unless the table honours ``wants_more``.
- A protocol violation after confirmation, which makes Zeek take a name
  back, is not modelled.
- TODO: protocols Zeek confirms that the shared captures do not show
  (POP3, IMAP, IRC, SIP, MySQL, SOCKS, DTLS, SNMP responses, Modbus,
  DNP3, ...) are not named yet, for want of a reference to check them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sensor.proto import (
    dcerpc,
    dns,
    ftpdata,
    krb,
    rdp,
    smb,
    textproto,
    tls,
    udpproto,
)
from sensor.proto.flowdata import FlowData

log = logging.getLogger(__name__)

Check = Callable[[FlowData], "list[str] | bool"]


@dataclass(frozen=True)
class DetectorConfig:
    """Limits of the service detector.

    ``max_flows``: connections tracked at once; beyond it new connections
    are not tracked (their service stays empty) and ``flows_untracked``
    counts them. ``max_bytes`` and ``max_packets``: what is kept per
    direction of one connection (the connection table sends no more than
    its own ``payload_bytes``/``payload_packets`` anyway);
    ``more_bytes``/``more_packets`` for an SMB connection that opened the
    IPC$ share but has not shown DCE-RPC yet, if the table keeps feeding it
    (see :meth:`ServiceDetector.wants_more`).
    ``max_total_bytes``: payload buffered over all connections; past it new
    packets are dropped (``budget_exhausted`` counts them) until finished
    connections free room. ``max_expected``: announced FTP data
    connections remembered at once (oldest forgotten first).
    """

    max_flows: int = 200_000
    max_bytes: int = 4096
    max_packets: int = 8
    more_bytes: int = 16384
    more_packets: int = 24
    max_total_bytes: int = 64 << 20
    max_expected: int = 4096


# Checks in the order Zeek tends to confirm them; each returns True (its
# own name) or the list of names it found, outermost last.
_TCP: list[tuple[str, Check]] = [
    ("ssl", tls.ssl),
    ("http", textproto.http),
    ("ssh", textproto.ssh),
    ("ftp", textproto.ftp),
    ("smtp", textproto.smtp),
    ("rfb", textproto.rfb),
    ("rdp", rdp.rdp),
    ("dns", dns.dns),
    ("krb_tcp", krb.krb_tcp),
    ("smb", smb.smb),
    ("dce_rpc", dcerpc.dce_rpc_tcp),
]
_UDP: list[tuple[str, Check]] = [
    ("dns", dns.dns),
    ("ntp", udpproto.ntp),
    ("dhcp", udpproto.dhcp),
    ("radius", udpproto.radius),
    ("teredo", udpproto.teredo),
    ("rdpeudp", udpproto.rdpeudp),
    ("krb", krb.krb_udp),
]


class ServiceDetector:
    """Names the services of connections from their first payload bytes.

    Use: :meth:`feed` every payload event of the connection table, then
    :meth:`finish` with the uid *and the history* of each conn.log record
    as it is written (without the history, partial TCP connections get
    names Zeek would not give them). A table that can keep delivering
    packets of a connection while :meth:`wants_more` says so lets FTP
    data connections be recognised.

    Never raises: malformed payloads simply confirm nothing, and a parser
    bug is caught, counted (``errors``) and logged at WARNING.
    """

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        self._flows: dict[str, FlowData] = {}
        self._ftp = ftpdata.Expectations(self.config.max_expected)
        self._ftp_data: set[str] = set()
        self._total = 0
        self.counters: dict[str, int] = {
            "flows_untracked": 0,
            "budget_exhausted": 0,
            "bytes_dropped": 0,
            "errors": 0,
        }

    def feed(
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
    ) -> None:
        """Buffer one payload-bearing packet of connection ``uid``.

        Packets come in the order they were captured, both directions
        interleaved; ``is_orig`` tells the direction, and the tuple is the
        connection's (originator first), the same on every call. Only the
        first ``max_packets``/``max_bytes`` of each direction are kept.
        """
        try:
            self._feed(uid, is_orig, ts, data, proto, orig_h, orig_p, resp_h, resp_p)
        except Exception:  # noqa: BLE001 - detection must never stop the pipeline
            self._error(uid, "feed")

    def _feed(
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
    ) -> None:
        flow = self._flows.get(uid)
        if flow is None:
            if len(self._flows) >= self.config.max_flows:
                self._limit("flows_untracked", "max_flows", self.config.max_flows)
                return
            flow = FlowData(
                str(proto), str(orig_h), int(orig_p), str(resp_h), int(resp_p)
            )
            self._flows[uid] = flow
            if proto == "tcp" and self._ftp.match(
                ts, flow.orig_h, flow.resp_h, flow.resp_p
            ):
                self._ftp_data.add(uid)
        elif (orig_h, orig_p) != (flow.orig_h, flow.orig_p) and (
            resp_h,
            resp_p,
        ) == (flow.orig_h, flow.orig_p):
            flow.flip()  # the table swapped the roles since the last packet

        data = bytes(data)
        if proto == "tcp":
            # Past the buffering cap too, for as long as the table delivers:
            # PASV/PORT exchanges come after the login.
            self._ftp.watch(ts, flow, is_orig, data)
        pkts = flow.pkts(is_orig)
        max_packets, max_bytes = self.config.max_packets, self.config.max_bytes
        if len(pkts) >= max_packets and smb.pipe_pending(flow):
            max_packets, max_bytes = self.config.more_packets, self.config.more_bytes
        flow.forget_streams()
        room = max_bytes - sum(map(len, pkts))
        if len(pkts) >= max_packets or room <= 0:
            self.counters["bytes_dropped"] += len(data)
            return
        chunk = data[:room]
        self.counters["bytes_dropped"] += len(data) - len(chunk)
        if proto == "tcp" and pkts and pkts[-1] == chunk:
            return  # a retransmission would break message framing
        if self._total + len(chunk) > self.config.max_total_bytes:
            self._limit(
                "budget_exhausted", "max_total_bytes", self.config.max_total_bytes
            )
            return
        pkts.append(chunk)
        flow.order.append(is_orig)
        flow.nbytes += len(chunk)
        self._total += len(chunk)

    def wants_more(self, uid: str) -> bool:
        """True when more packets of ``uid`` than the usual first few would help.

        That is an FTP control connection: the data connections it
        announces come after the greeting and login, usually past the
        eighth packet (the detector buffers nothing more for those, it
        only watches for PASV/EPSV replies and PORT/EPRT commands). Or an
        SMB connection that opened the IPC$ share and has not shown
        DCE-RPC yet, up to ``more_packets`` per direction. A connection
        table that honours this keeps feeding such connections.
        """
        flow = self._flows.get(uid)
        if flow is None:
            return False
        if ftpdata.is_control(flow):
            return True
        fewest = min(len(flow.orig_pkts), len(flow.resp_pkts))
        pending = fewest < self.config.more_packets and smb.pipe_pending(flow)
        flow.forget_streams()
        return pending

    def finish(self, uid: str, history: str | None = None) -> list[str]:
        """Return the services of ``uid`` and forget it.

        ``history`` is the record's conn.log history, when known: a TCP
        connection without a SYN or SYN-ACK in it is partial, and Zeek
        names fewer services on those (see :class:`FlowData`).
        """
        flow = self._flows.pop(uid, None)
        if flow is not None:
            self._total -= flow.nbytes
        names: list[str] = []
        if uid in self._ftp_data:
            self._ftp_data.discard(uid)
            names.append("ftp-data")
        if flow is None:
            return names
        if history is not None and flow.proto == "tcp":
            flow.partial = not any(c in history for c in "SsHh")
        try:
            names.extend(n for n in detect(flow) if n not in names)
        except Exception:  # noqa: BLE001 - detection must never stop the pipeline
            self._error(uid, "finish")
        return names

    def _limit(self, counter: str, option: str, value: int) -> None:
        # Degraded operation: warn the first time, count every time.
        if not self.counters[counter]:
            log.warning(
                "service detection: %s=%d reached; services of further "
                "connections may be missed (counted in %s)",
                option,
                value,
                counter,
            )
        self.counters[counter] += 1

    def _error(self, uid: str, where: str) -> None:
        # A parser bug, not bad input (bad input confirms nothing): count
        # it, and log the first one with its traceback, later ones at DEBUG.
        self.counters["errors"] += 1
        level = logging.WARNING if self.counters["errors"] == 1 else logging.DEBUG
        log.log(level, "service detection: %s of %s failed", where, uid, exc_info=True)

    def stats(self) -> dict[str, int]:
        """Counters, and what is tracked and buffered now.

        ``flows_untracked`` and ``budget_exhausted``: limit hits (see
        :class:`DetectorConfig`); ``bytes_dropped``: payload past the
        per-direction caps (normal); ``errors``: parser bugs caught;
        ``expected_evicted``: announced FTP data channels forgotten early.
        """
        return dict(
            self.counters,
            flows_tracked=len(self._flows),
            bytes_buffered=self._total,
            expected_evicted=self._ftp.evicted,
        )


def detect(flow: FlowData) -> list[str]:
    """Every service confirmed on one connection, in Zeek's usual order."""
    checks = _TCP if flow.proto == "tcp" else _UDP if flow.proto == "udp" else []
    names: list[str] = []
    for name, check in checks:
        found = check(flow)
        if found is True:
            found = [name]
        for n in found or ():
            if n not in names:
                names.append(n)
    return names
