"""The connection table: packets in, Zeek-style conn records out.

:class:`ConnTable` decodes every packet of a batch, reassembles fragments,
finds or creates the connection, runs the TCP/UDP/ICMP semantics and fires
timers by packet time, as Zeek does when it reads a capture: before a packet
is processed, every timer due at its timestamp fires, so an idle connection
ends before a packet that would otherwise have joined it.

Bounds: at most ``FlowConfig.max_conns`` connections. When a new one would
exceed it, the connection whose next timer is soonest is finished early
(``conn_table_full`` counts it). Fragments are bounded by
``FlowConfig.frag_memory`` (see :mod:`sensor.decode.ipfrag`).

Timers (Zeek's defaults, see :mod:`sensor.flow.tcp` and :mod:`sensor.flow.udp`):
inactivity (TCP 5 min once established, 1 min before; UDP, ICMP and other
protocols 1 min; an hour for ports 21, 22, 23, 513), the TCP attempt timer
(an unanswered SYN ends after 5 s), the close delay (5 s after both FINs or
a RST), the expire timer for half-closed connections, and the DNS
analyzer's 10 s session timer. A packet on a 5-tuple whose connection ended
starts a new connection.

Early notices: a TCP connection ended by a reset (a refused attempt,
``REJ``, or a reset one) is decided at the RST, but its record comes out
only when the close delay has run, 5 s later, because Zeek's conn.log
counts what arrives meanwhile. A table made with ``early=True`` also hands
out, in ``Events.early``, that connection's record as it stands at the
RST, so that detections can count the attempt at once; the final record
comes later as ever, in ``Events.conns``, with the same uid. A connection
closed by FINs alone gets no notice (most connections end so; waiting
costs nothing there).

``stats()`` keys: ``packets``, ``bytes``, ``conns_created``, ``conns_open``,
``frag_reassembled``, ``frag_dropped``, ``frag_timed_out``, and one count
per anomaly name (``sensor.decode.anomaly``), ``conn_table_full`` included.

ARP: every Ethernet/IPv4 ARP packet goes to a
:class:`sensor.flow.arp.ARPAggregator`, which merges repeats and hands
``Events.arps`` records out when their window has passed in network time;
its counters (``arp_*``) join ``stats()``.

Tunnels: IP-in-IP, GRE, VXLAN, Geneve, GTP-U and Teredo are decapsulated (two
levels at most) and their inner connections tracked like any other.

Application analyzers that change a connection's shape in Zeek are
mirrored here: DNS and NTP role flips, the DNS session timer and its
violations (history ``X``), see :mod:`sensor.flow.udp` and
:mod:`sensor.flow.dnscheck`.

Known gaps: AYIYA is not decapsulated; Zeek's one-hour idle timeout after
FTP is confirmed on a non-standard port is not mirrored (SSH's is). The
shared captures show ``X`` only after DNS violations (an HTTP violation
there left none), so no other analyzer's violations are mirrored.
"""

from __future__ import annotations

import heapq
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sensor.capture.batch import Batch
from sensor.decode.ipfrag import FragmentReassembler
from sensor.decode.l3 import PROTO_ICMP, PROTO_ICMP6, PROTO_TCP, PROTO_UDP
from sensor.decode.packet import LINK_IPV4, LINK_IPV6, Packet, parse
from sensor.flow import tcp, tunnel, udp
from sensor.flow.arp import NEVER, ARPAggregator
from sensor.flow.conn import RESET, Conn
from sensor.flow.ports import likely_server
from sensor.flow.record import conn_record, icmp_ports
from sensor.flow.uid import conn_uid

SEC = 1_000_000_000

#: Flow and net weirds are reported once per name and flow a day, and that
#: memory holds at most this many entries (oldest forgotten first).
WEIRD_MEMORY = 65536
WEIRD_REPEAT_NS = 86400 * SEC

#: Names counted in stats() but not reported as weirds: Zeek's Weird::actions
#: ignores the first three (they are routine on real networks), and frames
#: that are not IP are normal on a LAN.
QUIET = frozenset(
    {"spontaneous_FIN", "spontaneous_RST", "unsolicited_SYN_response", "non_ip_packet"}
)


