"""Live capture from an interface: AF_PACKET sockets with TPACKET_V3 rings.

:func:`open_capture` opens one socket per worker, each with its own ring,
bound to the interface and joined to one ``PACKET_FANOUT`` group that
spreads packets by flow hash, so that both directions of a connection reach
the same worker (Documentation/networking/packet_mmap.rst, "AF_PACKET
fanout mode"). ``PACKET_FANOUT_FLAG_DEFRAG`` makes the kernel reassemble IP
fragments before hashing, so that every fragment lands with its flow.

Setup order matters: the socket is opened with protocol 0 so that it
receives nothing until it is bound, the ring is set and mapped, then the
socket is bound to the interface, the filter attached, and the fanout group
joined (the kernel accepts a fanout group only on a bound socket).

Promiscuous mode is set through netlink (pyroute2) and put back as found
when capture stops. Drop counters come from ``PACKET_STATISTICS``, which the
kernel resets on every read; :meth:`Capture.stats` adds them up.

Every problem at start is a :class:`StartupError` with one line that names
the interface first and the cause last.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

from sensor import _impl
from sensor.capture import bpf

log = logging.getLogger(__name__)
# pyroute2 warns at import when /proc/net/psched is hidden (the unit's
# ProcSubset=pid); its traffic-control part is not used here.
logging.getLogger("pyroute2.netlink.rtnl.tcmsg").setLevel(logging.ERROR)

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_FANOUT = 18
PACKET_IGNORE_OUTGOING = 23
PACKET_FANOUT_HASH = 0
PACKET_FANOUT_FLAG_DEFRAG = 0x8000
PACKET_FANOUT_FLAG_IGNORE_OUTGOING = 0x4000
IFF_PROMISC = 0x100
IFF_UP = 0x1


class StartupError(Exception):
    """Capture cannot start; the message is one line. ``exit_code`` for sensord."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


#: Exit status when the process lacks a capability (sysexits EX_NOPERM).
EXIT_NOPERM = 77


@dataclass
class Counters:
    """Kernel counters of one socket, added up since capture started."""

    #: Packets the kernel passed to the socket, drops included.
    packets: int = 0
    #: Packets dropped because the ring was full.
    drops: int = 0
    #: Times the ring was frozen (TPACKET_V3 ``tp_freeze_q_cnt``).
    freezes: int = 0


@dataclass
class Capture:
    """The sockets and rings of one interface, one per worker."""

    interface: str
    ifindex: int
    sockets: list[socket.socket]
    rings: list[Any]
    promisc_set: bool = False
    counters: list[Counters] = field(default_factory=list)

    def stats(self) -> list[Counters]:
        """Read PACKET_STATISTICS of every socket; totals per worker."""
        if not self.counters:
            self.counters = [Counters() for _ in self.sockets]
        for sock, c in zip(self.sockets, self.counters):
            if sock.fileno() < 0:
                continue
            # struct tpacket_stats_v3: tp_packets, tp_drops, tp_freeze_q_cnt.
            raw = sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
            packets, drops, freezes = struct.unpack("III", raw)
            c.packets += packets
            c.drops += drops
            c.freezes += freezes
        return self.counters

    def set_filter(self, expression: str) -> None:
        """Attach a new filter to every socket (atomically per socket)."""
        insns = compile_or_fail(self.interface, expression)
        for sock in self.sockets:
            bpf.attach(sock, insns)

    def close(self) -> None:
        """Close rings and sockets; put promiscuous mode back as found."""
        for ring in self.rings:
            ring.close()
        for sock in self.sockets:
            sock.close()
        if self.promisc_set:
            self.promisc_set = False
            try:
                set_promiscuous(self.ifindex, False)
            except OSError as e:
                if e.errno != errno.ENODEV:  # ENODEV: gone with the interface
                    log.warning(
                        "%s: cannot leave promiscuous mode: %s",
                        self.interface,
                        e.strerror or e,
                    )


def compile_or_fail(interface: str, expression: str) -> list[tuple[int, int, int, int]]:
    """The filter's instructions, or a StartupError naming the option."""
    if not expression:
        return []
    try:
        return bpf.compile_filter(expression)
    except bpf.FilterError as e:
        raise StartupError(f"capture.bpf_filter = {expression!r}: {e}", 78) from None


