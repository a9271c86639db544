"""RDP (Remote Desktop Protocol) over TCP: the X.224 connection sequence.

An RDP client opens with an X.224 Connection Request in a TPKT (RFC 1006
6, ITU-T X.224 13.3), carrying an RDP negotiation request ([MS-RDPBCGR]
2.2.1.1). When the server picks TLS or CredSSP, everything after the
X.224 Connection Confirm is a TLS stream, which Zeek's RDP analyzer hands
to its SSL analyzer: on the shared captures that gives ``ssl`` and no
``rdp``. With standard RDP security the client next sends an MCS
Connect-Initial (T.125, BER tag ``7f 65``) in the clear, and that is
where ``rdp`` is named here.

TODO: the ``rdp`` case has no shared capture to check it against Zeek.
"""

from __future__ import annotations

from sensor.proto.flowdata import FlowData

PORTS = frozenset({3389})


def x224_connection_request(p: bytes) -> bool:
    """A TPKT (version 3) holding an X.224 CR TPDU (code 0xE0)."""
    return len(p) >= 7 and p[0] == 3 and p[1] == 0 and p[5] & 0xF0 == 0xE0


def _mcs_connect_initial(p: bytes) -> bool:
    # TPKT, X.224 Data TPDU (length 2, code 0xF0, EOT), then T.125's
    # Connect-Initial ([APPLICATION 101], BER 7f 65).
    return (
        len(p) >= 9
        and p[0] == 3
        and p[1] == 0
        and p[4:7] == b"\x02\xf0\x80"
        and p[7:9] == b"\x7f\x65"
    )


def rdp(flow: FlowData) -> bool:
    """Standard-security RDP: a connection request, then a Connect-Initial."""
    if flow.partial or not flow.orig_pkts:
        return False
    if not x224_connection_request(flow.orig_pkts[0]):
        return False
    return any(map(_mcs_connect_initial, flow.orig_pkts[1:]))
