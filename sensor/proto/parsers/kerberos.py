"""Kerberos KDC messages (RFC 4120 5.4, 5.9.1) from DER bytes to records.

Only what kerberos.log needs is read: the principals, realm, times and
KDC options of a request (AS-REQ, TGS-REQ), the ticket of a reply (AS-REP,
TGS-REP) and the code of a KRB-ERROR. The reader is the bounded TLV walk of
:mod:`sensor.proto.asn1`; every value must lie inside its parent, and
principal names are capped at :data:`MAX_NAME_PARTS` components, so a hostile
message costs at most a pass over its own bytes. A message that does not
follow the grammar gives :class:`KerberosError` with what was expected.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field

from sensor.proto.asn1 import child, children, tlv

#: APPLICATION tags of the messages read here (RFC 4120 5.10).
AS_REQ, AS_REP, TGS_REQ, TGS_REP, KRB_ERROR = 0x6A, 0x6B, 0x6C, 0x6D, 0x7E
#: Components of one principal name kept; the rest are dropped.
MAX_NAME_PARTS = 16
#: Encryption types requested that are kept (a real client asks for < 10).
MAX_ETYPES = 32

#: Encryption type names as Zeek's kerberos.log writes them (RFC 3961 8,
#: RFC 4757, RFC 3962, RFC 6803, RFC 8009).
CIPHER_NAMES: dict[int, str] = {
    1: "des-cbc-crc",
    2: "des-cbc-md4",
    3: "des-cbc-md5",
    5: "des3-cbc-md5",
    7: "des3-cbc-sha1",
    9: "dsaWithSHA1-CmsOID",
    10: "md5WithRSAEncryption-CmsOID",
    11: "sha1WithRSAEncryption-CmsOID",
    12: "rc2CBC-EnvOID",
    13: "rsaEncryption-EnvOID",
    14: "rsaES-OAEP-ENV-OID",
    15: "des-ede3-cbc-Env-OID",
    16: "des3-cbc-sha1-kd",
    17: "aes128-cts-hmac-sha1-96",
    18: "aes256-cts-hmac-sha1-96",
    19: "aes128-cts-hmac-sha256-128",
    20: "aes256-cts-hmac-sha384-192",
    23: "rc4-hmac",
    24: "rc4-hmac-exp",
    25: "camellia128-cts-cmac",
    26: "camellia256-cts-cmac",
    65: "subkey-keymaterial",
    # Microsoft's private RC4 variants (negative numbers, [MS-KILE] and
    # Windows' ntsecapi.h); legacy clients and credential-theft tools such
    # as overpass-the-hash ask for them, tickets never carry them.
    -128: "rc4-md4",
    -133: "rc4-hmac-old",
    -135: "rc4-hmac-old-exp",
}

#: Error codes (RFC 4120 7.5.9) by the names kerberos.log uses.
ERROR_NAMES: dict[int, str] = {
    0: "KDC_ERR_NONE",
    1: "KDC_ERR_NAME_EXP",
    2: "KDC_ERR_SERVICE_EXP",
    3: "KDC_ERR_BAD_PVNO",
    4: "KDC_ERR_C_OLD_MAST_KVNO",
    5: "KDC_ERR_S_OLD_MAST_KVNO",
    6: "KDC_ERR_C_PRINCIPAL_UNKNOWN",
    7: "KDC_ERR_S_PRINCIPAL_UNKNOWN",
    8: "KDC_ERR_PRINCIPAL_NOT_UNIQUE",
    9: "KDC_ERR_NULL_KEY",
    10: "KDC_ERR_CANNOT_POSTDATE",
    11: "KDC_ERR_NEVER_VALID",
    12: "KDC_ERR_POLICY",
    13: "KDC_ERR_BADOPTION",
    14: "KDC_ERR_ETYPE_NOSUPP",
    15: "KDC_ERR_SUMTYPE_NOSUPP",
    16: "KDC_ERR_PADATA_TYPE_NOSUPP",
    17: "KDC_ERR_TRTYPE_NOSUPP",
    18: "KDC_ERR_CLIENT_REVOKED",
    19: "KDC_ERR_SERVICE_REVOKED",
    20: "KDC_ERR_TGT_REVOKED",
    21: "KDC_ERR_CLIENT_NOTYET",
    22: "KDC_ERR_SERVICE_NOTYET",
    23: "KDC_ERR_KEY_EXPIRED",
    24: "KDC_ERR_PREAUTH_FAILED",
    25: "KDC_ERR_PREAUTH_REQUIRED",
    26: "KDC_ERR_SERVER_NOMATCH",
    27: "KDC_ERR_MUST_USE_USER2USER",
    28: "KDC_ERR_PATH_NOT_ACCEPTED",
    29: "KDC_ERR_SVC_UNAVAILABLE",
    31: "KRB_AP_ERR_BAD_INTEGRITY",
    32: "KRB_AP_ERR_TKT_EXPIRED",
    33: "KRB_AP_ERR_TKT_NYV",
    34: "KRB_AP_ERR_REPEAT",
    35: "KRB_AP_ERR_NOT_US",
    36: "KRB_AP_ERR_BADMATCH",
    37: "KRB_AP_ERR_SKEW",
    38: "KRB_AP_ERR_BADADDR",
    39: "KRB_AP_ERR_BADVERSION",
    40: "KRB_AP_ERR_MSG_TYPE",
    41: "KRB_AP_ERR_MODIFIED",
    42: "KRB_AP_ERR_BADORDER",
    44: "KRB_AP_ERR_BADKEYVER",
    45: "KRB_AP_ERR_NOKEY",
    46: "KRB_AP_ERR_MUT_FAIL",
    47: "KRB_AP_ERR_BADDIRECTION",
    48: "KRB_AP_ERR_METHOD",
    49: "KRB_AP_ERR_BADSEQ",
    50: "KRB_AP_ERR_INAPP_CKSUM",
    51: "KRB_AP_PATH_NOT_ACCEPTED",
    52: "KRB_ERR_RESPONSE_TOO_BIG",
    60: "KRB_ERR_GENERIC",
    61: "KRB_ERR_FIELD_TOOLONG",
    62: "KDC_ERROR_CLIENT_NOT_TRUSTED",
    63: "KDC_ERROR_KDC_NOT_TRUSTED",
    64: "KDC_ERROR_INVALID_SIG",
    65: "KDC_ERR_KEY_TOO_WEAK",
    66: "KDC_ERR_CERTIFICATE_MISMATCH",
    67: "KRB_AP_ERR_NO_TGT",
    68: "KDC_ERR_WRONG_REALM",
    69: "KRB_AP_ERR_USER_TO_USER_REQUIRED",
    70: "KDC_ERR_CANT_VERIFY_CERTIFICATE",
    71: "KDC_ERR_INVALID_CERTIFICATE",
    72: "KDC_ERR_REVOKED_CERTIFICATE",
    73: "KDC_ERR_REVOCATION_STATUS_UNKNOWN",
    74: "KDC_ERR_REVOCATION_STATUS_UNAVAILABLE",
    75: "KDC_ERR_CLIENT_NAME_MISMATCH",
    76: "KDC_ERR_KDC_NAME_MISMATCH",
}


class KerberosError(ValueError):
    """The bytes are not the Kerberos message their tag announces."""


def cipher_name(etype: int) -> str:
    """The kerberos.log name of an encryption type number."""
    return CIPHER_NAMES.get(etype, f"unknown-{etype}")


@dataclass(slots=True)
class KDCMessage:
    """What kerberos.log takes from one KDC message; unset fields are None."""

    tag: int
    client: str | None = None  # cname components joined by "/"
    realm: str | None = None  # the request's realm, or the reply's crealm
    service: str | None = None  # sname (of the ticket, in a reply)
    from_time: float | None = None
    till: float | None = None
    forwardable: bool | None = None
    renewable: bool | None = None
    etypes: list[int] = field(default_factory=list)  # asked for, in order
    ticket_etype: int | None = None  # of the ticket's enc-part, in a reply
    error_code: int | None = None
    error_text: str | None = None


def _need(item: tuple[int, int] | None, what: str) -> tuple[int, int]:
    if item is None:
        raise KerberosError(f"kerberos: missing {what}")
    return item


def _inner(buf: bytes, span: tuple[int, int], tag: int, what: str) -> tuple[int, int]:
    """The value of the single ``tag`` element that fills an explicit tag."""
    t = tlv(buf, span[0], span[1])
    if t is None or t[0] != tag:
        got = "nothing" if t is None else f"tag 0x{t[0]:02x}"
        raise KerberosError(f"kerberos: {what}: expected tag 0x{tag:02x}, got {got}")
    return t[1], t[2]


def _int(buf: bytes, span: tuple[int, int], what: str) -> int:
    s, e = _inner(buf, span, 0x02, what)
    if not 0 < e - s <= 8:
        raise KerberosError(f"kerberos: {what}: integer of {e - s} bytes")
    return int.from_bytes(buf[s:e], "big", signed=True)


def _text(buf: bytes, span: tuple[int, int]) -> str:
    # KerberosString is a GeneralString restricted to IA5 (RFC 4120 5.2.1);
    # Windows sends UTF-8 in practice.
    return buf[span[0] : span[1]].decode("utf-8", "backslashreplace")


def _string(buf: bytes, span: tuple[int, int], what: str) -> str:
    return _text(buf, _inner(buf, span, 0x1B, what))


def _principal(buf: bytes, span: tuple[int, int]) -> str:
    """PrincipalName (RFC 4120 5.2.2): its components joined by "/"."""
    seq = _inner(buf, span, 0x30, "PrincipalName")
    names = _need(child(buf, seq[0], seq[1], 0xA1), "name-string")
    parts = _inner(buf, names, 0x30, "name-string")
    out: list[str] = []
    for tag, s, e in children(buf, parts[0], parts[1]):
        if len(out) == MAX_NAME_PARTS:
            break
        if tag == 0x1B:
            out.append(_text(buf, (s, e)))
    return "/".join(out)


def _time(buf: bytes, span: tuple[int, int], what: str) -> float:
    """KerberosTime: GeneralizedTime "YYYYMMDDHHMMSSZ" (RFC 4120 5.2.3)."""
    raw = buf[slice(*_inner(buf, span, 0x18, what))]
    if len(raw) != 15 or raw[-1:] != b"Z" or not raw[:14].isdigit():
        raise KerberosError(f"kerberos: {what}: bad KerberosTime {raw[:20]!r}")
    v = [
        int(raw[i : i + n])
        for i, n in ((0, 4), (4, 2), (6, 2), (8, 2), (10, 2), (12, 2))
    ]
    try:
        return float(calendar.timegm((v[0], v[1], v[2], v[3], v[4], v[5], 0, 0, 0)))
    except (ValueError, OverflowError) as exc:
        raise KerberosError(f"kerberos: {what}: {exc}") from None


def _request(buf: bytes, seq: tuple[int, int], msg: KDCMessage) -> None:
    """KDC-REQ (RFC 4120 5.4.1): the fields of its req-body [4]."""
    body = _inner(buf, _need(child(buf, *seq, 0xA4), "req-body"), 0x30, "req-body")
    opts = _need(child(buf, *body, 0xA0), "kdc-options")
    bits = buf[slice(*_inner(buf, opts, 0x03, "kdc-options"))]
    # The first octet counts unused bits; flag 1 is forwardable, flag 8
    # renewable (RFC 4120 5.4.1, KDCOptions).
    if len(bits) < 3:
        raise KerberosError(f"kerberos: kdc-options: {len(bits)} bytes < 3")
    msg.forwardable = bool(bits[1] & 0x40)
    msg.renewable = bool(bits[2] & 0x80)
    for tag, s, e in children(buf, *body):
        if tag == 0xA1:
            msg.client = _principal(buf, (s, e))
        elif tag == 0xA2:
            msg.realm = _string(buf, (s, e), "realm")
        elif tag == 0xA3:
            msg.service = _principal(buf, (s, e))
        elif tag == 0xA4:
            msg.from_time = _time(buf, (s, e), "from")
        elif tag == 0xA5:
            msg.till = _time(buf, (s, e), "till")
        elif tag == 0xA8:
            seq8 = _inner(buf, (s, e), 0x30, "etype")
            for t, es, ee in children(buf, *seq8):
                if t == 0x02 and len(msg.etypes) < MAX_ETYPES and 0 < ee - es <= 4:
                    msg.etypes.append(int.from_bytes(buf[es:ee], "big", signed=True))


def _reply(buf: bytes, seq: tuple[int, int], msg: KDCMessage) -> None:
    """KDC-REP (RFC 4120 5.4.2): crealm, cname and the ticket's sname, etype."""
    msg.realm = _string(buf, _need(child(buf, *seq, 0xA3), "crealm"), "crealm")
    msg.client = _principal(buf, _need(child(buf, *seq, 0xA4), "cname"))
    ticket = _inner(buf, _need(child(buf, *seq, 0xA5), "ticket"), 0x61, "Ticket")
    tseq = _inner(buf, ticket, 0x30, "Ticket")
    msg.service = _principal(buf, _need(child(buf, *tseq, 0xA2), "sname"))
    enc = _inner(buf, _need(child(buf, *tseq, 0xA3), "enc-part"), 0x30, "enc-part")
    msg.ticket_etype = _int(buf, _need(child(buf, *enc, 0xA0), "etype"), "etype")


