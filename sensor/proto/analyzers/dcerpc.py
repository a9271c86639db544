"""dce_rpc.log: one record per answered DCE/RPC call.

A :class:`DCERPCSession` follows one transport: a TCP connection (port 135,
or any port whose first bytes are a DCE/RPC header, as the endpoint mapper
hands out dynamic ports) or one SMB named pipe. Binds and alter_contexts
map presentation context ids to interface UUIDs; a request names the
context and the opnum; its response closes the call, and the record
carries the round-trip time. A call answered by a fault is counted, not
logged: Zeek raises no event for a fault and writes no record. As in Zeek, ``named_pipe`` is the
bind_ack's secondary address (the TCP port as text, or ``\\PIPE\\name``),
and calls that Zeek ignores by default (:data:`IGNORED`) are not written.

Fragmented requests and responses (C706 12.6.3.1, PFC_FIRST_FRAG and
PFC_LAST_FRAG) run from the request's first fragment to the response's
last, as Zeek times them; the stubs are not reassembled because the log
needs only the header fields.
"""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar

from sensor.proto.analyzer import Analyzer, ConnInfo, Emit, SniffHint
from sensor.proto.analyzers import dcerpc_exec
from sensor.proto.analyzers.ntlm_carrier import SecurityBlobs
from sensor.proto.parsers import dcerpc as p
from sensor.proto.parsers.dcerpc import (
    ALTER_CONTEXT,
    ALTER_CONTEXT_RESP,
    BIND,
    BIND_ACK,
    FAULT,
    REQUEST,
    RESPONSE,
    parse_pdu,
)
from sensor.proto.parsers.dcerpc_names import IGNORED, endpoint_name, operation_name

log = logging.getLogger(__name__)

EPMAPPER_PORT = 135
#: Calls in flight kept per session; past it the oldest is dropped
#: (counted as ``calls_dropped``).
MAX_PENDING = 64
#: Authentication types whose verifier goes to the NTLM and Kerberos
#: trackers ([MS-RPCE] 2.2.1.1.7): SPNEGO, NTLMSSP, Kerberos.
AUTH_TYPES = frozenset({9, 10, 16})
#: PDUs whose verifier carries the authentication exchange (C706 13.2);
#: those of requests and responses only sign or seal.
_AUTH_PDUS = frozenset(
    {p.BIND, p.BIND_ACK, p.ALTER_CONTEXT, p.ALTER_CONTEXT_RESP, p.AUTH3}
)

# Zeek's DPD signature for DCE/RPC: version 5.0 or 5.1 and a known PDU type.
_SIGNATURE = re.compile(rb"^\x05[\x00\x01][\x00-\x13]", re.DOTALL)


#: Interface and operation pairs whose names are kept; past it the table
#: starts again empty (counted as ``call_names_reset``).
MAX_CALL_NAMES = 4096

# (interface UUID, opnum) -> (endpoint, operation, written to dce_rpc.log,
# may name a command): what each request looks up, the same few pairs.
_calls: dict[tuple[str, int], tuple[str, str, bool, bool]] = {}


