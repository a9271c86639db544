"""Write office.pcap: five minutes of a small office LAN, with one port scan.

    python3 pcaps/office/make_office.py [OUT]   # needs scapy; default office.pcap

The output is the same byte for byte on every run: one seeded generator
decides every port, sequence number and payload, and the capture starts at
2026-11-02 09:00:00 UTC. The network is 192.168.10.0/24 behind a Ubiquiti
gateway (.1) that serves DHCP and DNS; the capture is what a mirror port on
the office switch sees. Hosts, sites and the scan are listed in
pcaps/README.md; keep it in step with the tables below.
"""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime
from pathlib import Path

from payloads import (
    SMB2_CLOSE,
    SMB2_CREATE,
    SMB2_NEGOTIATE,
    SMB2_READ,
    SMB2_SESSION_SETUP,
    SMB2_TREE_CONNECT,
    STATUS_MORE_PROCESSING_REQUIRED,
    app_data,
    client_hello,
    close_request,
    close_response,
    create_request,
    create_response,
    http_get,
    http_response,
    negotiate_request,
    negotiate_response,
    ntlm_authenticate,
    ntlm_challenge,
    ntlm_negotiate,
    ntp_packet,
    read_request,
    read_response,
    server_hello_flight,
    session_setup_request,
    session_setup_response,
    smb2,
    tree_connect_request,
    tree_connect_response,
)
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP
from scapy.layers.l2 import ARP, Ether
from sessions import US, Capture, Host, TCPSession, arp_exchange, ping, udp

OUT = Path(__file__).resolve().parent / "office.pcap"
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
DURATION = 300 * US
SEED = 20261102

# The LAN. MAC prefixes are the vendors' registered OUIs.
GW = Host("gateway", "192.168.10.1", "24:5a:4c:1e:03:01")  # Ubiquiti
NAS = Host("nas", "192.168.10.10", "00:11:32:8a:4f:10")  # Synology
PRINTER = Host("printer", "192.168.10.20", "3c:d9:2b:61:07:aa")  # HP
ALICE = Host("ws-alice", "192.168.10.101", "d4:81:d7:2c:91:5e", ttl=128)  # Dell
BOB = Host("ws-bob", "192.168.10.102", "54:e1:ad:7b:30:c2")  # Lenovo, Linux
CAROL = Host("mac-carol", "192.168.10.103", "f0:18:98:45:d2:17", window=65535)  # Apple
DAVE = Host("laptop-dave", "192.168.10.104", "00:1b:21:9c:6e:48", ttl=128)  # Intel
ERIN = Host("phone-erin", "192.168.10.105", "a4:83:e7:0b:5a:93", window=65535)  # Apple
FRANK = Host("ws-frank", "192.168.10.106", "f8:bc:12:77:e4:05", ttl=128)  # Dell
CLIENTS = [ALICE, BOB, CAROL, DAVE, ERIN, FRANK]
WINDOWS = {ALICE.name, DAVE.name, FRANK.name}
APPLE = {CAROL.name, ERIN.name}

# Sites on the internet: name, address, TTL on arrival, round trip (us).
HTTPS_SITES = [
    ("www.wikipedia.org", "185.15.59.224", 55, 28_000),
    ("github.com", "140.82.121.4", 51, 31_000),
    ("outlook.office365.com", "52.97.146.162", 114, 18_000),
    ("www.google.com", "142.250.185.100", 117, 12_000),
    ("login.microsoftonline.com", "20.190.159.2", 114, 19_000),
    ("www.bbc.co.uk", "151.101.64.81", 57, 22_000),
    ("api.dropboxapi.com", "162.125.64.19", 54, 25_000),
    ("app.slack.com", "18.159.197.225", 49, 26_000),
]
HTTP_CHECKS = {  # connectivity checks each OS makes when it joins a network
    "windows": ("www.msftconnecttest.com", "13.107.4.52", 114, 17_000, "/connecttest.txt", "200 OK", "text/plain", b"Microsoft Connect Test"),
    "apple": ("captive.apple.com", "17.253.53.207", 57, 21_000, "/hotspot-detect.html", "200 OK", "text/html", b"<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>"),
    "linux": ("connectivitycheck.gstatic.com", "142.250.186.35", 117, 12_000, "/generate_204", "204 No Content", "", b""),
}  # fmt: skip
AGENTS = {
    "windows": "Microsoft NCSI",
    "apple": "CaptiveNetworkSupport-481.0.1 wispr",
    "linux": "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
}
NTP_SERVERS = {
    "windows": Host("time.windows.com", "20.101.57.9", GW.mac, ttl=114),
    "apple": Host("time.apple.com", "17.253.14.251", GW.mac, ttl=57),
    "linux": Host("pool.ntp.org", "162.159.200.1", GW.mac, ttl=57),
}

