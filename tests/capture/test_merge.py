"""merge(): timestamp order, ties to the earlier file, each file's order kept."""

from __future__ import annotations

import heapq
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.capture.batch import Batch
from sensor.capture.merge import merge
from tests.capture.builders import packets
from tests.conftest import PCAPS

DEEP = os.environ.get("SENSOR_FUZZ") == "deep"

# Sets of captures to merge; the nmap scans and the SMTP capture have
# timestamps that go backwards, and merging a capture with itself makes
# every timestamp a tie.
MERGE_SETS = [
    ["zeek/traces/http__get.pcap", "zeek/traces/tcp__handshake-reorder.pcap"],
    [
        "zeek/traces/smtp.pcap",
        "zeek/traces/mixed-vlan-mpls.pcap",
        "zeek/traces/ssh__ssh.pcap",
    ],
    ["attacks/exfil/forensicscontest_puzzle2_evidence02_ann_smtp.pcap"] * 2,
    [
        "zeek/traces/rfb__vnc-scanner.pcap",
        "attacks/scan/evilfingers_nmap_fin_scan.pcap",
        "attacks/exploit/ndpi__malware.pcapng",
        "zeek/traces/rfb__vnc-scanner.pcap",
    ],
]


def batches_of(items: list[tuple[int, int, bytes]], cuts: list[int]) -> list[Batch]:
    """``items`` as batches, cut at the given sizes (the rest in one batch)."""
    out, pos = [], 0
    for size in cuts:
        if pos < len(items):
            out.append(Batch.from_packets(items[pos : pos + size]))
            pos += size
    if pos < len(items):
        out.append(Batch.from_packets(items[pos:]))
    return out


@st.composite
def inputs(draw: st.DrawFn) -> list[list[tuple[int, int, bytes]]]:
    """2-5 files of packets with few distinct (often equal, unsorted) times."""
    files = []
    for index in range(draw(st.integers(2, 5))):
        times = draw(st.lists(st.integers(-3, 12), max_size=30))
        files.append(
            [(t, index, bytes([index, i % 256]) * (i % 3)) for i, t in enumerate(times)]
        )
    return files


@given(files=inputs(), cuts=st.lists(st.integers(1, 7), max_size=10))
@settings(max_examples=2000 if DEEP else 200, deadline=None)
def test_merge_orders_like_heapq_merge(
    files: list[list[tuple[int, int, bytes]]], cuts: list[int]
) -> None:
    merged = list(merge([batches_of(f, cuts) for f in files]))

    # heapq.merge takes the smallest next packet, the earlier input on a tie.
    expected = list(heapq.merge(*files, key=lambda p: p[0]))
    assert [(ts, lt, data) for ts, lt, _, data in packets(merged)] == expected
    for b in merged:
        assert len(b) > 0
        ends = b.offsets + b.caplens
        assert b.offsets[0] == 0 and int(ends[-1]) == len(b.data)
        assert np.array_equal(b.offsets[1:], ends[:-1])


def test_equal_times_keep_file_order() -> None:
    a = [
        Batch.from_packets([(5, 1, b"a1"), (5, 1, b"a2")]),
        Batch.from_packets([(5, 1, b"a3")]),
    ]
    b = [Batch.from_packets([(5, 113, b"b1"), (4, 113, b"b0")])]
    got = [(ts, lt, data) for ts, lt, _, data in packets(merge([a, b]))]
    # b0 is earlier than everything, but it comes after b1 in its own file.
    assert got == [
        (5, 1, b"a1"),
        (5, 1, b"a2"),
        (5, 1, b"a3"),
        (5, 113, b"b1"),
        (4, 113, b"b0"),
    ]


def test_single_file_passes_through_and_empty_inputs() -> None:
    batch = Batch.from_packets([(3, 1, b"x"), (1, 1, b"y")])
    assert [id(b) for b in merge([[batch]])] == [id(batch)]
    assert list(merge([])) == []
    assert list(merge([[], []])) == []
    assert packets(merge([[], [batch], [Batch.from_packets([])]])) == packets([batch])


def test_gaps_in_input_data_are_not_copied() -> None:
    # A batch whose packets are not back to back (allowed by Batch) still
    # merges to back-to-back output with the right bytes.
    holey = Batch(
        data=b"..AA..BBB.",
        offsets=np.array([2, 6], dtype=np.int64),
        caplens=np.array([2, 3], dtype=np.uint32),
        wirelens=np.array([2, 3], dtype=np.uint32),
        ts=np.array([1, 3], dtype=np.int64),
        linktypes=np.array([1, 1], dtype=np.uint16),
    )
    other = Batch.from_packets([(2, 1, b"Z")])
    merged = list(merge([[holey], [other]]))
    assert [p[3] for p in packets(merged)] == [b"AA", b"Z", b"BBB"]
    assert merged[0].data == b"AAZ" and merged[-1].data.endswith(b"BBB")


@pytest.mark.parametrize(
    "names", MERGE_SETS, ids=lambda names: "+".join(Path(n).stem for n in names)
)
def test_merge_agrees_with_mergecap(
    reader: Any, names: list[str], tmp_path: Path
) -> None:
    if shutil.which("mergecap") is None:
        if os.environ.get("CI"):
            pytest.fail("mergecap (wireshark-common) is not installed")
        pytest.skip("mergecap (wireshark-common) is not installed")
    paths = [str(PCAPS / n) for n in names]
    out = tmp_path / "merged.pcapng"
    subprocess.run(["mergecap", "-F", "pcapng", "-w", str(out), *paths], check=True)

    ours = packets(merge([reader(p, batch_size=64) for p in paths]))
    theirs = packets(reader(out))
    assert len(ours) == len(theirs) > 0
    assert ours == theirs
