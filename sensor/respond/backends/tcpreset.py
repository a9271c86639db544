"""The TCP reset back-end: end one connection from a passive mirror port.

A sensor on a mirror (SPAN) port sees a connection but is not in its path.
To end it, it sends each end a TCP RST that the end's stack accepts: one
whose sequence number is exactly the next one that end expects (RFC 9293
section 3.10.7.4; Linux answers an RST that is in the window but not exact
with a challenge ACK, RFC 5961 section 3.2). Those numbers change with every
segment, so they are taken from the latest packet of the connection seen
on the watched interface, not from a record written seconds earlier.

How: for each reset, a socket on the watched interface (the mirror; the
capture workers' rings are left alone) with a kernel filter for the
connection's two addresses and ports waits for the connection's next
packet. From a packet A->B with sequence S, payload length L and
acknowledgement K, the reset to B claims to come from A with sequence
S + L (+1 for SYN or FIN), and the reset to A claims to come from B with
sequence K. Both frames are built with :mod:`struct` (no packet library on
this path), addressed to the MACs seen in that packet, from the injecting
interface's own MAC (so the switch does not learn either end at our port),
and sent on the configured interface (``response.interface``) as raw
AF_PACKET frames.

A silent connection gives no packet to wait for: after ``probe_after``
seconds (0.2) the back-end sends the device, as from its peer, an ACK with a
sequence number almost surely outside the window; the device's stack
answers with an ACK carrying its current numbers (RFC 9293 3.10.7.4; Linux
answers at most one such segment per 0.5 s and connection), the mirror
shows the answer, and the resets are built from it. The probe needs the
device's MAC (the alert's ``device.mac``, the intent's ``target_mac``).

Known limits: without the device's MAC a silent connection is not reset
before the intent expires (``response.reset_seconds``); 802.1Q tags are not
put back on the injected frames (the kernel strips them before the filter
sees them), so a mirror of a trunk needs an injecting interface on the
right VLAN.
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import os
import socket
import struct
import threading
import time
from typing import Any

from sensor.capture.bpf import FilterError, attach, compile_filter
from sensor.respond.backends import BackendError
from sensor.respond.intent import Intent

log = logging.getLogger(__name__)

ETH_P_ALL = 0x0003
SIOCGIFHWADDR = 0x8927
SO_TIMESTAMPNS = 35  # also SCM_TIMESTAMPNS
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10
#: At most this many resets wait for a packet at once; more fail.
MAX_WAITING = 256


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def parse(frame: bytes) -> dict[str, Any] | None:
    """The Ethernet, IP and TCP fields of ``frame`` that a reset needs, or
    None when it is not TCP over IPv4/IPv6 (VLAN tags are skipped)."""
    if len(frame) < 14:
        return None
    dst_mac, src_mac = frame[0:6], frame[6:12]
    (etype,) = struct.unpack_from("!H", frame, 12)
    off = 14
    while etype in (0x8100, 0x88A8) and len(frame) >= off + 4:
        (etype,) = struct.unpack_from("!H", frame, off + 2)
        off += 4
    if etype == ETH_P_IP and len(frame) >= off + 20:
        ihl = (frame[off] & 0x0F) * 4
        if frame[off + 9] != 6:
            return None
        (total,) = struct.unpack_from("!H", frame, off + 2)
        src, dst = frame[off + 12 : off + 16], frame[off + 16 : off + 20]
        l4, end = off + ihl, off + total
        version = 4
    elif etype == ETH_P_IPV6 and len(frame) >= off + 40:
        if frame[off + 6] != 6:
            return None  # TODO: extension headers before TCP
        (plen,) = struct.unpack_from("!H", frame, off + 4)
        src, dst = frame[off + 8 : off + 24], frame[off + 24 : off + 40]
        l4, end = off + 40, off + 40 + plen
        version = 6
    else:
        return None
    if len(frame) < l4 + 20:
        return None
    sport, dport, seq, ack, hlen, flags = struct.unpack_from("!HHIIBB", frame, l4)
    payload = max(0, end - l4 - (hlen >> 4) * 4)
    return {
        "version": version,
        "dst_mac": dst_mac,
        "src_mac": src_mac,
        "src": src,
        "dst": dst,
        "sport": sport,
        "dport": dport,
        "seq": seq,
        "ack": ack,
        "flags": flags,
        "len": payload,
    }


def rst_frame(
    version: int,
    src_mac: bytes,
    dst_mac: bytes,
    src: bytes,
    dst: bytes,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
) -> bytes:
    """One Ethernet frame carrying TCP RST+ACK from src to dst."""
    tcp = struct.pack(
        "!HHIIBBHHH",
        sport,
        dport,
        seq & 0xFFFFFFFF,
        ack & 0xFFFFFFFF,
        5 << 4,
        TCP_RST | TCP_ACK,
        0,
        0,
        0,
    )
    if version == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", _checksum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst
        )
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        etype = ETH_P_IP
    else:
        pseudo = src + dst + struct.pack("!I3xB", len(tcp), 6)
        tcp = tcp[:16] + struct.pack("!H", _checksum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack("!IHBB16s16s", 6 << 28, len(tcp), 6, 64, src, dst)
        etype = ETH_P_IPV6
    return dst_mac + src_mac + struct.pack("!H", etype) + ip + tcp


def resets_for(seen: dict[str, Any], own_mac: bytes) -> tuple[bytes, bytes]:
    """The two frames that end the connection of packet ``seen`` (A->B):
    the first to B (as from A), the second to A (as from B)."""
    p = seen
    nxt = p["seq"] + p["len"] + (1 if p["flags"] & (TCP_SYN | TCP_FIN) else 0)
    to_b = rst_frame(
        p["version"],
        own_mac,
        p["dst_mac"],
        p["src"],
        p["dst"],
        p["sport"],
        p["dport"],
        nxt,
        p["ack"],
    )
    to_a = rst_frame(
        p["version"],
        own_mac,
        p["src_mac"],
        p["dst"],
        p["src"],
        p["dport"],
        p["sport"],
        p["ack"],
        nxt,
    )
    return to_b, to_a


def _stamp(ancillary: list[tuple[int, int, bytes]], default: float) -> float:
    """The kernel receive time (SCM_TIMESTAMPNS) of a received frame."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack_from("qq", data)
            return float(sec) + float(nsec) / 1e9
    return default


