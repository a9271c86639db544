"""ntlm.log: NTLM authentications carried by other protocols, as Zeek logs them.

NTLM has no transport of its own: SMB session setup, DCE-RPC binds and
HTTP ``Authorization``/``WWW-Authenticate`` headers carry its messages,
bare or inside SPNEGO. Their analyzers own an :class:`NTLMTracker` per
connection, hand it every security blob with :meth:`NTLMTracker.blob`,
and report how the carrying protocol answered the authentication with
:meth:`NTLMTracker.outcome` (SMB session setup status 0, HTTP not 401, a
DCE-RPC call accepted after AUTH3).

Following Zeek's base/protocols/ntlm/main.zeek: the first message (usually
NEGOTIATE) opens the record and gives its ``ts``; CHALLENGE adds the server
names from its target info; AUTHENTICATE adds user, domain and workstation; the outcome
writes it if a user or workstation is known; otherwise it is written when
the connection ends (:meth:`NTLMTracker.end`).
"""

from __future__ import annotations

import logging
from typing import Any

from sensor.proto.analyzer import ConnInfo, Emit
from sensor.proto.parsers.ntlm import (
    AUTHENTICATE,
    CHALLENGE,
    NEGOTIATE,
    SIGNATURE,
    NTLMError,
    parse_ntlm,
)

log = logging.getLogger(__name__)

#: Records one connection may write; past it, authentications are counted
#: (NTLM_RECORD_LIMIT) and dropped, so a brute force cannot flood the log.
MAX_RECORDS = 1000


class NTLMTracker:
    """NTLM state of one connection; the carrying analyzer feeds it."""

    def __init__(self, conn: ConnInfo, emit: Emit, one_record: bool = False) -> None:
        self.conn = conn
        self.emit = emit
        #: Zeek's SMB and DCE-RPC view: one record per connection, opened by
        #: the first message; later exchanges update its fields in place.
        self.one_record = one_record
        self.record: dict[str, Any] | None = None
        self.written = 0
        self.anomalies = 0
        self.counters: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.anomalies += 1
        self.counters[name] = self.counters.get(name, 0) + 1

    def blob(self, is_orig: bool, ts: float, data: bytes) -> None:
        """A security blob: bare NTLMSSP, or SPNEGO/GSSAPI wrapping it.

        The NTLMSSP message is found by its signature; its field offsets
        count from there, so whatever follows it in a wrapper is harmless.
        """
        at = data.find(SIGNATURE)
        if at < 0:
            return
        try:
            msg = parse_ntlm(bytes(data[at:]))
        except NTLMError as exc:
            log.debug("%s: %s", self.conn.uid, exc)
            self._count("NTLM_MALFORMED")
            return

        rec = self.record
        if rec is None or (
            not self.one_record
            and (msg.type == NEGOTIATE or "username" in rec or "hostname" in rec)
        ):
            # A new exchange begins: the one still open is written first.
            if rec is not None:
                self._write()
            self.record = {"ts": ts, **self.conn.id_fields()}
        if msg.type == CHALLENGE:
            assert self.record is not None
            for key, value in (
                ("server_nb_computer_name", msg.nb_computer_name),
                ("server_dns_computer_name", msg.dns_computer_name),
                ("server_tree_name", msg.dns_tree_name),
            ):
                if value is not None:
                    self.record[key] = value
        elif msg.type == AUTHENTICATE:
            assert self.record is not None
            for key, value in (
                ("username", msg.user),
                ("hostname", msg.workstation),
                ("domainname", msg.domain),
            ):
                if value is not None:
                    self.record[key] = value

    def outcome(self, ts: float, success: bool) -> None:
        """The carrying protocol accepted (or refused) the authentication."""
        rec = self.record
        if rec is None or not ("username" in rec or "hostname" in rec):
            return
        rec["success"] = success
        self._write()

    def end(self, ts: float) -> None:
        """The connection is over: write the exchange still open."""
        if self.record is not None:
            self._write()

    def _write(self) -> None:
        rec, self.record = self.record, None
        if rec is None:
            return
        if self.written >= MAX_RECORDS:
            self._count("NTLM_RECORD_LIMIT")
            return
        self.written += 1
        self.emit("ntlm", rec)
