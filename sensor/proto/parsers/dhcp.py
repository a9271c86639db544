"""DHCP messages (RFC 2131 2, options RFC 2132) as Zeek's analyzer reads them.

:func:`parse_message` returns a :class:`DHCPMessage` with the fixed BOOTP
fields and the options dhcp.log uses, or an anomaly name. Options are
read up to the END option or the end of the datagram; a length that runs
past the end stops the walk and is named in ``anomalies``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

#: BOOTP fixed part (236 bytes) and the magic cookie (RFC 2131 3).
FIXED_LEN = 240
MAGIC = b"\x63\x82\x53\x63"
#: Options read per message at most.
MAX_OPTIONS = 255

#: DHCP message types (RFC 2132 9.6, RFC 4388, RFC 6926, RFC 7724).
MESSAGE_TYPES: dict[int, str] = {
    1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK",
    6: "NAK", 7: "RELEASE", 8: "INFORM", 9: "FORCERENEW", 10: "LEASEQUERY",
    11: "LEASEUNASSIGNED", 12: "LEASEUNKNOWN", 13: "LEASEACTIVE",
    14: "BULKLEASEQUERY", 15: "LEASEQUERYDONE", 16: "ACTIVELEASEQUERY",
    17: "LEASEQUERYSTATUS", 18: "TLS",
}  # fmt: skip


@dataclass(slots=True)
class DHCPMessage:
    """The fields of one DHCP message that dhcp.log draws on."""

    op: int
    xid: int
    ciaddr: str
    yiaddr: str
    chaddr: str
    msg_type: int = 0
    host_name: bytes | None = None
    client_fqdn: bytes | None = None
    domain_name: bytes | None = None
    requested_addr: str | None = None
    lease: int | None = None
    message: bytes | None = None
    client_id_mac: str | None = None  # option 61 with hardware type 1
    anomalies: list[str] = field(default_factory=list)


def fmt_mac(raw: bytes) -> str:
    """A hardware address as Zeek formats it (EUI-48, else EUI-64, else empty)."""
    if len(raw) < 8 and len(raw) != 6:
        return ""
    if len(raw) == 6 or raw[6:8] == b"\x00\x00":
        return ":".join(f"{b:02x}" for b in raw[:6])
    return ":".join(f"{b:02x}" for b in raw[:8])


def message_type_name(n: int) -> str:
    """Zeek's name of a DHCP message type."""
    return MESSAGE_TYPES.get(n) or f"unknown-msg-type-{n}"


def parse_message(data: bytes) -> DHCPMessage | str:
    """One DHCP message, or the anomaly name when it is not one."""
    if len(data) < FIXED_LEN:
        return "DHCP_message_too_short"
    if data[236:240] != MAGIC:
        return "DHCP_no_magic_cookie"
    msg = DHCPMessage(
        op=data[0],
        xid=int.from_bytes(data[4:8], "big"),
        ciaddr=str(ipaddress.IPv4Address(data[12:16])),
        yiaddr=str(ipaddress.IPv4Address(data[16:20])),
        chaddr=fmt_mac(data[28:44]),
    )

    off = FIXED_LEN
    for _ in range(MAX_OPTIONS):
        if off >= len(data):
            break
        code = data[off]
        if code == 255:  # END
            break
        if code == 0:  # PAD
            off += 1
            continue
        if off + 2 > len(data) or off + 2 + data[off + 1] > len(data):
            msg.anomalies.append("DHCP_option_length_past_end")
            break
        value = data[off + 2 : off + 2 + data[off + 1]]
        off += 2 + len(value)
        _option(msg, code, value)

    if not msg.msg_type:
        return "DHCP_no_message_type"
    return msg


def _option(msg: DHCPMessage, code: int, value: bytes) -> None:
    if code == 53 and len(value) == 1:
        msg.msg_type = value[0]
    elif code == 12:
        msg.host_name = value
    elif code == 15:
        # Zeek drops the NUL that some servers put after the domain name
        # (but keeps the one after a host name).
        msg.domain_name = value.rstrip(b"\x00")
    elif code == 50 and len(value) == 4:
        msg.requested_addr = str(ipaddress.IPv4Address(value))
    elif code == 51 and len(value) == 4:
        msg.lease = int.from_bytes(value, "big")
    elif code == 56:
        msg.message = value
    elif code == 61 and len(value) >= 2 and value[0] == 1:
        msg.client_id_mac = fmt_mac(value[1:])
    elif code == 81 and len(value) >= 3:
        msg.client_fqdn = _fqdn_name(value[0], value[3:])


def _fqdn_name(flags: int, raw: bytes) -> bytes:
    # RFC 4702 2.3: with the E bit the name is in DNS wire format.
    if not flags & 0x04:
        return raw
    labels, i = [], 0
    while i < len(raw) and raw[i] and i + 1 + raw[i] <= len(raw):
        labels.append(raw[i + 1 : i + 1 + raw[i]])
        i += 1 + raw[i]
    return b".".join(labels)
