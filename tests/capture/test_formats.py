"""Every format variant the readers accept, built byte by byte, with exact results."""

from __future__ import annotations

import gzip
import itertools
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sensor.capture import formats
from tests.capture.builders import (
    block,
    epb,
    idb,
    packets,
    pb,
    pcap_header,
    pcap_record,
    shb,
    spb,
)
from tests.conftest import PCAPS

S = 1_000_000_000
GET = PCAPS / "zeek/traces/http__get.pcap"


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- pcap ---------------------------------------------------------------------


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_pcap_byte_orders_and_resolutions(
    reader: Any, tmp_path: Path, big_endian: bool, nanosecond: bool
) -> None:
    head = pcap_header(big_endian=big_endian, nanosecond=nanosecond, linktype=113)
    records = pcap_record(1_700_000_000, 999_999, b"abc", big_endian=big_endian)
    records += pcap_record(0xFFFFFFFF, 1, b"", wirelen=60, big_endian=big_endian)
    capture = reader(write(tmp_path, "x.pcap", head + records))

    scale = 1 if nanosecond else 1000
    assert capture.format == "pcap"
    assert packets(capture) == [
        (1_700_000_000 * S + 999_999 * scale, 113, 3, b"abc"),
        (0xFFFFFFFF * S + 1 * scale, 113, 60, b""),
    ]
    assert (capture.packets, capture.bytes, capture.problems) == (2, 3, [])


def test_pcap_link_type_drops_fcs_bits(reader: Any, tmp_path: Path) -> None:
    # Bits 26-31 of the link type field say how long the FCS is
    # (draft-ietf-opsawg-pcap section 4); the link type is the low 16 bits.
    head = pcap_header(linktype=0x14000001)
    capture = reader(write(tmp_path, "fcs.pcap", head + pcap_record(1, 0, b"x")))
    assert packets(capture)[0][1] == 1


def test_batch_size_and_one_pass(reader: Any, tmp_path: Path) -> None:
    data = pcap_header() + b"".join(
        pcap_record(i, 0, bytes([i]) * i) for i in range(10)
    )
    path = write(tmp_path, "ten.pcap", data)
    capture = reader(path, batch_size=3)
    sizes = [len(b) for b in capture]
    assert sizes == [3, 3, 3, 1]
    assert list(capture) == []  # one pass only
    assert capture.packets == 10 and capture.bytes == sum(range(10))
    for wrong in (0, -1, formats.MAX_BATCH_SIZE + 1):
        with pytest.raises(ValueError, match="batch_size must be 1 to"):
            reader(path, batch_size=wrong)
    with reader(path) as closed:
        pass
    assert list(closed) == []


