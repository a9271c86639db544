"""ldap.log and ldap_search.log: LDAP operations, as Zeek 6's LDAP scripts log them.

Field names follow Zeek's base/protocols/ldap/main.zeek. ldap_search.log
holds one record per search: ``message_id``, ``scope``, ``deref_aliases``,
``base_object``, ``result_count`` (entries returned), ``result``,
``diagnostic_message``, ``filter`` (RFC 4515 text) and ``attributes``.
ldap.log holds the other operations: ``message_id``, ``version``,
``opcode`` ("bind simple", "bind SASL", "unbind", "add", "modify",
"delete", "modify DN", "compare", "extended", "abandon"), ``result``,
``diagnostic_message``, ``object`` (the entry or bind name) and
``argument`` (the SASL mechanism of a bind, "REDACTED" for a simple bind's
password, an extended operation's OID). A request is written with its
response and the time of the request; requests still unanswered at the
end of the connection are written then.

Active Directory clients often sign their LDAP traffic with Kerberos
after a GSS-SPNEGO bind (RFC 4752 3.3): messages in signed-only SASL
buffers are read; sealed ones are counted (``LDAP_sealed``) and skipped.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from sensor.proto.analyzer import Analyzer, ConnInfo, Emit, SniffHint
from sensor.proto.parsers import ldap as p

log = logging.getLogger(__name__)

PORTS = frozenset({389, 3268})
#: Requests awaiting a response per connection; past it the oldest is
#: written without a result (``LDAP_pending_limit``).
MAX_PENDING = 256
#: Bytes buffered per direction for an incomplete message or SASL buffer.
MAX_BUFFER = 1 << 20


class LDAPAnalyzer(Analyzer):
    """LDAP over TCP 389 (and the global catalog, 3268)."""

    service: ClassVar[str] = "ldap"
    logs: ClassVar[tuple[str, ...]] = ("ldap", "ldap_search")
    protos: ClassVar[tuple[str, ...]] = ("tcp",)
    sniff_hint: ClassVar[SniffHint | None] = SniffHint(ports=PORTS)

    def __init__(self, conn: ConnInfo, emit: Emit) -> None:
        super().__init__(conn, emit)
        self.counters: dict[str, int] = {}
        self.pending: dict[int, dict[str, Any]] = {}
        self._buf = {True: bytearray(), False: bytearray()}
        self._lost = {True: False, False: False}

    @classmethod
    def sniff(cls, conn: ConnInfo, is_orig: bool, data: bytes) -> bool:
        """The LDAP ports."""
        return conn.resp_p in PORTS

    def _count(self, name: str) -> None:
        self.anomalies += 1
        self.counters[name] = self.counters.get(name, 0) + 1

    def data(self, is_orig: bool, ts: float, data: bytes) -> None:
        """Cut the stream into messages (plain or in SASL buffers)."""
        if self._lost[is_orig]:
            return
        buf = self._buf[is_orig]
        buf += data
        while buf:
            if buf[0] == 0x30:
                try:
                    n = p.message_length(bytes(buf[:6]))
                except p.LDAPError:
                    n = -1
                if n is None:
                    break
                if n < 0 or n > p.MAX_MESSAGE:
                    self._give_up(is_orig, "LDAP_bad_length")
                    return
                if len(buf) < n:
                    break
                self._message(is_orig, ts, bytes(buf[:n]))
                del buf[:n]
            else:
                # A SASL buffer: four-byte big-endian length, then a token.
                if len(buf) < 4:
                    break
                n = int.from_bytes(buf[:4], "big")
                if n > p.MAX_MESSAGE or n < 16:
                    self._give_up(is_orig, "LDAP_bad_sasl_length")
                    return
                if len(buf) < 4 + n:
                    break
                self._sasl(is_orig, ts, bytes(buf[4 : 4 + n]))
                del buf[: 4 + n]
        if len(buf) > MAX_BUFFER:
            self._give_up(is_orig, "LDAP_buffer_full")

    def gap(self, is_orig: bool, ts: float, length: int) -> None:
        """Framing is lost after a gap; that direction is given up."""
        self._give_up(is_orig, "LDAP_content_gap")

    def end(self, ts: float) -> None:
        """Write the requests that were never answered."""
        for rec in list(self.pending.values()):
            self._write(rec)
        self.pending.clear()
        self.done = True

    def _give_up(self, is_orig: bool, name: str) -> None:
        self._count(name)
        self._lost[is_orig] = True
        self._buf[is_orig].clear()
        if all(self._lost.values()):
            self.done = True

    def _sasl(self, is_orig: bool, ts: float, token: bytes) -> None:
        inner = p.sasl_unwrap(token)
        if inner is None:
            self._count("LDAP_sealed")
            return
        off = 0
        while off < len(inner):
            try:
                n = p.message_length(inner[off : off + 6])
            except p.LDAPError:
                n = None
            if n is None or off + n > len(inner):
                self._count("LDAP_sasl_truncated")
                return
            self._message(is_orig, ts, inner[off : off + n])
            off += n

    def _message(self, is_orig: bool, ts: float, raw: bytes) -> None:
        try:
            msg = p.parse_message(raw)
        except p.LDAPError as exc:
            log.debug("%s: %s", self.conn.uid, exc)
            self._count("LDAP_malformed")
            return
        if is_orig:
            self._request(ts, msg)
        else:
            self._response(msg)

    def _request(self, ts: float, msg: p.LDAPMessage) -> None:
        base: dict[str, Any] = {"ts": ts, **self.conn.id_fields(), "proto": "tcp"}
        base["message_id"] = msg.message_id
        if msg.op == p.SEARCH_REQUEST:
            rec = {**base, "_log": "ldap_search"}
            for key, value in (
                ("scope", msg.scope),
                ("deref_aliases", msg.deref),
                ("base_object", msg.object),
            ):
                if value is not None:
                    rec[key] = value
            rec["result_count"] = 0
            if msg.filter is not None:
                rec["filter"] = msg.filter
            if msg.attributes:
                rec["attributes"] = list(msg.attributes)
        elif msg.op in p.REQUESTS:
            name, response = p.REQUESTS[msg.op]
            rec = {**base, "_log": "ldap"}
            if msg.version is not None:
                rec["version"] = msg.version
            if msg.op == p.BIND_REQUEST:
                name = "bind SASL" if msg.bind_sasl else "bind simple"
            rec["opcode"] = name
            if msg.object:
                rec["object"] = msg.object
            if msg.op == p.BIND_REQUEST:
                rec["argument"] = msg.mechanism if msg.bind_sasl else "REDACTED"
            elif msg.oid:
                rec["argument"] = msg.oid
            if response is None:
                self._write(rec)
                return
        else:
            self._count("LDAP_unexpected_operation")
            return
        if msg.message_id in self.pending:
            # A SASL bind continues under the same id: the first one stands.
            return
        if len(self.pending) >= MAX_PENDING:
            self._count("LDAP_pending_limit")
            self._write(self.pending.pop(next(iter(self.pending))))
        self.pending[msg.message_id] = rec

    def _response(self, msg: p.LDAPMessage) -> None:
        rec = self.pending.get(msg.message_id)
        if rec is None:
            return
        if msg.op in (p.SEARCH_ENTRY, p.SEARCH_REFERENCE):
            if msg.op == p.SEARCH_ENTRY and "result_count" in rec:
                rec["result_count"] += 1
            return
        if msg.result is None:
            return
        if msg.op == p.BIND_RESPONSE and msg.result == 14:
            return  # saslBindInProgress: the bind goes on
        rec["result"] = p.RESULTS.get(msg.result, f"unknown-{msg.result}")
        if msg.diagnostic:
            rec["diagnostic_message"] = msg.diagnostic
        del self.pending[msg.message_id]
        self._write(rec)

    def _write(self, rec: dict[str, Any]) -> None:
        name = rec.pop("_log")
        if name == "ldap_search":
            # Zeek's field order: the result before the filter and attributes.
            order = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h",
                     "id.resp_p", "proto", "message_id", "scope",
                     "deref_aliases", "base_object", "result_count", "result",
                     "diagnostic_message", "filter", "attributes")  # fmt: skip
            rec = {k: rec[k] for k in order if k in rec}
        else:
            fields = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h",
                      "id.resp_p", "proto", "message_id", "version", "opcode",
                      "result", "diagnostic_message", "object", "argument")  # fmt: skip
            rec = {k: rec[k] for k in fields if k in rec}
        self.emit(name, rec)