def _error(buf: bytes, seq: tuple[int, int], msg: KDCMessage) -> None:
    """KRB-ERROR (RFC 4120 5.9.1)."""
    code = _need(child(buf, *seq, 0xA6), "error-code")
    msg.error_code = _int(buf, code, "error-code")
    for tag, s, e in children(buf, *seq):
        if tag == 0xA7:
            msg.realm = _string(buf, (s, e), "crealm")
        elif tag == 0xA8:
            msg.client = _principal(buf, (s, e))
        elif tag == 0xAA:
            msg.service = _principal(buf, (s, e))
        elif tag == 0xAB:
            msg.error_text = _string(buf, (s, e), "e-text")


def parse_kdc_message(buf: bytes) -> KDCMessage:
    """Read one AS/TGS request or reply or KRB-ERROR from ``buf``.

    Raises :class:`KerberosError` for other messages and malformed ones.
    """
    top = tlv(buf, 0)
    if top is None:
        raise KerberosError(f"kerberos: no whole message in {len(buf)} bytes")
    tag = top[0]
    if tag not in (AS_REQ, AS_REP, TGS_REQ, TGS_REP, KRB_ERROR):
        raise KerberosError(f"kerberos: tag 0x{tag:02x} is not a KDC message")
    seq = _inner(buf, (top[1], top[2]), 0x30, "message")
    msg = KDCMessage(tag)
    if tag in (AS_REQ, TGS_REQ):
        _request(buf, seq, msg)
    elif tag in (AS_REP, TGS_REP):
        _reply(buf, seq, msg)
    else:
        _error(buf, seq, msg)
    return msg


