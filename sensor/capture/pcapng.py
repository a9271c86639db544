"""pcapng blocks to packets, in pure Python (draft-ietf-opsawg-pcapng).

Used by :mod:`sensor.capture.pcapfile`; the compiled reader ``ext/pcap.pyx``
does the same in C and must report the same problems with the same words.

A file is a sequence of blocks: type, total length, body, total length
again (section 3.1). A Section Header Block starts each section and sets
its byte order; Interface Description Blocks then number the interfaces of
that section from 0, and packet blocks name their interface by that number.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sensor.capture import formats as f
from sensor.capture.source import FileHeader, Source

#: One packet on its way into a batch: (ts_ns, linktype, wirelen, data).
Packet = tuple[int, int, int, bytes]
#: Callback that records one problem (the message, without the file name).
Report = Callable[[str], None]

_BOM_BIG = struct.pack(">I", f.PCAPNG_BOM)
_BOM_LITTLE = struct.pack("<I", f.PCAPNG_BOM)


@dataclass
class Interface:
    """What an Interface Description Block says (section 4.2)."""

    linktype: int
    snaplen: int
    #: if_tsresol: units of 2^-exponent (pow2) or 10^-exponent seconds.
    pow2: bool = False
    exponent: int = f.PCAPNG_DEFAULT_TSRESOL
    #: if_tsoffset: seconds to add to every timestamp.
    offset_s: int = 0


def pcapng_packets(
    source: Source, header: FileHeader, problem: Report
) -> Iterator[Packet]:
    """The packets of a pcapng file, in file order, block by block."""
    order = ">" if header.big_endian else "<"
    interfaces: list[Interface] = []
    last_ts = 0

    while True:
        offset = source.offset
        block = read_block(source, order, problem)
        if block is None:
            return
        btype, body, order = block

        if btype == f.PCAPNG_SHB:
            # A new section: its own byte order, no interfaces yet (4.1).
            major, minor = struct.unpack_from(order + "HH", body, 4)
            if major != 1:
                problem(
                    f"section at offset {offset}: unsupported pcapng version {major}.{minor}; reading stopped"
                )
                return
            interfaces = []
        elif btype == f.PCAPNG_IDB:
            add_interface(interfaces, body, order, offset, problem)
        elif btype in (f.PCAPNG_EPB, f.PCAPNG_PB):
            packet = packet_block(btype, body, order, interfaces, offset, problem)
            if packet is not None:
                last_ts = packet[0]
                yield packet
        elif btype == f.PCAPNG_SPB:
            packet = simple_packet_block(
                body, order, interfaces, last_ts, offset, problem
            )
            if packet is not None:
                yield packet
        # Every other block type (name resolution, statistics, decryption
        # secrets, custom, ...) carries no packet and is skipped whole.


def read_block(
    source: Source, order: str, problem: Report
) -> tuple[int, bytes, str] | None:
    """Read one block; return (type, body, byte order), or None at the end.

    The body is what lies between the leading and the trailing length. A
    Section Header Block brings its own byte order, read from its
    byte-order magic before its length can be read.
    """
    offset = source.offset
    head = source.read(8)
    if len(head) < 8:
        if head:
            problem(
                f"truncated block header at offset {offset}: 8 bytes needed, {len(head)} left"
            )
        return None
    btype = struct.unpack_from(order + "I", head)[0]
    minimum = 12
    if btype == f.PCAPNG_SHB:
        bom = source.read(4)
        head += bom
        if bom not in (_BOM_BIG, _BOM_LITTLE):
            if len(bom) < 4:
                problem(
                    f"truncated block header at offset {offset}: 12 bytes needed, {len(head)} left"
                )
            else:
                problem(
                    f"section at offset {offset}: bad byte-order magic 0x{bom.hex()}; reading stopped"
                )
            return None
        order = ">" if bom == _BOM_BIG else "<"
        minimum = f.PCAPNG_SHB_MIN_LEN

    # A length that is too short, not a multiple of 4 (section 3.1) or
    # absurd leaves no way to find the next block: stop.
    length = struct.unpack_from(order + "I", head, 4)[0]
    if length < minimum or length % 4 or length > f.MAX_BLOCK_LEN:
        problem(f"bad block length {length} at offset {offset}; reading stopped")
        return None
    rest = source.read(length - len(head))
    if len(head) + len(rest) < length:
        problem(
            f"truncated block at offset {offset}: header says {length} bytes, {len(head) + len(rest)} left"
        )
        return None
    trailer = struct.unpack_from(order + "I", rest, len(rest) - 4)[0]
    if trailer != length:
        problem(
            f"block at offset {offset}: trailing length {trailer} differs from leading length {length}; reading stopped"
        )
        return None
    return btype, head[8:] + rest[:-4], order


def add_interface(
    interfaces: list[Interface], body: bytes, order: str, offset: int, problem: Report
) -> None:
    """Append the interface an Interface Description Block describes."""
    if len(body) < 8:
        problem(
            f"interface block at offset {offset}: {len(body)} bytes, 8 needed; ignored"
        )
        return
    if len(interfaces) >= f.MAX_INTERFACES:
        problem(
            f"interface block at offset {offset}: over the limit of {f.MAX_INTERFACES} interfaces; ignored"
        )
        return
    linktype, _, snaplen = struct.unpack_from(order + "HHI", body)
    interface = Interface(linktype, snaplen)

    # Options (section 3.5): code, length, value padded to 32 bits; the
    # list ends with opt_endofopt or with the block.
    pos = 8
    while pos + 4 <= len(body):
        code, size = struct.unpack_from(order + "HH", body, pos)
        if code == f.PCAPNG_OPT_ENDOFOPT:
            break
        if pos + 4 + size > len(body):
            problem(
                f"interface block at offset {offset}: option {code} overruns the block"
            )
            break
        value = body[pos + 4 : pos + 4 + size]
        if code == f.PCAPNG_OPT_IF_TSRESOL and size == 1:
            # Most significant bit set: a negative power of 2, else of 10.
            interface.pow2 = bool(value[0] & 0x80)
            interface.exponent = value[0] & 0x7F
        elif code == f.PCAPNG_OPT_IF_TSOFFSET and size == 8:
            interface.offset_s = struct.unpack(order + "q", value)[0]
        pos += 4 + (size + 3) // 4 * 4
    interfaces.append(interface)


def packet_block(
    btype: int,
    body: bytes,
    order: str,
    interfaces: list[Interface],
    offset: int,
    problem: Report,
) -> Packet | None:
    """The packet in an Enhanced Packet Block (4.3) or obsolete Packet Block."""
    name = "enhanced packet block" if btype == f.PCAPNG_EPB else "packet block"
    if len(body) < 20:
        problem(f"{name} at offset {offset}: {len(body)} bytes, 20 needed; skipped")
        return None
    if btype == f.PCAPNG_EPB:
        ifid, high, low, caplen, wirelen = struct.unpack_from(order + "IIIII", body)
    else:
        ifid, _, high, low, caplen, wirelen = struct.unpack_from(order + "HHIIII", body)
    if ifid >= len(interfaces):
        problem(
            f"{name} at offset {offset}: interface {ifid} not defined ({len(interfaces)} defined); skipped"
        )
        return None
    if caplen > len(body) - 20:
        problem(
            f"{name} at offset {offset}: captured length {caplen} > {len(body) - 20} bytes in the block; skipped"
        )
        return None

    i = interfaces[ifid]
    ts = f.pcapng_ts_ns(high << 32 | low, i.pow2, i.exponent, i.offset_s)
    return ts, i.linktype, wirelen, body[20 : 20 + caplen]


def simple_packet_block(
    body: bytes,
    order: str,
    interfaces: list[Interface],
    last_ts: int,
    offset: int,
    problem: Report,
) -> Packet | None:
    """The packet in a Simple Packet Block (section 4.4), on interface 0.

    The block has no timestamp; the packet gets the time of the packet
    before it in the file (0 if none), so that time does not jump back.
    """
    if len(body) < 4:
        problem(
            f"simple packet block at offset {offset}: {len(body)} bytes, 4 needed; skipped"
        )
        return None
    if not interfaces:
        problem(
            f"simple packet block at offset {offset}: no interface defined; skipped"
        )
        return None

    # The captured length is not stored: it is the original length cut to
    # the interface's snaplen and to the block (section 4.4).
    wirelen = struct.unpack_from(order + "I", body)[0]
    caplen = min(wirelen, len(body) - 4)
    if interfaces[0].snaplen:
        caplen = min(caplen, interfaces[0].snaplen)
    return last_ts, interfaces[0].linktype, wirelen, body[4 : 4 + caplen]
