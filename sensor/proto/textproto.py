"""Line-based protocols: HTTP, FTP, SMTP, SSH banners, RFB.

Each check mirrors when Zeek's analyzer for the protocol would run (its
well-known ports, or its dynamic protocol detection signature in
``scripts/base/protocols/*/dpd.sig``) and when it confirms the protocol,
which is what puts the name into conn.log's ``service``.
"""

from __future__ import annotations

import re

from sensor.proto import tls
from sensor.proto.flowdata import FlowData

# Ports Zeek registers its analyzers for (base/protocols/*/main.zeek).
HTTP_PORTS = frozenset({80, 81, 631, 1080, 3128, 8000, 8080, 8888})
FTP_PORTS = frozenset({21, 2811})
SMTP_PORTS = frozenset({25, 587})
SSH_PORTS = frozenset({22})

# An HTTP/1.x request line (RFC 9112 section 3): method token, target,
# optional version. Zeek accepts any token as the method.
_HTTP_REQUEST = re.compile(rb"^[ \t\r\n]*[!#$%&'*+.^_`|~0-9A-Za-z-]+[ \t]+\S")
_HTTP_REPLY = re.compile(rb"^[ \t\r\n]*HTTP/[0-9]")
# Zeek's dpd_http_client: the usual methods and the WebDAV/RPC-over-HTTP ones.
_HTTP_SIG_CLIENT = re.compile(
    rb"^[ \t\r\n\v\f]*(?:OPTIONS|GET|HEAD|POST|PUT|DELETE|TRACE|CONNECT|PROPFIND"
    rb"|PROPPATCH|MKCOL|COPY|MOVE|LOCK|UNLOCK|VERSION-CONTROL|REPORT|CHECKOUT"
    rb"|CHECKIN|UNCHECKOUT|MKWORKSPACE|UPDATE|LABEL|MERGE|BASELINE-CONTROL"
    rb"|MKACTIVITY|ORDERPATCH|ACL|PATCH|SEARCH|BCOPY|BDELETE|BMOVE|BPROPFIND"
    rb"|BPROPPATCH|NOTIFY|POLL|SUBSCRIBE|UNSUBSCRIBE|X-MS-ENUMATTS|RPC_OUT_DATA"
    rb"|RPC_IN_DATA)"
)

_FTP_SIG_CLIENT = re.compile(rb"(?:^|[\n\r]) *[uU][sS][eE][rR] ")
_FTP_SIG_SERVER = re.compile(
    rb"^[\n\r ]*(?:120|220)[^0-9].*?[\n\r] *(?:230|331)[^0-9]", re.DOTALL
)
_FTP_REPLY = re.compile(rb"^[0-9]{3}[ -]")

_SMTP_SIG_CLIENT = re.compile(
    rb"(?:^|[\n\r])[ \t\r\n\v\f]*(?:[hH][eE][lL][oO]|[eE][hH][lL][oO])"
)
_SMTP_SIG_SERVER = re.compile(rb"^[ \t\r\n\v\f]*220[ \t\r\n\v\f-]")
_SMTP_COMMAND = re.compile(rb"^[A-Za-z]{4}[ \r\n]")
_STARTTLS = re.compile(rb"(?:^|\n)STARTTLS\r?\n", re.IGNORECASE)

_SSH_BANNER = re.compile(rb"^[sS][sS][hH]-[12]\.")
_RFB_BANNER = re.compile(rb"^RFB [0-9]{3}\.[0-9]{3}\n")


def http(flow: FlowData) -> bool:
    """HTTP: Zeek confirms on a request line, unless the reply is not HTTP."""
    if flow.partial:
        return False  # every signature here is bound to a TCP endpoint state
    orig, resp = flow.stream(True), flow.stream(False)
    active = flow.on_port(HTTP_PORTS) or bool(_HTTP_SIG_CLIENT.match(orig))
    if not active or not _HTTP_REQUEST.match(orig):
        return False
    # A request line that does not end within the first few kilobytes
    # (a buffer-overflow URI) did not confirm for Zeek on the shared
    # captures either.
    line, newline, _ = orig.partition(b"\n")
    if not newline:
        return False
    # A reply that is not an HTTP status line is a protocol violation
    # ("not a http reply line"), after which Zeek drops the service again.
    # An HTTP/0.9 request (no version, RFC 1945 4.1) gets a bare body back.
    simple = b"HTTP/" not in line
    return not resp or simple or bool(_HTTP_REPLY.match(resp))