class DCERPCSession:
    """DCE/RPC state of one transport; feed it each direction in order.

    ``pipe_name`` is the SMB pipe's name, or "" over TCP; a bind_ack's
    secondary address replaces it in the log. ``auth`` is the connection's
    NTLM and Kerberos state, shared with SMB over a named pipe; a session
    over TCP makes its own and closes it at :meth:`end`.
    """

    def __init__(
        self,
        conn: ConnInfo,
        emit: Emit,
        pipe_name: str = "",
        auth: SecurityBlobs | None = None,
    ) -> None:
        self.conn = conn
        self.emit = emit
        self.named_pipe = pipe_name
        self.own_auth = auth is None
        self.auth = auth if auth is not None else SecurityBlobs(conn, emit)
        self.splitters = (p.PDUSplitter(), p.PDUSplitter())  # indexed by is_orig
        self.ids = conn.id_fields()
        self.contexts: dict[int, str] = {}
        # call_id -> (request ts, endpoint, operation, whether it is logged)
        self.pending: dict[int, tuple[float, str, str, bool]] = {}
        self.counters: dict[str, int] = {}

    def count(self, name: str) -> None:
        """Count one occurrence of the anomaly or limit ``name``."""
        self.counters[name] = self.counters.get(name, 0) + 1

    def data(self, is_orig: bool, ts: float, data: bytes) -> None:
        """The next bytes one side sent (pipe writes: orig, reads: resp)."""
        splitter = self.splitters[is_orig]
        if splitter.broken:
            return
        for pdu in splitter.feed(data):
            self._pdu(is_orig, ts, parse_pdu(pdu))
        if splitter.broken:
            self.count(splitter.broken)

    def end(self, ts: float) -> None:
        """The transport closed; unanswered calls are not logged (as Zeek)."""
        self.pending.clear()
        if self.own_auth:
            self.auth.end(ts)

    def _pdu(self, is_orig: bool, ts: float, pdu: p.PDU) -> None:
        # Requests and responses first: most PDUs, and they carry no
        # authentication exchange.
        ptype = pdu.ptype
        if pdu.anomaly:
            self.count(pdu.anomaly)
            if ptype == REQUEST or ptype == RESPONSE:
                return
        elif ptype == REQUEST:
            self._request(ts, pdu)
            return
        elif ptype == RESPONSE:
            self._response(ts, pdu)
            return

        if pdu.auth and ptype in _AUTH_PDUS and pdu.auth_type in AUTH_TYPES:
            self.auth.blob(is_orig, ts, pdu.auth)
        if ptype == BIND or ptype == ALTER_CONTEXT:
            self.contexts.update(pdu.contexts)
        elif ptype == BIND_ACK or ptype == ALTER_CONTEXT_RESP:
            if pdu.sec_addr:
                self.named_pipe = pdu.sec_addr
        elif ptype == FAULT:
            # Zeek has no event for a fault: the call goes unlogged.
            self.pending.pop(pdu.call_id, None)
            self.count("faults")

    def _request(self, ts: float, pdu: p.PDU) -> None:
        # Only the first fragment opens a call; the rest carry more stub.
        if not pdu.flags & p.PFC_FIRST_FRAG and pdu.call_id in self.pending:
            return
        # A call on a context whose bind the capture missed is not logged:
        # Zeek writes none either, having no interface to name.
        uuid = self.contexts.get(pdu.ctx_id)
        if uuid is None:
            self.count("request_without_bind")
            if pdu.flags & p.PFC_OBJECT_UUID:
                self._command(ts, "", f"unknown-{pdu.opnum}", pdu.stub)
            return
        call = _calls.get((uuid, pdu.opnum))
        if call is None:
            call = self._name_call(uuid, pdu.opnum)
        endpoint, operation, logged, commands = call
        self.pending[pdu.call_id] = (ts, endpoint, operation, logged)
        if commands:
            self._command(ts, endpoint, operation, pdu.stub)
        if len(self.pending) > MAX_PENDING:
            del self.pending[next(iter(self.pending))]
            self.count("calls_dropped")

    def _name_call(self, uuid: str, opnum: int) -> tuple[str, str, bool, bool]:
        endpoint = endpoint_name(uuid)
        operation = operation_name(endpoint, opnum)
        call = (
            endpoint,
            operation,
            operation not in IGNORED.get(endpoint, ()),
            dcerpc_exec.wants(endpoint, operation),
        )
        if len(_calls) >= MAX_CALL_NAMES:
            _calls.clear()
            self.count("call_names_reset")
        _calls[uuid, opnum] = call
        return call

    def _response(self, ts: float, pdu: p.PDU) -> None:
        # A fragmented response ends the call with its last fragment.
        if not pdu.flags & p.PFC_LAST_FRAG:
            return
        call = self.pending.pop(pdu.call_id, None)
        if call is None:
            self.count("response_without_request")
            return
        start, endpoint, operation, logged = call
        if not logged:
            return

        rec: dict[str, Any] = {"ts": start, **self.ids}
        rec["rtt"] = ts - start
        if self.named_pipe:
            rec["named_pipe"] = self.named_pipe
        if endpoint:
            rec["endpoint"] = endpoint
        rec["operation"] = operation
        self.emit("dce_rpc", rec)

    def salvage(self, is_orig: bool, ts: float, segments: list[bytes]) -> None:
        """Segments dropped behind a hole never acknowledged (a capture that
        lost packets or started late): whole request PDUs in them are read
        for dce_rpc_command.log only. dce_rpc.log keeps Zeek's view, which
        never sees these bytes. ``ts`` is the connection's end, since the
        segments' own times are not kept."""
        if not is_orig:
            return
        for seg in segments:
            for raw in p.PDUSplitter().feed(seg):
                pdu = p.parse_pdu(raw)
                if pdu.ptype != p.REQUEST or pdu.anomaly:
                    continue
                uuid = self.contexts.get(pdu.ctx_id)
                if uuid is None:
                    if pdu.flags & p.PFC_OBJECT_UUID:
                        self._command(ts, "", f"unknown-{pdu.opnum}", pdu.stub)
                    continue
                endpoint = endpoint_name(uuid)
                operation = operation_name(endpoint, pdu.opnum)
                if dcerpc_exec.wants(endpoint, operation):
                    self._command(ts, endpoint, operation, pdu.stub)

    def _command(self, ts: float, endpoint: str, operation: str, stub: bytes) -> None:
        """dce_rpc_command.log: a program named in a remote-execution call."""
        command = dcerpc_exec.command_in(stub)
        if command is None:
            return
        rec: dict[str, Any] = {"ts": ts, **self.ids}
        if self.named_pipe:
            rec["named_pipe"] = self.named_pipe
        if endpoint:
            rec["endpoint"] = endpoint
        rec["operation"] = operation
        rec["command"] = command
        self.emit("dce_rpc_command", rec)


