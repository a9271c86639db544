"""Security blobs of SMB and DCE-RPC to the NTLM and Kerberos trackers.

SMB session setups and DCE-RPC bind, alter_context and AUTH3 verifiers
carry NTLMSSP or Kerberos, bare or inside SPNEGO. One
:class:`SecurityBlobs` per connection (shared by the SMB analyzer and the
DCE-RPC sessions of its named pipes, as Zeek keeps one NTLM and one
Kerberos record per connection) hands each blob to an
:class:`~sensor.proto.analyzers.ntlm.NTLMTracker` and a
:class:`~sensor.proto.analyzers.kerberos_ap.KerberosAPTracker`.

NTLM's ``success`` follows Zeek's base/protocols/ntlm/main.zeek: it is the
SPNEGO ``negState`` of the server's answer after the AUTHENTICATE
(accept-completed true, reject false; accept-incomplete ignored), and that
answer writes the record. A bare NTLMSSP exchange (DCE-RPC auth type 10)
has no negState: its record is written when the connection ends, without
``success``. After a record is written this way, Zeek writes no other for
the connection; neither does this carrier. Without a negState the
connection keeps one record whatever the number of exchanges: the first
message gives its ``ts``, later ones update its fields, and it is written
when the connection ends (Zeek's ``c$ntlm``).
"""

from __future__ import annotations

from sensor.proto.analyzer import ConnInfo, Emit
from sensor.proto.analyzers.kerberos_ap import KerberosAPTracker
from sensor.proto.analyzers.ntlm import NTLMTracker
from sensor.proto.asn1 import child, tlv
from sensor.proto.parsers.ntlm import SIGNATURE

#: SPNEGO negState values (RFC 4178 4.2.2).
ACCEPT_COMPLETED, ACCEPT_INCOMPLETE, REJECT = 0, 1, 2


def neg_state(blob: bytes) -> int | None:
    """The negState of a SPNEGO NegTokenResp ``[1]``, None when absent."""
    if blob[:1] != b"\xa1":
        return None
    outer = tlv(blob, 0, clip=True)
    seq = None if outer is None else tlv(blob, outer[1], outer[2], clip=True)
    if seq is None or seq[0] != 0x30:
        return None
    span = child(blob, seq[1], seq[2], 0xA0, clip=True)
    enum = None if span is None else tlv(blob, span[0], span[1])
    if enum is None or enum[0] != 0x0A or enum[2] - enum[1] != 1:
        return None
    return blob[enum[1]]


class SecurityBlobs:
    """The NTLM and Kerberos AP state of one connection."""

    def __init__(self, conn: ConnInfo, emit: Emit) -> None:
        self.conn = conn
        self.emit = emit
        # The trackers are made at the first blob: most connections that
        # could carry one (endpoint mapper lookups, SMB scans) carry none.
        self.trackers: tuple[NTLMTracker, KerberosAPTracker] | None = None
        self.ntlm_done = False
        self.authenticated = False  # an AUTHENTICATE went by

    def blob(self, is_orig: bool, ts: float, data: bytes) -> None:
        """One security blob, from the client (``is_orig``) or the server."""
        if not data:
            return
        if self.trackers is None:
            self.trackers = (
                NTLMTracker(self.conn, self.emit, one_record=True),
                KerberosAPTracker(self.conn, self.emit),
            )
        ntlm, krb = self.trackers
        krb.blob(is_orig, ts, data)
        if self.ntlm_done:
            return
        at = data.find(SIGNATURE)
        if at >= 0:
            ntlm.blob(is_orig, ts, data)
            if data[at + 8 : at + 12] == b"\x03\x00\x00\x00":
                self.authenticated = True
        if is_orig:
            return
        state = neg_state(bytes(data[:64]))
        rec = ntlm.record
        if (
            state in (ACCEPT_COMPLETED, REJECT)
            and rec is not None
            and self.authenticated
        ):
            # An anonymous AUTHENTICATE (no user, no workstation) is
            # written too: Zeek sets the fields to empty strings, which
            # its log then leaves out.
            rec["success"] = state == ACCEPT_COMPLETED
            ntlm.end(ts)
            self.ntlm_done = True

    def end(self, ts: float) -> None:
        """The connection is over: write what is still open."""
        if self.trackers is None:
            return
        ntlm, krb = self.trackers
        if not self.ntlm_done:
            ntlm.end(ts)
        krb.end(ts)
