"""TLS and SSL: Zeek names ``ssl`` once a hello parsed.

Zeek's SSL analyzer starts on a ClientHello or ServerHello signature (or
its ports). On the shared captures a ClientHello alone is enough for it
to name ``ssl`` (scanners' hellos to ports 53 and 135 that nobody
answered included), as is a ServerHello of a supported version. The
signatures only know hellos in TLS records, so an SSLv2-format hello
counts only on the SSL ports, and the TCP-state condition of the
signatures keeps partial connections out.
"""

from __future__ import annotations

from sensor.proto import rdp
from sensor.proto.flowdata import FlowData

# Ports Zeek registers its SSL analyzer for (base/protocols/ssl/main.zeek).
PORTS = frozenset({443, 563, 585, 614, 636, 989, 990, 992, 993, 995, 5223})

_HANDSHAKE = 22
_ALERT = 21
_CHANGE_CIPHER_SPEC = 20
_SERVER_HELLO = 2


def _version_ok(major: int, minor: int) -> bool:
    # SSL 3.0 to TLS 1.3 (RFC 8446 4.1.3 keeps 0x0303 as legacy_version),
    # TLS 1.3 drafts 0x7fNN and DTLS 1.0/1.2 (RFC 6347 4.1).
    return (
        (major == 3 and minor <= 4)
        or major == 0x7F
        or (major == 0xFE and minor in (0xFF, 0xFD))
    )


def server_hello(data: bytes) -> bool:
    """True when ``data`` opens with TLS records that carry a ServerHello.

    Leading alerts and ChangeCipherSpec records are skipped; a handshake
    record may be split across packets (the stream is joined), and the
    hello's own version must be a supported one.
    """
    if len(data) >= 3 and data[0] & 0x80 and data[2] == 4:
        # SSLv2 SERVER-HELLO (draft-hickman-netscape-ssl-00): two-byte
        # header with the top bit set, message type 4.
        return len(data) >= 7 and data[5] in (0, 2, 3) and data[6] in (0, 1, 2, 3)
    off = 0
    for _ in range(8):
        if off + 5 > len(data):
            return False
        ctype, major = data[off], data[off + 1]
        length = int.from_bytes(data[off + 3 : off + 5], "big")
        if major not in (3, 0xFE):
            return False
        if ctype in (_ALERT, _CHANGE_CIPHER_SPEC):
            off += 5 + length
            continue
        if ctype != _HANDSHAKE:
            return False
        body = data[off + 5 : off + 5 + length]
        if len(body) < 6 or body[0] != _SERVER_HELLO:
            return False
        return _version_ok(body[4], body[5])
    return False


def client_hello(data: bytes) -> bool:
    """True when ``data`` opens with a ClientHello.

    Either a TLS handshake record, or the SSLv2-format CLIENT-HELLO that
    old clients send for compatibility (RFC 6101 appendix E.1: two-byte
    header with the top bit set, type 1, version 2.0 or 3.x).
    """
    if len(data) >= 5 and data[0] & 0x80 and data[2] == 1:
        return data[3:5] == b"\x00\x02" or (data[3] == 3 and data[4] <= 3)
    return (
        len(data) >= 11
        and data[0] == _HANDSHAKE
        and data[1] == 3
        and data[2] <= 3
        and data[5] == 1
        and data[9] == 3
    )


def ssl(flow: FlowData) -> bool:
    """TLS over TCP: a ClientHello or a ServerHello parsed.

    RDP (T.125 over X.224 in TPKT, RFC 1006) switches to TLS after the
    X.224 connection request and confirm; Zeek's RDP analyzer hands the
    rest of the stream to its SSL analyzer, so the hellos are looked for
    in the packets after the first there.
    """
    if flow.partial:
        return False  # the hello signatures are bound to a TCP endpoint state
    orig, resp = flow.stream(True), flow.stream(False)
    if server_hello(resp):
        return True
    if client_hello(orig):
        # Zeek's signature only knows the TLS-record hello; an SSLv2-format
        # one is parsed only where the analyzer runs by port.
        return not orig[0] & 0x80 or flow.on_port(PORTS)
    if rdp.x224_connection_request(flow.orig_pkts[0] if flow.orig_pkts else b""):
        later = flow.orig_pkts[1:]
        return any(map(client_hello, later)) or any(
            map(server_hello, flow.resp_pkts[1:])
        )
    return False
