"""Security blobs: SPNEGO (``gssapi``), NTLMSSP (``ntlm``), Kerberos (``krb``).

SMB session setup and DCE-RPC authentication carry one of:

- a GSS-API initial context token (RFC 2743 3.1: ``[APPLICATION 0]``
  with a mechanism OID) holding SPNEGO's NegTokenInit (RFC 4178 4.2.1) or
  directly a Kerberos token (RFC 4121 4.1);
- a bare SPNEGO NegTokenInit ``[0]`` or NegTokenResp ``[1]``;
- a bare NTLMSSP message ([MS-NLMP] 2.2).

Zeek hands these to its GSSAPI analyzer, which confirms ``gssapi`` when
SPNEGO parses and passes the mechanism token on to its NTLM or KRB
analyzer, which confirm in turn.
"""

from __future__ import annotations

from sensor.proto import asn1, krb

NTLMSSP = b"NTLMSSP\x00"
# Object identifiers, DER-encoded with their tag and length.
OID_SPNEGO = b"\x06\x06\x2b\x06\x01\x05\x05\x02"  # 1.3.6.1.5.5.2
OID_KRB5 = b"\x06\x09\x2a\x86\x48\x86\xf7\x12\x01\x02\x02"  # 1.2.840.113554.1.2.2
OID_MS_KRB5 = b"\x06\x09\x2a\x86\x48\x82\xf7\x12\x01\x02\x02"  # 1.2.840.48018.1.2.2


def ntlm(blob: bytes) -> bool:
    """An NTLMSSP NEGOTIATE, CHALLENGE or AUTHENTICATE message."""
    return (
        blob.startswith(NTLMSSP)
        and len(blob) >= 12
        and int.from_bytes(blob[8:12], "little") in (1, 2, 3)
    )


def _mech_token(tok: bytes) -> list[str]:
    """Names for the token SPNEGO carries for the chosen mechanism."""
    if ntlm(tok):
        return ["ntlm"]
    if krb_token(tok):
        return ["krb"]
    return []


def krb_token(tok: bytes) -> bool:
    """A Kerberos GSS token (RFC 4121 4.1: OID, two-byte TOK_ID, message)."""
    if tok[:1] == b"\x60":
        start = _lenient_start(tok)
        for oid in (OID_KRB5, OID_MS_KRB5):
            if tok.startswith(oid, start):
                return krb.message(tok, start + len(oid) + 2)
        return False
    return krb.message(tok)


def _lenient_start(tok: bytes) -> int:
    """Where the value of the outer ``[APPLICATION 0]`` starts.

    Its length is not checked: the token may be cut short by the capture
    limit, and only its first members are read.
    """
    n = tok[1] if len(tok) > 1 else 0
    return 2 + (n & 0x7F if n & 0x80 else 0)


def names(blob: bytes) -> list[str]:
    """The services Zeek would confirm for one security blob, inner first."""
    if not blob:
        return []
    if ntlm(blob):
        return ["ntlm"]
    first = blob[0]
    if first == 0x60:
        start = _lenient_start(blob)
        if blob.startswith(OID_SPNEGO, start):
            return _spnego(blob, start + len(OID_SPNEGO))
        if krb_token(blob):
            return ["krb"]
        return []
    if first in (0xA0, 0xA1):
        return _spnego(blob, 0)
    return []


def _spnego(blob: bytes, off: int) -> list[str]:
    """NegTokenInit ``[0]`` or NegTokenResp ``[1]`` at ``off``.

    Lengths are clipped to what was captured: a Kerberos ticket makes
    these tokens long enough to be cut by the per-direction limit.
    """
    outer = asn1.tlv(blob, off, clip=True)
    if outer is None or outer[0] not in (0xA0, 0xA1):
        return []
    seq = asn1.tlv(blob, outer[1], outer[2], clip=True)
    if seq is None or seq[0] != 0x30:
        return []
    found = ["gssapi"]
    # mechToken is [2] in NegTokenInit, responseToken [2] in NegTokenResp.
    tok = asn1.child(blob, seq[1], seq[2], 0xA2, clip=True)
    if tok is not None:
        octets = asn1.tlv(blob, tok[0], tok[1], clip=True)
        if octets is not None and octets[0] == 0x04:
            found[:0] = _mech_token(blob[octets[1] : octets[2]])
    return found
