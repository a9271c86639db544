"""UDP, ICMP and other-protocol connections, the two UDP analyzers that
change a connection's shape in Zeek (DNS and NTP), and Teredo decapsulation.

Zeek attaches its DNS analyzer by responder port (53, 137, 5353, 5355) and
NTP by port 123. Both may swap originator and responder after the first
message (a DNS response sent by the originator; an NTP server-mode message
from the originator or client-mode from the responder), which shows as
``^`` after the first history letter. The DNS analyzer also ends an idle UDP
connection much sooner than the 60 s UDP timeout: its timer fires every
``dns_session_timeout`` (10 s) and removes the connection once it has been
idle for 9 s of that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sensor.flow import dnscheck
from sensor.flow.conn import Conn

if TYPE_CHECKING:
    from sensor.decode.packet import Packet

SEC = 1_000_000_000
APP_NONE = 0
APP_DNS = 1
APP_NTP = 2
APP_DNS_TCP = 3
DNS_PORTS = (53, 137, 5353, 5355)
DNS_SESSION_TIMEOUT = 10 * SEC
TEREDO_PORT = 3544
# UDP ports that Zeek hands to another tunnel analyzer (AYIYA, GTPv1, VXLAN,
# Geneve) instead of trying Teredo detection on the content.
OTHER_TUNNEL_PORTS = (5072, 2152, 2123, 4789, 6081)


def attach_app(conn: Conn, now: int) -> None:
    """Pick the analyzer by responder port, as Zeek's port table does."""
    if conn.proto == 6:
        if conn.resp_p == 53:
            conn.app = APP_DNS_TCP
        return
    if conn.resp_p in DNS_PORTS:
        conn.app = APP_DNS
        conn.app_ns = now + DNS_SESSION_TIMEOUT
    elif conn.resp_p == 123:
        conn.app = APP_NTP


def udp_packet(conn: Conn, pkt: Packet, is_orig: bool, now: int) -> None:
    """One UDP datagram: history, payload size, analyzer role flips."""
    conn.check_history(1 if is_orig else 2, "D" if is_orig else "d")
    ep = conn.orig if is_orig else conn.resp
    n = pkt.udp_len - 8  # Zeek sums the UDP length field, not the capture
    ep.size = n if ep.size < 0 else ep.size + n
    conn.last_ns = now
    if conn.app == APP_NONE:
        return
    data = pkt.data
    off = pkt.payload_off
    avail = pkt.payload_caplen
    if conn.app == APP_DNS:
        if avail < 12:
            return  # too short for a header: Zeek keeps waiting for one
        if conn.app_first:
            conn.app_first = False
            qr = data[off + 2] & 0x80
            if qr and is_orig and not _multicast(conn.resp_h):
                conn.flip_addresses()
        if dnscheck.udp_message(conn, data[off : off + avail], is_orig):
            # The analyzer is gone, and with it its session timer.
            conn.app = APP_NONE
            conn.app_ns = 0
    elif conn.app == APP_NTP and conn.app_first and avail >= 48:
        mode = data[off] & 0x07
        if (mode == 4 and is_orig) or (mode == 3 and not is_orig):
            conn.app_first = False
            conn.flip_addresses()


def dns_expire(conn: Conn, now: int) -> bool:
    """The DNS analyzer's ExpireTimer; True when the connection ends."""
    if now - conn.last_ns >= DNS_SESSION_TIMEOUT - SEC:
        return True
    conn.app_ns = now + DNS_SESSION_TIMEOUT
    return False


def other_packet(conn: Conn, pkt: Packet, is_orig: bool, now: int) -> None:
    """ICMP and unknown-protocol packets: payload size and last time."""
    ep = conn.orig if is_orig else conn.resp
    n = pkt.payload_len if pkt.payload_off >= 0 else 0
    ep.size = n if ep.size < 0 else ep.size + n
    conn.last_ns = now


def _multicast(addr: bytes) -> bool:
    if len(addr) == 4:
        return 224 <= addr[0] <= 239
    return addr[0] == 0xFF


def teredo_inner(pkt: Packet) -> bytes:
    """The IPv6 packet inside a Teredo datagram (RFC 4380 section 5.1.1), or b"".

    Zeek tries Teredo on port 3544 and, by content, on any UDP port without
    another tunnel analyzer; the content must be a whole IPv6 packet whose
    payload length matches exactly, which ordinary UDP payloads are not.

    Authentication and origin-indication headers are skipped. Bubbles (no
    next header) and anything that is not a whole IPv6 packet give b"", as
    Zeek's Teredo analyzer does not decapsulate them into connections.
    """
    data = pkt.data
    off = pkt.payload_off
    end = off + pkt.payload_caplen
    if end - off >= 4 and data[off] == 0 and data[off + 1] == 1:
        id_len, au_len = data[off + 2], data[off + 3]
        off += 4 + id_len + au_len + 8 + 1  # nonce and confirmation byte
    if end - off >= 8 and data[off] == 0 and data[off + 1] == 0:
        off += 8
    if end - off < 40 or data[off] >> 4 != 6:
        return b""
    plen = int.from_bytes(data[off + 4 : off + 6], "big")
    if data[off + 6] == 59 or off + 40 + plen != end:
        return b""
    return data[off:end]
