"""Zeek's ``likely_server_ports``: the ports that make a first packet look reversed.

When a connection's first packet leaves one of these ports for a port not
in the set, Zeek assumes it missed the start and makes the destination the
originator (history ``^``). The set is the union of the ports that Zeek's
default protocol scripts register (``redef likely_server_ports += { ports
}`` in ``base/protocols/*/main.zeek`` and the tunnel scripts), as loaded by a
plain ``zeek -r``.
"""

from __future__ import annotations

#: TCP ports from the default scripts (HTTP, SSL/TLS, SSH, FTP, SMTP, IMAP,
#: IRC, SMB, DCE-RPC, Kerberos, MySQL, RDP, SOCKS, XMPP, Modbus, DNP3, DNS,
#: Finger). Spicy-only analyzers (LDAP, PostgreSQL, Redis) are left out: the
#: reference Zeek build had no Spicy, so their scripts did not load; POP3
#: and RFB register no ports.
TCP_SERVER_PORTS: frozenset[int] = frozenset(
    {
        21, 22, 25, 53, 79, 80, 81, 88, 135, 139, 143, 443, 445, 465, 502,
        563, 585, 587, 614, 631, 636, 989, 990, 992, 993, 995, 1080, 1434,
        2811, 3128, 3306, 3389, 5222, 5223, 5269, 6666, 6667, 6668, 6669,
        7000, 8000, 8080, 8888, 20000,
    }
)  # fmt: skip

#: UDP ports from the default scripts (DNS, mDNS, LLMNR, NetBIOS-NS, DHCP,
#: NTP, SNMP, Syslog, SIP, RADIUS, Kerberos, DTLS, DNP3, OpenVPN and the
#: tunnel decapsulators: AYIYA, Teredo, GTPv1, VXLAN, Geneve).
UDP_SERVER_PORTS: frozenset[int] = frozenset(
    {
        53, 67, 88, 123, 137, 161, 162, 443, 514, 1194, 1195, 1196, 1197,
        1812, 2123, 2152, 3544, 4789, 5060, 5072, 5353, 5355, 6081, 20000,
    }
)  # fmt: skip


def likely_server(proto: int, port: int) -> bool:
    """Whether ``port`` of IP protocol ``proto`` is a likely server port."""
    if proto == 6:
        return port in TCP_SERVER_PORTS
    if proto == 17:
        return port in UDP_SERVER_PORTS
    return False