# -- AP exchange inside GSS-API tokens (SMB session setup, DCE-RPC auth) ----

#: APPLICATION tags of the AP exchange (RFC 4120 5.5.1, 5.5.2).
AP_REQ, AP_REP = 0x6E, 0x6F
# DER-encoded object identifiers of the mechanisms (tag and length included).
_OID_SPNEGO = b"\x06\x06\x2b\x06\x01\x05\x05\x02"  # 1.3.6.1.5.5.2
_OID_KRB5 = (
    b"\x06\x09\x2a\x86\x48\x86\xf7\x12\x01\x02\x02",  # 1.2.840.113554.1.2.2
    b"\x06\x09\x2a\x86\x48\x82\xf7\x12\x01\x02\x02",  # Microsoft's variant
)
#: Wrappers unwrapped at most; SPNEGO nests two deep in practice.
_MAX_DEPTH = 4


@dataclass(slots=True)
class APMessage:
    """What kerberos.log takes from an AP-REQ, AP-REP or KRB-ERROR."""

    tag: int
    realm: str | None = None  # the ticket's realm (AP-REQ)
    service: str | None = None  # the ticket's sname (AP-REQ)
    ticket_etype: int | None = None  # the ticket's enc-part etype (AP-REQ)
    error_code: int | None = None
    error_text: str | None = None


