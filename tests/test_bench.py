"""The benchmark capture builder: loops are new connections, checksums hold."""

from __future__ import annotations

import shutil
import struct
import sys
from pathlib import Path

import dpkt
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import benchfile

OFFICE = ROOT / "pcaps" / "office" / "office.pcap"


def ones_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(1, 500))
def test_address_move_keeps_the_ones_complement_sum(hi: int, lo: int, k: int) -> None:
    moved_hi = int(benchfile._oc_add(np.array([hi]), k)[0])
    moved_lo = int(benchfile._oc_add(np.array([lo]), 0xFFFF - k)[0])
    assert (moved_hi, moved_lo) != (hi, lo)
    # 0x0000 and 0xFFFF are the same number in one's complement.
    assert ones_sum(struct.pack("!HH", moved_hi, moved_lo)) % 0xFFFF == (
        ones_sum(struct.pack("!HH", hi, lo)) % 0xFFFF
    )


def read(path: Path) -> list[tuple[int, bytes]]:
    with path.open("rb") as f:
        reader = dpkt.pcap.Reader(f)
        assert reader.datalink() == 1
        return [(round(ts * 10**9), bytes(buf)) for ts, buf in reader]


def test_two_loops_of_the_office_capture(tmp_path: Path) -> None:
    shared = tmp_path / "pcaps"
    shared.mkdir()
    shutil.copy(OFFICE, shared / "office.pcap")
    original = read(OFFICE)
    meta = benchfile.ensure(shared, tmp_path / "cache", len(original) + 1)
    assert meta["packets"] == 2 * len(original) and meta["loops"] == 2
    assert meta["cached"] is False
    out = read(tmp_path / "cache" / "bench.pcap")
    assert len(out) == 2 * len(original)

    first, second = out[: len(original)], out[len(original) :]
    assert [p for _, p in first] == [p for _, p in original]  # loop 0 untouched
    span = second[0][0] - first[0][0]
    assert span > original[-1][0] - original[0][0]
    moved = kept = 0
    for (_, a), (tb, b), (ta, _) in zip(first, second, first, strict=True):
        assert tb - ta == span
        ip_a, ip_b = dpkt.ethernet.Ethernet(a).data, dpkt.ethernet.Ethernet(b).data
        if not isinstance(ip_a, dpkt.ip.IP):
            assert a == b  # ARP untouched
            continue
        assert ones_sum(bytes(b[14 : 14 + ip_b.hl * 4])) == 0xFFFF  # header checksum
        if isinstance(ip_b.data, dpkt.tcp.TCP):
            pseudo = ip_b.src + ip_b.dst + struct.pack("!BBH", 0, 6, len(ip_b.data))
            assert ones_sum(pseudo + bytes(ip_b.data)) == 0xFFFF  # TCP checksum
        if ip_a.dst[0] >= 224 or ip_a.dst == b"\xff" * 4:
            assert ip_b.dst == ip_a.dst
            kept += 1
        else:
            assert ip_b.dst != ip_a.dst
            moved += 1
    assert moved > 2000 and kept > 0

    again = benchfile.ensure(shared, tmp_path / "cache", len(original) + 1)
    assert again["cached"] is True and again["sha256"] == meta["sha256"]
    with (tmp_path / "cache" / "bench.pcap").open("r+b") as f:  # damage it
        f.seek(1000)
        f.write(b"\xff")
    rebuilt = benchfile.ensure(shared, tmp_path / "cache", len(original) + 1)
    assert rebuilt["cached"] is False and rebuilt["sha256"] == meta["sha256"]