def pipe_session(
    conn: ConnInfo, emit: Emit, pipe_name: str, auth: SecurityBlobs | None = None
) -> DCERPCSession:
    """A session for one SMB named pipe: the SMB analyzer feeds it the
    pipe's writes as ``data(True, ...)`` and reads as ``data(False, ...)``
    and calls ``end(ts)`` when the pipe or connection closes. ``auth`` is
    the SMB connection's NTLM and Kerberos state."""
    return DCERPCSession(conn, emit, pipe_name, auth)


class DCERPCAnalyzer(Analyzer):
    """DCE/RPC straight over TCP: the endpoint mapper and dynamic ports."""

    service: ClassVar[str] = "dce_rpc"
    logs: ClassVar[tuple[str, ...]] = ("dce_rpc", "dce_rpc_command", "ntlm", "kerberos")
    #: A DCE/RPC connection-oriented header opens with rpc_vers 5 (C706 12.6.3.1).
    sniff_hint: ClassVar[SniffHint | None] = SniffHint(
        ports=frozenset({EPMAPPER_PORT}),
        orig_first=frozenset({5}),
        resp_first=frozenset({5}),
    )

    def __init__(self, conn: ConnInfo, emit: Emit) -> None:
        super().__init__(conn, emit)
        self.session = DCERPCSession(conn, emit)
        self.counters = self.session.counters

    @classmethod
    def sniff(cls, conn: ConnInfo, is_orig: bool, data: bytes) -> bool:
        """Port 135, or a first payload that opens with a DCE/RPC header."""
        if conn.resp_p == EPMAPPER_PORT:
            return True
        return (
            len(data) >= p.HEADER_LEN
            and isinstance(p.header_length(data), int)
            and bool(_SIGNATURE.match(data))
        )

    def data(self, is_orig: bool, ts: float, data: bytes) -> None:
        """Hand the bytes to the session; give up once both sides broke."""
        self.session.data(is_orig, ts, data)
        splitters = self.session.splitters
        if splitters[True].broken and splitters[False].broken:
            self.done = True

    def salvage(self, is_orig: bool, ts: float, segments: list[bytes]) -> None:
        """Bytes the stream dropped at the end: see DCERPCSession.salvage."""
        self.session.salvage(is_orig, ts, segments)

    def end(self, ts: float) -> None:
        """Close the session."""
        self.session.end(ts)
