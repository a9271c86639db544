"""Build small pcap and pcapng files byte by byte, and find the shared ones.

The builders follow draft-ietf-opsawg-pcap and draft-ietf-opsawg-pcapng
directly (not through the code under test); ``test_formats`` checks a few
of their files against tshark so that the builders are known to be right.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from sensor.capture.batch import Batch
from tests.conftest import PCAPS

#: File name endings of capture files among the shared data.
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz")
#: First bytes of every capture format the readers know, either byte order.
CAPTURE_MAGICS = (
    b"\xd4\xc3\xb2\xa1",
    b"\xa1\xb2\xc3\xd4",
    b"\x4d\x3c\xb2\xa1",
    b"\xa1\xb2\x3c\x4d",
    b"\x0a\x0d\x0d\x0a",
    b"\x1f\x8b",
)


def shared_captures() -> list[Path]:
    """Every capture under the shared pcaps folder except Zeek's logs."""
    if not PCAPS.is_dir():
        return []
    found = []
    for path in sorted(PCAPS.rglob("*")):
        if "zeek-logs" in path.relative_to(PCAPS).parts or not path.is_file():
            continue
        if path.name.endswith(CAPTURE_SUFFIXES):
            with open(path, "rb") as f:
                if f.read(4).startswith(CAPTURE_MAGICS):
                    found.append(path)
    return found


# -- pcap ---------------------------------------------------------------------


def pcap_header(
    *,
    big_endian: bool = False,
    nanosecond: bool = False,
    snaplen: int = 65535,
    linktype: int = 1,
) -> bytes:
    """A pcap file header, version 2.4."""
    order = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    return struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)


def pcap_record(
    sec: int,
    frac: int,
    data: bytes,
    *,
    wirelen: int | None = None,
    big_endian: bool = False,
) -> bytes:
    """One pcap record: header and data."""
    order = ">" if big_endian else "<"
    wire = len(data) if wirelen is None else wirelen
    return struct.pack(order + "IIII", sec, frac, len(data), wire) + data


# -- pcapng -------------------------------------------------------------------


def block(btype: int, body: bytes, order: str = "<") -> bytes:
    """A pcapng block: type, length, body padded to 32 bits, length."""
    body += b"\0" * (-len(body) % 4)
    length = 12 + len(body)
    return (
        struct.pack(order + "II", btype, length)
        + body
        + struct.pack(order + "I", length)
    )


def option(code: int, value: bytes, order: str = "<") -> bytes:
    """One option: code, length, value padded to 32 bits."""
    return (
        struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)
    )


def shb(order: str = "<", major: int = 1) -> bytes:
    """A Section Header Block with an unknown section length."""
    return block(
        0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, major, 0, -1), order
    )


def idb(
    linktype: int = 1,
    snaplen: int = 0,
    *,
    tsresol: int | None = None,
    tsoffset: int | None = None,
    order: str = "<",
) -> bytes:
    """An Interface Description Block with optional if_tsresol and if_tsoffset."""
    opts = b""
    if tsresol is not None:
        opts += option(9, bytes([tsresol]), order)
    if tsoffset is not None:
        opts += option(14, struct.pack(order + "q", tsoffset), order)
    if opts:
        opts += option(0, b"", order)
    return block(1, struct.pack(order + "HHI", linktype, 0, snaplen) + opts, order)


def epb(
    ifid: int, units: int, data: bytes, *, wirelen: int | None = None, order: str = "<"
) -> bytes:
    """An Enhanced Packet Block; ``units`` in the interface's resolution."""
    wire = len(data) if wirelen is None else wirelen
    head = struct.pack(
        order + "IIIII", ifid, units >> 32, units & 0xFFFFFFFF, len(data), wire
    )
    return block(6, head + data, order)


def pb(ifid: int, units: int, data: bytes, order: str = "<") -> bytes:
    """An obsolete Packet Block (pcapng appendix A)."""
    head = struct.pack(
        order + "HHIIII", ifid, 0, units >> 32, units & 0xFFFFFFFF, len(data), len(data)
    )
    return block(2, head + data, order)


def spb(data: bytes, *, wirelen: int | None = None, order: str = "<") -> bytes:
    """A Simple Packet Block."""
    wire = len(data) if wirelen is None else wirelen
    return block(3, struct.pack(order + "I", wire) + data, order)


# -- reading results ------------------------------------------------------------


def packets(
    batches: Iterator[Batch] | list[Batch],
) -> list[tuple[int, int, int, bytes]]:
    """Every packet of the batches as (ts, linktype, wirelen, data)."""
    return [
        (int(b.ts[i]), int(b.linktypes[i]), int(b.wirelens[i]), b.packet(i))
        for b in batches
        for i in range(len(b))
    ]


def assert_batches_equal(a: list[Batch], b: list[Batch]) -> None:
    """Byte-identical batches: same boundaries, data, arrays and dtypes."""
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.data == y.data
        for name in ("offsets", "caplens", "wirelens", "ts", "linktypes"):
            u, v = getattr(x, name), getattr(y, name)
            assert u.dtype == v.dtype, name
            assert np.array_equal(u, v), name