def test_gzip_compressed_capture(reader: Any, tmp_path: Path) -> None:
    plain = GET.read_bytes()
    expected = packets(reader(GET))
    one = write(tmp_path, "get.pcap.gz", gzip.compress(plain))
    # RFC 1952 section 2.2: a file may hold several members back to back.
    cuts = [0, 30, 31, 500, len(plain) // 2, len(plain)]
    members = b"".join(gzip.compress(plain[a:b]) for a, b in itertools.pairwise(cuts))
    two = write(tmp_path, "members.pcap.gz", members)
    for path in (one, two):
        capture = reader(path)
        assert packets(capture) == expected
        assert capture.problems == []


# -- pcapng -------------------------------------------------------------------


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_byte_orders(reader: Any, tmp_path: Path, order: str) -> None:
    data = (
        shb(order)
        + idb(1, 65535, order=order)
        + epb(0, 1_700_000_000_123_456, b"hello", wirelen=99, order=order)
    )
    capture = reader(write(tmp_path, "x.pcapng", data))
    assert capture.format == "pcapng"
    assert packets(capture) == [(1_700_000_000_123_456_000, 1, 99, b"hello")]
    assert capture.problems == []


@pytest.mark.parametrize(
    ("tsresol", "units", "ns"),
    [
        (None, 1_500_000, 1_500_000_000),  # default 10^-6
        (0, 7, 7 * S),
        (3, 1_234, 1_234_000_000),
        (9, 1_234_567_891, 1_234_567_891),
        (12, 1_234_567_891_999, 1_234_567_891),  # rounded down to ns
        (0x80 | 10, 3 * 1024 + 512, 3 * S + S // 2),  # 2^-10: 3.5 s
        (0x80 | 32, (5 << 32) | (1 << 30), 5 * S + S // 4),  # 2^-32: 5.25 s
        (0x80 | 30, 1, S >> 30),  # 0.93 ns rounds down to 0
        (0x80 | 30, 3, (3 * S) >> 30),
        (0x80 | 0, 2, 2 * S),
    ],
)
def test_pcapng_timestamp_resolutions(
    reader: Any, tmp_path: Path, tsresol: int | None, units: int, ns: int
) -> None:
    data = shb() + idb(tsresol=tsresol) + epb(0, units, b"p")
    assert packets(reader(write(tmp_path, "r.pcapng", data)))[0][0] == ns
    pow2 = tsresol is not None and bool(tsresol & 0x80)
    exponent = 6 if tsresol is None else tsresol & 0x7F
    assert formats.pcapng_ts_ns(units, pow2, exponent, 0) == ns


@pytest.mark.parametrize("offset_s", [1_600_000_000, -10, 0])
def test_pcapng_if_tsoffset(reader: Any, tmp_path: Path, offset_s: int) -> None:
    data = shb() + idb(tsresol=9, tsoffset=offset_s) + epb(0, 25, b"p")
    assert packets(reader(write(tmp_path, "o.pcapng", data)))[0][0] == offset_s * S + 25


def test_pcapng_absurd_timestamps_wrap_like_int64(reader: Any, tmp_path: Path) -> None:
    # 2^64-1 microseconds does not fit in int64 ns; both readers wrap alike.
    data = (
        shb()
        + idb()
        + epb(0, 2**64 - 1, b"p")
        + idb(tsresol=0x80 | 127, tsoffset=-(2**63))
        + epb(1, 2**64 - 1, b"q")
    )
    got = [p[0] for p in packets(reader(write(tmp_path, "w.pcapng", data)))]
    assert got == [
        formats.wrap_int64((2**64 - 1) * 1000),
        formats.wrap_int64(-(2**63) * S),
    ]


def test_pcapng_sections_interfaces_and_block_kinds(
    reader: Any, tmp_path: Path
) -> None:
    first = (
        shb("<")
        + idb(1, 0)
        + idb(113, 4, tsresol=3)
        + block(4, b"\0" * 8)  # name resolution: skipped
        + epb(0, 1_000_000, b"eth0")
        + epb(1, 2_000, b"cooked")  # snaplen 4 does not cut an EPB
        + spb(b"simple")  # interface 0, time of the packet before
        + block(5, b"\0" * 20)  # interface statistics: skipped
        + block(0x40000BAD, b"custom")  # custom block: skipped
    )
    second = (
        shb(">")
        + idb(101, 3, order=">")
        + pb(0, 3_000_000, b"old", order=">")
        + spb(b"cut-to-3", order=">")
    )
    capture = reader(write(tmp_path, "multi.pcapng", first + second))

    assert packets(capture) == [
        (1 * S, 1, 4, b"eth0"),
        (2 * S, 113, 6, b"cooked"),
        (2 * S, 1, 6, b"simple"),
        (3 * S, 101, 3, b"old"),
        (3 * S, 101, 8, b"cut"),
    ]
    assert capture.problems == []


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_builders_and_readers_agree_with_tshark(
    both: tuple[Any, Any], tmp_path: Path
) -> None:
    # The builders are only as good as their reading of the specification:
    # tshark must read their output the same way.
    data = (
        shb(">")
        + idb(1, 0, tsresol=0x80 | 10, tsoffset=100, order=">")
        + epb(0, 1_000 * 1024 + 256, b"a" * 20, wirelen=70, order=">")
        + shb("<")
        + idb(1, 0, tsresol=9)
        + idb(113, 0)
        + epb(1, 7_000_001, b"b" * 30)
        + epb(0, 8_000_000_001, b"c" * 40)
    )
    path = write(tmp_path, "check.pcapng", data)
    out = subprocess.run(
        [
            "tshark",
            "-r",
            str(path),
            "-T",
            "fields",
            "-e",
            "frame.time_epoch",
            "-e",
            "frame.cap_len",
            "-e",
            "frame.len",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    seen = [
        (int(Decimal(t) * S), int(c), int(w))
        for t, c, w in zip(out[::3], out[1::3], out[2::3], strict=True)
    ]
    assert seen == [
        (1_100_250_000_000, 20, 70),
        (7_000_001_000, 30, 30),
        (8_000_000_001, 40, 40),
    ]
    for reader in both:
        ours = [(ts, len(data), wire) for ts, _, wire, data in packets(reader(path))]
        assert ours == seen
