"""TLS and SSL: one ssl.log record per connection, x509.log per certificate.

Design note. Each direction is a stream of records (RFC 5246 6.2): a 5-byte
header, or the 2-byte header of an SSLv2 record (top bit set). Records are
framed from stream chunks of any size; a record's body is buffered only when
its content is read (plaintext handshake, alert, SSLv2 messages), and
skipped without buffering once the direction is encrypted. Handshake
messages are joined across records in a second per-direction buffer
(RFC 5246 6.2.1: a message may span records, a record may hold several).

The state follows Zeek's SSL analyzer, so that the logs agree:

- a direction turns *encrypted* on its ChangeCipherSpec, on an SSLv2
  CLIENT-MASTER-KEY (both directions), or, once a version above TLS 1.2 was
  negotiated, on its first application_data record (RFC 8446 5: after the
  ServerHello everything travels as application_data, and the
  compatibility ChangeCipherSpec of D.4 is optional);
- the session is *established* at the first record seen while both
  directions are encrypted; the ssl.log record is then written and the
  analyzer stops, as Zeek does with ``disable_analyzer_after_detection``;
- otherwise the record is written at the end of the connection, or at the
  first protocol violation, or not at all if no TLS record was ever read.

``ssl_history`` has one letter per handshake message, ChangeCipherSpec,
alert and heartbeat, upper case for the client (Zeek's letters).

RDP: a connection that opens with an X.224 Connection Request in a TPKT
(RFC 1006 6) is followed too; its TPKT PDUs are passed over until the
TLS records that follow the Connection Confirm when the server picked TLS
or CredSSP ([MS-RDPBCGR] 1.3.1.1), as Zeek's RDP analyzer hands them to
its SSL analyzer.

STARTTLS: an analyzer of another protocol hands the rest of a stream to
TLS by creating ``TLSAnalyzer(conn, emit)`` and calling :meth:`data` with
the bytes after its upgrade command, then :meth:`end`.

TODO: DTLS (RFC 6347, UDP) and QUIC's TLS (RFC 9001) are not read, so
those sessions have no ssl.log record; no shared capture has a DTLS one.
TODO: Zeek stops at a content gap when the peer acknowledges past the hole;
the reassembler reports a gap only at the connection's end, so the other
direction's later letters still reach ``ssl_history`` (two connections of
the shared captures).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from sensor.proto import rdp
from sensor.proto.analyzer import Analyzer, ConnInfo, Emit, SniffHint
from sensor.proto.analyzers.tlsstate import Handshake, Session
from sensor.proto.parsers import tls as wire
from sensor.proto.tls import PORTS as SSL_PORTS

log = logging.getLogger(__name__)

#: Largest handshake message joined from records. A certificate chain is a
#: few KiB; past the limit the direction's handshake is no longer read
#: (anomaly ``SSL_HANDSHAKE_TOO_LARGE``).
MAX_HANDSHAKE = 256 * 1024

# Record-layer versions accepted in a TLS record header (Zeek accepts only
# these: TLS 1.3 records carry 0x0303, RFC 8446 5.1).
_RECORD_VERSIONS = frozenset({0x0300, 0x0301, 0x0302, 0x0303})
_SSLV2 = 0x0002


class _Direction:
    __slots__ = ("buf", "encrypted", "handshake", "skip", "stopped", "tpkt")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.skip = 0  # body bytes of a ciphertext record still to pass over
        self.encrypted = False
        self.handshake = bytearray()
        self.stopped = False  # handshake too large: no more messages read
        self.tpkt = True  # RDP: TPKT PDUs may come before the first record


class TLSAnalyzer(Analyzer):
    """Follows the TLS handshake of one connection (see the module docstring)."""

    service: ClassVar[str] = "ssl"
    logs: ClassVar[tuple[str, ...]] = ("ssl", "x509")
    protos: ClassVar[tuple[str, ...]] = ("tcp",)
    # A handshake record, an SSLv2 header (top bit set), RDP's TPKT (3).
    sniff_hint: ClassVar[SniffHint | None] = SniffHint(
        orig_first=frozenset({3, wire.HANDSHAKE, *range(0x80, 0x100)}),
        resp_first=frozenset({wire.HANDSHAKE, *range(0x80, 0x100)}),
    )

    def __init__(self, conn: ConnInfo, emit: Emit) -> None:
        super().__init__(conn, emit)
        self.session = Session(conn, emit)
        self.stats: dict[str, int] = {}
        self._dirs = (_Direction(), _Direction())  # indexed by is_orig
        self._record_version = 0  # first valid record's version, shared
        self._gap = False

    @classmethod
    def sniff(cls, conn: ConnInfo, is_orig: bool, data: bytes) -> bool:
        """A TLS handshake record header, an SSLv2 CLIENT/SERVER-HELLO, or RDP."""
        if is_orig and rdp.x224_connection_request(data):
            return True
        if len(data) >= 3 and data[0] == wire.HANDSHAKE and data[1] == 3:
            return data[2] <= 3
        # Zeek's signatures know only TLS-record hellos: an SSLv2-format one
        # is read only where its analyzer runs by port.
        sslv2 = len(data) >= 3 and bool(data[0] & 0x80) and data[2] in (1, 4)
        return sslv2 and conn.resp_p in SSL_PORTS

    # -- Analyzer interface ------------------------------------------------

    def data(self, is_orig: bool, ts: float, data: bytes) -> None:
        """Frame and read the records of one direction's next bytes."""
        if self.done or self._gap:
            return
        d = self._dirs[is_orig]
        if d.skip:
            n = min(d.skip, len(data))
            d.skip -= n
            data = data[n:]
        d.buf += data
        while not self.done and d.buf and not d.skip:
            if not self._next_record(is_orig, ts, d):
                break

    def gap(self, is_orig: bool, ts: float, length: int) -> None:
        """Content is missing: the record framing is lost, stop reading.

        Zeek's SSL analyzer also stops at the first gap; what was read is
        still logged at the end.
        """
        self._gap = True
        self._count("SSL_CONTENT_GAP")
        for d in self._dirs:
            d.buf.clear()

    def end(self, ts: float) -> None:
        """Write the ssl.log record if it was not written yet."""
        self.session.finish()
        self.done = True

    # -- records -------------------------------------------------------------

    def _next_record(self, is_orig: bool, ts: float, d: _Direction) -> bool:
        """Handle one record from ``d.buf``; False when more bytes are needed."""
        buf = d.buf
        if len(buf) < 2:
            return False
        if d.tpkt and buf[0] == 3 and buf[1] == 0:
            return self._skip_tpkt(buf)
        d.tpkt = False
        v2 = bool(buf[0] & 0x80) and self._record_version in (0, _SSLV2)
        if v2:
            head, length = 2, ((buf[0] & 0x7F) << 8) | buf[1]
            if len(buf) < 3:
                return False
            if not self._v2_header_ok(is_orig, buf):
                return True
        else:
            if len(buf) < 5:
                return False
            version = (buf[1] << 8) | buf[2]
            if version not in _RECORD_VERSIONS or not 20 <= buf[0] <= 30:
                self._violation(f"ssl: record version 0x{version:04x} type {buf[0]}")
                return True
            if self._record_version == 0:
                self._record_version = version
            head, length = 5, (buf[3] << 8) | buf[4]
        ctype = buf[0]

        if d.encrypted or (
            not v2 and ctype == wire.APPLICATION_DATA and self.session.tls13_like()
        ):
            # Ciphertext: only the header matters; the body is skipped.
            d.encrypted = True
            have = len(buf) - head
            d.skip = max(0, length - have)
            del buf[: head + min(length, have)]
            self.session.ciphertext(
                ts, self._dirs[True].encrypted and self._dirs[False].encrypted
            )
            if self.session.established:
                self.done = True
            return True

        if len(buf) < head + length:
            return False
        body = bytes(buf[head : head + length])
        del buf[: head + length]
        self.session.start(ts)
        if v2:
            self._v2_record(is_orig, ts, body)
        else:
            self._record(is_orig, ts, ctype, body, d)
        return True

    def _record(
        self, is_orig: bool, ts: float, ctype: int, body: bytes, d: _Direction
    ) -> None:
        s = self.session
        if ctype == wire.CHANGE_CIPHER_SPEC:
            s.change_cipher_spec(is_orig)
            d.encrypted = True
        elif ctype == wire.ALERT:
            if len(body) < 2:
                self._violation(f"ssl: alert of {len(body)} bytes < 2")
                return
            s.alert(is_orig, body[1])
        elif ctype == wire.HEARTBEAT:
            s.add_history(is_orig, "b")
        elif ctype == wire.HANDSHAKE:
            self._handshake_bytes(is_orig, ts, body, d)
        elif ctype != wire.APPLICATION_DATA:
            self._violation(f"ssl: unknown record type {ctype}")

    def _handshake_bytes(
        self, is_orig: bool, ts: float, body: bytes, d: _Direction
    ) -> None:
        if d.stopped:
            return
        d.handshake += body
        hs = d.handshake
        while len(hs) >= 4:
            length = int.from_bytes(hs[1:4], "big")
            if length > MAX_HANDSHAKE:
                self._count("SSL_HANDSHAKE_TOO_LARGE")
                d.stopped = True
                hs.clear()
                return
            if len(hs) < 4 + length:
                return
            msg = Handshake(hs[0], bytes(hs[4 : 4 + length]))
            del hs[: 4 + length]
            try:
                self.session.handshake(is_orig, ts, msg)
            except wire.TLSDecodeError as e:
                self._count(e.name)
                self._violation(str(e))
                return
            if self.done:
                return

    def _skip_tpkt(self, buf: bytearray) -> bool:
        # TPKT header: version 3, reserved 0, 16-bit length of the whole PDU.
        if len(buf) < 4:
            return False
        length = (buf[2] << 8) | buf[3]
        if length < 4:
            self._violation(f"rdp: TPKT length {length} < 4")
            return True
        if len(buf) < length:
            return False
        del buf[:length]
        return True

    # -- SSLv2 -----------------------------------------------------------------

    def _v2_header_ok(self, is_orig: bool, buf: bytearray) -> bool:
        if self._record_version == _SSLV2:
            return True
        kind = buf[2]
        if kind == 1 and is_orig:
            return True
        if kind == 4 and not is_orig and len(buf) >= 5 and buf[4] < 2:
            self._record_version = _SSLV2
            return True
        self._violation(f"ssl: sslv2 header with message type {kind}")
        return False

    def _v2_record(self, is_orig: bool, ts: float, body: bytes) -> None:
        try:
            kind = body[0] if body else -1
            if kind == 1:
                self.session.client_hello(
                    is_orig, ts, wire.parse_sslv2_client_hello(body)
                )
            elif kind == 4:
                self.session.sslv2_server_hello(body)
            elif kind == 2:
                # CLIENT-MASTER-KEY: both sides encrypt from here on.
                for d in self._dirs:
                    d.encrypted = True
        except wire.TLSDecodeError as e:
            self._count(e.name)
            self._violation(str(e))

    # -- bookkeeping -------------------------------------------------------

    def _violation(self, why: str) -> None:
        # Zeek logs what it has at a protocol violation and stops parsing.
        log.debug("%s: %s", self.conn.uid, why)
        self._count("SSL_PROTOCOL_VIOLATION")
        self.anomalies += 1
        self.session.finish()
        self.done = True

    def _count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1


def stats_of(analyzer: TLSAnalyzer) -> dict[str, Any]:
    """The analyzer's counters merged with its session's (for tests and the API)."""
    merged = dict(analyzer.stats)
    for k, v in analyzer.session.stats.items():
        merged[k] = merged.get(k, 0) + v
    return merged
