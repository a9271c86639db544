"""kerberos.log: Kerberos KDC exchanges on port 88, as Zeek logs them.

Follows Zeek's base/protocols/krb/main.zeek: a request opens the record
(``request_type`` AS or TGS, the client as ``cname/realm`` for AS, the
service, times and KDC options); the reply or KRB-ERROR completes it and
writes it. A connection writes one record: messages after it are ignored,
as in Zeek. A request never answered is written when the connection ends.

Beyond Zeek, ``req_ciphers`` lists the encryption types the client asked
for, in its order of preference: a TGS-REQ asking for rc4-hmac only, or a
service ticket returned as rc4-hmac, is how Kerberoasting looks on the
wire.

Over UDP a datagram is one message (RFC 4120 7.2.1); over TCP each message
follows a four-byte big-endian length whose high bit is reserved
(RFC 4120 7.2.2).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from sensor.proto.analyzer import Analyzer, ConnInfo, Emit, SniffHint
from sensor.proto.krb import PORTS
from sensor.proto.parsers.kerberos import (
    AS_REP,
    AS_REQ,
    ERROR_NAMES,
    KRB_ERROR,
    TGS_REQ,
    KDCMessage,
    KerberosError,
    cipher_name,
    parse_kdc_message,
)

log = logging.getLogger(__name__)

#: Largest TCP message buffered; a PAC-laden ticket is tens of KiB.
MAX_TCP_MESSAGE = 256 * 1024
#: e-text values for which Zeek drops the record (main.zeek's ignored_errors).
IGNORED_ERRORS = frozenset(
    {"NEEDED_PREAUTH", "Need to use PA-ENC-TIMESTAMP/PA-PK-AS-REQ"}
)


class KerberosAnalyzer(Analyzer):
    """Kerberos over UDP and TCP port 88; writes kerberos.log."""

    service: ClassVar[str] = "krb"
    logs: ClassVar[tuple[str, ...]] = ("kerberos",)
    protos: ClassVar[tuple[str, ...]] = ("udp", "tcp")
    #: Port 88 only; over TCP the originator's port 88 is let through and
    #: refused by :meth:`sniff`.
    sniff_hint: ClassVar[SniffHint | None] = SniffHint(ports=PORTS, orig_ports=PORTS)

    def __init__(self, conn: ConnInfo, emit: Emit) -> None:
        super().__init__(conn, emit)
        self.record: dict[str, Any] | None = None
        self.logged = False
        self.counters: dict[str, int] = {}
        self._buf = {True: bytearray(), False: bytearray()}
        self._lost = {True: False, False: False}

    @classmethod
    def sniff(cls, conn: ConnInfo, is_orig: bool, data: bytes) -> bool:
        """Zeek runs its KRB analyzers on port 88."""
        if conn.proto == "udp":
            return conn.resp_p in PORTS or conn.orig_p in PORTS
        return conn.resp_p in PORTS

    def data(self, is_orig: bool, ts: float, data: bytes) -> None:
        """One UDP datagram, or the next bytes of a TCP stream."""
        if self.conn.proto == "udp":
            self._message(ts, data)
            return
        if self._lost[is_orig]:
            return
        buf = self._buf[is_orig]
        buf += data
        while len(buf) >= 4:
            size = int.from_bytes(buf[:4], "big")
            if size & 0x80000000 or size > MAX_TCP_MESSAGE:
                self._count("KRB_TCP_BAD_LENGTH")
                self._lost[is_orig] = True
                buf.clear()
                return
            if len(buf) < 4 + size:
                break
            message = bytes(buf[4 : 4 + size])
            del buf[: 4 + size]
            self._message(ts, message)

    def gap(self, is_orig: bool, ts: float, length: int) -> None:
        """A TCP gap loses that direction's framing for good."""
        self._lost[is_orig] = True
        self._buf[is_orig].clear()

    def end(self, ts: float) -> None:
        """A request still unanswered is written now."""
        if self.record is not None and not self.logged:
            self._write()

    def _count(self, name: str) -> None:
        self.anomalies += 1
        self.counters[name] = self.counters.get(name, 0) + 1

    def _message(self, ts: float, data: bytes) -> None:
        if self.logged:
            return
        try:
            msg = parse_kdc_message(data)
        except KerberosError as exc:
            log.debug("%s: %s", self.conn.uid, exc)
            self._count("KRB_MALFORMED")
            return
        rec = self.record
        if rec is None:
            rec = self.record = {"ts": ts, **self.conn.id_fields()}
        if msg.tag in (AS_REQ, TGS_REQ):
            self._request(rec, msg)
        elif msg.tag == KRB_ERROR:
            self._error(rec, msg)
        else:
            self._reply(rec, msg)

    def _request(self, rec: dict[str, Any], msg: KDCMessage) -> None:
        if msg.tag == AS_REQ:
            rec["request_type"] = "AS"
            rec["client"] = f"{msg.client or ''}/{msg.realm or ''}"
        else:
            rec["request_type"] = "TGS"
        if msg.service is not None:
            rec["service"] = msg.service
        if msg.from_time is not None:
            rec["from"] = msg.from_time
        if msg.till is not None:
            rec["till"] = msg.till
        rec["forwardable"] = msg.forwardable
        rec["renewable"] = msg.renewable
        rec["req_ciphers"] = [cipher_name(e) for e in msg.etypes]

    def _reply(self, rec: dict[str, Any], msg: KDCMessage) -> None:
        rec.setdefault("request_type", "AS" if msg.tag == AS_REP else "TGS")
        if "client" not in rec:
            rec["client"] = f"{msg.client or ''}/{msg.realm or ''}"
        rec["service"] = msg.service
        if msg.ticket_etype is not None:
            rec["cipher"] = cipher_name(msg.ticket_etype)
        rec["success"] = True
        self._write()

    def _error(self, rec: dict[str, Any], msg: KDCMessage) -> None:
        if msg.error_text in IGNORED_ERRORS:
            self.record = None
            return
        if msg.service:
            rec["service"] = msg.service
        rec["success"] = False
        code = msg.error_code if msg.error_code is not None else -1
        rec["error_msg"] = msg.error_text or ERROR_NAMES.get(code, f"unknown-{code}")
        self._write()

    def _write(self) -> None:
        assert self.record is not None
        self.logged = True
        self.done = True
        self.emit("kerberos", self.record)
