"""LDAPv3 messages (RFC 4511 4) from BER bytes to records.

Only what ldap.log and ldap_search.log need: the message id, the
operation, and per operation its object (DN), bind method and SASL
mechanism, a search's base, scope, alias dereferencing, filter (rendered
as RFC 4515 text) and attributes, a result's code and diagnostic message.

Messages after a SASL bind with GSSAPI or GSS-SPNEGO may be wrapped
(RFC 4752 3.3): a four-byte length, then a Kerberos wrap token. A CFX
token (RFC 4121 4.2.6.2) that only signs carries the message in the clear
after its header, rotated by its RRC; :func:`sasl_unwrap` recovers it.
Sealed tokens are encrypted and give None.

The reader is the bounded TLV walk of :mod:`sensor.proto.asn1`; filters
nest at most :data:`MAX_FILTER_DEPTH` deep and render to at most
:data:`MAX_FILTER_TEXT` characters. Malformed input gives
:class:`LDAPError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sensor.proto.asn1 import children, tlv

MAX_FILTER_DEPTH = 32
MAX_FILTER_TEXT = 4096
MAX_ATTRIBUTES = 64
#: Largest LDAP message accepted (Active Directory's default MaxReceiveBuffer
#: is 10 MB; search requests are small, but results may be large).
MAX_MESSAGE = 16 << 20

# protocolOp APPLICATION tags (RFC 4511 4.2 - 4.12), constructed form.
BIND_REQUEST, BIND_RESPONSE, UNBIND_REQUEST = 0x60, 0x61, 0x42
SEARCH_REQUEST, SEARCH_ENTRY, SEARCH_DONE, SEARCH_REFERENCE = 0x63, 0x64, 0x65, 0x73
MODIFY_REQUEST, MODIFY_RESPONSE = 0x66, 0x67
ADD_REQUEST, ADD_RESPONSE = 0x68, 0x69
DEL_REQUEST, DEL_RESPONSE = 0x4A, 0x6B
MODDN_REQUEST, MODDN_RESPONSE = 0x6C, 0x6D
COMPARE_REQUEST, COMPARE_RESPONSE = 0x6E, 0x6F
ABANDON_REQUEST = 0x50
EXTENDED_REQUEST, EXTENDED_RESPONSE = 0x77, 0x78

#: Request tag -> (opcode name as ldap.log writes it, response tag).
REQUESTS: dict[int, tuple[str, int | None]] = {
    BIND_REQUEST: ("bind", BIND_RESPONSE),
    UNBIND_REQUEST: ("unbind", None),
    MODIFY_REQUEST: ("modify", MODIFY_RESPONSE),
    ADD_REQUEST: ("add", ADD_RESPONSE),
    DEL_REQUEST: ("delete", DEL_RESPONSE),
    MODDN_REQUEST: ("modify DN", MODDN_RESPONSE),
    COMPARE_REQUEST: ("compare", COMPARE_RESPONSE),
    ABANDON_REQUEST: ("abandon", None),
    EXTENDED_REQUEST: ("extended", EXTENDED_RESPONSE),
}
RESPONSES = frozenset(
    {BIND_RESPONSE, SEARCH_DONE, MODIFY_RESPONSE, ADD_RESPONSE, DEL_RESPONSE,
     MODDN_RESPONSE, COMPARE_RESPONSE, EXTENDED_RESPONSE}
)  # fmt: skip

SCOPES = {0: "base", 1: "single", 2: "tree"}
DEREF = {0: "never", 1: "searching", 2: "finding", 3: "always"}
#: resultCode (RFC 4511 4.1.9) names as ldap.log writes them.
RESULTS = {
    0: "success", 1: "operations error", 2: "protocol error",
    3: "time limit exceeded", 4: "size limit exceeded", 5: "compare false",
    6: "compare true", 7: "auth method not supported",
    8: "stronger auth required", 10: "referral", 11: "admin limit exceeded",
    12: "unavailable critical extension", 13: "confidentiality required",
    14: "sasl bind in progress", 16: "no such attribute",
    17: "undefined attribute type", 18: "inappropriate matching",
    19: "constraint violation", 20: "attribute or value exists",
    21: "invalid attribute syntax", 32: "no such object", 33: "alias problem",
    34: "invalid DN syntax", 36: "alias dereferencing problem",
    48: "inappropriate authentication", 49: "invalid credentials",
    50: "insufficient access rights", 51: "busy", 52: "unavailable",
    53: "unwilling to perform", 54: "loop detect", 64: "naming violation",
    65: "object class violation", 66: "not allowed on non leaf",
    67: "not allowed on RDN", 68: "entry already exists",
    69: "object class mods prohibited", 71: "affects multiple DSAs", 80: "other",
}  # fmt: skip


class LDAPError(ValueError):
    """The bytes are not the LDAP message they claim to be."""


@dataclass(slots=True)
class LDAPMessage:
    """One LDAP message; fields its operation lacks stay at their defaults."""

    message_id: int
    op: int
    object: str | None = None  # entry DN, bind name, search base
    version: int | None = None  # bind
    bind_sasl: bool = False
    mechanism: str | None = None  # SASL mechanism of a bind
    credentials: bytes = b""  # SASL credentials (a GSS token) of a bind
    scope: str | None = None
    deref: str | None = None
    filter: str | None = None
    attributes: list[str] = field(default_factory=list)
    result: int | None = None
    diagnostic: str | None = None
    server_creds: bytes = b""  # serverSaslCreds of a bind response
    oid: str | None = None  # extended request name


def message_length(buf: bytes) -> int | None:
    """Length of the whole BER message at the start of ``buf``, if known."""
    if len(buf) < 2:
        return None
    if buf[0] != 0x30:
        raise LDAPError(f"ldap: message starts with 0x{buf[0]:02x}, expected 0x30")
    n = buf[1]
    if not n & 0x80:
        return 2 + n
    k = n & 0x7F
    if k == 0 or k > 4:
        raise LDAPError(f"ldap: length of {k} bytes")
    if len(buf) < 2 + k:
        return None
    return 2 + k + int.from_bytes(buf[2 : 2 + k], "big")


def sasl_unwrap(token: bytes) -> bytes | None:
    """The LDAP message inside a SASL GSS wrap token; None if sealed or unknown.

    CFX Wrap (RFC 4121 4.2.6.2): TOK_ID 05 04, flags (bit 1 sealed),
    filler, EC, RRC, sequence number; then the data rotated right by RRC,
    with EC bytes of checksum at its end when not sealed.
    """
    if len(token) < 16 or token[:2] != b"\x05\x04" or token[3] != 0xFF:
        return None
    if token[2] & 0x02:
        return None  # sealed: encrypted
    ec = int.from_bytes(token[4:6], "big")
    rrc = int.from_bytes(token[6:8], "big")
    body = token[16:]
    if not body:
        return None
    rrc %= len(body)
    body = body[rrc:] + body[:rrc]
    if ec > len(body):
        return None
    return body[: len(body) - ec]


def _int(buf: bytes, s: int, e: int) -> int:
    if not 0 < e - s <= 8:
        raise LDAPError(f"ldap: integer of {e - s} bytes")
    return int.from_bytes(buf[s:e], "big", signed=True)


def _str(buf: bytes, s: int, e: int) -> str:
    return buf[s:e].decode("utf-8", "backslashreplace")


def _members(buf: bytes, s: int, e: int) -> list[tuple[int, int, int]]:
    return list(children(buf, s, e))


def _escape(value: str) -> str:
    # RFC 4515 3: the characters that must be escaped in assertion values.
    out = []
    for ch in value:
        if ch in "*()\\\0":
            out.append(f"\\{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def render_filter(buf: bytes, tag: int, s: int, e: int, depth: int = 0) -> str:
    """RFC 4515 text of the Filter (RFC 4511 4.5.1.7) with ``tag`` at s:e."""
    if depth > MAX_FILTER_DEPTH:
        raise LDAPError("ldap: filter nested too deep")
    if tag in (0xA0, 0xA1):  # and, or
        op = "&" if tag == 0xA0 else "|"
        inner = "".join(
            render_filter(buf, t, cs, ce, depth + 1)
            for t, cs, ce in children(buf, s, e)
        )
        return f"({op}{inner})"
    if tag == 0xA2:  # not
        inner_tlv = tlv(buf, s, e)
        if inner_tlv is None:
            raise LDAPError("ldap: empty not filter")
        t, cs, ce = inner_tlv
        return f"(!{render_filter(buf, t, cs, ce, depth + 1)})"
    if tag == 0x87:  # present
        return f"({_str(buf, s, e)}=*)"
    if tag in (0xA3, 0xA5, 0xA6, 0xA8):  # equality, >=, <=, approx
        m = _members(buf, s, e)
        if len(m) < 2:
            raise LDAPError("ldap: attribute value assertion without a value")
        op = {0xA3: "=", 0xA5: ">=", 0xA6: "<=", 0xA8: "~="}[tag]
        attr, val = _str(buf, m[0][1], m[0][2]), _str(buf, m[1][1], m[1][2])
        return f"({attr}{op}{_escape(val)})"
    if tag == 0xA4:  # substrings
        m = _members(buf, s, e)
        if len(m) < 2:
            raise LDAPError("ldap: substring filter without substrings")
        attr = _str(buf, m[0][1], m[0][2])
        initial, anys, final = "", [], ""
        for t, cs, ce in children(buf, m[1][1], m[1][2]):
            text = _escape(_str(buf, cs, ce))
            if t == 0x80:
                initial = text
            elif t == 0x81:
                anys.append(text)
            elif t == 0x82:
                final = text
        return f"({attr}={initial}*{''.join(a + '*' for a in anys)}{final})"
    if tag == 0xA9:  # extensibleMatch
        rule = attr = value = ""
        dn = False
        for t, cs, ce in children(buf, s, e):
            if t == 0x81:
                rule = _str(buf, cs, ce)
            elif t == 0x82:
                attr = _str(buf, cs, ce)
            elif t == 0x83:
                value = _str(buf, cs, ce)
            elif t == 0x84:
                dn = ce > cs and buf[cs] != 0
        return f"({attr}{':dn' if dn else ''}{':' + rule if rule else ''}:={_escape(value)})"
    raise LDAPError(f"ldap: filter tag 0x{tag:02x}")


def _ldap_result(buf: bytes, s: int, e: int, msg: LDAPMessage) -> None:
    """LDAPResult (RFC 4511 4.1.9): resultCode, matchedDN, diagnosticMessage."""
    m = _members(buf, s, e)
    if len(m) < 3 or m[0][0] != 0x0A:
        raise LDAPError("ldap: LDAPResult without resultCode, matchedDN, message")
    msg.result = _int(buf, m[0][1], m[0][2])
    if m[2][2] > m[2][1]:
        msg.diagnostic = _str(buf, m[2][1], m[2][2])
    for t, cs, ce in m[3:]:
        if t == 0x87 and msg.op == BIND_RESPONSE:
            msg.server_creds = buf[cs:ce]


def parse_message(buf: bytes) -> LDAPMessage:
    """Read one whole LDAPMessage (RFC 4511 4.2.1)."""
    top = tlv(buf, 0)
    if top is None or top[0] != 0x30:
        raise LDAPError(f"ldap: no whole message in {len(buf)} bytes")
    m = _members(buf, top[1], top[2])
    if len(m) < 2 or m[0][0] != 0x02:
        raise LDAPError("ldap: message without messageID and protocolOp")
    msg = LDAPMessage(_int(buf, m[0][1], m[0][2]), m[1][0])
    op, s, e = m[1]

    if op == BIND_REQUEST:
        parts = _members(buf, s, e)
        if len(parts) < 3:
            raise LDAPError("ldap: bind request without version, name, authentication")
        msg.version = _int(buf, parts[0][1], parts[0][2])
        msg.object = _str(buf, parts[1][1], parts[1][2])
        auth_tag, as_, ae = parts[2]
        if auth_tag == 0xA3:
            msg.bind_sasl = True
            sasl = _members(buf, as_, ae)
            if sasl:
                msg.mechanism = _str(buf, sasl[0][1], sasl[0][2])
            if len(sasl) > 1:
                msg.credentials = buf[sasl[1][1] : sasl[1][2]]
    elif op == SEARCH_REQUEST:
        parts = _members(buf, s, e)
        if len(parts) < 8:
            raise LDAPError(f"ldap: search request of {len(parts)} parts < 8")
        msg.object = _str(buf, parts[0][1], parts[0][2])
        msg.scope = SCOPES.get(_int(buf, parts[1][1], parts[1][2]))
        msg.deref = DEREF.get(_int(buf, parts[2][1], parts[2][2]))
        ft, fs, fe = parts[6]
        text = render_filter(buf, ft, fs, fe)
        msg.filter = text[:MAX_FILTER_TEXT]
        for t, cs, ce in children(buf, parts[7][1], parts[7][2]):
            if t == 0x04 and len(msg.attributes) < MAX_ATTRIBUTES:
                msg.attributes.append(_str(buf, cs, ce))
    elif op in RESPONSES:
        _ldap_result(buf, s, e, msg)
    elif op in (MODIFY_REQUEST, ADD_REQUEST, MODDN_REQUEST, COMPARE_REQUEST):
        first = tlv(buf, s, e)
        if first is not None and first[0] == 0x04:
            msg.object = _str(buf, first[1], first[2])
    elif op == DEL_REQUEST:
        msg.object = _str(buf, s, e)
    elif op == EXTENDED_REQUEST:
        first = tlv(buf, s, e)
        if first is not None and first[0] == 0x80:
            msg.oid = _str(buf, first[1], first[2])
    return msg
