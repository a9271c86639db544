"""AF_PACKET TPACKET_V3 receive ring, read block by block into batches.

Pure-Python twin of the compiled ``ext/ring.pyx``: same interface, same
batches, slower (a struct unpack per packet). ``sensor.capture.live`` sets
the socket up and picks one of the two through ``sensor._impl``.

How the ring works (Documentation/networking/packet_mmap.rst, the kernel's
``include/uapi/linux/if_packet.h``): the kernel fills fixed-size blocks in
turn, each holding many packets; a block is handed to user space by setting
``TP_STATUS_USER`` in its descriptor, when it is full or when
``block_timeout_ms`` has passed. Reading a block means copying its packets
out and handing it back (``TP_STATUS_KERNEL``). If user space is slower than
the link, the kernel finds no free block and counts a drop in
``PACKET_STATISTICS``: the ring's bound, with the kernel's counter.

The kernel takes 802.1Q tags off received frames and reports them beside the
packet (``tp_vlan_tci``); like libpcap, the tag is put back in the frame so
that decoding sees what was on the wire.
"""

from __future__ import annotations

import mmap
import select
import socket
import struct

import numpy as np

from sensor.capture.batch import Batch

SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_VERSION = 10
TPACKET_V3 = 2
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
LINKTYPE_ETHERNET = 1
#: Nominal frame size; TPACKET_V3 packs frames of any size, but the kernel
#: still checks that block_size is a multiple of it.
FRAME_SIZE = 2048

# struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1:
# block_status, num_pkts, offset_to_first_pkt (bytes 8..20).
_BLOCK = struct.Struct("=III")
# struct tpacket3_hdr: tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_len,
# tp_status, tp_mac, tp_net, then hv1: tp_rxhash, tp_vlan_tci, tp_vlan_tpid.
_PKT = struct.Struct("=IIIIIIHHIIH")


def ring_request(block_size: int, blocks: int, block_timeout_ms: int) -> bytes:
    """``struct tpacket_req3`` for PACKET_RX_RING."""
    frames = block_size // FRAME_SIZE * blocks
    return struct.pack(
        "=7I", block_size, blocks, FRAME_SIZE, frames, block_timeout_ms, 0, 0
    )


class Ring:
    """The receive ring of one AF_PACKET socket.

    ``sock`` must not be bound yet (the ring is set before packets flow);
    the caller binds it afterwards. :meth:`read` returns the packets of the
    next full or timed-out block as a :class:`Batch`, or None when none came
    within ``timeout_ms``.
    """

    def __init__(
        self, sock: socket.socket, block_size: int, blocks: int, block_timeout_ms: int
    ) -> None:
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, struct.pack("I", TPACKET_V3))
        sock.setsockopt(
            SOL_PACKET,
            PACKET_RX_RING,
            ring_request(block_size, blocks, block_timeout_ms),
        )
        self.sock = sock
        self.block_size = block_size
        self.blocks = blocks
        self.map = mmap.mmap(sock.fileno(), block_size * blocks, mmap.MAP_SHARED)
        self.poller = select.poll()
        self.poller.register(sock.fileno(), select.POLLIN | select.POLLERR)
        self.current = 0
        #: Blocks read and packets returned so far.
        self.blocks_read = 0
        self.packets_read = 0
        #: Errors the socket reported (errno values, e.g. ENETDOWN), oldest first, at most 16.
        self.errors: list[int] = []

    def read(self, timeout_ms: int) -> Batch | None:
        """The next block's packets, waiting at most ``timeout_ms``."""
        base = self.current * self.block_size
        status = _BLOCK.unpack_from(self.map, base + 8)[0]
        if not status & TP_STATUS_USER:
            for _, revents in self.poller.poll(timeout_ms):
                if revents & select.POLLERR:
                    self._socket_error()
            status = _BLOCK.unpack_from(self.map, base + 8)[0]
            if not status & TP_STATUS_USER:
                return None

        batch = self._copy_block(base)
        # Hand the block back only after every byte was copied out of it.
        struct.pack_into("=I", self.map, base + 8, TP_STATUS_KERNEL)
        self.current = (self.current + 1) % self.blocks
        self.blocks_read += 1
        self.packets_read += len(batch)
        return batch

    def _copy_block(self, base: int) -> Batch:
        m = self.map
        _, count, first = _BLOCK.unpack_from(m, base + 8)
        parts: list[bytes] = []
        caplens, wirelens, stamps = [], [], []
        pos = base + first
        for _ in range(count):
            nxt, sec, nsec, snap, wire, status, mac, _, _, tci, tpid = _PKT.unpack_from(
                m, pos
            )
            start = pos + mac
            if status & TP_STATUS_VLAN_VALID and snap >= 12:
                if not status & TP_STATUS_VLAN_TPID_VALID:
                    tpid = 0x8100
                parts.append(m[start : start + 12])
                parts.append(struct.pack("!HH", tpid, tci))
                parts.append(m[start + 12 : start + snap])
                snap += 4
                wire += 4
            else:
                parts.append(m[start : start + snap])
            caplens.append(snap)
            wirelens.append(wire)
            stamps.append(sec * 1_000_000_000 + nsec)
            pos += nxt

        lens = np.array(caplens, dtype=np.uint32)
        offsets = np.zeros(count, dtype=np.int64)
        if count:
            offsets[1:] = np.cumsum(lens[:-1], dtype=np.int64)
        return Batch(
            data=b"".join(parts),
            offsets=offsets,
            caplens=lens,
            wirelens=np.array(wirelens, dtype=np.uint32),
            ts=np.array(stamps, dtype=np.int64),
            linktypes=np.full(count, LINKTYPE_ETHERNET, dtype=np.uint16),
        )

    def _socket_error(self) -> None:
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err and len(self.errors) < 16:
            self.errors.append(err)

    def close(self) -> None:
        """Unmap the ring (the socket is the caller's to close)."""
        self.poller.unregister(self.sock.fileno())
        self.map.close()
