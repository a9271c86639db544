"""Small byte builders for service-detection tests (one message each).

Every builder follows the cited specification closely enough for the
detector's checks, and no further: fields it does not read are zero.
"""

from __future__ import annotations

import struct


def der(tag: int, body: bytes) -> bytes:
    """One DER tag-length-value (X.690 8.1)."""
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + body


def dns(qr: bool = False, opcode: int = 0, answers: int = 0) -> bytes:
    """A DNS message for example.com A (RFC 1035 4.1)."""
    flags = (0x8000 if qr else 0) | (opcode << 11) | 0x0100
    msg = struct.pack("!6H", 0x1234, flags, 1, answers, 0, 0)
    msg += b"\x07example\x03com\x00" + struct.pack("!HH", 1, 1)
    for _ in range(answers):
        msg += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + b"\x0a\x00\x00\x01"
    return msg


def tls_client_hello() -> bytes:
    """A TLS 1.2 ClientHello record (RFC 5246 7.4.1.2)."""
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x00\x2f" + b"\x01\x00"
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs


def tls_server_hello() -> bytes:
    """A TLS 1.2 ServerHello record (RFC 5246 7.4.1.3)."""
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x2f" + b"\x00"
    hs = b"\x02" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x03" + len(hs).to_bytes(2, "big") + hs


def ssh_packet(msg_type: int, payload: bytes = b"") -> bytes:
    """An unencrypted SSH binary packet (RFC 4253 6)."""
    body = bytes([msg_type]) + payload
    pad = 8 - (5 + len(body)) % 8 + 4
    return struct.pack("!IB", 1 + len(body) + pad, pad) + body + bytes(pad)


def ntlmssp(kind: int) -> bytes:
    """An NTLMSSP message header ([MS-NLMP] 2.2.1) of type 1, 2 or 3."""
    return b"NTLMSSP\x00" + struct.pack("<I", kind) + bytes(20)


OID_SPNEGO = b"\x06\x06\x2b\x06\x01\x05\x05\x02"
OID_KRB5 = b"\x06\x09\x2a\x86\x48\x86\xf7\x12\x01\x02\x02"
OID_NTLM = b"\x06\x0a\x2b\x06\x01\x04\x01\x82\x37\x02\x02\x0a"


def spnego_init(mech_token: bytes) -> bytes:
    """A GSS-API token with SPNEGO NegTokenInit (RFC 4178 4.2.1)."""
    mech_types = der(0xA0, der(0x30, OID_NTLM))
    token = der(0xA2, der(0x04, mech_token))
    init = der(0xA0, der(0x30, mech_types + token))
    return der(0x60, OID_SPNEGO + init)


def krb_as_req() -> bytes:
    """A Kerberos AS-REQ (RFC 4120 5.4.1): pvno 5, msg-type 10."""
    body = der(0xA1, der(0x02, b"\x05")) + der(0xA2, der(0x02, b"\x0a"))
    return der(0x6A, der(0x30, body))


def krb_ap_req_token() -> bytes:
    """A Kerberos AP-REQ inside a GSS-API token (RFC 4121 4.1)."""
    ap = der(
        0x6E, der(0x30, der(0xA0, der(0x02, b"\x05")) + der(0xA1, der(0x02, b"\x0e")))
    )
    return der(0x60, OID_KRB5 + b"\x01\x00" + ap)


def nbss(msg: bytes) -> bytes:
    """A NetBIOS session message (RFC 1002 4.3.1)."""
    return b"\x00" + len(msg).to_bytes(3, "big") + msg


def smb1(command: int, words: bytes, data: bytes, response: bool = False) -> bytes:
    """An SMB1 message ([MS-CIFS] 2.2.3.1) with parameter words and bytes."""
    flags = 0x98 if response else 0x18
    head = b"\xffSMB" + bytes([command]) + bytes(4) + bytes([flags]) + b"\x07\xc8"
    head += bytes(12) + b"\xff\xfe\x00\x00\x00\x00\x00\x00"
    return head + bytes([len(words) // 2]) + words + struct.pack("<H", len(data)) + data


def smb1_session_setup(blob: bytes) -> bytes:
    """SMB1 SESSION_SETUP_ANDX request, extended security ([MS-SMB] 2.2.4.6.1)."""
    words = b"\xff\x00\x00\x00" + struct.pack(
        "<HHHIHII", 4356, 50, 0, 0, len(blob), 0, 0x800000D4
    )
    return smb1(0x73, words, blob)


def smb2(command: int, body: bytes, response: bool = False) -> bytes:
    """An SMB2 message ([MS-SMB2] 2.2.1.2) with a 64-byte sync header."""
    head = b"\xfeSMB" + struct.pack("<HHIHHII", 64, 0, 0, command, 1, int(response), 0)
    head += bytes(8 + 4 + 4 + 8 + 16)
    return head + body


def smb2_session_setup(blob: bytes) -> bytes:
    """SMB2 SESSION_SETUP request ([MS-SMB2] 2.2.5)."""
    body = struct.pack("<HBBIIHHQ", 25, 0, 1, 0, 0, 64 + 24, len(blob), 0)
    return smb2(1, body + blob)


def dcerpc_bind(auth_type: int = 0, auth: bytes = b"") -> bytes:
    """A DCE-RPC bind PDU (C706 12.6.4.3), with an optional sec_trailer."""
    body = struct.pack("<HHI", 5840, 5840, 0) + b"\x01\x00\x00\x00"
    body += struct.pack("<HBB", 0, 1, 0) + bytes(16) + b"\x03\x00\x00\x00"
    body += bytes(16) + b"\x02\x00\x00\x00"
    trailer = bytes([auth_type, 2, 0, 0]) + bytes(4) + auth if auth_type else b""
    frag = 16 + len(body) + len(trailer)
    head = b"\x05\x00\x0b\x03\x10\x00\x00\x00" + struct.pack("<HHI", frag, len(auth), 2)
    return head + body + trailer


def dcerpc_bind_ack() -> bytes:
    """A DCE-RPC bind_ack PDU (C706 12.6.4.4), no authentication."""
    body = struct.pack("<HHI", 5840, 5840, 0x1234) + b"\x04\x00135\x00" + bytes(28)
    head = b"\x05\x00\x0c\x03\x10\x00\x00\x00" + struct.pack(
        "<HHI", 16 + len(body), 0, 2
    )
    return head + body
