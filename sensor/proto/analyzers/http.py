"""HTTP/1.x: one http.log record per request and reply, bodies to files.log.

Requests and replies are paired in order (RFC 9112 section 9.3.2: replies to
pipelined requests come in the order of the requests). A record is written
when its final reply is complete, or at the end of the connection for
requests left unanswered; 1xx interim replies fill ``info_code``/``info_msg``
and do not end the transaction.

Fields follow Zeek's ``base/protocols/http``: ``version`` is the reply's,
``uri`` is the target with ``%XX`` escapes decoded once, ``host`` keeps a
port, and body lengths are counted as Zeek counts them: chunked framing
removed and content coding (gzip, deflate) undone; a body that runs to the
end of the connection has each line end counted as two bytes. Each non-empty
body is a file in files.log (each part, for a multipart body) whose content
is decoded, so that its hashes and MIME type are those of what the user
received; Zeek likewise hands its file analysis the decoded entity.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sensor.proto.analyzer import Analyzer, ConnInfo, Emit, SniffHint
from sensor.proto.analyzers.httpbody import BodyFiles
from sensor.proto.analyzers.ntlm import NTLMTracker
from sensor.proto.analyzers.weird import WeirdReporter
from sensor.proto.files import FileHandle, Files
from sensor.proto.parsers.http import (
    Anomaly,
    Body,
    Done,
    Event,
    Headers,
    HTTPLimits,
    HTTPStreamParser,
    Start,
    TOKEN,
    parse_request_line,
)

log = logging.getLogger(__name__)

#: Ports Zeek's HTTP analyzer is registered for (base/protocols/http/main.zeek),
#: where it runs whatever the first bytes look like.
HTTP_PORTS = frozenset({80, 81, 631, 1080, 3128, 8000, 8080, 8888})
#: Authorization schemes whose token may be NTLMSSP (RFC 4559 4).
_NTLM_SCHEMES = frozenset({"ntlm", "negotiate"})

#: Headers whose presence shows a proxy; Zeek logs them in ``proxied``.
PROXY_HEADERS = frozenset(
    {
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-from",
        "client-ip",
        "via",
        "xroxy-connection",
        "proxy-connection",
    }
)

#: What :meth:`HTTPAnalyzer._headers` takes from a header field, by its
#: lowercased name: a body's facts (both directions), the token of an
#: authentication challenge (replies), or an http.log field (requests).
_HEADER_USE = {
    "content-encoding": "coding",
    "content-type": "content_type",
    "content-length": "length",
    "content-disposition": "filename",
    "www-authenticate": "challenge",
    "host": "host",
    "referer": "referrer",
    "user-agent": "user_agent",
    "origin": "origin",
    "authorization": "username",
    "proxy-authorization": "username",
    **{name: "proxied" for name in PROXY_HEADERS},
}

#: Our anomaly names -> the weird names Zeek's HTTP analyzer uses for the
#: same problem (src/analyzer/protocol/http/HTTP.cc); others keep ours.
ZEEK_WEIRDS = {
    "HTTP_BAD_REQUEST_LINE": "bad_HTTP_request",
    "HTTP_BAD_STATUS_LINE": "bad_HTTP_reply",
    "HTTP_BAD_CHUNK_SIZE": "HTTP_bad_chunk_size",
}

#: http.log fields taken from a transaction's fields when set, in order.
_REQUEST_KEYS = ("method", "host", "uri", "referrer", "version", "user_agent", "origin")
_REPLY_KEYS = ("status_code", "status_msg", "info_code", "info_msg")

#: Requests waiting for their reply, per connection (``HTTP_TOO_MANY_PENDING``
#: past it: the oldest is written out unanswered).
MAX_PENDING = 64


@dataclass(slots=True)
class _Side:
    """What one message (request or reply) of a transaction has so far."""

    coding: str = ""
    filename: str | None = None
    content_type: str | None = None
    length: int | None = None
    body: BodyFiles | None = None


@dataclass(slots=True)
class _Transaction:
    ts: float
    depth: int
    fields: dict[str, Any] = field(default_factory=dict)
    sides: tuple[_Side, _Side] = field(default_factory=lambda: (_Side(), _Side()))
    handles: tuple[list[FileHandle], list[FileHandle]] = field(
        default_factory=lambda: ([], [])
    )


class HTTPAnalyzer(Analyzer):
    """Follows the HTTP/1.x transactions of one TCP connection."""

    service: ClassVar[str] = "http"
    logs: ClassVar[tuple[str, ...]] = ("http", "files")
    # A request line may follow blanks (bytes.split drops them); a status
    # line starts "HTTP/".
    sniff_hint: ClassVar[SniffHint | None] = SniffHint(
        ports=HTTP_PORTS,
        orig_first=TOKEN | frozenset(b" \t\r\v\f"),
        resp_first=frozenset(b"H"),
    )

    def __init__(
        self, conn: ConnInfo, emit: Emit, limits: HTTPLimits | None = None
    ) -> None:
        super().__init__(conn, emit)
        self.files = Files(emit)
        #: The uid and id.* fields, copied into each record.
        self._id_fields = conn.id_fields()
        self.weirds = WeirdReporter(self._id_fields, "HTTP", emit)
        #: Anomalies by weird name, every occurrence (weird.log has the first).
        self.counts = self.weirds.counters
        self._requests = HTTPStreamParser(True, limits=limits)
        self._replies = HTTPStreamParser(False, self._request_of, limits)
        self._pending: list[_Transaction] = []  # requests not yet answered
        self._lines: deque[Start] = deque()  # request lines, for reply framing
        self._lines_base = 0  # index of the request self._lines[0] is
        self._req: _Transaction | None = None  # request being parsed
        self._rep: _Transaction | None = None  # reply being parsed
        self._depth = 0
        #: NTLM carried in Authorization/WWW-Authenticate headers (ntlm.log).
        self.ntlm = NTLMTracker(conn, emit)

    @classmethod
    def sniff(cls, conn: ConnInfo, is_orig: bool, data: bytes) -> bool:
        """A request line from the originator, a status line from the
        responder, or anything on a port Zeek gives to HTTP."""
        if conn.resp_p in HTTP_PORTS:
            return True
        first = data.split(b"\n", 1)[0].rstrip(b"\r")
        if is_orig:
            start = parse_request_line(first)
            if start is None:
                return False
            # A line of two words ("EHLO host", "USER bob") looks like an
            # HTTP/0.9 request; only GET has that form (RFC 1945 4.1).
            return start.version.startswith("1.") or (
                start.version == "0.9" and start.method == "GET"
            )
        return first[:5] == b"HTTP/" and first[5:6].isdigit()

    def data(self, is_orig: bool, ts: float, data: bytes) -> None:
        """Parse the next bytes of one direction (see the module docstring)."""
        parser = self._requests if is_orig else self._replies
        self._events(is_orig, ts, parser.feed(data))
        # After a CONNECT's 2xx reply (or replies that lost their framing)
        # nothing more can be read as HTTP: the connection is let go.
        if self._replies.tunnel:
            self.done = True

    def gap(self, is_orig: bool, ts: float, length: int) -> None:
        """Missing bytes: counted in the file when inside a body."""
        parser = self._requests if is_orig else self._replies
        trans = self._req if is_orig else self._rep
        side = trans.sides[not is_orig] if trans is not None else None
        if side is not None and side.body is not None:
            side.body.gap(length, ts)
        self._events(is_orig, ts, parser.gap(length))

    def end(self, ts: float) -> None:
        """Finish bodies that run to the end; write every open transaction."""
        for is_orig, parser in ((True, self._requests), (False, self._replies)):
            self._events(is_orig, ts, parser.eof())
        for trans in [
            t for t in (self._req, self._rep) if t is not None
        ] + self._pending:
            self._finish(trans, ts)
        self._pending.clear()
        # The reply parser holds a bound method of this analyzer: undo the
        # cycle, so that reference counting frees the connection's state.
        self._replies.request_of = self._requests.request_of
        self.ntlm.end(ts)
        self.files.close_all(ts)
        # The files framework's limits (files_too_many, files_name_cut).
        for name, count in self.files.stats.items():
            self.anomalies += count
            self.weirds.report(ts, name)
            self.counts[name] += count - 1

    # -- events --------------------------------------------------------------

    def _request_of(self, n: int) -> Start | None:
        i = n - self._lines_base
        return self._lines[i] if 0 <= i < len(self._lines) else None

    def _events(self, is_orig: bool, ts: float, events: list[Event]) -> None:
        event: Any  # told apart by type(), which mypy does not narrow on
        for event in events:
            # The parser's event classes are final: ``type() is`` suffices.
            kind = type(event)
            if kind is Body:
                self._body(is_orig, ts, event.data)
            elif kind is Start:
                self._start(is_orig, ts, event)
            elif kind is Headers:
                self._headers(is_orig, ts, event.fields)
            elif kind is Done:
                self._done(is_orig, ts, event.body_len)
            elif kind is Anomaly:
                self._count(event.name, ts, event.detail)

    def _start(self, is_orig: bool, ts: float, start: Start) -> None:
        if is_orig:
            self._depth += 1
            trans = _Transaction(ts, self._depth)
            trans.fields["method"] = start.method
            trans.fields["uri"] = start.uri
            if not start.uri:
                self._count("missing_HTTP_uri", ts)
            self._req = trans
            self._lines.append(start)
            if len(self._pending) >= MAX_PENDING:
                self._count("HTTP_TOO_MANY_PENDING", ts)
                self._finish(self._pending.pop(0), ts)
                # Its reply, if it comes, is framed as a reply to no request.
                self._lines.popleft()
                self._lines_base += 1
            self._pending.append(trans)
            return

        if self._rep is None:
            if self._pending:
                self._rep = self._pending[0]
            else:
                # A reply to a request we did not see (or could not parse).
                self._depth += 1
                self._rep = _Transaction(ts, self._depth)
        fields = self._rep.fields
        fields["version"] = start.version
        if 100 <= start.code < 200:
            fields["info_code"] = start.code
            fields["info_msg"] = start.reason or ""
        # Zeek writes an empty reason phrase, and the missing status line of
        # an HTTP/0.9 reply, as "<empty>".
        fields["status_code"] = start.code
        fields["status_msg"] = "<empty>" if start.reason is None else start.reason
        if start.code >= 200:
            # After an NTLM AUTHENTICATE, 401 is a refusal (RFC 4559 4).
            self.ntlm.outcome(ts, start.code != 401)

    def _headers(
        self, is_orig: bool, ts: float, headers: tuple[tuple[str, str], ...]
    ) -> None:
        """The fields of one message, in one pass: framing and file facts
        for the body, request facts for http.log, NTLM and Negotiate tokens
        (RFC 4559 4) for the NTLM tracker."""
        trans = self._req if is_orig else self._rep
        if trans is None:
            # A message with no transaction: only its tokens matter.
            side, fields = _Side(), {}
        else:
            side, fields = trans.sides[not is_orig], trans.fields
        for name, value in headers:
            use = _HEADER_USE.get(name.lower())
            if use is None:
                continue
            if use == "coding":
                side.coding = value
            elif use == "content_type":
                side.content_type = value
            elif use == "length":
                side.length = _int(value)
            elif use == "filename":
                side.filename = _filename(value)
            elif use == "challenge":
                if not is_orig:
                    self._auth_token(is_orig, ts, value)
            elif not is_orig:
                continue
            elif use == "proxied":
                fields.setdefault("proxied", set()).add(f"{name.upper()} -> {value}")
            elif use == "username":
                fields["username"] = _basic_user(value)
                if len(name) == 13:  # Authorization, not Proxy-Authorization
                    self._auth_token(is_orig, ts, value)
            else:
                fields[use] = value

    def _auth_token(self, is_orig: bool, ts: float, value: str) -> None:
        """An NTLM or Negotiate token goes to the NTLM tracker."""
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() not in _NTLM_SCHEMES:
            return
        try:
            blob = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return
        self.ntlm.blob(is_orig, ts, blob)

    def _body(self, is_orig: bool, ts: float, data: bytes) -> None:
        trans = self._req if is_orig else self._rep
        if trans is None or not data:
            return
        side = trans.sides[not is_orig]
        if side.body is None:
            side.body = BodyFiles(
                self.files,
                self.conn,
                is_orig,
                side.coding,
                side.content_type,
                side.filename,
                side.length,
            )
        side.body.write(data, ts)

    def _done(self, is_orig: bool, ts: float, body_len: int) -> None:
        trans = self._req if is_orig else self._rep
        if trans is None:
            return
        key = "request_body_len" if is_orig else "response_body_len"
        side = trans.sides[not is_orig]
        if side.body is not None and side.body.decoder is not None:
            # Zeek counts the body as its file analysis sees it: decoded.
            body_len = side.body.decoded_len
        self._close_body(trans, side, is_orig, ts)
        if is_orig:
            trans.fields[key] = body_len
            self._req = None
            return

        code = trans.fields.get("status_code", 0)
        if 100 <= code < 200:
            trans.sides = (trans.sides[0], _Side())
            return  # interim reply: the final one is still to come
        trans.fields[key] = body_len
        self._rep = None
        while self._lines and self._lines_base < self._replies.messages:
            self._lines.popleft()
            self._lines_base += 1
        if trans in self._pending:
            self._pending.remove(trans)
        if trans is not self._req:
            self._finish(trans, ts)

    def _close_body(
        self, trans: _Transaction, side: _Side, is_orig: bool, ts: float
    ) -> None:
        body, side.body = side.body, None
        if body is None:
            return
        body.close(ts)
        if body.anomaly is not None:
            self._count(body.anomaly, ts)
        trans.handles[not is_orig].extend(body.handles)

    def _finish(self, trans: _Transaction, ts: float) -> None:
        if trans.fields.get("_logged"):
            return
        for is_orig, side in ((True, trans.sides[0]), (False, trans.sides[1])):
            self._close_body(trans, side, is_orig, ts)
        trans.fields["_logged"] = True
        self.emit("http", self._record(trans))

    def _record(self, trans: _Transaction) -> dict[str, Any]:
        fields = trans.fields
        record: dict[str, Any] = {
            "ts": trans.ts,
            **self._id_fields,
            "trans_depth": trans.depth,
        }
        for key in _REQUEST_KEYS:
            value = fields.get(key)
            if value is not None:
                record[key] = value
        record["request_body_len"] = fields.get("request_body_len", 0)
        record["response_body_len"] = fields.get("response_body_len", 0)
        for key in _REPLY_KEYS:
            if key in fields:
                record[key] = fields[key]
        record["tags"] = []
        if fields.get("username"):
            record["username"] = fields["username"]
        if fields.get("proxied"):
            record["proxied"] = sorted(fields["proxied"])
        for prefix, handles in (("orig", trans.handles[0]), ("resp", trans.handles[1])):
            if not handles:
                continue
            record[f"{prefix}_fuids"] = [h.fuid for h in handles]
            names = [h.filename for h in handles if h.filename]
            if names:
                record[f"{prefix}_filenames"] = names
            mimes = [h.mime_type for h in handles if h.mime_type]
            if mimes:
                record[f"{prefix}_mime_types"] = mimes
        return record

    def _count(self, name: str, ts: float, detail: str = "") -> None:
        """Count an anomaly; the first of each name per connection goes to
        weird.log, under Zeek's name where Zeek has one."""
        self.anomalies += 1
        log.debug("%s: %s: %s", self.conn.uid, name, detail)
        self.weirds.report(ts, ZEEK_WEIRDS.get(name, name))


def _int(text: str) -> int | None:
    try:
        value = int(text.split(",")[0].strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def _filename(disposition: str) -> str | None:
    """``filename=`` of a Content-Disposition value (RFC 6266), unquoted."""
    for param in disposition.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "filename":
            return value.strip().strip('"') or None
    return None


def _basic_user(value: str) -> str | None:
    """The user of ``Basic base64(user:password)`` (RFC 7617), or None for
    another scheme. Credentials without a colon are logged as Zeek logs
    them: ``<problem-decoding> (`` the header value ``)``."""
    scheme, _, creds = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        text = base64.b64decode(creds.strip() + "==", validate=False)
    except (binascii.Error, ValueError):
        text = b""
    user, colon, _ = text.decode("utf-8", "backslashreplace").partition(":")
    return user if colon else f"<problem-decoding> ({value})"