def unwrap_gss(blob: bytes, depth: int = 0) -> bytes | None:
    """The Kerberos message inside a security blob, or None if it holds none.

    Accepts a GSS-API initial context token (RFC 2743 3.1) with the
    Kerberos mechanism (RFC 4121 4.1: OID, two-byte TOK_ID, message) or
    SPNEGO (RFC 4178 4.2: NegTokenInit's mechToken, NegTokenResp's
    responseToken), bare SPNEGO, or a bare AP-REQ/AP-REP/KRB-ERROR.
    """
    if not blob or depth > _MAX_DEPTH:
        return None
    first = blob[0]
    if first in (AP_REQ, AP_REP, KRB_ERROR):
        return blob
    if first == 0x60:
        top = tlv(blob, 0, clip=True)
        if top is None:
            return None
        start = top[1]
        if blob.startswith(_OID_SPNEGO, start):
            return unwrap_gss(blob[start + len(_OID_SPNEGO) : top[2]], depth + 1)
        for oid in _OID_KRB5:
            if blob.startswith(oid, start):
                inner = blob[start + len(oid) + 2 : top[2]]
                return inner if inner[:1] in (b"\x6e", b"\x6f", b"\x7e") else None
        return None
    if first in (0xA0, 0xA1):
        outer = tlv(blob, 0, clip=True)
        seq = None if outer is None else tlv(blob, outer[1], outer[2], clip=True)
        if seq is None or seq[0] != 0x30:
            return None
        tok = child(blob, seq[1], seq[2], 0xA2, clip=True)
        octets = None if tok is None else tlv(blob, tok[0], tok[1], clip=True)
        if octets is None or octets[0] != 0x04:
            return None
        return unwrap_gss(blob[octets[1] : octets[2]], depth + 1)
    return None


