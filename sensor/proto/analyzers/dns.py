"""dns.log: DNS queries paired with their replies, as Zeek logs them.

The pairing follows Zeek's base/protocols/dns/main.zeek: each message opens
or completes a record keyed by its transaction id; a query waits for its
reply (and a reply for its query) in per-id queues; a record is written
once both halves were seen, and whatever is still waiting when the
connection ends is written then. Messages to a multicast address (mDNS,
LLMNR) are each a record of their own. Only QUERY, NOTIFY and UPDATE
messages are tracked, as in Zeek.

Over TCP each message is preceded by a two-byte length (RFC 1035 4.2.2);
over UDP each datagram is one message.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import deque
from typing import Any, ClassVar

from sensor.proto.analyzer import Analyzer, ConnInfo, Emit, SniffHint
from sensor.proto.analyzers.weird import WeirdReporter
from sensor.proto.dns import TCP_PORTS, UDP_PORTS
from sensor.proto.parsers.dns import DNSMessage, decode_netbios_name, parse_message
from sensor.proto.parsers.dnsconst import (
    CLASSES,
    OPCODES,
    QTYPES,
    RCODES,
    opcode_name,
    qclass_name,
    qtype_name,
    rcode_name,
)
from sensor.proto.parsers.text import zeek_text

log = logging.getLogger(__name__)

#: Opcodes whose messages dns.log follows: QUERY, NOTIFY, UPDATE.
TRACKED_OPCODES = frozenset({0, 4, 5})
#: Opcodes Zeek's analyzer accepts (others are the weird DNS_unknown_opcode);
#: the NetBIOS name service adds its own (RFC 1002 4.2.1.1).
KNOWN_OPCODES = frozenset({0, 4, 5})
NETBIOS_OPCODES = frozenset({0, 4, 5, 6, 7, 8, 9})
#: Unmatched messages kept per transaction id (Zeek's max_pending_msgs).
MAX_PENDING_MSGS = 50
#: Transaction ids with unmatched messages (Zeek's max_pending_query_ids).
MAX_PENDING_IDS = 50
NETBIOS_PORT = 137
# Bookkeeping keys of a record that are not dns.log fields.
_INTERNAL = ("_saw_query", "_saw_reply", "_rtt_set")
#: Violations past this many bytes of a connection leave the analyzer on.
VIOLATION_WINDOW = 10 * 1024


def _multicast(addr: str) -> bool:
    # IPv4 multicast is 224.0.0.0/4 (RFC 5771): the first octet says it,
    # without parsing the address (this runs for every DNS connection).
    head = addr.split(".", 1)[0]
    if head.isdigit() and "." in addr:
        return 224 <= int(head) <= 239
    try:
        return ipaddress.ip_address(addr).is_multicast
    except ValueError:
        return False


class DNSAnalyzer(Analyzer):
    """DNS over UDP and TCP on Zeek's DNS ports; writes dns.log."""

    service: ClassVar[str] = "dns"
    logs: ClassVar[tuple[str, ...]] = ("dns",)
    protos: ClassVar[tuple[str, ...]] = ("udp", "tcp")
    sniff_hint: ClassVar[SniffHint | None] = SniffHint(
        ports=UDP_PORTS | TCP_PORTS, orig_ports=UDP_PORTS
    )

    def __init__(self, conn: ConnInfo, emit: Emit) -> None:
        super().__init__(conn, emit)
        self.netbios = NETBIOS_PORT in (conn.resp_p, conn.orig_p)
        self.multicast = _multicast(conn.resp_h)
        self._current: dict[str, Any] | None = None
        self._pending_query: dict[str, Any] | None = None
        self._pending_queries: dict[int, deque[dict[str, Any]]] = {}
        self._pending_replies: dict[int, deque[dict[str, Any]]] = {}
        self._ids = conn.id_fields()
        self._proto = "tcp" if conn.proto == "tcp" else "udp"
        self._udp = conn.proto == "udp"
        self.weirds = WeirdReporter(self._ids, "DNS", emit)
        self.counters = self.weirds.counters
        self._first = True
        self._buf = {True: bytearray(), False: bytearray()}  # TCP, per direction
        self._lost = {True: False, False: False}  # a direction lost its framing
        self._bytes = 0  # payload bytes seen, both directions
        self._violated = False  # a protocol violation Zeek's DPD acts on
        self._removed = False

    @classmethod
    def sniff(cls, conn: ConnInfo, is_orig: bool, data: bytes) -> bool:
        """Zeek runs its DNS analyzer by port alone (there is no signature)."""
        if conn.proto == "udp":
            return conn.resp_p in UDP_PORTS or conn.orig_p in UDP_PORTS
        return conn.resp_p in TCP_PORTS

    def data(self, is_orig: bool, ts: float, data: bytes) -> None:
        """One UDP datagram, or the next bytes of a TCP stream."""
        if self._violated:
            # Zeek's DPD removes the analyzer before the next delivery.
            self._removed = True
            self.done = True
            return
        self._bytes += len(data)
        if self._udp:
            self._message(is_orig, ts, data)
            return
        if self._lost[is_orig]:
            return
        buf = self._buf[is_orig]
        buf += data
        # Every whole message of the chunk is read, even after a violation:
        # Zeek's DPD acts only once the chunk has been handled. The buffer
        # never holds more than one message (65535 bytes) and a chunk.
        while len(buf) >= 2:
            size = int.from_bytes(buf[:2], "big")
            if len(buf) < 2 + size:
                break
            message = bytes(buf[2 : 2 + size])
            del buf[: 2 + size]
            self._message(is_orig, ts, message)

    def gap(self, is_orig: bool, ts: float, length: int) -> None:
        """A TCP gap loses the message framing of that direction for good."""
        self._lost[is_orig] = True
        self._buf[is_orig].clear()
        self._count(ts, "DNS_tcp_gap")

    def end(self, ts: float) -> None:
        """Write every query and reply still waiting for its other half."""
        # Zeek hands a TCP message cut short by the end of the connection to
        # its parser as it is, both directions at each endpoint's FIN (the
        # buffer is not cleared in between), and does not flip the roles
        # for it. An analyzer that DPD removed no longer sees the FINs.
        # A UDP connection never buffers.
        if not self._udp:
            self._partial(ts)
        if self._pending_query is not None:
            self._write(self._pending_query)
        for queues in (self._pending_queries, self._pending_replies):
            for queue in queues.values():
                for rec in queue:
                    self._write(rec)
            queues.clear()
        self._pending_query = None
        self.done = True

    def _partial(self, ts: float) -> None:
        partial = {
            d: bytes(self._buf[d][2:])
            for d in (True, False)
            if len(self._buf[d]) > 2 and not self._lost[d]
        }
        if partial and not self._removed:
            self._count(ts, "DNS_tcp_partial_message")
            for _ in range(2):
                for is_orig, message in partial.items():
                    self._first = False
                    self._message(is_orig, ts, message)
        for buf in self._buf.values():
            buf.clear()

    # -- one message, in the order of Zeek's events --------------------------

    def _message(self, is_orig: bool, ts: float, raw: bytes) -> None:
        msg = parse_message(raw, self.netbios)
        if msg is None:
            self._count(ts, "DNS_truncated_len_lt_hdr_len")
            return
        if self._first:
            self._first = False
            if msg.qr and is_orig and not self.multicast:
                self._flip()
        opcode, anomalies = msg.opcode, msg.anomalies
        unknown = opcode not in (NETBIOS_OPCODES if self.netbios else KNOWN_OPCODES)
        if unknown:
            self._count(ts, "DNS_unknown_opcode", str(opcode))
        if anomalies:
            for name in anomalies:
                addl = (
                    f"{msg.qdcount} > 25" if name == "DNS_Conn_count_too_large" else ""
                )
                self._count(ts, name, addl)
        # Zeek's analyzer reports these as protocol violations, and its DPD
        # framework removes an analyzer that violates within the first
        # 10 KiB of a connection (DPD::ignore_violations_after).
        if (unknown or "DNS_Conn_count_too_large" in anomalies) and (
            self._bytes <= VIOLATION_WINDOW
        ):
            self._violated = True
        if opcode == 5 and not self.netbios and not self._zone_ok(ts, msg):
            return
        tracked = opcode in TRACKED_OPCODES
        if tracked:
            self._set_session(msg, ts)
        rec = self._current
        if tracked and rec is not None:
            self._questions(msg, rec)
            if msg.qr:
                self._replies(msg, rec, ts)

        # dns_end: Zeek marks whichever record is current, tracked or not.
        if rec is not None:
            rec["_saw_reply" if msg.qr else "_saw_query"] = True
            if rec.get("_saw_reply") and rec.get("_saw_query"):
                self._write(rec)
                self._current = None

    def _zone_ok(self, ts: float, msg: DNSMessage) -> bool:
        # RFC 2136 2.3: an UPDATE names exactly one zone, of type SOA. Zeek
        # drops an UPDATE that does not, before any dns.log bookkeeping;
        # one with too many questions is not dropped but a violation (seen
        # in Zeek's logs of the xscan capture).
        if "DNS_Conn_count_too_large" in msg.anomalies:
            return True
        if msg.qdcount != 1:
            self._count(ts, "DNS_DU_invalid_zone_count", str(msg.qdcount))
            return False
        if msg.questions and msg.questions[0][1] != 6:
            self._count(ts, "DNS_DU_incorrect_zone_type")
            return False
        return True

    def _flip(self) -> None:
        # Zeek's DNS analyzer swaps the roles when the first message is a
        # reply sent by the originator (unless it went to a multicast
        # group); the connection table makes the same swap in conn.log.
        ids = self._ids
        ids["id.orig_h"], ids["id.resp_h"] = ids["id.resp_h"], ids["id.orig_h"]
        ids["id.orig_p"], ids["id.resp_p"] = ids["id.resp_p"], ids["id.orig_p"]

    def _questions(self, msg: DNSMessage, rec: dict[str, Any]) -> None:
        # Zeek's analyzer ignores an UPDATE's zone section (RFC 2136 2.3).
        if msg.opcode == 5 and not self.netbios:
            return
        for name, qtype, qclass in msg.questions:
            if not msg.qr:
                # Assigned one by one, in the order of the record's fields:
                # this runs for every query.
                rec["RD"], rec["TC"], rec["Z"] = msg.rd, msg.tc, msg.z
                rec["qclass"], rec["qtype"] = qclass, qtype
                rec["qclass_name"] = CLASSES.get(qclass) or qclass_name(qclass)
                rec["qtype_name"] = QTYPES.get(qtype) or qtype_name(qtype)
                if self._ids["id.resp_p"] == NETBIOS_PORT:
                    name = decode_netbios_name(name) or name
                    if qtype == 33:
                        rec["qtype_name"] = "NBSTAT"
                rec["query"] = zeek_text(name)
            elif msg.ancount == 0 and msg.nscount == 0 and msg.arcount == 0:
                rec["rejected"] = True

    def _replies(self, msg: DNSMessage, rec: dict[str, Any], ts: float) -> None:
        for rr in msg.records:
            if rr.reply is None:
                continue
            if "query" not in rec:
                rec["query"] = zeek_text(rr.name)
            rec["AA"], rec["RA"] = msg.aa, msg.ra
            if "_rtt_set" not in rec:
                rec["_rtt_set"] = True
                if ts - rec["ts"] != 0:
                    rec["rtt"] = ts - rec["ts"]
            if rr.reply:
                rec.setdefault("answers", []).append(zeek_text(rr.reply))
                rec.setdefault("TTLs", []).append(float(rr.ttl))

    # -- pairing (Zeek's DNS::set_session) -----------------------------------

    def _new(self, msg: DNSMessage, ts: float) -> dict[str, Any]:
        return {
            "ts": ts, **self._ids, "proto": self._proto, "trans_id": msg.id,
            "AA": False, "TC": False, "RD": False, "RA": False, "Z": 0,
            "rejected": False,
        }  # fmt: skip

    def _set_session(self, msg: DNSMessage, ts: float) -> None:
        is_query = not msg.qr
        if self.multicast:
            rec = self._new(msg, ts)
            rec["_saw_query"] = rec["_saw_reply"] = True
        elif is_query:
            if self._pending_replies.get(msg.id):
                rec = self._pop(self._pending_replies, msg.id)
            else:
                rec = self._new(msg, ts)
                if self._pending_query is None:
                    self._pending_query = rec
                else:
                    self._enqueue(self._pending_queries, msg.id, rec)
        elif (
            self._pending_query is not None
            and self._pending_query["trans_id"] == msg.id
        ):
            rec = self._pending_query
            self._pending_query = None
            # Refill the fast path so that queue order is kept (Zeek does
            # the same; any id will do when none matches).
            if self._pending_queries.get(msg.id):
                self._pending_query = self._pop(self._pending_queries, msg.id)
            else:
                for tid, queue in self._pending_queries.items():
                    if queue:
                        self._pending_query = self._pop(self._pending_queries, tid)
                        break
        elif self._pending_queries.get(msg.id):
            rec = self._pop(self._pending_queries, msg.id)
        else:
            rec = self._new(msg, ts)
            self._enqueue(self._pending_replies, msg.id, rec)

        if msg.qr:
            rcode = msg.rcode
            rec["rcode"] = rcode
            rec["rcode_name"] = RCODES.get(rcode) or rcode_name(rcode)
            if rcode != 0 and msg.qdcount == 0:
                rec["rejected"] = True
        opcode = msg.opcode
        rec["opcode"] = opcode
        rec["opcode_name"] = (
            opcode_name(opcode, True)
            if self.netbios
            else OPCODES.get(opcode) or opcode_name(opcode, False)
        )
        self._current = rec

    def _enqueue(
        self, queues: dict[int, deque[dict[str, Any]]], tid: int, rec: dict[str, Any]
    ) -> None:
        # At either limit Zeek writes the unmatched records out and starts over.
        if tid not in queues:
            if len(queues) > MAX_PENDING_IDS:
                self._count(rec["ts"], "dns_pending_ids_full")
                for queue in queues.values():
                    for old in queue:
                        self._write(old)
                queues.clear()
            queues[tid] = deque()
        elif len(queues[tid]) > MAX_PENDING_MSGS:
            self._count(rec["ts"], "dns_pending_msgs_full")
            for old in queues[tid]:
                self._write(old)
            queues[tid] = deque()
        queues[tid].append(rec)

    @staticmethod
    def _pop(queues: dict[int, deque[dict[str, Any]]], tid: int) -> dict[str, Any]:
        rec = queues[tid].popleft()
        if not queues[tid]:
            del queues[tid]
        return rec

    def _write(self, rec: dict[str, Any]) -> None:
        for key in _INTERNAL:
            rec.pop(key, None)
        self.emit("dns", rec)

    def _count(self, ts: float, name: str, addl: str = "") -> None:
        self.weirds.report(ts, name, addl)
        self.anomalies += 1
