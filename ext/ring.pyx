# cython: language_level=3
"""AF_PACKET TPACKET_V3 receive ring, compiled.

Same interface and batches as the pure-Python twin sensor/capture/ring.py
(read its docstring for how the ring works). A block is walked twice in C:
once to size the batch, once to copy the packets into it; Python sees one
Batch per block.
"""

import socket
import struct

import numpy as np
cimport numpy as cnp
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t
from libc.string cimport memcpy

from sensor.capture.batch import Batch
from sensor.capture.ring import (
    LINKTYPE_ETHERNET,
    PACKET_RX_RING,
    PACKET_VERSION,
    SOL_PACKET,
    TPACKET_V3,
    ring_request,
)

cnp.import_array()

cdef extern from "<sys/mman.h>" nogil:
    void *mmap(void *addr, size_t length, int prot, int flags, int fd, long off)
    int munmap(void *addr, size_t length)
    int PROT_READ
    int PROT_WRITE
    int MAP_SHARED
    void *MAP_FAILED

cdef extern from "<poll.h>" nogil:
    struct pollfd:
        int fd
        short events
        short revents
    int poll(pollfd *fds, unsigned long nfds, int timeout)
    short POLLIN
    short POLLERR

cdef extern from *:
    """
    #include <linux/if_packet.h>
    static inline uint32_t ring_load_status(volatile uint32_t *p) {
        uint32_t v = *p;
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        return v;
    }
    static inline void ring_store_status(volatile uint32_t *p, uint32_t v) {
        __atomic_thread_fence(__ATOMIC_RELEASE);
        *p = v;
    }
    """
    cdef struct tpacket_hdr_v1:
        uint32_t block_status
        uint32_t num_pkts
        uint32_t offset_to_first_pkt
    cdef union tpacket_bd_header_u:
        tpacket_hdr_v1 bh1
    cdef struct tpacket_block_desc:
        uint32_t version
        uint32_t offset_to_priv
        tpacket_bd_header_u hdr
    cdef struct tpacket_hdr_variant1:
        uint32_t tp_rxhash
        uint32_t tp_vlan_tci
        uint16_t tp_vlan_tpid
    cdef struct tpacket3_hdr:
        uint32_t tp_next_offset
        uint32_t tp_sec
        uint32_t tp_nsec
        uint32_t tp_snaplen
        uint32_t tp_len
        uint32_t tp_status
        uint16_t tp_mac
        uint16_t tp_net
        tpacket_hdr_variant1 hv1
    uint32_t TP_STATUS_KERNEL
    uint32_t TP_STATUS_USER
    uint32_t TP_STATUS_VLAN_VALID
    uint32_t TP_STATUS_VLAN_TPID_VALID
    uint32_t ring_load_status(uint32_t *p) nogil
    void ring_store_status(uint32_t *p, uint32_t v) nogil


