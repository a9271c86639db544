"""SMTP sessions: smtp.log as Zeek writes it, plus the links each message holds.

Design: each direction is cut into lines (:class:`LineSplitter`). Client
lines are commands (RFC 5321 4.1) until ``DATA``, then message content up
to the lone ``.`` (4.5.2, with dot-stuffing undone); ``BDAT`` chunks
(RFC 3030) are read by their announced size instead. Replies are matched to
commands in the order the commands were sent, which is what makes
pipelining (RFC 2920) work: a queue of commands awaiting a reply. ``AUTH``
exchanges (RFC 4954) are followed only to stay in step; credentials are not
kept. After ``STARTTLS`` (RFC 3207) and the server's 220, the rest of the
connection is TLS, handed to :class:`~sensor.proto.analyzers.tls.TLSAnalyzer`
(ssl.log, x509.log).

The message content goes through a bounded streaming MIME reader
(:mod:`sensor.proto.mime`): the first entity's headers fill smtp.log's
header fields, every leaf entity becomes a file in files.log (source
``SMTP``), and text, HTML and PDF entities are searched for URLs (our
``urls`` field).

Records follow Zeek's ``base/protocols/smtp/main.zeek``: one per message
transaction with client activity, logged when the server answers the end
of its data (that answer is the message's even when the client pipelined
the next ``MAIL`` before it), when a ``MAIL`` starts over a transaction
that sent no data, or when the connection ends. Anomalies are counted in
:attr:`SMTPAnalyzer.stats`; those Zeek reports go to weird.log under its
names. docs/smtp.md lists the fields, limits and counters.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections import deque
from typing import Any

from sensor.proto.analyzer import ANY_BYTE, Analyzer, ConnInfo, Emit, SniffHint
from sensor.proto.analyzers.tls import TLSAnalyzer
from sensor.proto.analyzers.weird import WeirdReporter
from sensor.proto.files import FileHandle, Files
from sensor.proto.links import LinkCollector
from sensor.proto.mime import Entity, MIMEHandler, MIMEReader
from sensor.proto.parsers.smtp import (
    LineSplitter,
    bdat_args,
    email_addresses,
    ip_addresses,
    parse_command,
    parse_reply,
    split_mime_addresses,
)

log = logging.getLogger(__name__)

#: Ports Zeek attaches its SMTP analyzer to (smtp/main.zeek).
PORTS = frozenset({25, 587})
#: Commands awaiting a reply; past it the oldest is forgotten.
MAX_PENDING = 256
#: Addresses kept per set field (Zeek's max_rcptto/to/cc_addresses).
MAX_ADDRESSES = 1000
#: Hops kept in ``path`` (Zeek's max_path_length).
MAX_PATH = 1000
#: Client bytes searched for HELO/EHLO on other ports (Zeek's DPD buffer).
SNIFF_BYTES = 1024
#: Client bytes held after STARTTLS until the server answers.
MAX_TLS_HOLD = 65536
#: Invalid transactions (RCPT before MAIL, DATA before RCPT) after which the
#: connection is no longer analysed (Zeek's max_invalid_mail_transactions).
MAX_INVALID = 25

#: Anomalies that Zeek reports in weird.log under these names; written
#: once per connection and name (the others are counted only).
ZEEK_WEIRDS = frozenset(
    {
        "smtp_mail_transaction_invalid",
        "smtp_excessive_invalid_mail_transactions",
        "smtp_too_many_rcptto_addresses",
        "smtp_too_many_to_addresses",
        "smtp_too_many_cc_addresses",
        "smtp_max_path_length_exceeded",
    }
)

# Zeek's dpd_smtp_client and dpd_smtp_server signatures (smtp/dpd.sig).
_HELO = re.compile(rb"(?:^|[\r\n])[ \t\r\n\v\f]*(?:[hH][eE]|[eE][hH])[lL][oO]")
_BANNER = re.compile(rb"^[ \t\r\n\v\f]*2[0-9][0-9]")

# The header fields of smtp.log taken from the message's own headers.
_SINGLE = {
    "DATE": "date",
    "FROM": "from",
    "REPLY-TO": "reply_to",
    "MESSAGE-ID": "msg_id",
    "IN-REPLY-TO": "in_reply_to",
    "SUBJECT": "subject",
    "X-MAILER": "user_agent",
    "USER-AGENT": "user_agent",
    "X-USER-AGENT": "user_agent",
}


class SMTPAnalyzer(Analyzer):
    """smtp.log and files.log for one SMTP connection (see the module doc).

    :attr:`stats` counts every anomaly and limit hit by name, those of the
    MIME reader and the link collector included.
    """

    service = "smtp"
    logs = ("smtp", "files", "weird", "ssl", "x509")
    # The HELO may follow other lines; the banner only blanks (_BANNER).
    sniff_hint = SniffHint(
        ports=PORTS, orig_first=ANY_BYTE, resp_first=frozenset(b" \t\r\n\v\f2")
    )

    @classmethod
    def sniff(cls, conn: ConnInfo, is_orig: bool, data: bytes) -> bool:
        """Zeek's ports, or its DPD signatures: a 2xx banner, a HELO/EHLO."""
        if conn.resp_p in PORTS:
            return True
        if is_orig:
            head = data[:SNIFF_BYTES]
            # Every match ends in "lo", whatever the case: most first
            # payloads fail this cheap test and skip the search.
            if (
                b"lo" not in head
                and b"LO" not in head
                and b"Lo" not in head
                and b"lO" not in head
            ):
                return False
            return _HELO.search(head) is not None
        return _BANNER.match(data) is not None

    def __init__(self, conn: ConnInfo, emit: Emit) -> None:
        super().__init__(conn, emit)
        self.stats: dict[str, int] = {}
        self.files = Files(emit)
        #: The TLS analyzer that reads the stream after STARTTLS.
        self.tls: TLSAnalyzer | None = None
        self._lines = (LineSplitter(), LineSplitter())  # responder, originator
        self._confirmed = conn.resp_p in PORTS
        self._pending: deque[str] = deque(["<banner>"])
        self._server_spoke = False
        self._skip_line = [False, False]  # the tail of a line cut by a gap
        self._mode = "command"  # command, data, bdat, auth, starttls, tls
        self._bdat_left = 0
        self._bdat_last = False
        self._helo: str | None = None
        self._messages = 0
        self._entities = 0  # Zeek's mime_depth: entities in the whole session
        self._info: dict[str, Any] | None = None
        self._active = False  # client activity not logged yet
        # Messages whose data ended, waiting for the server's verdict; the
        # client may already have pipelined the next MAIL (RFC 2920).
        self._awaiting: deque[tuple[dict[str, Any], bool]] = deque()
        self._message: _Message | None = None
        self._ts = 0.0
        self.weirds = WeirdReporter(conn.id_fields(), "SMTP", emit)
        self._mail_seen = self._rcpt_seen = False  # Zeek's transaction check
        self._invalid_count = 0

    # Analyzer interface ----------------------------------------------------

    def data(self, is_orig: bool, ts: float, data: bytes) -> None:
        """The next bytes of one direction."""
        self._ts = ts
        if self._mode == "tls":
            return self._tls_data(is_orig, ts, data)
        if not self._server_spoke:
            self._server_spoke = not is_orig
            if is_orig and self._pending and self._pending[0] == "<banner>":
                # The client speaks first: the capture began after the
                # banner, so no reply will answer it.
                self._pending.popleft()
        self._lines[is_orig].push(data)
        if not self._confirmed:
            if not self._confirm(ts):
                return
            self._drain(False)
        self._drain(is_orig)
        if self._message is not None:
            self._message.reader.flush()  # files and links see this chunk now

    def gap(self, is_orig: bool, ts: float, length: int) -> None:
        """``length`` bytes of one direction are missing.

        In a message, the line cut by the gap is content up to the gap and
        the file records the missing bytes (a BDAT chunk counts them off
        its size); in commands and replies the cut line is dropped, and
        reading resumes at the next line end, as Zeek's does.
        """
        self._ts = ts
        if self.tls is not None:
            return self.tls.gap(is_orig, ts, length)
        self._count("smtp_content_gap")
        lines = self._lines[is_orig]
        message = self._message
        if is_orig and message is not None and self._mode == "data":
            rest = lines.take(lines.pending)
            if rest:
                message.line(rest, False)
            message.at_line_start = False  # a "." after the gap ends nothing
            message.gap(length)
        elif is_orig and message is not None and self._mode == "bdat":
            message.gap(length)
            self._bdat_left -= min(length, self._bdat_left)
            if self._bdat_left == 0:
                self._mode = "command"
                if self._bdat_last:
                    self._finish_message()
        else:
            lines.take(lines.pending)
            self._skip_line[is_orig] = True

    def end(self, ts: float) -> None:
        """Close an unfinished message and log what is left (Zeek's finalize)."""
        self._ts = ts
        if self._message is not None:
            lines = self._lines[True]
            if self._mode == "data" and lines.pending:
                self._message.line(lines.take(lines.pending), False)
            self._end_message()
        self.files.close_all(ts)
        while self._awaiting:
            record, active = self._awaiting.popleft()
            if active:
                self.emit("smtp", record)
        self._flush()
        if self.tls is not None:
            self.tls.end(ts)
        self.done = True

    # Framing ----------------------------------------------------------------

    def _confirm(self, ts: float) -> bool:
        # On other ports Zeek starts the analyzer once the client's HELO or
        # EHLO matched, and replays what came before at that time.
        held = self._lines[True].peek(SNIFF_BYTES)
        if _HELO.search(held):
            self._confirmed = True
            return True
        if (
            self._lines[True].pending >= SNIFF_BYTES
            or self._lines[False].pending > 65536
        ):
            self.done = True  # not SMTP; stop receiving this connection
        return False

    def _drain(self, is_orig: bool) -> None:
        lines = self._lines[is_orig]
        while self._mode != "tls":
            if is_orig and self._mode == "bdat":
                if not self._bdat_chunk(lines):
                    return
                continue
            if is_orig and self._mode == "starttls":
                if lines.pending > MAX_TLS_HOLD:
                    self._count("smtp_starttls_hold_full")
                    lines.take(lines.pending)
                return
            if is_orig and self._mode == "data" and self._message is not None:
                if not self._data_lines(lines, self._message):
                    return
                continue
            popped = lines.pop()
            if popped is None:
                return
            if self._skip_line[is_orig]:
                self._skip_line[is_orig] = not popped[1]
                continue
            if is_orig:
                self._client_line(*popped)
            else:
                self._server_line(*popped)

    def _bdat_chunk(self, lines: LineSplitter) -> bool:
        data = lines.take(self._bdat_left)
        if not data:
            return False
        self._bdat_left -= len(data)
        if self._message is not None:
            self._message.raw(data)
        if self._bdat_left == 0:
            self._mode = "command"
            if self._bdat_last:
                self._finish_message()
        return True

    # Client -----------------------------------------------------------------

    def _client_line(self, line: bytes, complete: bool) -> None:
        if self._mode == "data":
            return self._data_line(line, complete)
        if self._mode == "auth":
            # A response to a 334 challenge (RFC 4954 4); not kept.
            return self._expect("AUTH")
        if not complete:
            self._count("smtp_line_too_long")

        cmd = parse_command(line)
        info = self._session()
        verb = cmd.verb
        if verb in ("HELO", "EHLO"):
            self._helo = info["helo"] = cmd.arg
        elif verb == "MAIL" and cmd.arg[:5].upper() == "FROM:":
            self._flush()
            info = self._session()
            found = email_addresses(cmd.arg)
            if found:
                info["mailfrom"] = found[0]
            self._active = True
            self._mail_seen, self._rcpt_seen = True, False
        elif verb == "RCPT" and cmd.arg[:3].upper() == "TO:":
            if not self._mail_seen:
                self._invalid("rcpt to missing mail from")
            self._rcpt_seen = True
            rcpt = info.setdefault("rcptto", [])
            for addr in email_addresses(cmd.arg):
                if addr not in rcpt:
                    if len(rcpt) >= MAX_ADDRESSES:
                        self._count("smtp_too_many_rcptto_addresses")
                        break
                    rcpt.append(addr)
            self._active = True
        elif verb == "DATA":
            # RFC 2920 3.1: DATA ends a pipelined group and the client waits
            # for 354, so what follows is content unless the server refuses.
            if not self._rcpt_seen:
                self._invalid("data missing rcpt to")
            self._start_message()
            self._mode = "data"
        elif verb == "BDAT":
            args = bdat_args(cmd.arg)
            if not self._rcpt_seen:
                self._invalid("data missing rcpt to")
            if args is None:
                self._count("smtp_bad_bdat")
            else:
                self._bdat_left, self._bdat_last = args
                if self._message is None:
                    self._start_message()
                self._mode = "bdat" if self._bdat_left else "command"
                if self._bdat_last:
                    verb = "BDAT LAST"
                    self._mail_seen = self._rcpt_seen = False
                    if not self._bdat_left:
                        self._finish_message()
        elif verb == "STARTTLS":
            self._mode = "starttls"
        self._expect(verb)

    def _data_line(self, line: bytes, complete: bool) -> None:
        message = self._message
        if message is None:
            self._mode = "command"
            return
        if message.at_line_start and complete and line == b".":
            self._mail_seen = self._rcpt_seen = False
            self._finish_message()
            self._mode = "command"
            self._expect(".")
            return
        if message.at_line_start and line.startswith(b"."):
            line = line[1:]  # RFC 5321 4.5.2: transparency
        message.line(line, complete)

    def _data_lines(self, lines: LineSplitter, message: _Message) -> bool:
        """Message lines up to the lone "." or the end of what is held.

        The same as :meth:`_data_line` per line, in one loop: the content
        of a message is most of what an SMTP connection carries.
        """
        pop, feed = lines.pop, message.reader.line
        count, start = 0, message.at_line_start
        try:
            while (popped := pop()) is not None:
                line, complete = popped
                if start and line[:1] == b".":
                    if complete and line == b".":
                        message.at_line_start = start
                        self._mail_seen = self._rcpt_seen = False
                        self._finish_message()
                        self._mode = "command"
                        self._expect(".")
                        return True
                    line = line[1:]  # RFC 5321 4.5.2: transparency
                count += 1
                start = complete
                feed(line, complete)
            message.at_line_start = start
            return False
        finally:
            message.lines += count

    def _expect(self, verb: str) -> None:
        if len(self._pending) >= MAX_PENDING:
            self._count("smtp_too_many_pending_commands")
            self._pending.popleft()
        self._pending.append(verb)

    # Server -----------------------------------------------------------------

    def _server_line(self, line: bytes, complete: bool) -> None:
        if not complete:
            self._count("smtp_line_too_long")
            return
        reply = parse_reply(line)
        if reply is None:
            self._count("smtp_bad_reply")
            return
        # The reply to the end of a message belongs to that message, even
        # when the client has started the next one (pipelining).
        cmd = self._pending[0] if self._pending else ""
        ends = cmd in (".", "BDAT LAST") and bool(self._awaiting)
        target = self._awaiting[0][0] if ends else self._session()
        target["last_reply"] = f"{reply.code} {reply.text}"
        if reply.more:
            return

        if self._pending:
            self._pending.popleft()
        if ends:
            record, active = self._awaiting.popleft()
            self._messages += 1
            if active:
                self.emit("smtp", record)
            self._session()  # Zeek starts the next transaction at this reply
        elif cmd == "DATA" and reply.code != 354 and self._mode == "data":
            if self._message is not None and self._message.lines == 0:
                self._message = None
                self._mode = "command"
        elif cmd == "AUTH":
            self._mode = "auth" if reply.code == 334 else "command"
        elif cmd == "STARTTLS":
            if reply.code == 220:
                self._start_tls()
            else:
                self._mode = "command"
                self._drain(True)
        elif cmd == "QUIT" and reply.code == 221 and not self._pending:
            # RFC 5321 4.1.1.10: the session is over; what follows is not
            # SMTP, so the connection's payload is no longer needed.
            self.done = True

    # TLS --------------------------------------------------------------------

    def _start_tls(self) -> None:
        self._mode = "tls"
        info = self._session()
        info["tls"] = True
        self._active = True
        self.tls = TLSAnalyzer(self.conn, self.emit)
        # What each side sent after the switch is the TLS handshake.
        for is_orig in (True, False):
            rest = self._lines[is_orig].take(MAX_TLS_HOLD)
            if rest:
                self._tls_data(is_orig, self._ts, rest)

    def _tls_data(self, is_orig: bool, ts: float, data: bytes) -> None:
        # RFC 3207 4.2: after the 220 both sides start the TLS handshake;
        # ssl.log and x509.log come from the TLS analyzer, as in Zeek.
        tls = self.tls
        if tls is not None and not tls.done:
            tls.data(is_orig, ts, data)
        if tls is None or tls.done:
            self.done = True  # nothing more to read in this connection

    # Records ----------------------------------------------------------------

    def _session(self) -> dict[str, Any]:
        if self._info is None:
            conn = self.conn
            self._info = {"ts": self._ts, **conn.id_fields()}
            self._info["trans_depth"] = self._messages + len(self._awaiting) + 1
            if self._helo is not None:
                self._info["helo"] = self._helo
            self._info["path"] = [conn.resp_h, conn.orig_h]
            self._info["tls"] = False
            self._info["fuids"] = []
            self._active = False
        return self._info

    def _flush(self) -> None:
        """Log the transaction if the client did anything (smtp_message)."""
        info = self._info
        if info is None or not self._active:
            return
        self.emit("smtp", info)
        self._info = None
        self._active = False

    def _finish_message(self) -> None:
        """The data ended ("." or BDAT LAST): the record awaits its reply."""
        self._end_message()
        if self._info is not None:
            if len(self._awaiting) >= MAX_PENDING:
                self._count("smtp_too_many_pending_messages")
                record, active = self._awaiting.popleft()
                if active:
                    self.emit("smtp", record)
            self._awaiting.append((self._info, self._active))
            self._info = None
            self._active = False

    def _start_message(self) -> None:
        self._message = _Message(self, self._entities + 1)

    def _end_message(self) -> None:
        message, self._message = self._message, None
        if message is None:
            return
        message.close()
        # The reader calls back into the message: undo that cycle, so that
        # reference counting frees the message now.
        message.reader.handler = MIMEHandler()
        self._entities = message.reader.next_number - 1
        for stats in (message.reader.stats, message.links.stats):
            for key, value in stats.items():
                self.anomalies += value
                self.stats[key] = self.stats.get(key, 0) + value
        if message.links.urls and self._info is not None:
            self._info["urls"] = message.links.urls

    def _invalid(self, addl: str) -> None:
        # Zeek's mail_transaction_invalid (smtp/main.zeek): past 25 such
        # transactions it stops analysing the connection.
        self._count("smtp_mail_transaction_invalid", addl)
        self._invalid_count += 1
        if self._invalid_count > MAX_INVALID:
            self._count("smtp_excessive_invalid_mail_transactions")
            self.done = True

    def _count(self, key: str, addl: str = "") -> None:
        self.anomalies += 1
        self.stats[key] = self.stats.get(key, 0) + 1
        if key in ZEEK_WEIRDS:
            self.weirds.report(self._ts, key, addl)