def interface_index(name: str) -> int:
    """The interface's index, or a StartupError when it does not exist."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        raise StartupError(f"{name}: no such network interface") from None


def set_promiscuous(ifindex: int, on: bool) -> bool:
    """Set or clear IFF_PROMISC through netlink; return whether it changed."""
    from pyroute2 import IPRoute  # type: ignore[import-untyped]
    from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

    try:
        with IPRoute() as ipr:
            flags = ipr.link("get", index=ifindex)[0]["flags"]
            if bool(flags & IFF_PROMISC) == on:
                return False
            ipr.link(
                "set", index=ifindex, flags=IFF_PROMISC if on else 0, change=IFF_PROMISC
            )
            return True
    except NetlinkError as e:
        raise OSError(e.code, os.strerror(e.code)) from None


def interface_up(ifindex: int) -> bool:
    """Whether the interface is administratively up."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        return bool(ipr.link("get", index=ifindex)[0]["flags"] & IFF_UP)


def _fail(interface: str, what: str, e: OSError) -> StartupError:
    if e.errno in (errno.EPERM, errno.EACCES):
        need = "CAP_NET_ADMIN" if "promiscuous" in what else "CAP_NET_RAW"
        return StartupError(
            f"{interface}: cannot {what}: {e.strerror} (needs {need})", EXIT_NOPERM
        )
    return StartupError(f"{interface}: cannot {what}: {e.strerror or e}")


def _join_fanout(
    sock: socket.socket, interface: str, group: int, ignore_outgoing: bool
) -> None:
    """Join fanout ``group``, skipping outgoing frames when asked.

    A socket in a fanout group receives through the group's packet hook,
    not its own, so its PACKET_IGNORE_OUTGOING has no effect there: the
    group skips outgoing frames only when created with
    PACKET_FANOUT_FLAG_IGNORE_OUTGOING (net/packet/af_packet.c,
    fanout_add). Without it every frame this host sends is captured, and
    on ``lo`` every frame twice (as it leaves and as it comes back in).
    Every member must give the same flags, or the kernel refuses it.
    Kernels older than the flag accept it and ignore it (fanout_add checks
    only the type there), so more than one worker captures outgoing frames
    on them.
    """
    flags = PACKET_FANOUT_FLAG_DEFRAG
    if ignore_outgoing:
        flags |= PACKET_FANOUT_FLAG_IGNORE_OUTGOING
    arg = group | (PACKET_FANOUT_HASH | flags) << 16
    try:
        sock.setsockopt(SOL_PACKET, PACKET_FANOUT, struct.pack("I", arg))
    except OSError as e:
        raise _fail(interface, "join a fanout group", e) from None


def open_capture(
    interface: str,
    workers: int,
    *,
    block_size: int = 1 << 20,
    blocks: int = 64,
    block_timeout_ms: int = 20,
    bpf_filter: str = "",
    promiscuous: bool = True,
    ignore_outgoing: bool = True,
) -> Capture:
    """Open ``workers`` sockets with rings on ``interface``, in one fanout group."""
    ifindex = interface_index(interface)
    insns = compile_or_fail(interface, bpf_filter)
    ring_mod = _impl.load("ring", "sensor.capture.ring")
    cap = Capture(interface, ifindex, [], [])
    # The group id only has to be unique among this host's fanout groups.
    group = os.getpid() & 0xFFFF
    try:
        for _ in range(workers):
            try:
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            except OSError as e:
                raise _fail(interface, "open a packet socket", e) from None
            cap.sockets.append(sock)
            try:
                cap.rings.append(
                    ring_mod.Ring(sock, block_size, blocks, block_timeout_ms)
                )
            except OSError as e:
                raise _fail(
                    interface, f"set up a {block_size * blocks} byte ring", e
                ) from None
            try:
                sock.bind((interface, ETH_P_ALL))
            except OSError as e:
                raise _fail(interface, "bind a packet socket", e) from None
            bpf.attach(sock, insns)
            if ignore_outgoing:
                # Linux 4.20 and later; older kernels capture outgoing frames too.
                try:
                    sock.setsockopt(
                        SOL_PACKET, PACKET_IGNORE_OUTGOING, struct.pack("i", 1)
                    )
                except OSError:
                    log.warning("%s: kernel cannot skip outgoing frames", interface)
            if workers > 1:
                _join_fanout(sock, interface, group, ignore_outgoing)

        if promiscuous:
            try:
                cap.promisc_set = set_promiscuous(ifindex, True)
            except OSError as e:
                raise _fail(interface, "enable promiscuous mode", e) from None
        if not interface_up(ifindex):
            log.warning(
                "%s: interface is down; nothing is captured until it is up", interface
            )
    except BaseException:
        cap.close()
        raise
    return cap
