# cython: language_level=3
"""Read pcap and pcapng files into batches: the compiled reader.

Same interface, batches, problems and counters as the pure-Python twin
``sensor/capture/pcapfile.py`` (with ``sensor/capture/pcapng.py``); read
those for the rules, this file for how they are made fast.

Design: the file is read in large chunks into one bytearray. Record and
block headers are parsed in C straight out of that buffer; each packet's
bytes are copied once into a growing C buffer, and its offset, lengths,
time and link type go into preallocated numpy arrays. A batch costs one
bytes object and five arrays; no Python object is made per packet. Python
is entered only to refill the buffer, to hand a batch over, and on the cold
path that words a problem. Opening (path checks, magic, gzip) goes through
``sensor.capture.source.open_capture``, the same code the twin uses.
"""

cimport numpy as cnp
from cpython.bytearray cimport (
    PyByteArray_AS_STRING,
    PyByteArray_FromStringAndSize,
    PyByteArray_Resize,
)
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memmove

import numpy as np

from sensor.capture import formats as _f
from sensor.capture.batch import Batch
from sensor.capture.source import open_capture

cnp.import_array()

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>

    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    #define PC_HOST_BIG 1
    #else
    #define PC_HOST_BIG 0
    #endif

    static inline uint16_t pc_u16(const unsigned char *p, int swap) {
        uint16_t v;
        memcpy(&v, p, 2);
        return swap ? __builtin_bswap16(v) : v;
    }

    static inline uint32_t pc_u32(const unsigned char *p, int swap) {
        uint32_t v;
        memcpy(&v, p, 4);
        return swap ? __builtin_bswap32(v) : v;
    }

    static inline int64_t pc_i64(const unsigned char *p, int swap) {
        uint64_t v;
        memcpy(&v, p, 8);
        return (int64_t)(swap ? __builtin_bswap64(v) : v);
    }

    /* pcapng timestamp to nanoseconds; see formats.pcapng_ts_ns. The
       product of a 64-bit count and 10^9 needs 94 bits, hence __int128;
       the result wraps to 64 bits exactly like the Python twin's. */
    static inline int64_t pc_ts_ns(uint64_t units, int pow2, int exponent,
                                   int64_t offset_s) {
        unsigned __int128 ns;
        if (pow2) {
            ns = ((unsigned __int128)units * 1000000000u) >> exponent;
        } else if (exponent <= 9) {
            ns = (unsigned __int128)units;
            for (int i = exponent; i < 9; i++) ns *= 10u;
        } else if (exponent - 9 > 19) {
            ns = 0;  /* 10^20 > 2^64 > units */
        } else {
            uint64_t div = 1;
            for (int i = 9; i < exponent; i++) div *= 10u;
            ns = units / div;
        }
        __int128 sum = (__int128)ns + (__int128)offset_s * 1000000000;
        return (int64_t)(uint64_t)(unsigned __int128)sum;
    }
    """
    int PC_HOST_BIG
    uint16_t pc_u16(const unsigned char *p, int swap) nogil
    uint32_t pc_u32(const unsigned char *p, int swap) nogil
    int64_t pc_i64(const unsigned char *p, int swap) nogil
    int64_t pc_ts_ns(uint64_t units, int pow2, int exponent,
                     int64_t offset_s) nogil


# The limits, from sensor.capture.formats like the twin's.
cdef Py_ssize_t BATCH_BYTES = _f.BATCH_BYTES
cdef uint32_t MAX_BLOCK_LEN = _f.MAX_BLOCK_LEN
cdef Py_ssize_t MAX_INTERFACES = _f.MAX_INTERFACES
cdef Py_ssize_t MAX_PROBLEMS = _f.MAX_PROBLEMS
cdef Py_ssize_t CHUNK = 4 << 20

# Block types and options (pcapng sections 3.5, 4); see formats.py.
cdef uint32_t SHB = _f.PCAPNG_SHB
cdef uint32_t IDB = _f.PCAPNG_IDB
cdef uint32_t PB = _f.PCAPNG_PB
cdef uint32_t SPB = _f.PCAPNG_SPB
cdef uint32_t EPB = _f.PCAPNG_EPB
cdef uint32_t BOM = _f.PCAPNG_BOM
cdef uint32_t SHB_MIN_LEN = _f.PCAPNG_SHB_MIN_LEN
cdef uint16_t OPT_ENDOFOPT = _f.PCAPNG_OPT_ENDOFOPT
cdef uint16_t OPT_IF_TSRESOL = _f.PCAPNG_OPT_IF_TSRESOL
cdef uint16_t OPT_IF_TSOFFSET = _f.PCAPNG_OPT_IF_TSOFFSET
cdef int DEFAULT_TSRESOL = _f.PCAPNG_DEFAULT_TSRESOL

# What a fill step tells the batch loop.
cdef enum:
    FULL = 0        # the batch is full; hand it over and go on
    DONE = 1        # end of file, or damage that ends the reading


cdef struct Interface:
    uint16_t linktype
    uint32_t snaplen
    int pow2
    int exponent
    int64_t offset_s


cdef class CaptureFile:
    """A pcap or pcapng file (optionally gzip-compressed), read in batches.

    See :class:`sensor.capture.pcapfile.CaptureFile`; this is its compiled
    twin, with the same attributes and the same results.
    """

    cdef readonly str path
    cdef readonly str format
    cdef readonly list problems
    cdef readonly Py_ssize_t problems_dropped
    cdef readonly long long packets
    cdef long long _bytes
    cdef object _source
    cdef object _header
    cdef Py_ssize_t _batch_size
    cdef bint _started

    # Read buffer: bytes [_pos, _end) of _buf are unread; _buf[0] is at
    # stream offset _base.
    cdef bytearray _buf
    cdef unsigned char *_bufp
    cdef Py_ssize_t _pos, _end
    cdef long long _base
    cdef bint _eof

    # The batch being filled.
    cdef char *_out
    cdef Py_ssize_t _out_len, _out_cap, _n
    cdef object _a_offsets, _a_caplens, _a_wirelens, _a_ts, _a_linktypes
    cdef int64_t *_offsets
    cdef uint32_t *_caplens
    cdef uint32_t *_wirelens
    cdef int64_t *_ts
    cdef uint16_t *_linktypes

    # Format state.
    cdef int _swap
    cdef uint32_t _snaplen, _limit
    cdef uint16_t _linktype
    cdef int64_t _frac_scale
    cdef bint _over_snaplen_reported
    cdef Interface *_ifaces
    cdef Py_ssize_t _n_ifaces, _ifaces_cap
    cdef int64_t _last_ts

    def __cinit__(self):
        self._out = NULL
        self._ifaces = NULL

    def __dealloc__(self):
        free(self._out)
        free(self._ifaces)

    def __init__(self, path, Py_ssize_t batch_size=4096):
        if not 1 <= batch_size <= _f.MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be 1 to {_f.MAX_BATCH_SIZE}, "
                             f"not {batch_size}")
        self.path = str(path)
        self._source, self._header = open_capture(self.path)
        self._batch_size = batch_size
        self.format = self._header.format
        self.problems = []

        # Not zero-filled: pages are touched only as data is read into them,
        # so that opening a small capture costs no 4 MiB memset.
        self._buf = PyByteArray_FromStringAndSize(NULL, CHUNK)
        self._bufp = <unsigned char *>PyByteArray_AS_STRING(self._buf)
        self._base = self._source.offset
        self._out_cap = 1 << 20
        self._out = <char *>malloc(self._out_cap)
        if self._out == NULL:
            raise MemoryError()

        header = self._header
        self._swap = (1 if header.big_endian else 0) != PC_HOST_BIG
        self._snaplen = header.snaplen
        self._limit = _f.pcap_record_limit(header.snaplen)
        self._linktype = header.linktype
        self._frac_scale = 1 if header.nanosecond else 1000

    @property
    def bytes(self):
        """Captured bytes handed out so far."""
        return self._bytes

    def __iter__(self):
        return self.batches()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Close the file; iterating afterwards yields nothing more."""
        self._started = True
        self._source.close()

    def batches(self):
        """Yield the file's packets in batches, in file order, once."""
        if self._started:
            return
        self._started = True
        cdef bint pcap = self.format == "pcap"
        cdef int status = FULL
        try:
            while status == FULL:
                self._new_batch()
                if pcap:
                    status = self._fill_pcap()
                else:
                    status = self._fill_pcapng()
                if self._n:
                    yield self._emit()
        finally:
            if self._source.error:
                self._problem(self._source.error)
            self._source.close()

    # -- buffers ----------------------------------------------------------

    cdef int _refill(self, Py_ssize_t need) except -1:
        """Make ``need`` bytes available at _pos, unless the file ends."""
        cdef Py_ssize_t tail = self._end - self._pos
        cdef Py_ssize_t n
        if self._pos:
            memmove(self._bufp, self._bufp + self._pos, tail)
            self._base += self._pos
            self._pos, self._end = 0, tail
        if need > len(self._buf):
            PyByteArray_Resize(self._buf, max(need, 2 * len(self._buf)))
            self._bufp = <unsigned char *>PyByteArray_AS_STRING(self._buf)
        while self._end < need and not self._eof:
            view = memoryview(self._buf)[self._end:]
            try:
                n = self._source.readinto(view)
            finally:
                view.release()
            if n <= 0:
                self._eof = True
            self._end += max(n, 0)
        return 0

    cdef int _new_batch(self) except -1:
        cdef Py_ssize_t size = self._batch_size
        self._a_offsets = np.empty(size, dtype=np.int64)
        self._a_caplens = np.empty(size, dtype=np.uint32)
        self._a_wirelens = np.empty(size, dtype=np.uint32)
        self._a_ts = np.empty(size, dtype=np.int64)
        self._a_linktypes = np.empty(size, dtype=np.uint16)
        self._offsets = <int64_t *>cnp.PyArray_DATA(self._a_offsets)
        self._caplens = <uint32_t *>cnp.PyArray_DATA(self._a_caplens)
        self._wirelens = <uint32_t *>cnp.PyArray_DATA(self._a_wirelens)
        self._ts = <int64_t *>cnp.PyArray_DATA(self._a_ts)
        self._linktypes = <uint16_t *>cnp.PyArray_DATA(self._a_linktypes)
        self._n = 0
        self._out_len = 0
        return 0

    cdef inline int _append(self, const unsigned char *data, uint32_t caplen,
                            uint32_t wirelen, int64_t ts,
                            uint16_t linktype) except -1:
        cdef Py_ssize_t need = self._out_len + caplen
        cdef Py_ssize_t cap
        cdef char *grown
        if need > self._out_cap:
            cap = max(need, 2 * self._out_cap)
            grown = <char *>realloc(self._out, cap)
            if grown == NULL:
                raise MemoryError()
            self._out, self._out_cap = grown, cap
        memcpy(self._out + self._out_len, data, caplen)
        self._offsets[self._n] = self._out_len
        self._caplens[self._n] = caplen
        self._wirelens[self._n] = wirelen
        self._ts[self._n] = ts
        self._linktypes[self._n] = linktype
        self._out_len = need
        self._n += 1
        return 0

    cdef object _emit(self):
        cdef Py_ssize_t n = self._n
        data = PyBytes_FromStringAndSize(self._out, self._out_len)
        batch = Batch(
            data=data,
            offsets=self._a_offsets[:n],
            caplens=self._a_caplens[:n],
            wirelens=self._a_wirelens[:n],
            ts=self._a_ts[:n],
            linktypes=self._a_linktypes[:n],
        )
        self.packets += n
        self._bytes += self._out_len
        return batch

    cdef int _problem(self, str message) except -1:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(f"{self.path}: {message}")
        else:
            self.problems_dropped += 1
        return 0

    # -- pcap ---------------------------------------------------------------

    cdef int _fill_pcap(self) except -1:
        """Records to the batch until it is full or the reading ends."""
        cdef const unsigned char *p
        cdef Py_ssize_t avail
        cdef uint32_t sec, frac, caplen, wirelen
        cdef long long offset
        cdef int swap = self._swap

        while self._n < self._batch_size and self._out_len < BATCH_BYTES:
            avail = self._end - self._pos
            if avail < 16:
                if not self._eof:
                    self._refill(16)
                    continue
                if avail:
                    self._problem(
                        f"truncated record header at offset "
                        f"{self._base + self._pos}: 16 bytes needed, "
                        f"{avail} left")
                return DONE

            p = self._bufp + self._pos
            sec = pc_u32(p, swap)
            frac = pc_u32(p + 4, swap)
            caplen = pc_u32(p + 8, swap)
            wirelen = pc_u32(p + 12, swap)
            if caplen > self._snaplen or caplen > self._limit:
                if self._pcap_odd_length(caplen):
                    return DONE
            if avail < 16 + <Py_ssize_t>caplen:
                if not self._eof:
                    self._refill(16 + caplen)
                    continue
                self._problem(
                    f"truncated record at offset {self._base + self._pos}: "
                    f"header says {caplen} bytes, {avail - 16} left")
                return DONE

            self._append(p + 16, caplen, wirelen,
                         <int64_t>sec * 1000000000 + frac * self._frac_scale,
                         self._linktype)
            self._pos += 16 + caplen
        return FULL

    cdef int _pcap_odd_length(self, uint32_t caplen) except -1:
        """Report a caplen over the snaplen; 1 when it ends the reading."""
        offset = self._base + self._pos
        if caplen > self._limit:
            self._problem(
                f"bad record header at offset {offset}: captured length "
                f"{caplen} > limit {self._limit}; reading stopped")
            return 1
        if (caplen > self._snaplen and self._snaplen
                and not self._over_snaplen_reported):
            self._problem(
                f"record at offset {offset}: captured length {caplen} > "
                f"snaplen {self._snaplen} (reported once)")
            self._over_snaplen_reported = True
        return 0

    # -- pcapng -------------------------------------------------------------

    cdef int _fill_pcapng(self) except -1:
        """Blocks to the batch until it is full or the reading ends."""
        cdef const unsigned char *p
        cdef Py_ssize_t avail, head
        cdef uint32_t btype, length, minimum
        cdef int swap

        while self._n < self._batch_size and self._out_len < BATCH_BYTES:
            avail = self._end - self._pos
            p = self._bufp + self._pos
            head = 8
            if avail >= 8 and pc_u32(p, 0) == SHB:
                head = 12  # the byte-order magic too
            if avail < head:
                if not self._eof:
                    self._refill(head)
                    continue
                if avail:
                    self._problem(
                        f"truncated block header at offset "
                        f"{self._base + self._pos}: {head} bytes needed, "
                        f"{avail} left")
                return DONE

            # Section Header Blocks bring their byte order (section 4.1).
            btype = pc_u32(p, self._swap)
            minimum = 12
            if btype == SHB:
                if pc_u32(p + 8, 0) == BOM:
                    self._swap = 0
                elif pc_u32(p + 8, 1) == BOM:
                    self._swap = 1
                else:
                    self._problem(
                        f"section at offset {self._base + self._pos}: bad "
                        f"byte-order magic 0x{(<bytes>p[8:12]).hex()}; "
                        f"reading stopped")
                    return DONE
                minimum = SHB_MIN_LEN
            swap = self._swap

            length = pc_u32(p + 4, swap)
            if length < minimum or length % 4 or length > MAX_BLOCK_LEN:
                self._problem(
                    f"bad block length {length} at offset "
                    f"{self._base + self._pos}; reading stopped")
                return DONE
            if avail < length:
                if not self._eof:
                    self._refill(length)
                    continue
                self._problem(
                    f"truncated block at offset {self._base + self._pos}: "
                    f"header says {length} bytes, {avail} left")
                return DONE
            if pc_u32(p + length - 4, swap) != length:
                self._problem(
                    f"block at offset {self._base + self._pos}: trailing "
                    f"length {pc_u32(p + length - 4, swap)} differs from "
                    f"leading length {length}; reading stopped")
                return DONE

            if self._block(btype, p + 8, length - 12) == DONE:
                return DONE
            self._pos += length
        return FULL

    cdef int _block(self, uint32_t btype, const unsigned char *body,
                    Py_ssize_t size) except -1:
        """Act on one whole block; DONE when it ends the reading."""
        cdef uint16_t major
        if btype == SHB:
            major = pc_u16(body + 4, self._swap)
            if major != 1:
                self._problem(
                    f"section at offset {self._base + self._pos}: "
                    f"unsupported pcapng version {major}."
                    f"{pc_u16(body + 6, self._swap)}; reading stopped")
                return DONE
            self._n_ifaces = 0
        elif btype == IDB:
            self._add_interface(body, size)
        elif btype == EPB or btype == PB:
            self._packet_block(btype, body, size)
        elif btype == SPB:
            self._simple_packet_block(body, size)
        return FULL

    cdef int _add_interface(self, const unsigned char *body,
                            Py_ssize_t size) except -1:
        cdef long long offset = self._base + self._pos
        cdef Interface iface
        cdef Interface *grown
        cdef Py_ssize_t pos = 8
        cdef uint16_t code, length
        cdef int swap = self._swap
        if size < 8:
            self._problem(f"interface block at offset {offset}: {size} "
                          f"bytes, 8 needed; ignored")
            return 0
        if self._n_ifaces >= MAX_INTERFACES:
            self._problem(f"interface block at offset {offset}: over the "
                          f"limit of {MAX_INTERFACES} interfaces; ignored")
            return 0
        iface.linktype = pc_u16(body, swap)
        iface.snaplen = pc_u32(body + 4, swap)
        iface.pow2 = 0
        iface.exponent = DEFAULT_TSRESOL
        iface.offset_s = 0

        # Options (section 3.5): code, length, value padded to 32 bits.
        while pos + 4 <= size:
            code = pc_u16(body + pos, swap)
            length = pc_u16(body + pos + 2, swap)
            if code == OPT_ENDOFOPT:
                break
            if pos + 4 + length > size:
                self._problem(f"interface block at offset {offset}: option "
                              f"{code} overruns the block")
                break
            if code == OPT_IF_TSRESOL and length == 1:
                iface.pow2 = (body[pos + 4] & 0x80) != 0
                iface.exponent = body[pos + 4] & 0x7F
            elif code == OPT_IF_TSOFFSET and length == 8:
                iface.offset_s = pc_i64(body + pos + 4, swap)
            pos += 4 + (length + 3) // 4 * 4

        if self._n_ifaces == self._ifaces_cap:
            grown = <Interface *>realloc(
                self._ifaces, (2 * self._ifaces_cap + 4) * sizeof(Interface))
            if grown == NULL:
                raise MemoryError()
            self._ifaces = grown
            self._ifaces_cap = 2 * self._ifaces_cap + 4
        self._ifaces[self._n_ifaces] = iface
        self._n_ifaces += 1
        return 0

    cdef int _packet_block(self, uint32_t btype, const unsigned char *body,
                           Py_ssize_t size) except -1:
        cdef uint32_t ifid, caplen, wirelen
        cdef uint64_t units
        cdef Interface *iface
        cdef int swap = self._swap
        if size < 20:
            return self._bad_packet_block(btype, size, 0, 0)
        if btype == EPB:
            ifid = pc_u32(body, swap)
        else:
            ifid = pc_u16(body, swap)
        units = ((<uint64_t>pc_u32(body + 4, swap) << 32)
                 | pc_u32(body + 8, swap))
        caplen = pc_u32(body + 12, swap)
        wirelen = pc_u32(body + 16, swap)
        if ifid >= self._n_ifaces or caplen > size - 20:
            return self._bad_packet_block(btype, size, ifid, caplen)

        iface = &self._ifaces[ifid]
        self._last_ts = pc_ts_ns(units, iface.pow2, iface.exponent,
                                 iface.offset_s)
        return self._append(body + 20, caplen, wirelen, self._last_ts,
                            iface.linktype)

    cdef int _bad_packet_block(self, uint32_t btype, Py_ssize_t size,
                               uint32_t ifid, uint32_t caplen) except -1:
        offset = self._base + self._pos
        name = ("enhanced packet block" if btype == EPB
                else "packet block")
        if size < 20:
            self._problem(f"{name} at offset {offset}: {size} bytes, 20 "
                          f"needed; skipped")
        elif ifid >= self._n_ifaces:
            self._problem(f"{name} at offset {offset}: interface {ifid} not "
                          f"defined ({self._n_ifaces} defined); skipped")
        else:
            self._problem(f"{name} at offset {offset}: captured length "
                          f"{caplen} > {size - 20} bytes in the block; "
                          f"skipped")
        return 0

    cdef int _simple_packet_block(self, const unsigned char *body,
                                  Py_ssize_t size) except -1:
        cdef uint32_t wirelen, caplen
        offset = self._base + self._pos
        if size < 4:
            self._problem(f"simple packet block at offset {offset}: {size} "
                          f"bytes, 4 needed; skipped")
            return 0
        if self._n_ifaces == 0:
            self._problem(f"simple packet block at offset {offset}: no "
                          f"interface defined; skipped")
            return 0

        # No captured length in the block: the original length cut to the
        # block and to the snaplen (section 4.4). No timestamp either.
        wirelen = pc_u32(body, self._swap)
        caplen = min(wirelen, <uint32_t>(size - 4))
        if self._ifaces[0].snaplen:
            caplen = min(caplen, self._ifaces[0].snaplen)
        return self._append(body + 4, caplen, wirelen, self._last_ts,
                            self._ifaces[0].linktype)