def _mac(interface: str) -> bytes:
    # SIOCGIFHWADDR (netdevice(7)); sysfs may show another network namespace.
    req = struct.pack("16s16x", interface.encode()[:15])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            res = fcntl.ioctl(s.fileno(), SIOCGIFHWADDR, req)
    except OSError:
        raise BackendError(f"{interface}: no such interface for resets") from None
    return bytes(res[18:24])


class TCPReset:
    """Resets connections by injecting RSTs built from their latest packet."""

    name = "tcp-reset"
    actions = frozenset({"reset"})

    def __init__(
        self, interface: str, watch: str | None = None, probe_after: float = 0.2
    ) -> None:
        self.interface = interface
        #: Seconds of silence after which an idle connection is probed.
        self.probe_after = probe_after
        self.watch = watch or interface
        self.own_mac = _mac(interface)
        _mac(self.watch)
        try:
            self.out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            self.out.bind((interface, 0))
        except OSError as e:
            raise BackendError(
                f"{interface}: cannot open a raw socket for resets: {e.strerror}"
            ) from None
        self.lock = threading.Lock()
        self.events: list[dict[str, Any]] = []
        self.waiting: dict[str, threading.Thread] = {}
        self.stopping = threading.Event()

    def apply(self, intent: Intent, now: float) -> None:
        """Start waiting for the connection's next packet; reset it then."""
        assert intent.conn is not None
        if intent.id in self.waiting:
            return
        if len(self.waiting) >= MAX_WAITING:
            raise BackendError(f"tcp-reset: {MAX_WAITING} resets already waiting")
        a, ap, b, bp = intent.conn
        expr = f"tcp and host {a} and host {b} and port {ap} and port {bp}"
        if ipaddress.ip_address(a).version == 6:
            expr = f"ip6 and {expr}"
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            # Kernel receive times, so the latency of a reset can be told.
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            # The filter goes on before bind, so no frame of another
            # connection is queued in between.
            attach(sock, compile_filter(expr))
            sock.bind((self.watch, ETH_P_ALL))
        except (OSError, FilterError) as e:
            raise BackendError(
                f"{self.watch}: cannot watch {a}:{ap} <-> {b}:{bp}: {e}"
            ) from None
        deadline = time.monotonic() + max(0.0, intent.expires - now)
        probe = self._probe(intent)
        t = threading.Thread(
            target=self._wait,
            args=(intent.id, sock, deadline, probe),
            name=f"reset-{intent.id}",
            daemon=True,
        )
        self.waiting[intent.id] = t
        t.start()

    def _wait(
        self,
        id: str,
        sock: socket.socket,
        deadline: float,
        probe: bytes | None,
    ) -> None:
        probe_at = time.monotonic() + self.probe_after
        try:
            while not self.stopping.is_set():
                if probe is not None and time.monotonic() >= probe_at:
                    self.out.send(probe)
                    probe = None
                left = deadline - time.monotonic()
                if left <= 0:
                    self._event(
                        id,
                        "expire",
                        msg="no packet of the connection was seen before the intent expired",
                    )
                    return
                sock.settimeout(
                    min(left, 0.25, max(0.001, probe_at - time.monotonic()))
                )
                try:
                    frame, anc, _, addr = sock.recvmsg(65535, 64)
                except TimeoutError:
                    continue
                if addr[2] == socket.PACKET_OUTGOING or frame[6:12] == self.own_mac:
                    continue  # our own probe or resets, looped back by a mirror
                seen = parse(frame)
                if seen is None:
                    continue
                to_b, to_a = resets_for(seen, self.own_mac)
                self.out.send(to_b)
                self.out.send(to_a)
                sent = time.time()
                self._event(
                    id,
                    "reset",
                    sent=sent,
                    seen=_stamp(anc, sent),
                    seq=(seen["seq"] + seen["len"]) & 0xFFFFFFFF,
                    ack=seen["ack"],
                )
                return
        except OSError as e:
            self._event(
                id, "fail", msg=f"{self.interface}: cannot send reset: {e.strerror}"
            )
        finally:
            sock.close()
            with self.lock:
                self.waiting.pop(id, None)

    def _probe(self, intent: Intent) -> bytes | None:
        """An ACK to the device, as from its peer, with a sequence number
        almost surely outside the window: the device's stack answers with
        an ACK carrying its current numbers (RFC 9293 3.10.7.4), which the
        mirror shows and the resets are built from. Needs the device's MAC;
        None without it."""
        if not intent.target_mac or intent.conn is None:
            return None
        a, ap, b, bp = intent.conn
        version = ipaddress.ip_address(a).version
        src, dst = ipaddress.ip_address(b).packed, ipaddress.ip_address(a).packed
        seq = int.from_bytes(os.urandom(4), "big")
        frame = rst_frame(version, self.own_mac, bytes.fromhex(intent.target_mac.replace(":", "")),
                          src, dst, bp, ap, seq, 0)  # fmt: skip
        # The same frame with ACK alone: flip the flags byte, fix the checksum.
        l4 = 14 + (20 if version == 4 else 40)
        pseudo_len = len(frame) - l4
        tcp = bytearray(frame[l4:])
        tcp[13] = TCP_ACK
        tcp[16:18] = b"\0\0"
        if version == 4:
            pseudo = src + dst + struct.pack("!BBH", 0, 6, pseudo_len)
        else:
            pseudo = src + dst + struct.pack("!I3xB", pseudo_len, 6)
        tcp[16:18] = struct.pack("!H", _checksum(pseudo + bytes(tcp)))
        return frame[:l4] + bytes(tcp)

    def _event(self, id: str, change: str, **fields: Any) -> None:
        with self.lock:
            self.events.append({"id": id, "change": change, **fields})

    def remove(self, intent: Intent, now: float) -> None:
        """Nothing stays in force after a reset; a waiting one goes on
        until it fires or expires."""

    def reconcile(self, intents: list[Intent], now: float) -> None:
        for intent in intents:
            if (
                intent.action == "reset"
                and intent.state == "active"
                and intent.id not in self.waiting
            ):
                # Only resets that never fired are still active.
                self.apply(intent, now)

    def poll(self) -> list[dict[str, Any]]:
        """What happened since the last poll: resets sent, timed out, failed."""
        with self.lock:
            out, self.events = self.events, []
        return out

    def close(self) -> None:
        self.stopping.set()
        for t in list(self.waiting.values()):
            t.join(timeout=1.0)
        self.out.close()
