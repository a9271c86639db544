"""FTP data connections announced on a control connection.

Zeek names a connection ``ftp-data`` when it matches a data channel that
the FTP control connection announced: a ``227`` reply to PASV or a ``229``
reply to EPSV (the client will connect to the server, RFC 959 4.1.2 and
RFC 2428 3), or a PORT/EPRT command (the server will connect back to the
client). The match is on originator address, responder address and
responder port; the originator's port is unknown in advance.
"""

from __future__ import annotations

import ipaddress
import re
from collections import OrderedDict

from sensor.proto.flowdata import FlowData

# How long an announced channel stays expected; Zeek schedules the
# ftp-data analyzer for five minutes.
EXPECT_SECONDS = 300.0

_PASV = re.compile(
    rb"^227[ -][^\r\n]*?(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})",
    re.MULTILINE,
)
_EPSV = re.compile(rb"^229[ -][^\r\n]*?\((.)\1\1(\d{1,5})\1\)", re.MULTILINE)
_PORT = re.compile(
    rb"^PORT (\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})",
    re.MULTILINE | re.IGNORECASE,
)
_EPRT = re.compile(
    rb"^EPRT (.)([12])\1([0-9A-Fa-f.:]+)\1(\d{1,5})\1", re.MULTILINE | re.IGNORECASE
)

_CONTROL_PORTS = frozenset({21, 2811})

Key = tuple[str, str, int]


def _norm(addr: str) -> str:
    try:
        return ipaddress.ip_address(addr).compressed
    except ValueError:
        return addr


def is_control(flow: FlowData) -> bool:
    """An FTP control connection: the FTP port, or a 120/220 greeting.

    Zeek's FTP analyzer also runs off its port when its signature (a
    USER command answered by 220 ... 230/331) matched; the greeting is
    the part of that which the first packets always show.
    """
    if flow.proto != "tcp":
        return False
    if flow.resp_p in _CONTROL_PORTS:
        return True
    first = flow.resp_pkts[0] if flow.resp_pkts else b""
    return first.startswith((b"220", b"120"))


class Expectations:
    """Announced FTP data channels, bounded (oldest forgotten first)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._expect: OrderedDict[Key, float] = OrderedDict()
        self.evicted = 0

    def _add(self, ts: float, orig_h: str, resp_h: str, resp_p: int) -> None:
        if not 0 < resp_p < 65536:
            return
        key = (_norm(orig_h), _norm(resp_h), resp_p)
        self._expect[key] = ts
        self._expect.move_to_end(key)
        while len(self._expect) > self.limit:
            self._expect.popitem(last=False)
            self.evicted += 1

    def watch(self, ts: float, flow: FlowData, is_orig: bool, data: bytes) -> None:
        """Look for data-channel announcements in one packet of a control connection."""
        if not is_control(flow):
            return
        if is_orig:
            for m in _PORT.finditer(data):
                h = ".".join(x.decode() for x in m.groups()[:4])
                self._add(ts, flow.resp_h, h, int(m[5]) * 256 + int(m[6]))
            for m in _EPRT.finditer(data):
                self._add(ts, flow.resp_h, m[3].decode(), int(m[4]))
            return
        for m in _PASV.finditer(data):
            h = ".".join(x.decode() for x in m.groups()[:4])
            self._add(ts, flow.orig_h, h, int(m[5]) * 256 + int(m[6]))
        for m in _EPSV.finditer(data):
            self._add(ts, flow.orig_h, flow.resp_h, int(m[2]))

    def match(self, ts: float, orig_h: str, resp_h: str, resp_p: int) -> bool:
        """True (once) when a new connection is an announced data channel."""
        if not self._expect:
            return False  # the common case: no FTP, no addresses to normalise
        key = (_norm(orig_h), _norm(resp_h), resp_p)
        seen = self._expect.pop(key, None)
        return seen is not None and ts - seen <= EXPECT_SECONDS
