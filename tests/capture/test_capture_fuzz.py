"""Fuzz both readers: hostile bytes never raise past CaptureError, and both agree.

A fast profile runs by default; ``SENSOR_FUZZ=deep`` runs many more examples
(``make deep-fuzz``).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor.capture.errors import CaptureError
from tests.capture.builders import (
    assert_batches_equal,
    block,
    epb,
    idb,
    pb,
    pcap_header,
    shb,
    spb,
)
from tests.capture.conftest import load_reader
from tests.conftest import PCAPS

DEEP = os.environ.get("SENSOR_FUZZ") == "deep"
EXAMPLES = 3000 if DEEP else 150

REAL_PCAP = (PCAPS / "zeek/traces/tcp__syn-then-ack-then-rst.pcap").read_bytes()
SAMPLE_PCAPNG = (
    shb()
    + idb(1, 64, tsresol=0x80 | 20, tsoffset=5)
    + idb(113, 0, tsresol=9)
    + epb(0, 123456789, b"A" * 70, wirelen=1500)
    + block(5, b"\0" * 24)
    + epb(1, 99, b"B" * 13)
    + spb(b"C" * 9)
    + shb(">")
    + idb(101, 0, order=">")
    + pb(0, 7, b"D" * 5, order=">")
)
SEEDS = [
    REAL_PCAP,
    SAMPLE_PCAPNG,
    pcap_header(big_endian=True, nanosecond=True) + REAL_PCAP[24:],
]
MAGICS = [REAL_PCAP[:24], pcap_header(big_endian=True), SAMPLE_PCAPNG[:28], shb(">")]

slow_ok = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def readers() -> tuple[Any, Any]:
    """(compiled, python); the compiled one skips (fails in CI) when not built."""
    return load_reader("compiled"), load_reader("python")


def read_all(reader: Any, path: Path, batch_size: int) -> tuple[str, Any]:
    """What a reader makes of a file: the error, or everything it read."""
    try:
        capture = reader(path, batch_size=batch_size)
    except CaptureError as e:
        assert str(e).startswith(f"{path}: ")
        assert "\n" not in str(e)
        return "error", str(e)
    batches = list(capture)
    for b in batches:
        assert 0 < len(b) <= batch_size
        ends = b.offsets + b.caplens
        assert b.offsets[0] == 0 and int(ends[-1]) == len(b.data)
        assert np.array_equal(b.offsets[1:], ends[:-1])
    assert capture.packets == sum(len(b) for b in batches)
    assert capture.bytes == sum(len(b.data) for b in batches)
    assert all(p.startswith(f"{path}: ") for p in capture.problems)
    return "read", (batches, capture.problems, capture.problems_dropped)


def check(readers: tuple[Any, Any], path: Path, data: bytes, batch_size: int) -> None:
    path.write_bytes(data)
    compiled = read_all(readers[0], path, batch_size)
    python = read_all(readers[1], path, batch_size)
    assert compiled[0] == python[0]
    if compiled[0] == "error":
        assert compiled[1] == python[1]
    else:
        assert_batches_equal(compiled[1][0], python[1][0])
        assert compiled[1][1:] == python[1][1:]


@given(data=st.binary(max_size=600), batch_size=st.sampled_from([1, 3, 4096]))
@slow_ok
def test_fuzz_arbitrary_bytes(
    readers: tuple[Any, Any], tmp_path: Path, data: bytes, batch_size: int
) -> None:
    check(readers, tmp_path / "fuzz.pcap", data, batch_size)


@given(
    head=st.sampled_from(MAGICS),
    rest=st.binary(max_size=600),
    batch_size=st.sampled_from([1, 2, 4096]),
)
@slow_ok
def test_fuzz_valid_header_then_garbage(
    readers: tuple[Any, Any], tmp_path: Path, head: bytes, rest: bytes, batch_size: int
) -> None:
    check(readers, tmp_path / "fuzz.pcap", head + rest, batch_size)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real or well-formed capture with bytes overwritten, inserted or cut."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["byte", "word", "insert", "delete"]))
        if kind == "byte":
            data[at] = draw(st.integers(0, 255))
        elif kind == "word":
            word = draw(
                st.sampled_from([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, 12, 28])
            )
            data[at : at + 4] = word.to_bytes(
                4, draw(st.sampled_from(["little", "big"]))
            )
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[at : at + draw(st.integers(1, 16))]
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@given(data=mutated(), batch_size=st.sampled_from([1, 2, 4096]), compress=st.booleans())
@slow_ok
def test_fuzz_mutated_captures(
    readers: tuple[Any, Any],
    tmp_path: Path,
    data: bytes,
    batch_size: int,
    compress: bool,
) -> None:
    if compress:
        data = gzip.compress(data)
    check(readers, tmp_path / "fuzz.pcap", data, batch_size)


@given(
    cut=st.floats(0, 1),
    flip=st.integers(0, 10_000),
    batch_size=st.sampled_from([1, 4096]),
)
@slow_ok
def test_fuzz_damaged_gzip(
    readers: tuple[Any, Any], tmp_path: Path, cut: float, flip: int, batch_size: int
) -> None:
    packed = bytearray(gzip.compress(REAL_PCAP + REAL_PCAP[24:]))
    packed = packed[: max(2, int(len(packed) * cut))]
    if len(packed) > 10:
        packed[10 + flip % (len(packed) - 10)] ^= 0x5A
    check(readers, tmp_path / "fuzz.pcap.gz", bytes(packed), batch_size)


@pytest.mark.parametrize("seed", range(len(SEEDS)))
def test_every_truncation_of_every_seed(
    readers: tuple[Any, Any], tmp_path: Path, seed: int
) -> None:
    # Narrow windows (a header cut inside its first bytes) are easy for
    # random search to miss; cover every cut point of the seeds outright.
    data = SEEDS[seed]
    for cut in range(len(data) + 1):
        check(readers, tmp_path / "cut.pcap", data[:cut], 2)
