"""dhcp.log: DHCP conversations joined by transaction id across connections.

A client's DISCOVER goes from 0.0.0.0 to the broadcast address, the OFFER
comes back from the server, the REQUEST and ACK may travel on yet other
address pairs: every one is a separate UDP connection. As Zeek does
(base/protocols/dhcp/main.zeek), messages are joined into one record per
transaction id (``xid``), which lists the uids of every connection involved.

Design note on timing: Zeek writes a record once no message was added for
5 seconds or it has been open for 30 (checked 10 seconds after it was
opened and every 5 seconds after that), or when too many uids (10) or
message types (50) pile up. Time here is network time: the checks are run
whenever a DHCP message arrives or a DHCP connection ends, as if Zeek's
timers had fired in between. The joined records live in a
:class:`DHCPJoin` shared by the analyzers of one dispatcher; what is still
open when the last DHCP connection ends is written then.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any, ClassVar

from sensor.proto.analyzer import Analyzer, ConnInfo, Emit, SniffHint
from sensor.proto.analyzers.weird import WeirdReporter
from sensor.proto.parsers.dhcp import DHCPMessage, message_type_name, parse_message
from sensor.proto.parsers.text import zeek_text

log = logging.getLogger(__name__)

#: UDP ports of DHCP (server, client, PXE proxy), as Zeek registers them.
PORTS = frozenset({67, 68, 4011})
#: Quiet time after which a conversation is written (Zeek's 5 s re-check).
QUIET = 5.0
#: Longest a conversation is watched (DHCP::max_txid_watch_time).
MAX_WATCH = 30.0
#: First check after a conversation opens (the table's create_expire).
FIRST_CHECK = 10.0
#: Uids and message types per record (DHCP::max_uids_per_log_entry, ...).
MAX_UIDS = 10
MAX_MSG_TYPES = 50
#: Conversations open at once; past it the oldest is written early.
MAX_OPEN = 4096


class DHCPJoin:
    """The open conversations of one dispatcher, keyed by transaction id."""

    def __init__(self) -> None:
        self.open: dict[int, dict[str, Any]] = {}
        self.live = 0  # DHCP connections not yet ended
        self.counters: dict[str, int] = {}

    def expire(self, now: float, emit: Emit) -> None:
        """Write every conversation that Zeek's timers would have written by ``now``."""
        for xid in [x for x, rec in self.open.items() if _expiry(rec) < now]:
            self.write(xid, emit)

    def write(self, xid: int, emit: Emit) -> None:
        """Write and forget one conversation."""
        rec = self.open.pop(xid)
        if "mac" not in rec and "_chaddr" in rec:
            rec["mac"] = rec["_chaddr"]
        emit("dhcp", {k: v for k, v in rec.items() if not k.startswith("_")})


def _expiry(rec: dict[str, Any]) -> float:
    """When Zeek's expiration check first finds ``rec`` done."""
    start, last = float(rec["ts"]), float(rec["_last"])
    check = start + FIRST_CHECK
    while check - last <= QUIET and check - start <= MAX_WATCH:
        check += QUIET
    return check


# One join table per dispatcher: analyzers of the same engine share it.
_JOINS: weakref.WeakKeyDictionary[Any, DHCPJoin] = weakref.WeakKeyDictionary()


def _join_for(emit: Emit) -> DHCPJoin:
    owner = getattr(emit, "__self__", emit)
    join = _JOINS.get(owner)
    if join is None:
        join = _JOINS[owner] = DHCPJoin()
    return join


