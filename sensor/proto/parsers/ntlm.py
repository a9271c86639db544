"""NTLMSSP messages (MS-NLMP 2.2.1) from bytes to records.

NEGOTIATE, CHALLENGE and AUTHENTICATE share a header: the signature
``NTLMSSP\\0`` and a 32-bit message type. Their variable fields are
(length, max length, offset) triples pointing into the message, offsets
counted from the signature; each one is checked against the bytes there
are. Strings are UTF-16LE when the Unicode flag is set, else OEM (read as
Latin-1).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

SIGNATURE = b"NTLMSSP\x00"
NEGOTIATE, CHALLENGE, AUTHENTICATE = 1, 2, 3
#: NTLMSSP_NEGOTIATE_UNICODE (MS-NLMP 2.2.2.5, flag A).
FLAG_UNICODE = 0x00000001
#: AV_PAIR ids (MS-NLMP 2.2.2.1) that ntlm.log reports.
AV_EOL, AV_NB_COMPUTER, AV_DNS_COMPUTER, AV_DNS_TREE = 0, 1, 3, 5
#: AV_PAIRs read from one CHALLENGE before giving up (there are about ten).
MAX_AV_PAIRS = 64


class NTLMError(ValueError):
    """The bytes are not a well-formed NTLMSSP message."""


@dataclass(slots=True)
class NTLMMessage:
    """The fields of one NTLMSSP message that ntlm.log uses; unset is None."""

    type: int
    flags: int = 0
    domain: str | None = None  # NEGOTIATE, AUTHENTICATE
    workstation: str | None = None  # NEGOTIATE, AUTHENTICATE
    user: str | None = None  # AUTHENTICATE
    nb_computer_name: str | None = None  # CHALLENGE target info
    dns_computer_name: str | None = None
    dns_tree_name: str | None = None


def _field(buf: bytes, at: int, what: str) -> bytes:
    """The bytes a (length, max length, offset) triple at ``at`` points to."""
    if at + 8 > len(buf):
        raise NTLMError(f"ntlm: {what}: header ends at {at + 8} > {len(buf)} bytes")
    length, _, offset = struct.unpack_from("<HHI", buf, at)
    if length and offset + length > len(buf):
        raise NTLMError(
            f"ntlm: {what}: {length} bytes at offset {offset} past {len(buf)} bytes"
        )
    return buf[offset : offset + length] if length else b""


def _text(raw: bytes, unicode: bool) -> str | None:
    # An empty field is absent, as Zeek leaves it unset.
    if not raw:
        return None
    if unicode:
        return raw.decode("utf-16-le", "backslashreplace")
    return raw.decode("latin-1")


def _target_info(raw: bytes, msg: NTLMMessage) -> None:
    """AV_PAIR list (MS-NLMP 2.2.2.1); always UTF-16LE."""
    off = 0
    for _ in range(MAX_AV_PAIRS):
        if off + 4 > len(raw):
            return
        av_id, av_len = struct.unpack_from("<HH", raw, off)
        value = raw[off + 4 : off + 4 + av_len]
        if av_id == AV_EOL or len(value) < av_len:
            return
        if av_id == AV_NB_COMPUTER:
            msg.nb_computer_name = _text(value, True)
        elif av_id == AV_DNS_COMPUTER:
            msg.dns_computer_name = _text(value, True)
        elif av_id == AV_DNS_TREE:
            msg.dns_tree_name = _text(value, True)
        off += 4 + av_len


def parse_ntlm(buf: bytes) -> NTLMMessage:
    """Read the NTLMSSP message at the start of ``buf``.

    Raises :class:`NTLMError` saying what was wrong.
    """
    if len(buf) < 12 or not buf.startswith(SIGNATURE):
        raise NTLMError(f"ntlm: no NTLMSSP signature in {len(buf)} bytes")
    mtype = struct.unpack_from("<I", buf, 8)[0]
    msg = NTLMMessage(mtype)
    if mtype == NEGOTIATE:
        # Domain and workstation are present only with their flags, and are
        # OEM strings (MS-NLMP 2.2.1.1); Zeek logs nothing from NEGOTIATE.
        if len(buf) < 16:
            raise NTLMError(f"ntlm: NEGOTIATE of {len(buf)} bytes < 16")
        msg.flags = struct.unpack_from("<I", buf, 12)[0]
    elif mtype == CHALLENGE:
        if len(buf) < 48:
            raise NTLMError(f"ntlm: CHALLENGE of {len(buf)} bytes < 48")
        msg.flags = struct.unpack_from("<I", buf, 20)[0]
        _target_info(_field(buf, 40, "TargetInfo"), msg)
    elif mtype == AUTHENTICATE:
        if len(buf) < 64:
            raise NTLMError(f"ntlm: AUTHENTICATE of {len(buf)} bytes < 64")
        msg.flags = struct.unpack_from("<I", buf, 60)[0]
        unicode = bool(msg.flags & FLAG_UNICODE)
        msg.domain = _text(_field(buf, 28, "DomainName"), unicode)
        msg.user = _text(_field(buf, 36, "UserName"), unicode)
        msg.workstation = _text(_field(buf, 44, "Workstation"), unicode)
    else:
        raise NTLMError(f"ntlm: message type {mtype} is not 1, 2 or 3")
    return msg