@dataclass
class FlowConfig:
    """Tunables of the connection table. Defaults are Zeek's where Zeek has one.

    Times are seconds.
    """

    #: Idle time after which an established TCP connection ends (tcp_inactivity_timeout).
    tcp_inactivity: float = 300.0
    #: Idle time for UDP, and for TCP before its handshake completes (udp_inactivity_timeout).
    udp_inactivity: float = 60.0
    #: Idle time for ICMP "connections" (icmp_inactivity_timeout).
    icmp_inactivity: float = 60.0
    #: Most connections tracked at once; the soonest-to-expire is finished to make room.
    max_conns: int = 1_000_000
    #: Payload-bearing packets per direction handed to service detection.
    payload_packets: int = 8
    #: Payload bytes per direction handed to service detection.
    payload_bytes: int = 4096
    #: Bytes of pending IP fragments held at most; the oldest datagram goes first.
    frag_memory: int = 4 << 20
    #: Pending fragments idle this long are dropped.
    frag_timeout: float = 60.0

    def __post_init__(self) -> None:
        for name in (
            "tcp_inactivity",
            "udp_inactivity",
            "icmp_inactivity",
            "frag_timeout",
        ):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(
                    f"flow.{name}: {value!r} is not a positive number of seconds"
                )
        for name in ("max_conns", "payload_packets", "payload_bytes", "frag_memory"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (1 if name == "max_conns" else 0):
                raise ValueError(
                    f"flow.{name}: {value!r} is not a non-negative integer (max_conns at least 1)"
                )


#: (uid, is_orig, ts, payload, proto, orig_h, orig_p, resp_h, resp_p, seq):
#: ``seq`` is the TCP sequence number of the payload's first byte (0 for UDP).
PayloadEvent = tuple[str, bool, float, bytes, str, str, int, str, int, int]


@dataclass
class Events:
    """What one call produced, each list in the order things happened."""

    conns: list[dict[str, Any]] = field(default_factory=list)
    weirds: list[dict[str, Any]] = field(default_factory=list)
    payloads: list[PayloadEvent] = field(default_factory=list)
    #: ARP records (see :mod:`sensor.flow.arp`), in the order they were due.
    arps: list[dict[str, Any]] = field(default_factory=list)
    #: With ``early=True``: the conn records of TCP connections that a reset
    #: ended, as they stood at the reset (see the module docstring).
    early: list[dict[str, Any]] = field(default_factory=list)


class ConnTable:
    """Bidirectional connection tracking with Zeek's conn.log semantics."""

    def __init__(
        self,
        config: FlowConfig | None = None,
        *,
        on_payload: Callable[[PayloadEvent], None] | None = None,
        wants_more: Callable[[str], bool] | None = None,
        early: bool = False,
    ) -> None:
        """``on_payload``, when given, receives each payload event as it
        happens instead of ``Events.payloads``; ``wants_more(uid)`` is asked
        for every payload packet past a direction's budget, and a True
        answer delivers it too; it is also asked when the budget would cut
        a packet short, and a True answer delivers the whole packet
        (service detection uses both to follow FTP control and SMB pipe
        traffic beyond the first packets; the protocol analyzers to get
        whole TCP streams, see :mod:`sensor.proto.stream`). ``early`` asks
        for the early notices of reset connections (``Events.early``).
        """
        self.on_payload = on_payload
        self.early = early
        self.wants_more = wants_more
        self.config = config or FlowConfig()
        c = self.config
        self.conns: dict[tuple[Any, ...], Conn] = {}
        self.heap: list[tuple[int, int, Conn]] = []
        self.frags = FragmentReassembler(c.frag_memory, int(c.frag_timeout * SEC))
        self.serial = 0
        self.network_ns = 0  # packet time, never going back (Zeek's network_time)
        self.counters: dict[str, int] = {}
        self._reported: dict[tuple[str, bytes, bytes], int] = {}
        self._ev = Events()
        self.arp = ARPAggregator()
        self._arp_due = NEVER
        self._udp_ns = int(c.udp_inactivity * SEC)
        self._tcp_ns = int(c.tcp_inactivity * SEC)
        self._icmp_ns = int(c.icmp_inactivity * SEC)

    # -- interface ---------------------------------------------------------

    def process(self, batch: Batch) -> Events:
        """Track every packet of ``batch``; returns what finished meanwhile."""
        self._ev = Events()
        data = batch.data
        for i in range(len(batch)):
            ts = int(batch.ts[i])
            pkt = parse(
                data,
                int(batch.offsets[i]),
                int(batch.caplens[i]),
                int(batch.wirelens[i]),
                int(batch.linktypes[i]),
            )
            self.packet(pkt, ts)
        return self._ev

    def advance(self, now_ns: int) -> Events:
        """Move network time to ``now_ns`` without a packet; returns what expired.

        A live sensor on a quiet link calls this with the clock, so that
        idle connections end on time instead of when the next packet comes.
        Network time never goes back: an earlier ``now_ns`` does nothing.
        """
        self._ev = Events()
        if now_ns > self.network_ns:
            self.network_ns = now_ns
            self._run_timers(now_ns)
            if now_ns >= self._arp_due:
                self._arp_due = self.arp.expire(now_ns, self._ev.arps)
        return self._ev

    def flush(self) -> Events:
        """End of input: finish every connection still open, oldest first."""
        self._ev = Events()
        for conn in sorted(self.conns.values(), key=lambda c: c.serial):
            self._finish(conn)
        self.conns.clear()
        self.heap.clear()
        self.arp.flush(self._ev.arps)
        self._arp_due = NEVER
        return self._ev

    def stats(self) -> dict[str, int]:
        """Counters: packets, per-anomaly counts, connections, limits hit."""
        out = dict(self.counters)
        out["conns_open"] = len(self.conns)
        out["frag_dropped"] = self.frags.dropped
        out["frag_timed_out"] = self.frags.timed_out
        out["frag_reassembled"] = self.frags.completed
        out.update(self.arp.stats())
        return out

    # -- per packet --------------------------------------------------------

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def packet(self, pkt: Packet, ts: int) -> None:
        """Process one decoded packet seen at ``ts`` nanoseconds."""
        self._count("packets")
        self._count("bytes", pkt.wirelen)
        # Timers run on network time, which never goes back even when a
        # merged capture's timestamps do; the packet keeps its own time.
        self.network_ns = max(self.network_ns, ts)
        self._run_timers(self.network_ns)
        if self.network_ns >= self._arp_due:
            self._arp_due = self.arp.expire(self.network_ns, self._ev.arps)
        if pkt.arp_op >= 0:
            self._arp(pkt, ts)
            return
        self._ip(pkt, ts, 0)

    def _arp(self, pkt: Packet, ts: int) -> None:
        if not pkt.arp_sha:
            self.arp.unsupported()
            return
        self._arp_due = self.arp.add(
            ts,
            self.network_ns,
            pkt.arp_op,
            pkt.arp_sha,
            pkt.arp_spa,
            pkt.arp_tha,
            pkt.arp_tpa,
            pkt.vlan,
            self._ev.arps,
        )

    def _ip(self, pkt: Packet, ts: int, depth: int) -> None:
        """Track one IP packet; ``depth`` counts tunnel layers around it."""
        if pkt.is_fragment and not pkt.anomaly:
            whole, anomaly = self.frags.add(pkt, ts)
            if anomaly:
                self._anomaly(anomaly, ts, pkt)
            if not whole:
                return
            link = LINK_IPV4 if pkt.ip_version == 4 else LINK_IPV6
            inner = parse(whole, 0, len(whole), len(whole), link)
            inner.l2_src, inner.l2_dst = pkt.l2_src, pkt.l2_dst
            inner.vlan, inner.inner_vlan = pkt.vlan, pkt.inner_vlan
            pkt = inner

        proto = pkt.ip_proto
        if pkt.anomaly == "unknown_protocol" and proto in (4, 41, 47):
            link, tunneled = (tunnel.gre if proto == 47 else tunnel.ip_in_ip)(pkt)
            if tunneled and depth < 2:
                n = len(tunneled)
                self._ip(parse(tunneled, 0, n, n, link), ts, depth + 1)
                return
        tcp_bad = proto == PROTO_TCP and pkt.sport >= 0 and pkt.tcp_hdr_len < 0
        if (
            pkt.anomaly
            and pkt.anomaly
            not in (
                "UDP_datagram_length_mismatch",
                "ip_hdr_len_zero",
                "incompletely_captured_fragment",
            )
            and not tcp_bad
        ):
            self._anomaly(pkt.anomaly, ts, pkt)
            return
        if proto in (PROTO_ICMP, PROTO_ICMP6):
            if pkt.icmp_type < 0:
                return
            sport, dport, one_way = icmp_ports(proto, pkt.icmp_type, pkt.icmp_code)
        elif proto not in (PROTO_TCP, PROTO_UDP):
            if pkt.l4_off < 0:
                return
            sport, dport, one_way = 0, 0, False
        elif pkt.sport < 0:
            return
        else:
            sport, dport, one_way = pkt.sport, pkt.dport, False
        key = _key(proto, pkt.src, sport, pkt.dst, dport, one_way)
        conn = self.conns.get(key)
        if conn is not None and proto == PROTO_TCP and _is_reuse(conn, pkt, ts):
            self._finish(conn)
            del self.conns[key]
            conn = None
        if conn is None:
            conn = self._new_conn(key, pkt, proto, sport, dport, ts)
        is_orig = pkt.src == conn.orig_h and sport == conn.orig_p

        if pkt.anomaly:
            conn.weird(pkt.anomaly)
        if proto == PROTO_TCP:
            if not tcp_bad:
                canceled = conn.timers_canceled
                tcp.tcp_packet(conn, pkt, is_orig, ts)
                self._count_packet(conn, pkt, is_orig, ts)
                if self.early and conn.timers_canceled and not canceled:
                    self._notice(conn)
        elif proto == PROTO_UDP:
            self._count_packet(conn, pkt, is_orig, ts)
            udp.udp_packet(conn, pkt, is_orig, ts)
            if depth < 2:
                if conn.resp_p in (
                    tunnel.VXLAN_PORT,
                    tunnel.GENEVE_PORT,
                    tunnel.GTP_U_PORT,
                ):
                    link, tunneled = tunnel.udp_tunnel(pkt, conn.resp_p)
                elif conn.resp_p not in udp.OTHER_TUNNEL_PORTS:
                    link, tunneled = LINK_IPV6, udp.teredo_inner(pkt)
                else:
                    link, tunneled = 0, b""
                if tunneled:
                    self._flush_weirds(conn, ts)
                    self._schedule(conn)
                    n = len(tunneled)
                    self._ip(parse(tunneled, 0, n, n, link), ts, depth + 1)
                    return
        else:
            udp.other_packet(conn, pkt, is_orig, ts)
            # ICMP packets count only when fully captured (Zeek's ConnSize
            # sees them through ForwardPacket, which checks that).
            if pkt.payload_caplen >= pkt.payload_len:
                self._count_packet(conn, pkt, is_orig, ts)
        self._flush_weirds(conn, ts)
        self._schedule(conn)

    def _more(self, uid: str) -> bool:
        return self.wants_more is not None and self.wants_more(uid)

    def _count_packet(self, conn: Conn, pkt: Packet, is_orig: bool, ts: int) -> None:
        ep = conn.orig if is_orig else conn.resp
        ep.pkts += 1
        ep.ip_bytes += pkt.ip_total_len
        if pkt.payload_caplen <= 0 or conn.proto not in (PROTO_TCP, PROTO_UDP):
            return
        budget = self.config.payload_bytes - ep.payload_bytes
        payload = pkt.payload()
        if ep.payload_pkts < self.config.payload_packets and budget > 0:
            chunk = payload[:budget]
            ep.payload_pkts += 1
            ep.payload_bytes += len(chunk)
            if len(chunk) < len(payload) and self._more(conn.uid):
                chunk = payload  # a stream follower needs whole segments
        elif self._more(conn.uid):
            # Past the budget only on request, a packet at a time, whole;
            # the counters stay put (past the budget they no longer matter).
            chunk = payload
        else:
            return
        event = (
            conn.uid,
            is_orig,
            ts / SEC,
            chunk,
            "tcp" if conn.proto == PROTO_TCP else "udp",
            str(ipaddress.ip_address(conn.orig_h)),
            conn.orig_p,
            str(ipaddress.ip_address(conn.resp_h)),
            conn.resp_p,
            pkt.seq if conn.proto == PROTO_TCP else 0,
        )
        if self.on_payload is not None:
            self.on_payload(event)
        else:
            self._ev.payloads.append(event)

    def _new_conn(
        self,
        key: tuple[Any, ...],
        pkt: Packet,
        proto: int,
        sport: int,
        dport: int,
        ts: int,
    ) -> Conn:
        if len(self.conns) >= self.config.max_conns:
            self._evict()
        self.serial += 1
        self._count("conns_created")
        conn = Conn()
        conn.key = key
        conn.serial = self.serial
        conn.proto = PROTO_ICMP if proto == PROTO_ICMP6 else proto
        conn.ip_proto = proto
        conn.orig_h, conn.orig_p = pkt.src, sport
        conn.resp_h, conn.resp_p = pkt.dst, dport
        conn.orig.l2, conn.resp.l2 = pkt.l2_src, pkt.l2_dst
        conn.vlan, conn.inner_vlan = pkt.vlan, pkt.inner_vlan
        conn.start_ns = conn.last_ns = ts
        conn.uid = conn_uid(ts, proto, pkt.src, sport, pkt.dst, dport, self.serial)
        conn.tcp_inactivity_ns = self._tcp_ns
        if proto not in (PROTO_TCP, PROTO_UDP):
            conn.inactivity_ns = self._icmp_ns
        else:
            # TCP starts with the UDP timeout until its handshake completes.
            conn.inactivity_ns = self._udp_ns
        if proto == PROTO_TCP:
            conn.expire_ns = ts + 5 * SEC  # tcp_SYN_timeout
            if _want_flip_tcp(sport, dport, pkt.tcp_flags) and not _broadcast(pkt.dst):
                if pkt.tcp_flags & tcp.SYN and not likely_server(6, sport):
                    # Zeek 9 processes such a SYN-ACK as the originator's
                    # (hence the weird) before flipping.
                    conn.weird("connection_originator_SYN_ack")
                conn.flip()
            udp.attach_app(conn, ts)
        elif proto == PROTO_UDP:
            if (
                likely_server(17, sport)
                and not likely_server(17, dport)
                and not _broadcast(pkt.dst)
            ):
                conn.flip()
            udp.attach_app(conn, ts)
        self.conns[key] = conn
        return conn

    # -- timers ------------------------------------------------------------

    def _next_deadline(self, conn: Conn) -> int:
        if conn.timers_canceled:
            return conn.delete_ns
        nd = conn.last_ns + conn.inactivity_ns
        for t in (conn.attempt_ns, conn.expire_ns, conn.delete_ns, conn.app_ns):
            if t and t < nd:
                nd = t
        return nd

    def _schedule(self, conn: Conn) -> None:
        nd = self._next_deadline(conn)
        if conn.heap_ns < 0 or nd < conn.heap_ns:
            conn.heap_ns = nd
            heapq.heappush(self.heap, (nd, conn.serial, conn))

    def _run_timers(self, now: int) -> None:
        heap = self.heap
        while heap and heap[0][0] <= now:
            when, _, conn = heapq.heappop(heap)
            if conn.done or when != conn.heap_ns:
                continue
            conn.heap_ns = -1
            if self._fire(conn, now):
                self._finish(conn)
                self.conns.pop(conn.key, None)
            else:
                self._schedule(conn)

    def _fire(self, conn: Conn, now: int) -> bool:
        """Run the connection's due timers in time order; True to finish it."""
        while True:
            due = []
            if conn.delete_ns and conn.delete_ns <= now:
                due.append((conn.delete_ns, 0))
            if not conn.timers_canceled:
                if conn.last_ns + conn.inactivity_ns <= now:
                    due.append((conn.last_ns + conn.inactivity_ns, 1))
                if conn.attempt_ns and conn.attempt_ns <= now:
                    due.append((conn.attempt_ns, 2))
                if conn.expire_ns and conn.expire_ns <= now:
                    due.append((conn.expire_ns, 3))
                if conn.app_ns and conn.app_ns <= now:
                    due.append((conn.app_ns, 4))
            if not due:
                return False
            _, which = min(due)
            if which in (0, 1):
                return True
            if which == 2 and tcp.attempt_timer(conn):
                return True
            if which == 3 and tcp.expire_timer(conn, now):
                return True
            if which == 4 and udp.dns_expire(conn, now):
                return True

    def _evict(self) -> None:
        while self.heap:
            _, _, conn = heapq.heappop(self.heap)
            if not conn.done and conn.key in self.conns:
                self._anomaly("conn_table_full", conn.last_ns, None)
                self._finish(conn)
                del self.conns[conn.key]
                return

    # -- output ------------------------------------------------------------

    def _finish(self, conn: Conn) -> None:
        if conn.done:
            return
        conn.done = True
        self._ev.conns.append(conn_record(conn))

    def _notice(self, conn: Conn) -> None:
        # The close delay has just begun; a reset on either side decided it.
        if conn.orig.state == RESET or conn.resp.state == RESET:
            self._ev.early.append(conn_record(conn))

    def _flush_weirds(self, conn: Conn, ts: int) -> None:
        for name in conn.new_weirds:
            self._count(name)
            if name in QUIET:
                continue
            self._ev.weirds.append(
                {
                    "ts": ts / SEC,
                    "uid": conn.uid,
                    "id.orig_h": str(ipaddress.ip_address(conn.orig_h)),
                    "id.orig_p": conn.orig_p,
                    "id.resp_h": str(ipaddress.ip_address(conn.resp_h)),
                    "id.resp_p": conn.resp_p,
                    "name": name,
                    "addl": "",
                    "notice": False,
                    "peer": "sensor",
                    "source": "TCP" if conn.proto == PROTO_TCP else "IP",
                }
            )
        conn.new_weirds.clear()

    def _anomaly(self, name: str, ts: int, pkt: Packet | None) -> None:
        self._count(name)
        if name in QUIET:
            return
        flow = pkt is not None and pkt.ip_total_len > 0 and bool(pkt.src)
        # Like Zeek's weird framework, report a name once per flow (or once
        # for packets without addresses) and day; the memory is bounded.
        seen = (
            (name, pkt.src, pkt.dst) if flow and pkt is not None else (name, b"", b"")
        )
        last = self._reported.get(seen)
        if last is not None and ts - last < WEIRD_REPEAT_NS:
            return
        if last is None and len(self._reported) >= WEIRD_MEMORY:
            del self._reported[next(iter(self._reported))]
        self._reported[seen] = ts
        rec: dict[str, Any] = {"ts": ts / SEC}
        if flow and pkt is not None:
            # Past the IP checks Zeek reports a "flow weird" with the
            # addresses (ports 0); before them a bare "net weird".
            rec["id.orig_h"] = str(ipaddress.ip_address(pkt.src))
            rec["id.orig_p"] = 0
            rec["id.resp_h"] = str(ipaddress.ip_address(pkt.dst))
            rec["id.resp_p"] = 0
        rec.update(name=name, addl="", notice=False, peer="sensor", source="IP")
        self._ev.weirds.append(rec)


def _key(
    proto: int, src: bytes, sport: int, dst: bytes, dport: int, one_way: bool
) -> tuple[Any, ...]:
    # Both directions share a key, except one-way ICMP messages (Zeek's ConnKey).
    if one_way or (src, sport) <= (dst, dport):
        return (proto, src, sport, dst, dport, one_way)
    return (proto, dst, dport, src, sport, one_way)


def _broadcast(addr: bytes) -> bool:
    return addr == b"\xff\xff\xff\xff"


def _want_flip_tcp(sport: int, dport: int, flags: int) -> bool:
    """Zeek's TCP WantConnection: flip a partial start from a server port.

    A SYN-ACK as the first packet is always flipped: Zeek 9's logs show
    history ``^h`` for every such connection, whatever the ports.
    """
    if flags & tcp.SYN and not flags & tcp.ACK:
        return False
    if flags & tcp.SYN:
        return True
    if likely_server(6, sport):
        if likely_server(6, dport):
            return not flags & tcp.SYN and sport < dport
        return True
    return False


def _is_reuse(conn: Conn, pkt: Packet, ts: int) -> bool:
    """Zeek's TCP IsReuse: a new SYN on a tuple that already has a connection."""
    flags = pkt.tcp_flags
    if not flags & tcp.SYN:
        return False
    conn_orig = conn.orig
    if flags & tcp.ACK:
        if conn.orig.state != 0:
            return False
        conn_orig = conn.resp
    if not (conn.orig.did_close or conn.resp.did_close):
        if pkt.seq == conn_orig.start_seq:
            return False
        if (
            not flags & tcp.ACK
            and conn_orig.state == 2
            and conn.resp.state == 0
            and pkt.seq == conn.resp.start_seq
        ):
            return False
    return True
