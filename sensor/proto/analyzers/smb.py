"""smb_mapping.log and smb_files.log: shares, files and named pipes over SMB.

The analyzer reads NBSS frames (RFC 1002 4.3.1) from both directions and
the SMB1 or SMB2/3 messages inside them. Requests wait, by message id, for
their responses; a tree connect is logged to smb_mapping when the server
accepts it, a file open to smb_files when the server returns its handle,
both with the time of the request, as Zeek does. SMB3 messages under a
transform header are encrypted: counted and reported once per connection
(weird.log ``SMB_encrypted``, with the transform header's session id in
``addl``), never read.

Named pipes: per pipe handle the analyzer asks for a DCE-RPC session from
``sensor.proto.analyzers.dcerpc.pipe_session(conn, emit, pipe_name)`` when
that module provides it, and feeds it what the client writes
(``is_orig=True``) and what the server returns (``False``).
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any, ClassVar

from sensor.proto.analyzer import Analyzer, ConnInfo, Emit, SniffHint
from sensor.proto.analyzers.smbstate import SMBState
from sensor.proto.analyzers.weird import WeirdReporter
from sensor.proto.parsers import smb2

log = logging.getLogger(__name__)

PORTS = frozenset({139, 445})
#: Bytes held per direction while a frame is incomplete; past it the
#: direction is given up (``SMB_buffer_full``).
MAX_BUFFER = smb2.MAX_FRAME + 4
_MAX_FRAME = smb2.MAX_FRAME


def pipe_factory() -> Any:
    """``pipe_session`` of the DCE-RPC analyzer, or None if it has none."""
    # Asked once per connection: the module is looked up in sys.modules
    # before the import machinery is asked.
    mod = sys.modules.get("sensor.proto.analyzers.dcerpc")
    if mod is not None:
        return getattr(mod, "pipe_session", None)
    try:
        mod = importlib.import_module("sensor.proto.analyzers.dcerpc")
    except Exception:  # noqa: BLE001 - a broken module must not stop SMB
        return None
    return getattr(mod, "pipe_session", None)


class SMBAnalyzer(Analyzer):
    """SMB1 and SMB2/3 on ports 139 and 445 or wherever an SMB header opens."""

    service: ClassVar[str] = "smb"
    logs: ClassVar[tuple[str, ...]] = (
        "smb_mapping", "smb_files", "files", "ntlm", "kerberos",
    )  # fmt: skip
    protos: ClassVar[tuple[str, ...]] = ("tcp",)
    #: Elsewhere than 139 and 445 a first payload is an NBSS session
    #: message: type byte 0x00 (RFC 1002 4.3.1; [MS-SMB2] 2.1).
    sniff_hint: ClassVar[SniffHint | None] = SniffHint(
        ports=PORTS, orig_first=frozenset({0}), resp_first=frozenset({0})
    )

    def __init__(self, conn: ConnInfo, emit: Emit) -> None:
        super().__init__(conn, emit)
        self.weirds = WeirdReporter(conn.id_fields(), "SMB", emit)
        self.counters = self.weirds.counters
        self.state = SMBState(conn, emit, self.weirds, pipe_factory())
        self._buf = {True: bytearray(), False: bytearray()}
        self._dead = {True: False, False: False}

    @classmethod
    def sniff(cls, conn: ConnInfo, is_orig: bool, data: bytes) -> bool:
        """Port 139/445, or an NBSS session message holding an SMB header."""
        if conn.resp_p in PORTS:
            return True
        return (
            len(data) >= 8
            and data[0] == 0
            and data[4:8] in (b"\xffSMB", b"\xfeSMB", b"\xfdSMB")
        )

    def data(self, is_orig: bool, ts: float, data: bytes) -> None:
        """Frame the stream and hand each SMB message to the state."""
        if self._dead[is_orig]:
            return
        # Most deliveries hold whole frames: they are read in place, and only
        # an incomplete frame's bytes are kept for the next delivery.
        buf = self._buf[is_orig]
        src: bytes | bytearray = data
        if buf:
            buf += data
            src = buf
        # smb2.next_frame, inlined: this loop runs for every frame.
        used, have = 0, len(src)
        while have - used >= 4:
            length = (src[used + 1] << 16) | (src[used + 2] << 8) | src[used + 3]
            if length > _MAX_FRAME:
                self._fail(is_orig, ts, "SMB_frame_too_large")
                return
            end = used + 4 + length
            if end > have:
                break
            if src[used] == 0x00 and length:  # a session message
                msg = src[used + 4 : end]
                if isinstance(msg, bytearray):
                    msg = bytes(msg)
                # SMB1 first, most messages are (see _message).
                if msg[:4] == b"\xffSMB":
                    self.state.on_smb1(is_orig, ts, msg)
                else:
                    self._message(is_orig, ts, msg)
            used = end
        if src is buf:
            del buf[:used]
        elif used < len(data):
            buf += memoryview(data)[used:]
        if len(buf) > MAX_BUFFER:
            self._fail(is_orig, ts, "SMB_buffer_full")

    def gap(self, is_orig: bool, ts: float, length: int) -> None:
        """Framing is lost after a gap; that direction is given up."""
        self._fail(is_orig, ts, "SMB_content_gap")

    def end(self, ts: float) -> None:
        """Records go out as responses come; NTLM and Kerberos records
        still open are written now."""
        self.state.auth.end(ts)
        self.state.content.end(ts)
        self.done = True

    def _fail(self, is_orig: bool, ts: float, name: str) -> None:
        self.weirds.report(ts, name)
        self.anomalies += 1
        self._dead[is_orig] = True
        self._buf[is_orig].clear()
        if all(self._dead.values()):
            self.done = True

    def _message(self, is_orig: bool, ts: float, msg: bytes) -> None:
        magic = msg[:4]
        if magic == smb2.MAGIC:
            for part in smb2.split_compound(msg):
                self.state.on_smb2(is_orig, ts, part)
        elif magic == smb2.TRANSFORM_MAGIC:
            self.state.encrypted = True
            session = smb2.transform_session(msg)
            self.weirds.report(
                ts,
                "SMB_encrypted",
                f"session 0x{session:016x}" if session is not None else "",
            )
        elif magic == b"\xffSMB":
            self.state.on_smb1(is_orig, ts, msg)
        else:
            self.weirds.report(ts, "SMB_unknown_protocol")
            self.anomalies += 1
