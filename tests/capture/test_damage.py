"""Damaged and hostile files: keep every good packet, name the damage, never crash."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Any

import pytest

from sensor.capture.errors import CaptureError
from tests.capture.builders import (
    block,
    epb,
    idb,
    option,
    packets,
    pcap_header,
    pcap_record,
    shb,
    spb,
)
from tests.conftest import PCAPS

GET = PCAPS / "zeek/traces/http__get.pcap"
TINY = PCAPS / "zeek/traces/tcp__syn-then-rst.pcap"


def record_offsets(data: bytes) -> list[int]:
    """Where each record of a little-endian pcap starts, parsed independently."""
    offsets, pos = [], 24
    while pos + 16 <= len(data):
        offsets.append(pos)
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
    return offsets


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- nothing can be read: CaptureError at open -----------------------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "empty file"),
        (b"<html><body>hello</body></html>", "not a capture file (magic 0x3c68746d)"),
        (b"\xd4\xc3", "not a capture file (only 2 bytes)"),
        (
            b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00",
            "truncated pcap file header (8 of 24 bytes)",
        ),
        (
            pcap_header()[:4] + b"\x01\x00\x00\x00" + pcap_header()[8:],
            "unsupported pcap version 1.0",
        ),
        (
            b"\x34\xcd\xb2\xa1" + bytes(20),
            "unsupported capture format (modified pcap, magic 0xa1b2cd34)",
        ),
        (
            b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x01\x02\x03\x04" + bytes(16),
            "bad pcapng byte-order magic 0x04030201",
        ),
        (shb(major=2), "unsupported pcapng version 2.0"),
        (
            b"\x0a\x0d\x0d\x0a\x1c\x00\x00",
            "truncated pcapng section header (7 of 28 bytes)",
        ),
        (gzip.compress(b""), "empty file"),
        (gzip.compress(b"GIF89a....")[:10], "compressed data ends early at offset 0"),
    ],
)
def test_unreadable_files_raise_one_line_naming_the_file(
    reader: Any, tmp_path: Path, content: bytes, problem: str
) -> None:
    path = write(tmp_path, "x.pcap", content)
    with pytest.raises(CaptureError) as e:
        reader(path)
    assert str(e.value) == f"{path}: {problem}"
    assert e.value.path == str(path) and e.value.problem == problem


def test_directory_and_missing_file(reader: Any, tmp_path: Path) -> None:
    folder = tmp_path / "x"
    folder.mkdir()
    with pytest.raises(CaptureError) as e:
        reader(folder)
    assert str(e.value) == f"{folder}: is a directory"
    with pytest.raises(CaptureError) as e:
        reader(tmp_path / "nope.pcap")
    assert str(e.value) == f"{tmp_path}/nope.pcap: no such file"


# -- pcap: damage after the header -----------------------------------------------------


def test_truncated_mid_record_yields_every_complete_packet(
    reader: Any, tmp_path: Path
) -> None:
    good = GET.read_bytes()
    starts = record_offsets(good)
    cut = starts[9] + 16 + 10  # ten bytes into the tenth record's data
    caplen = struct.unpack_from("<I", good, starts[9] + 8)[0]
    path = write(tmp_path, "cut.pcap", good[:cut])

    capture = reader(path)
    got = packets(capture)
    assert got == packets(reader(GET))[:9]
    assert capture.problems == [
        f"{path}: truncated record at offset {starts[9]}: header says {caplen} bytes, 10 left"
    ]


def test_truncation_at_every_byte(reader: Any, tmp_path: Path) -> None:
    good = TINY.read_bytes()
    starts = record_offsets(good)
    everything = packets(reader(TINY))
    path = tmp_path / "t.pcap"
    for cut in range(24, len(good) + 1):
        path.write_bytes(good[:cut])
        capture = reader(path)
        complete = sum(1 for s in starts[1:] + [len(good)] if s <= cut)
        assert packets(capture) == everything[:complete], cut
        at_boundary = cut in starts or cut == len(good)
        assert len(capture.problems) == (0 if at_boundary else 1), cut


def test_pcapng_truncation_at_every_byte(both: tuple[Any, Any], tmp_path: Path) -> None:
    data = (
        ok_section()
        + spb(b"simple")
        + shb(">")
        + idb(113, order=">")
        + epb(0, 9, b"last", order=">")
    )
    ends = [len(ok_section()), len(ok_section()) + len(spb(b"simple")), len(data)]
    path = tmp_path / "t.pcapng"
    for cut in range(28, len(data) + 1):
        path.write_bytes(data[:cut])
        compiled, python = (reader(path) for reader in both)
        got = packets(compiled)
        assert got == packets(python), cut
        assert compiled.problems == python.problems, cut
        assert len(got) == sum(1 for end in ends if end <= cut), cut


@pytest.mark.parametrize("garbage", [b"\xff" * 37, b"\x00" * 5, bytes(range(200))])
def test_garbage_after_the_last_record(
    reader: Any, tmp_path: Path, garbage: bytes
) -> None:
    path = write(tmp_path, "g.pcap", GET.read_bytes() + garbage)
    capture = reader(path)
    assert packets(capture) == packets(reader(GET))
    assert len(capture.problems) == 1
    assert capture.problems[0].startswith(f"{path}: ")
    assert f"offset {GET.stat().st_size}" in capture.problems[0]


def test_garbage_record_header_stops_reading(reader: Any, tmp_path: Path) -> None:
    data = bytearray(GET.read_bytes())
    at = record_offsets(bytes(data))[5]
    data[at : at + 16] = b"\xff" * 16
    path = write(tmp_path, "bad.pcap", bytes(data))
    capture = reader(path)
    assert len(packets(capture)) == 5
    assert capture.problems == [
        f"{path}: bad record header at offset {at}: captured length 4294967295 > limit 262144; reading stopped"
    ]


def test_caplen_over_snaplen_is_kept_and_reported_once(
    reader: Any, tmp_path: Path
) -> None:
    data = (
        pcap_header(snaplen=4)
        + pcap_record(1, 0, b"123456")
        + pcap_record(2, 0, b"abcdefgh")
    )
    path = write(tmp_path, "snap.pcap", data)
    capture = reader(path)
    assert [p[3] for p in packets(capture)] == [b"123456", b"abcdefgh"]
    assert capture.problems == [
        f"{path}: record at offset 24: captured length 6 > snaplen 4 (reported once)"
    ]

    # A snaplen of 0 (the writer set none) is no limit to report.
    zero = pcap_header(snaplen=0) + pcap_record(1, 0, b"123456")
    unset = reader(write(tmp_path, "zero.pcap", zero))
    assert len(packets(unset)) == 1 and unset.problems == []


def test_truncated_gzip_keeps_what_was_decompressed(
    both: tuple[Any, Any], tmp_path: Path
) -> None:
    packed = gzip.compress(GET.read_bytes())
    path = write(tmp_path, "cut.pcap.gz", packed[: len(packed) * 3 // 4])
    results = []
    for reader in both:
        capture = reader(path)
        got = packets(capture)
        assert 0 < len(got) < 14
        assert got == packets(reader(GET))[: len(got)]
        assert any("compressed data ends early" in p for p in capture.problems)
        results.append((got, capture.problems))
    assert results[0] == results[1]


# -- pcapng: damage after the section header --------------------------------------------


def ok_section() -> bytes:
    return shb() + idb(1) + epb(0, 1_000_000, b"first")


@pytest.mark.parametrize(
    ("tail", "problem", "kept"),
    [
        (
            epb(0, 2, b"second")[:-5],
            "truncated block at offset {at}: header says 40 bytes, 35 left",
            1,
        ),
        (
            b"\x06\x00\x00",
            "truncated block header at offset {at}: 8 bytes needed, 3 left",
            1,
        ),
        (
            struct.pack("<II", 6, 30) + bytes(30),
            "bad block length 30 at offset {at}; reading stopped",
            1,
        ),
        (
            struct.pack("<II", 6, 8) + bytes(8),
            "bad block length 8 at offset {at}; reading stopped",
            1,
        ),
        (
            epb(0, 2, b"second")[:-4] + b"\x00\x00\x00\x00",
            "block at offset {at}: trailing length 0 differs from leading length 40; reading stopped",
            1,
        ),
        (
            epb(3, 2, b"x") + epb(0, 2, b"y"),
            "enhanced packet block at offset {at}: interface 3 not defined (1 defined); skipped",
            2,
        ),
        (
            block(6, struct.pack("<IIIII", 0, 0, 2, 99, 99) + b"abcd")
            + epb(0, 2, b"y"),
            "enhanced packet block at offset {at}: captured length 99 > 4 bytes in the block; skipped",
            2,
        ),
        (
            block(6, b"\0" * 8) + epb(0, 2, b"y"),
            "enhanced packet block at offset {at}: 8 bytes, 20 needed; skipped",
            2,
        ),
        (
            block(1, b"\0" * 4) + epb(0, 2, b"y"),
            "interface block at offset {at}: 4 bytes, 8 needed; ignored",
            2,
        ),
        (
            block(1, struct.pack("<HHI", 1, 0, 0) + struct.pack("<HH", 9, 200))
            + epb(1, 2, b"y"),
            "interface block at offset {at}: option 9 overruns the block",
            2,
        ),
        (
            block(3, b"") + epb(0, 2, b"y"),
            "simple packet block at offset {at}: 0 bytes, 4 needed; skipped",
            2,
        ),
        (
            shb()[:8] + b"\x01\x02\x03\x04" + shb()[12:] + epb(0, 2, b"y"),
            "section at offset {at}: bad byte-order magic 0x01020304; reading stopped",
            1,
        ),
        (
            shb(major=2) + idb(1) + epb(0, 2, b"y"),
            "section at offset {at}: unsupported pcapng version 2.0; reading stopped",
            1,
        ),
        (
            shb() + spb(b"orphan") + idb(1) + epb(0, 2, b"y"),
            "simple packet block at offset {at_plus_shb}: no interface defined; skipped",
            2,
        ),
    ],
)
def test_pcapng_damage(
    reader: Any, tmp_path: Path, tail: bytes, problem: str, kept: int
) -> None:
    at = len(ok_section())
    path = write(tmp_path, "d.pcapng", ok_section() + tail)
    capture = reader(path)
    assert len(packets(capture)) == kept
    assert capture.problems == [
        f"{path}: " + problem.format(at=at, at_plus_shb=at + len(shb()))
    ]


def test_problems_are_capped_and_counted(reader: Any, tmp_path: Path) -> None:
    data = (
        shb()
        + idb(1)
        + b"".join(epb(7, i, b"x") for i in range(150))
        + epb(0, 1, b"ok")
    )
    capture = reader(write(tmp_path, "many.pcapng", data))
    assert len(packets(capture)) == 1
    assert len(capture.problems) == 100 and capture.problems_dropped == 50


def test_options_after_endofopt_are_ignored(reader: Any, tmp_path: Path) -> None:
    body = struct.pack("<HHI", 1, 0, 0) + option(0, b"") + option(9, b"\x09")
    data = shb() + block(1, body) + epb(0, 5_000_000, b"x")
    assert packets(reader(write(tmp_path, "e.pcapng", data)))[0][0] == 5_000_000_000