# The scan: ws-bob SYN-scans the file server's low ports mid-capture.
SCAN_AT = 150 * US
SCAN_OPEN = [22, 80, 139, 443, 445, 5000, 5001]
SCAN_FILTERED = [111, 873, 2049]
SCAN_PORTS = 300


def family(host: Host) -> str:
    return (
        "windows"
        if host.name in WINDOWS
        else "apple"
        if host.name in APPLE
        else "linux"
    )


class Office:
    """The scenario: who talks to whom, when, in what order."""

    def __init__(self) -> None:
        self.rng = random.Random(SEED)
        self.cap = Capture()
        self.arp_done: set[tuple[str, str]] = set()
        self.dns_cache: set[tuple[str, str]] = set()
        self.next_port = {
            h.name: self.rng.randrange(49700, 60000) for h in [*CLIENTS, NAS]
        }

    def port(self, host: Host) -> int:
        self.next_port[host.name] += self.rng.randrange(1, 4)
        return self.next_port[host.name]

    def arp(self, t: int, asker: Host, target: Host) -> int:
        """ARP before the first frame to a LAN neighbour, then cached."""
        if (asker.name, target.name) in self.arp_done:
            return t
        self.arp_done.add((asker.name, target.name))
        return arp_exchange(self.cap, t, asker, target) + 50

    def resolve(self, t: int, client: Host, name: str, address: str) -> int:
        """A (and AAAA from Apple devices) lookups at the gateway's resolver."""
        t = self.arp(t, client, GW)
        if (client.name, name) in self.dns_cache:
            return t
        self.dns_cache.add((client.name, name))
        kinds = ["A", "AAAA"] if client.name in APPLE else ["A"]
        for kind in kinds:
            sport, ident = self.port(client), self.rng.getrandbits(16)
            query = DNS(id=ident, rd=1, qd=DNSQR(qname=name, qtype=kind))
            udp(self.cap, t, client, GW, sport, 53, query)
            answer = (
                DNSRR(rrname=name, type="A", ttl=300, rdata=address)
                if kind == "A"
                else None
            )
            reply = DNS(
                id=ident, qr=1, rd=1, ra=1, qd=DNSQR(qname=name, qtype=kind), an=answer
            )
            t += self.rng.randrange(900, 25_000)  # cached or recursed
            udp(self.cap, t, GW, client, 53, sport, reply)
            t += 200
        return t

    def https(self, t: int, client: Host, site: tuple[str, str, int, int]) -> int:
        """DNS, then a TLS 1.3 connection: handshake, requests, close_notify, FIN."""
        name, address, ttl, rtt = site
        t = self.resolve(t, client, name, address)
        server = Host(name, address, GW.mac, ttl=ttl, window=65535)
        s = TCPSession(self.cap, self.rng, client, server, self.port(client), 443, rtt)
        t = s.handshake(t)
        hello = client_hello(self.rng, name)
        t = s.send(t, True, hello)
        t = s.send(
            t,
            False,
            server_hello_flight(self.rng, hello, self.rng.randrange(2500, 4500)),
        )
        t = s.send(t, True, bytes.fromhex("140303000101") + app_data(self.rng, 53))
        for _ in range(self.rng.randrange(1, 3)):
            t = s.send(t + 2000, True, app_data(self.rng, self.rng.randrange(300, 700)))
            t = s.send(
                t + 5000, False, app_data(self.rng, self.rng.randrange(700, 6000))
            )
        t = s.send(
            t + self.rng.randrange(100_000, 2_000_000), True, app_data(self.rng, 19)
        )
        return s.close(t)

    def http(
        self,
        t: int,
        client: Host,
        server: Host,
        rtt: int,
        host: str,
        path: str,
        response: bytes,
    ) -> int:
        """A plain HTTP/1.1 GET answered and closed by the server."""
        s = TCPSession(self.cap, self.rng, client, server, self.port(client), 80, rtt)
        t = s.handshake(t)
        t = s.send(t, True, http_get(host, path, AGENTS[family(client)]))
        t = s.send(t + 1500, False, response)
        return s.close(t, client_first=False)

    def connectivity_check(self, t: int, client: Host) -> int:
        name, address, ttl, rtt, path, status, ctype, body = HTTP_CHECKS[family(client)]
        t = self.resolve(t, client, name, address)
        server = Host(name, address, GW.mac, ttl=ttl, window=65535)
        return self.http(
            t, client, server, rtt, name, path, http_response(status, ctype, body)
        )

    def ntp(self, t: int, client: Host, server: Host) -> int:
        """One client/server NTP exchange (RFC 5905)."""
        t = self.resolve(t, client, server.name, server.ip)
        sport = 123 if family(client) == "windows" else self.port(client)
        seconds = (START.timestamp() * US + t) / US
        udp(self.cap, t, client, server, sport, 123, ntp_packet(3, seconds))
        udp(
            self.cap,
            t + 15_000,
            server,
            client,
            123,
            sport,
            ntp_packet(4, seconds, stratum=2),
        )
        return t + 15_000

    def dhcp_join(self, t: int, client: Host) -> int:
        """DISCOVER, OFFER, REQUEST, ACK (RFC 2131 3.1), then ARP probe and announce."""
        xid, chaddr = (
            self.rng.getrandbits(32),
            bytes.fromhex(client.mac.replace(":", "")) + bytes(10),
        )
        bcast = Host("broadcast", "255.255.255.255", "ff:ff:ff:ff:ff:ff")
        anyone = Host(client.name, "0.0.0.0", client.mac, ttl=128)
        common = [
            ("subnet_mask", "255.255.255.0"),
            ("router", GW.ip),
            ("name_server", GW.ip),
            ("domain", b"office.lan"),
            ("lease_time", 86400),
        ]
        params = [
            (
                "param_req_list",
                [1, 3, 6, 15, 31, 33, 43, 44, 46, 47, 119, 121, 249, 252],
            )
        ]
        steps = [
            (anyone, bcast, 68, 67, "0.0.0.0", [("message-type", "discover"), ("client_id", b"\x01" + chaddr[:6]), ("hostname", client.name.encode())] + params),
            (GW, client, 67, 68, client.ip, [("message-type", "offer"), ("server_id", GW.ip)] + common),
            (anyone, bcast, 68, 67, "0.0.0.0", [("message-type", "request"), ("requested_addr", client.ip), ("server_id", GW.ip), ("hostname", client.name.encode())] + params),
            (GW, client, 67, 68, client.ip, [("message-type", "ack"), ("server_id", GW.ip)] + common),
        ]  # fmt: skip
        for src, dst, sport, dport, yiaddr, options in steps:
            bootp = BOOTP(
                op=2 if src is GW else 1, xid=xid, chaddr=chaddr, yiaddr=yiaddr, flags=0
            )
            udp(
                self.cap,
                t,
                src,
                dst,
                sport,
                dport,
                bootp / DHCP(options=options + ["end"]),
            )
            t += self.rng.randrange(1_000, 4_000) if src is GW else 600
        for psrc in ("0.0.0.0", client.ip):  # RFC 5227 2.1 probe, 2.3 announcement
            frame = Ether(src=client.mac, dst="ff:ff:ff:ff:ff:ff") / ARP(
                op=1, hwsrc=client.mac, psrc=psrc, pdst=client.ip
            )
            self.cap.add(t, None, frame)
            t += 200_000
        return t

    def dhcp_renew(self, t: int, client: Host) -> int:
        """A renewal: unicast REQUEST with ciaddr set and the ACK (RFC 2131 4.4.5)."""
        xid, chaddr = (
            self.rng.getrandbits(32),
            bytes.fromhex(client.mac.replace(":", "")) + bytes(10),
        )
        t = self.arp(t, client, GW)
        request = BOOTP(op=1, xid=xid, chaddr=chaddr, ciaddr=client.ip) / DHCP(
            options=[
                ("message-type", "request"),
                ("hostname", client.name.encode()),
                "end",
            ]
        )
        udp(self.cap, t, client, GW, 68, 67, request)
        ack = BOOTP(
            op=2, xid=xid, chaddr=chaddr, ciaddr=client.ip, yiaddr=client.ip
        ) / DHCP(
            options=[
                ("message-type", "ack"),
                ("server_id", GW.ip),
                ("lease_time", 86400),
                ("subnet_mask", "255.255.255.0"),
                ("router", GW.ip),
                "end",
            ]
        )
        udp(self.cap, t + 2_300, GW, client, 67, 68, ack)
        return t + 2_300

    def smb_session(self, t: int, client: Host, user: str, path: str, size: int) -> int:
        """Log on to the NAS over SMB 3.0.2, read one file, log off, close."""
        t = self.arp(t, client, NAS)
        s = TCPSession(self.cap, self.rng, client, NAS, self.port(client), 445, 350)
        t = s.handshake(t)
        guid, server_guid, session = (
            self.rng.randbytes(16),
            self.rng.randbytes(16),
            self.rng.getrandbits(63),
        )
        filetime = int(
            (START.timestamp() + 11_644_473_600) * 10_000_000
        )  # [MS-DTYP] 2.3.3
        file_id, data = self.rng.randbytes(16), self.rng.randbytes(size)
        exchanges = [
            (SMB2_NEGOTIATE, negotiate_request(guid), negotiate_response(server_guid, filetime, b""), 0, 0),
            (SMB2_SESSION_SETUP, session_setup_request(ntlm_negotiate()), session_setup_response(ntlm_challenge(self.rng, "OFFICE", "NAS")), STATUS_MORE_PROCESSING_REQUIRED, session),
            (SMB2_SESSION_SETUP, session_setup_request(ntlm_authenticate(self.rng, "OFFICE", user, client.name.upper(), "NAS", filetime)), session_setup_response(b""), 0, session),
            (SMB2_TREE_CONNECT, tree_connect_request(f"\\\\{NAS.ip}\\shared"), tree_connect_response(), 0, session),
            (SMB2_CREATE, create_request(path), create_response(file_id, size, filetime), 0, session),
        ]  # fmt: skip
        offsets = range(0, size, 32768)
        exchanges += [
            (
                SMB2_READ,
                read_request(file_id, 32768, o),
                read_response(data[o : o + 32768]),
                0,
                session,
            )
            for o in offsets
        ]
        exchanges.append(
            (SMB2_CLOSE, close_request(file_id), close_response(), 0, session)
        )
        for msg_id, (command, request, response, status, sid) in enumerate(exchanges):
            tree = (
                1
                if command
                not in (SMB2_NEGOTIATE, SMB2_SESSION_SETUP, SMB2_TREE_CONNECT)
                else 0
            )
            req_sid = session if msg_id > 1 else 0
            t = s.send(
                t + 300,
                True,
                smb2(command, msg_id, request, session=req_sid, tree=tree),
            )
            t = s.send(
                t + 400,
                False,
                smb2(
                    command,
                    msg_id,
                    response,
                    True,
                    status,
                    sid,
                    tree if command != SMB2_TREE_CONNECT else 1,
                ),
            )
        return s.close(t + 5 * US)

    def port_scan(self, t: int, scanner: Host, target: Host) -> int:
        """A half-open SYN scan as nmap -sS sends it: one raw source port,
        window 1024, MSS only, random IP ids, random order."""
        t = self.arp(t, scanner, target)
        others = [
            p for p in range(1, 1025) if p not in SCAN_OPEN and p not in SCAN_FILTERED
        ]
        ports = (
            SCAN_OPEN
            + SCAN_FILTERED
            + self.rng.sample(others, SCAN_PORTS - len(SCAN_OPEN) - len(SCAN_FILTERED))
        )
        self.rng.shuffle(ports)
        raw = Host(
            scanner.name,
            scanner.ip,
            scanner.mac,
            ttl=self.rng.randrange(37, 60),
            window=1024,
        )
        sport = self.rng.randrange(40000, 65000)
        for port in ports:
            answer = (
                "open"
                if port in SCAN_OPEN
                else "filtered"
                if port in SCAN_FILTERED
                else "closed"
            )
            probe = TCPSession(self.cap, self.rng, raw, target, sport, port, 250)
            probe.syn_probe(t, answer, options=[("MSS", 1460)])
            t += self.rng.randrange(200, 600)
        for pkt in self.cap.packets:  # nmap draws an IP id per probe
            if pkt[2] is raw:
                pkt[3][IP].id = self.rng.getrandbits(16)
        return t

    def build(self, out: Path = OUT) -> int:
        """Lay out the five minutes and write the capture to ``out``."""
        rng = self.rng
        self.dhcp_join(2 * US, DAVE)
        for host in CLIENTS:
            start = (6 if host is DAVE else rng.randrange(1, 20)) * US + rng.randrange(
                US
            )
            self.connectivity_check(start, host)
            self.ntp(start + 3 * US, host, NTP_SERVERS[family(host)])
            t = start + 5 * US
            while t < DURATION - 20 * US:
                t = (
                    self.https(t, host, rng.choice(HTTPS_SITES))
                    + rng.randrange(10, 50) * US
                )
        self.ntp(60 * US, NAS, NTP_SERVERS["linux"])
        self.smb_session(40 * US, ALICE, "alice", "finance\\q3-budget.xlsx", 96 * 1024)
        self.smb_session(210 * US, FRANK, "frank", "hr\\rota-november.docx", 24 * 1024)
        page = http_response(
            "200 OK",
            "text/html",
            b"<html><head><title>HP Color LaserJet</title></head><body>"
            + b"<p>Ready</p>" * 200
            + b"</body></html>",
        )
        self.http(
            self.arp(120 * US, ALICE, PRINTER),
            ALICE,
            PRINTER,
            400,
            PRINTER.ip,
            "/",
            page,
        )
        ping(self.cap, 90 * US, CAROL, GW, 0x1C2D, 4, 350)
        self.dhcp_renew(180 * US, ERIN)
        self.port_scan(SCAN_AT, BOB, NAS)
        return self.cap.write(out, int(START.timestamp()) * US)


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    count = Office().build(out)
    print(f"{out}: {count} packets, {out.stat().st_size} bytes")