def ftp(flow: FlowData) -> bool:
    """FTP: on its ports, or a USER command answered by 220 ... 230/331."""
    if flow.partial:
        return False  # every signature here is bound to a TCP endpoint state
    orig, resp = flow.stream(True), flow.stream(False)
    # The anchored server match first: it fails at the first byte of almost
    # every stream, where the client's search would read all of it.
    signature = _FTP_SIG_SERVER.match(resp) and _FTP_SIG_CLIENT.search(orig)
    if not (flow.on_port(FTP_PORTS) or signature):
        return False
    return bool(_FTP_REPLY.match(resp))


def smtp(flow: FlowData) -> list[str]:
    """SMTP: on its ports, or HELO/EHLO answered by a 220 greeting.

    After STARTTLS (RFC 3207) Zeek's SMTP analyzer hands the stream to its
    SSL analyzer, which adds ``ssl`` when a hello follows.
    """
    if flow.partial:
        return []  # every signature here is bound to a TCP endpoint state
    orig, resp = flow.stream(True), flow.stream(False)
    signature = _SMTP_SIG_SERVER.match(resp) and _SMTP_SIG_CLIENT.search(orig)
    if not (flow.on_port(SMTP_PORTS) or signature):
        return []
    if not (_SMTP_SIG_SERVER.match(resp) and _SMTP_COMMAND.match(orig)):
        return []
    if _STARTTLS.search(orig):
        hellos = any(map(tls.client_hello, flow.orig_pkts)) or any(
            map(tls.server_hello, flow.resp_pkts)
        )
        if hellos:
            return ["smtp", "ssl"]
    return ["smtp"]


def ssh(flow: FlowData) -> bool:
    """SSH: Zeek confirms at the first NEWKEYS message (RFC 4253 7.3).

    The analyzer runs on port 22 or when both sides open with an
    ``SSH-1.x``/``SSH-2.x`` banner; SSH-1 confirms at the client's session
    key message instead.
    """
    if flow.partial:
        return False  # every signature here is bound to a TCP endpoint state
    orig, resp = flow.stream(True), flow.stream(False)
    signature = _SSH_BANNER.match(orig) and _SSH_BANNER.match(resp)
    if not (flow.on_port(SSH_PORTS) or signature):
        return False
    for data in (orig, resp):
        if _ssh_newkeys(data):
            return True
    return False


def _ssh_newkeys(data: bytes) -> bool:
    """Walk the SSH binary packets after the banner, looking for NEWKEYS."""
    if not _SSH_BANNER.match(data):
        return False
    ssh1 = data[4:5] == b"1" and data[4:8] != b"1.99"
    end = data.find(b"\n")
    if end < 0:
        return False
    off = end + 1
    while off + 6 <= len(data):
        length = int.from_bytes(data[off : off + 4], "big")
        if ssh1:
            # SSH-1 packet: length, 1-8 bytes of padding, type (RFC draft
            # "The SSH (Secure Shell) Remote Login Protocol", 1995).
            pad = 8 - (length % 8)
            mtype = data[off + 4 + pad] if off + 4 + pad < len(data) else -1
            if mtype == 3:  # SSH_CMSG_SESSION_KEY
                return True
            off += 4 + pad + length
        else:
            if length < 2 or length > 35000:
                return False
            if data[off + 5] == 21:  # SSH_MSG_NEWKEYS
                return True
            off += 4 + length
    return False


def rfb(flow: FlowData) -> bool:
    """RFB (VNC): both sides send a ``RFB xxx.yyy`` ProtocolVersion (RFC 6143 7.1.1)."""
    return bool(_RFB_BANNER.match(flow.stream(True))) and bool(
        _RFB_BANNER.match(flow.stream(False))
    )
