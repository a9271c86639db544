"""Build the benchmark capture out of the shared real captures, once.

Every Ethernet capture under ``shared/pcaps`` (Zeek's logs excepted) is read
in sorted path order and laid end to end on one timeline; that sequence is
then repeated ("loops") until the target packet count is reached. Each loop
moves the packets' times past the previous loop and moves every unicast IP
address, so that each loop's connections are new ones to a connection table
rather than continuations of the previous loop's.

The address move keeps every checksum valid without recomputing one: in loop
``k`` the first 16-bit word of an address grows by ``k`` and the second
shrinks by ``k``, in one's complement arithmetic. The one's complement sum of
the address, and so the IPv4 header, TCP, UDP and ICMPv6 checksums that
cover it, stay the same (the checksum-neutral rewrite of RFC 6296 3.2).
Multicast, broadcast, loopback and unspecified addresses are left alone.

Times: inside each capture, gaps longer than ``MAX_GAP`` are shortened to it
(one shared capture spans years); captures follow each other ``PAUSE`` apart.
The output is a nanosecond pcap (LINKTYPE_ETHERNET), the same bytes for the
same shared captures, cached with its SHA-256 in ``bench.json`` beside it.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
import time
from pathlib import Path

import numpy as np

RECIPE = 1  # bump when the construction changes, to rebuild caches
START_NS = 1_793_613_600 * 10**9  # 2026-11-02 10:00:00 UTC
MAX_GAP = 600 * 10**9
PAUSE = 1 * 10**9
LINKTYPE_ETHERNET = 1
_IPV4, _IPV6, _VLAN_TYPES = 0x0800, 0x86DD, (0x8100, 0x88A8, 0x9100)


def source_files(shared: Path) -> list[Path]:
    """The shared captures the benchmark is made of, in a fixed order."""
    files = [
        p
        for p in shared.rglob("*")
        if p.suffix in (".pcap", ".pcapng") and "zeek-logs" not in p.parts
    ]
    return sorted(files, key=lambda p: str(p.relative_to(shared)))


def _address_offsets(frame: bytes) -> tuple[int, int]:
    """Where the source address starts in an Ethernet frame, and its length.

    (-1, 0) when the frame carries no IP header we can rewrite safely.
    """
    pos, ethertype = 14, int.from_bytes(frame[12:14], "big") if len(frame) >= 14 else 0
    while ethertype in _VLAN_TYPES and len(frame) >= pos + 4:
        ethertype = int.from_bytes(frame[pos + 2 : pos + 4], "big")
        pos += 4
    if ethertype == _IPV4 and len(frame) >= pos + 20 and frame[pos] >> 4 == 4:
        return pos + 12, 4
    if ethertype == _IPV6 and len(frame) >= pos + 40 and frame[pos] >> 4 == 6:
        return pos + 8, 16
    return -1, 0


def _movable(addr: bytes) -> bool:
    if len(addr) == 4:
        return addr[0] not in (0, 127) and addr[0] < 224
    return addr[0] != 0xFF and any(addr)


def load_sources(files: list[Path]) -> tuple[list[bytes], np.ndarray, list[str]]:
    """Every Ethernet packet of ``files`` with its time on the joined timeline.

    Reads with the project's pure-Python reader, so the build does not depend
    on a compiled module. Returns frames, times (ns from the start) and the
    files used.
    """
    from sensor.capture.errors import CaptureError
    from sensor.capture.pcapfile import CaptureFile

    frames: list[bytes] = []
    times: list[int] = []
    used: list[str] = []
    clock = 0
    for path in files:
        try:
            capture = CaptureFile(path)
            batches = list(capture)
        except (CaptureError, OSError) as e:
            print(f"bench: skipping {path}: {e}", file=sys.stderr)
            continue
        prev = None
        kept = 0
        for batch in batches:
            for i in range(len(batch)):
                if batch.linktypes[i] != LINKTYPE_ETHERNET:
                    continue
                ts = int(batch.ts[i])
                step = 0 if prev is None else min(max(ts - prev, 0), MAX_GAP)
                clock += step
                prev = ts
                frames.append(batch.packet(i))
                times.append(clock)
                kept += 1
        if kept:
            used.append(f"{path.name}:{kept}")
            clock += PAUSE
    return frames, np.array(times, dtype=np.int64), used


def build(shared: Path, out: Path, target: int) -> dict[str, object]:
    """Write the benchmark capture to ``out``; returns its description."""
    started = time.perf_counter()
    frames, times, used = load_sources(source_files(shared))
    if not frames:
        raise SystemExit(f"bench: no Ethernet packets found under {shared}")
    loops = -(-target // len(frames))
    span = int(times[-1]) + PAUSE

    # One loop as a byte array: 16-byte record headers and frames.
    lens = np.array([len(f) for f in frames], dtype=np.int64)
    rec_off = np.zeros(len(frames), dtype=np.int64)
    rec_off[1:] = np.cumsum(lens[:-1] + 16)
    base = np.frombuffer(
        b"".join(struct.pack("<IIII", 0, 0, len(f), len(f)) + f for f in frames),
        dtype=np.uint8,
    ).copy()
    addr_pos: list[int] = []
    for i, f in enumerate(frames):
        start, size = _address_offsets(f)
        for a in (start, start + size) if size else ():
            if _movable(f[a : a + size]):
                addr_pos.append(int(rec_off[i]) + 16 + a)
    pos = np.array(addr_pos, dtype=np.int64)
    hi0 = base[pos].astype(np.int64) << 8 | base[pos + 1]
    lo0 = base[pos + 2].astype(np.int64) << 8 | base[pos + 3]

    digest = hashlib.sha256()
    with out.open("wb") as f:
        header = struct.pack(
            "<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, LINKTYPE_ETHERNET
        )
        f.write(header)
        digest.update(header)
        for k in range(loops):
            loop = base.copy()
            ts = START_NS + k * span + times
            _put_u32(loop, rec_off, (ts // 10**9).astype(np.uint32))
            _put_u32(loop, rec_off + 4, (ts % 10**9).astype(np.uint32))
            hi, lo = _oc_add(hi0, k), (_oc_add(lo0, 0xFFFF - k) if k else lo0)
            loop[pos], loop[pos + 1] = hi >> 8, hi & 0xFF
            loop[pos + 2], loop[pos + 3] = lo >> 8, lo & 0xFF
            chunk = loop.tobytes()
            f.write(chunk)
            digest.update(chunk)
    return {
        "recipe": RECIPE,
        "target": target,
        "packets": loops * len(frames),
        "loops": loops,
        "packets_per_loop": len(frames),
        "bytes": out.stat().st_size,
        "sha256": digest.hexdigest(),
        "sources": used,
        "build_seconds": round(time.perf_counter() - started, 1),
    }


def _put_u32(buf: np.ndarray, at: np.ndarray, values: np.ndarray) -> None:
    raw = values.astype("<u4").view(np.uint8).reshape(-1, 4)
    for j in range(4):
        buf[at + j] = raw[:, j]


def _oc_add(words: np.ndarray, k: int) -> np.ndarray:
    """One's complement 16-bit addition (end-around carry, RFC 1071)."""
    total = words + k
    return np.where(total > 0xFFFF, total - 0xFFFF, total)


def ensure(shared: Path, cache: Path, target: int) -> dict[str, object]:
    """The cached benchmark capture's description, building it when needed.

    The cache is reused when its recipe, target and list of sources match
    and the file's SHA-256 is the one recorded when it was written.
    """
    cache.mkdir(parents=True, exist_ok=True)
    out, meta_path = cache / "bench.pcap", cache / "bench.json"
    inputs = [
        [str(p.relative_to(shared)), p.stat().st_size] for p in source_files(shared)
    ]
    if out.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        same = [meta.get(k) for k in ("recipe", "target", "inputs")] == [
            RECIPE,
            target,
            inputs,
        ]
        if same and _sha256(out) == meta.get("sha256"):
            meta["cached"] = True
            return meta
        print("bench: cached capture is stale or damaged; rebuilding", file=sys.stderr)
    print(f"bench: building {out} (once; 10 to 30 s)", file=sys.stderr)
    meta = build(shared, out, target)
    meta["inputs"] = inputs
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    meta["cached"] = False
    return meta


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()