class DHCPAnalyzer(Analyzer):
    """DHCP over UDP on Zeek's DHCP ports; writes dhcp.log."""

    service: ClassVar[str] = "dhcp"
    logs: ClassVar[tuple[str, ...]] = ("dhcp",)
    protos: ClassVar[tuple[str, ...]] = ("udp",)
    sniff_hint: ClassVar[SniffHint | None] = SniffHint(ports=PORTS, orig_ports=PORTS)

    def __init__(self, conn: ConnInfo, emit: Emit) -> None:
        super().__init__(conn, emit)
        self.join = _join_for(emit)
        self.join.live += 1
        self.weirds = WeirdReporter(conn.id_fields(), "DHCP", emit)
        self.counters = self.weirds.counters

    @classmethod
    def sniff(cls, conn: ConnInfo, is_orig: bool, data: bytes) -> bool:
        """Zeek attaches its DHCP analyzer by port."""
        return conn.resp_p in PORTS or conn.orig_p in PORTS

    def data(self, is_orig: bool, ts: float, data: bytes) -> None:
        """One datagram: join its message into its conversation."""
        msg = parse_message(data)
        if isinstance(msg, str):
            self._count(ts, msg)
            return
        for name in msg.anomalies:
            self._count(ts, name)
        self.join.expire(ts, self.emit)
        self._aggregate(ts, is_orig, msg)

    def end(self, ts: float) -> None:
        """Write what is due; the last DHCP connection writes everything."""
        self.done = True
        self.join.live -= 1
        self.join.expire(ts, self.emit)
        if self.join.live <= 0:
            for xid in list(self.join.open):
                self.join.write(xid, self.emit)

    def _aggregate(self, ts: float, is_orig: bool, msg: DHCPMessage) -> None:
        # Zeek's DHCP::aggregate_msgs, field by field.
        join, c = self.join, self.conn
        rec = join.open.get(msg.xid)
        if rec is None:
            if len(join.open) >= MAX_OPEN:
                join.counters["dhcp_open_full"] = (
                    join.counters.get("dhcp_open_full", 0) + 1
                )
                join.write(next(iter(join.open)), self.emit)
            rec = join.open[msg.xid] = {"ts": ts, "uids": [], "msg_types": []}
        rec["duration"] = ts - rec["ts"]
        rec["_last"] = ts
        if c.uid not in rec["uids"]:
            rec["uids"].append(c.uid)
        rec["msg_types"].append(message_type_name(msg.msg_type))

        # A server broadcasting is an originator too; a client is an
        # originator that sends from 0.0.0.0, from port 68 or to port 67.
        client = is_orig and (c.orig_h == "0.0.0.0" or c.orig_p == 68 or c.resp_p == 67)
        if msg.message is not None:
            rec["client_message" if client else "server_message"] = zeek_text(
                msg.message
            )
        if client:
            if c.orig_h not in ("0.0.0.0", "255.255.255.255"):
                rec["client_addr"] = c.orig_h
            if msg.host_name is not None:
                rec["host_name"] = zeek_text(msg.host_name)
            if msg.client_fqdn is not None:
                rec["client_fqdn"] = zeek_text(msg.client_fqdn)
            if msg.client_id_mac is not None:
                rec["mac"] = msg.client_id_mac
            else:
                rec["_chaddr"] = msg.chaddr
            if msg.requested_addr is not None:
                rec["requested_addr"] = msg.requested_addr
        else:
            if msg.yiaddr != "0.0.0.0":
                rec["server_addr"] = c.orig_h if is_orig else c.resp_h
                rec["assigned_addr"] = msg.yiaddr
            if msg.chaddr and "mac" not in rec:
                rec["mac"] = msg.chaddr
            if "client_addr" not in rec and "assigned_addr" in rec:
                rec["client_addr"] = rec["assigned_addr"]
            if msg.domain_name is not None:
                rec["domain"] = zeek_text(msg.domain_name)
            if msg.lease is not None:
                rec["lease_time"] = float(msg.lease)

        if len(rec["uids"]) >= MAX_UIDS or len(rec["msg_types"]) >= MAX_MSG_TYPES:
            join.write(msg.xid, self.emit)

    def _count(self, ts: float, name: str) -> None:
        self.weirds.report(ts, name)
        self.anomalies += 1
