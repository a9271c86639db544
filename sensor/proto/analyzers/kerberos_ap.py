"""kerberos.log "AP" records: Kerberos inside SMB and DCE-RPC authentication.

A client that authenticates to a file server or an RPC service with
Kerberos sends an AP-REQ (RFC 4120 3.2) wrapped in GSS-API and usually
SPNEGO; the server answers with an AP-REP or a KRB-ERROR. The carrying
analyzers (SMB session setup, DCE-RPC bind and alter_context verifiers)
own a :class:`KerberosAPTracker` per connection and hand it every
security blob; it writes what Zeek's base/protocols/krb/main.zeek writes:

- ``request_type`` "AP", ``ts`` of the AP-REQ;
- ``client`` as ``/<ticket realm>`` (the client's name is inside the
  encrypted authenticator, so Zeek leaves it empty), ``service`` the
  ticket's sname, ``cipher`` the ticket's encryption type;
- ``success`` true at the AP-REP, false with ``error_msg`` at a KRB-ERROR
  (whose sname, when present, replaces ``service``, as in Zeek).

As for the KDC exchanges, a connection writes one Kerberos record; an
AP-REQ never answered is written when the connection ends.
"""

from __future__ import annotations

import logging
from typing import Any

from sensor.proto.analyzer import ConnInfo, Emit
from sensor.proto.parsers.kerberos import (
    AP_REP,
    AP_REQ,
    ERROR_NAMES,
    KRB_ERROR,
    KerberosError,
    cipher_name,
    parse_ap_message,
    unwrap_gss,
)

log = logging.getLogger(__name__)


class KerberosAPTracker:
    """The Kerberos AP exchange of one connection; the carrier feeds it."""

    def __init__(self, conn: ConnInfo, emit: Emit) -> None:
        self.conn = conn
        self.emit = emit
        self.record: dict[str, Any] | None = None
        self.logged = False
        self.counters: dict[str, int] = {}

    def blob(self, is_orig: bool, ts: float, data: bytes) -> None:
        """A security blob from either side; non-Kerberos blobs are ignored."""
        if self.logged:
            return
        inner = unwrap_gss(bytes(data))
        if inner is None:
            return
        try:
            msg = parse_ap_message(inner)
        except KerberosError as exc:
            log.debug("%s: %s", self.conn.uid, exc)
            self.counters["KRB_AP_MALFORMED"] = (
                self.counters.get("KRB_AP_MALFORMED", 0) + 1
            )
            return

        if msg.tag == AP_REQ:
            if self.record is not None:
                return  # a retry inside the same exchange: the first one stands
            self.record = {
                "ts": ts,
                **self.conn.id_fields(),
                "request_type": "AP",
                "client": f"/{msg.realm or ''}",
                "service": msg.service,
                "cipher": cipher_name(msg.ticket_etype or 0),
            }
            return
        rec = self.record
        if rec is None:
            return
        if msg.tag == AP_REP:
            rec["success"] = True
        elif msg.tag == KRB_ERROR:
            code = msg.error_code if msg.error_code is not None else -1
            rec["success"] = False
            if msg.service:
                # Zeek takes the service of the KRB-ERROR (its sname) when it has one.
                rec["service"] = msg.service
            rec["error_msg"] = msg.error_text or ERROR_NAMES.get(
                code, f"unknown-{code}"
            )
        self._write()

    def end(self, ts: float) -> None:
        """The connection is over: an unanswered AP-REQ is written now."""
        if self.record is not None and not self.logged:
            self._write()

    def _write(self) -> None:
        assert self.record is not None
        self.logged = True
        self.emit("kerberos", self.record)
