"""SMTP lines: commands, replies and the addresses inside them.

Byte-level parsing only: splitting a stream into lines (bounded), reading a
command line (RFC 5321 section 4.1.1) or a reply line (section 4.2), the
arguments of ``BDAT`` (RFC 3030 section 2), and pulling e-mail and IP
addresses out of envelope arguments and message headers the way Zeek's
scripts do (``base/utils/email.zeek``, ``base/utils/addrs.zeek``), so that
smtp.log's fields read as Zeek writes them. Nothing here raises on bad
input: a line that is not a reply parses to ``None``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from sensor.proto.parsers.text import zeek_text

#: Longest line kept whole. RFC 5321 4.5.3.1.6 allows 1000 octets with CRLF;
#: real mail exceeds it (one-line HTML), so the bound is far above that and
#: a longer line is handed on in pieces (see :class:`LineSplitter`).
MAX_LINE = 65536


@dataclass(frozen=True, slots=True)
class Command:
    """A client command line: the verb in upper case and its argument."""

    verb: str
    arg: str


@dataclass(frozen=True, slots=True)
class Reply:
    """One server reply line: ``code``, whether more lines follow, and text."""

    code: int
    more: bool
    text: str


def text(raw: bytes) -> str:
    """Bytes of the wire as log text, as Zeek writes them: valid UTF-8 kept,
    control characters and other bytes as ``\\xNN`` (:func:`zeek_text`)."""
    return zeek_text(raw)


class LineSplitter:
    """Cuts a byte stream into lines ending in LF (CRLF or bare LF).

    :meth:`push` adds bytes; :meth:`pop` takes the next line (without its
    ending) as ``(line, complete)``, or None when no whole line is held.
    A line longer than ``max_line`` comes out in pieces with ``complete``
    False (counted in :attr:`overlong`), so memory stays bounded whatever
    the peer sends. :meth:`take` reads raw bytes instead, for protocols
    that switch framing mid-stream (BDAT chunks, TLS after STARTTLS).
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self.overlong = 0
        self._buf = bytearray()
        self._pos = 0  # start of what is not consumed yet

    def push(self, data: bytes) -> None:
        """Add the next bytes of the stream."""
        if self._pos and self._pos >= len(self._buf) // 2:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def pop(self) -> tuple[bytes, bool] | None:
        """The next line, or None until more bytes arrive."""
        buf, start = self._buf, self._pos
        nl = buf.find(b"\n", start)
        if nl < 0:
            if len(buf) - start <= self.max_line:
                return None
            self.overlong += 1
            self._pos = start + self.max_line
            return bytes(buf[start : self._pos]), False
        end = nl - 1 if nl > start and buf[nl - 1] == 13 else nl
        self._pos = nl + 1
        return bytes(buf[start:end]), True

    def take(self, limit: int) -> bytes:
        """Up to ``limit`` raw bytes, whatever they hold."""
        out = bytes(self._buf[self._pos : self._pos + limit])
        self._pos += len(out)
        return out

    @property
    def pending(self) -> int:
        """Bytes held and not consumed yet."""
        return len(self._buf) - self._pos

    def peek(self, limit: int) -> bytes:
        """Up to ``limit`` held bytes, left in place."""
        return bytes(self._buf[self._pos : self._pos + limit])


def parse_command(line: bytes) -> Command:
    """The verb and argument of a client line (any line parses)."""
    stripped = line.lstrip(b" \t")
    verb, _, arg = stripped.partition(b" ")
    return Command(text(verb).upper(), text(arg.lstrip(b" \t")))


def parse_reply(line: bytes) -> Reply | None:
    """A reply line ``NNN[ -]text``, or None when the line is not one.

    A bare code (``250``) is a reply with empty text, as servers send it.
    """
    if len(line) < 3 or not line[:3].isdigit():
        return None
    sep = line[3:4]
    if sep not in (b"", b" ", b"-", b"\t"):
        return None
    return Reply(int(line[:3]), sep == b"-", text(line[4:]))


def bdat_args(arg: str) -> tuple[int, bool] | None:
    """``BDAT chunk-size [LAST]`` (RFC 3030 section 2): size and last flag."""
    parts = arg.split()
    if not parts or not parts[0].isdigit() or len(parts[0]) > 12:
        return None
    last = len(parts) > 1 and parts[1].upper() == "LAST"
    return int(parts[0]), last


# An address as Zeek's extract_email_addrs_vec finds one: a run without
# separators, an "@", a run up to a closing separator.
_EMAIL = re.compile(r"(?:^|[<,:\t ])([^<,:\t @]+@[^>,;\t ]+)(?=[>,;\t ]|$)")
# Display name in quotes (commas allowed inside), then up to the next comma.
_MIME_ADDR = re.compile(r'(?:"[^"]*")?[^,]+')


def email_addresses(arg: str) -> list[str]:
    """Every address in an envelope argument, in order (``<a@b> SIZE=1``).

    Zeek's ``extract_email_addrs_vec`` semantics: the bare address without
    angle brackets, ``ORCPT=rfc822;`` prefixes removed as smtp/main.zeek does.
    """
    out = []
    for m in _EMAIL.finditer(arg):
        out.append(m.group(1).replace("ORCPT=rfc822;", "").replace("ORCPT=rfc822", ""))
    return out


def split_mime_addresses(value: str) -> list[str]:
    """The comma-separated parts of a To/Cc header value, stripped.

    As Zeek's ``split_mime_email_addresses``: a quoted display name may hold
    commas; groups (RFC 5322 3.4) are not understood.
    """
    seen: list[str] = []
    for m in _MIME_ADDR.finditer(value):
        part = m.group(0).strip()
        if part and part not in seen:
            seen.append(part)
    return seen


_IP_CANDIDATE = re.compile(r"[0-9A-Fa-f:.]*[:.][0-9A-Fa-f:.]*")
_WRAPS = {"[": "]", "(": ")", "{": "}", " ": " "}


def ip_addresses(value: str, check_wrapping: bool = False) -> list[str]:
    """IPv4 and IPv6 addresses in ``value``, in order.

    With ``check_wrapping``, only addresses that are the whole value or sit
    between matching brackets, parentheses, braces or spaces count (Zeek's
    ``extract_ip_addresses``), so that a version number in a Received header
    is not taken for an address.
    """
    out = []
    for m in _IP_CANDIDATE.finditer(value):
        candidate = m.group(0).strip(".:") if ":" not in m.group(0) else m.group(0)
        try:
            ipaddress.ip_address(candidate)
        except ValueError:
            continue
        if check_wrapping:
            start = value.find(candidate, m.start())
            end = start + len(candidate)
            before = value[start - 1] if start > 0 else ""
            after = value[end] if end < len(value) else ""
            whole = start == 0 and end == len(value)
            if not whole and (not before or _WRAPS.get(before) != after):
                continue
        out.append(candidate)
    return out