cdef class Ring:
    """The receive ring of one AF_PACKET socket (see the twin's docstring)."""

    cdef uint8_t *base
    cdef size_t size
    cdef readonly object sock
    cdef readonly int block_size
    cdef readonly int blocks
    cdef int current
    cdef int fd
    cdef public long long blocks_read
    cdef public long long packets_read
    cdef public list errors

    def __init__(self, sock, int block_size, int blocks, int block_timeout_ms):
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, struct.pack("I", TPACKET_V3))
        sock.setsockopt(
            SOL_PACKET,
            PACKET_RX_RING,
            ring_request(block_size, blocks, block_timeout_ms),
        )
        self.sock = sock
        self.fd = sock.fileno()
        self.block_size = block_size
        self.blocks = blocks
        self.size = <size_t>block_size * blocks
        cdef void *m = mmap(
            NULL, self.size, PROT_READ | PROT_WRITE, MAP_SHARED, self.fd, 0
        )
        if m == MAP_FAILED:
            raise OSError("cannot map the packet ring")
        self.base = <uint8_t *>m
        self.current = 0
        self.blocks_read = 0
        self.packets_read = 0
        self.errors = []

    cdef inline tpacket_block_desc *_block(self) noexcept nogil:
        return <tpacket_block_desc *>(
            self.base + <size_t>self.current * self.block_size
        )

    def read(self, int timeout_ms):
        """The next block's packets as a Batch, or None after ``timeout_ms``."""
        if self.base == NULL:
            raise ValueError("ring closed")
        cdef tpacket_block_desc *bd = self._block()
        cdef pollfd pfd
        cdef int n
        if not ring_load_status(&bd.hdr.bh1.block_status) & TP_STATUS_USER:
            pfd.fd = self.fd
            pfd.events = POLLIN | POLLERR
            pfd.revents = 0
            with nogil:
                n = poll(&pfd, 1, timeout_ms)
            if n > 0 and pfd.revents & POLLERR:
                err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err and len(self.errors) < 16:
                    self.errors.append(err)
            if not ring_load_status(&bd.hdr.bh1.block_status) & TP_STATUS_USER:
                return None

        batch = self._copy(bd)
        ring_store_status(&bd.hdr.bh1.block_status, TP_STATUS_KERNEL)
        self.current = (self.current + 1) % self.blocks
        self.blocks_read += 1
        self.packets_read += len(batch)
        return batch

    cdef object _copy(self, tpacket_block_desc *bd):
        cdef uint32_t count = bd.hdr.bh1.num_pkts
        cdef uint8_t *p = <uint8_t *>bd + bd.hdr.bh1.offset_to_first_pkt
        cdef uint8_t *q
        cdef tpacket3_hdr *h
        cdef size_t total = 0
        cdef uint32_t i, snap, extra
        cdef uint16_t tpid

        # Pass 1: size of the batch, tags put back included.
        q = p
        for i in range(count):
            h = <tpacket3_hdr *>q
            total += h.tp_snaplen
            if h.tp_status & TP_STATUS_VLAN_VALID and h.tp_snaplen >= 12:
                total += 4
            q += h.tp_next_offset

        data = PyBytes_FromStringAndSize(NULL, total)
        cdef uint8_t *out = <uint8_t *>PyBytes_AS_STRING(data)
        offsets = np.empty(count, dtype=np.int64)
        caplens = np.empty(count, dtype=np.uint32)
        wirelens = np.empty(count, dtype=np.uint32)
        stamps = np.empty(count, dtype=np.int64)
        cdef int64_t[::1] o_v = offsets
        cdef uint32_t[::1] c_v = caplens
        cdef uint32_t[::1] w_v = wirelens
        cdef int64_t[::1] t_v = stamps
        cdef size_t at = 0

        # Pass 2: copy, putting 802.1Q tags back after the MAC addresses.
        q = p
        for i in range(count):
            h = <tpacket3_hdr *>q
            snap = h.tp_snaplen
            extra = 0
            o_v[i] = at
            if h.tp_status & TP_STATUS_VLAN_VALID and snap >= 12:
                tpid = h.hv1.tp_vlan_tpid
                if not h.tp_status & TP_STATUS_VLAN_TPID_VALID:
                    tpid = 0x8100
                memcpy(out + at, q + h.tp_mac, 12)
                out[at + 12] = tpid >> 8
                out[at + 13] = tpid & 0xFF
                out[at + 14] = (h.hv1.tp_vlan_tci >> 8) & 0xFF
                out[at + 15] = h.hv1.tp_vlan_tci & 0xFF
                memcpy(out + at + 16, q + h.tp_mac + 12, snap - 12)
                extra = 4
            else:
                memcpy(out + at, q + h.tp_mac, snap)
            c_v[i] = snap + extra
            w_v[i] = h.tp_len + extra
            t_v[i] = <int64_t>h.tp_sec * 1000000000 + h.tp_nsec
            at += snap + extra
            q += h.tp_next_offset

        return Batch(
            data=data,
            offsets=offsets,
            caplens=caplens,
            wirelens=wirelens,
            ts=stamps,
            linktypes=np.full(count, LINKTYPE_ETHERNET, dtype=np.uint16),
        )

    def close(self):
        """Unmap the ring (the socket is the caller's to close)."""
        if self.base != NULL:
            munmap(self.base, self.size)
            self.base = NULL

    def __dealloc__(self):
        if self.base != NULL:
            munmap(self.base, self.size)