class _Message(MIMEHandler):
    """One message's content: MIME entities to smtp.log, files.log and links."""

    def __init__(self, owner: SMTPAnalyzer, first_number: int) -> None:
        self.owner = owner
        self.first = first_number
        self.reader = MIMEReader(self, first_number=first_number)
        self.links = LinkCollector()
        self.lines = 0
        self.at_line_start = True
        self._file: FileHandle | None = None
        self._bdat = LineSplitter()

    def line(self, line: bytes, complete: bool) -> None:
        self.lines += 1
        self.at_line_start = complete
        self.reader.line(line, complete)

    def raw(self, data: bytes) -> None:
        # BDAT content is not dot-stuffed (RFC 3030 2): lines as they are.
        self._bdat.push(data)
        while (popped := self._bdat.pop()) is not None:
            self.line(*popped)

    def gap(self, length: int) -> None:
        if self._bdat.pending:
            self.line(self._bdat.take(self._bdat.pending), False)
        self.reader.flush()
        if self._file is not None:
            self._file.gap(length, self.owner._ts)

    def close(self) -> None:
        if self._bdat.pending:
            self.line(self._bdat.take(self._bdat.pending), True)
        self.reader.close()

    # MIMEHandler -------------------------------------------------------------

    def begin(self, entity: Entity) -> None:
        self.links.begin(entity)
        if entity.number != self.first:
            return  # Zeek reads only the message's own headers
        info = self.owner._session()
        for name, value in entity.headers:
            self._header(info, name.upper(), value)

    def data(self, entity: Entity, data: bytes) -> None:
        self.links.data(entity, data)
        owner = self.owner
        if self._file is None:
            self._file = owner.files.open(
                owner.conn,
                owner._ts,
                "SMTP",
                is_orig=True,
                filename=entity.filename,
                mime_hint=entity.content_type,
                depth=entity.number,
            )
            info = owner._session()
            if not info["tls"]:
                info["fuids"].append(self._file.fuid)
        self._file.write(data, owner._ts)

    def end(self, entity: Entity) -> None:
        self.links.end(entity)
        if self._file is not None and not entity.multipart:
            self._file.close(self.owner._ts)
            self._file = None

    def _header(self, info: dict[str, Any], name: str, value: str) -> None:
        field = _SINGLE.get(name)
        if field is not None:
            info[field] = value
        elif name in ("TO", "CC"):
            have = info.setdefault(name.lower(), [])
            for addr in split_mime_addresses(value):
                if addr not in have:
                    if len(have) >= MAX_ADDRESSES:
                        self.owner._count(f"smtp_too_many_{name.lower()}_addresses")
                        break
                    have.append(addr)
        elif name == "RECEIVED":
            if "first_received" in info:
                info["second_received"] = info["first_received"]
            info["first_received"] = value
            self._hop(info, value)
        elif name == "X-ORIGINATING-IP":
            found = ip_addresses(value)
            if found:
                info["x_originating_ip"] = _addr(found[0])

    def _hop(self, info: dict[str, Any], value: str) -> None:
        # Zeek's find_address_in_smtp_header: the second wrapped address of
        # a Received header if there are two ("from x [a] by y [b]"), else
        # the first; appended unless it repeats the last hop.
        found = ip_addresses(value, check_wrapping=True)
        if not found:
            return
        hop = _addr(found[1] if len(found) > 1 else found[0])
        path = info["path"]
        if path[-1] != hop:
            if len(path) >= MAX_PATH:
                self.owner._count("smtp_max_path_length_exceeded")
                return
            path.append(hop)


def _addr(text: str) -> str:
    # Zeek logs these fields as its addr type: IPv6 compressed, lower case.
    return str(ipaddress.ip_address(text))