def parse_ap_message(buf: bytes) -> APMessage:
    """Read an AP-REQ, AP-REP or KRB-ERROR; KerberosError if it is not one."""
    top = tlv(buf, 0)
    if top is None:
        raise KerberosError(f"kerberos: no whole message in {len(buf)} bytes")
    tag = top[0]
    if tag not in (AP_REQ, AP_REP, KRB_ERROR):
        raise KerberosError(f"kerberos: tag 0x{tag:02x} is not an AP message")
    seq = _inner(buf, (top[1], top[2]), 0x30, "message")
    msg = APMessage(tag)
    if tag == AP_REQ:
        # AP-REQ ticket [3] (RFC 4120 5.5.1); Ticket (5.3).
        span = _need(child(buf, *seq, 0xA3), "ticket")
        tseq = _inner(buf, _inner(buf, span, 0x61, "Ticket"), 0x30, "Ticket")
        msg.realm = _string(buf, _need(child(buf, *tseq, 0xA1), "realm"), "realm")
        msg.service = _principal(buf, _need(child(buf, *tseq, 0xA2), "sname"))
        enc = _inner(buf, _need(child(buf, *tseq, 0xA3), "enc-part"), 0x30, "enc-part")
        msg.ticket_etype = _int(buf, _need(child(buf, *enc, 0xA0), "etype"), "etype")
    elif tag == KRB_ERROR:
        kdc = KDCMessage(tag)
        _error(buf, seq, kdc)
        msg.error_code, msg.error_text = kdc.error_code, kdc.error_text
        msg.service = kdc.service
    return msg
