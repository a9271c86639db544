"""Dev harness: score service detection against Zeek's conn.log `service`.

It reads a shared capture with dpkt, assigns every TCP/UDP packet to the
Zeek connection record with the same 4-tuple (the last one that started at
or before the packet), feeds the first payload-bearing packets of each
direction to a :class:`~sensor.proto.detect.ServiceDetector` exactly as the
connection table will (at most 8 packets and 4096 bytes per direction),
calls ``finish()`` with the record's uid and history when the record would
end, and compares the result with Zeek's field as a set (and in order).

It stands in for the connection table while that is written, so it decodes
only what the shared captures need: Ethernet (with 802.1Q/QinQ and MPLS via
dpkt), Linux SLL, raw IP, BSD loopback, IPv4 fragments, and Teredo.

Run as a script for the agreement and the worst disagreements (``-v``
lists every record that disagrees)::

    python3 tests/proto/service_harness.py [--limit-packets N] [--wants-more] [-v]
"""

from __future__ import annotations

import bisect
import collections
import json
import os
import socket
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dpkt

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sensor.proto.detect import DetectorConfig, ServiceDetector

PCAPS = Path(os.environ.get("SENSOR_SHARED", ROOT.parent / "shared")).resolve() / "pcaps"
ZEEK_LOGS = PCAPS / "zeek-logs"

TEREDO_PORT = 3544


def _ip_str(raw: bytes) -> str:
    fam = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(fam, raw)


def _open(path: Path) -> Iterator[tuple[float, int, bytes]]:
    """Yield (ts, linktype, frame) for a pcap or pcapng file."""
    with path.open("rb") as fh:
        magic = fh.read(4)
        fh.seek(0)
        if magic == b"\x0a\x0d\x0d\x0a":
            reader: dpkt.pcap.Reader | dpkt.pcapng.Reader = dpkt.pcapng.Reader(fh)
        else:
            reader = dpkt.pcap.Reader(fh)
        linktype = reader.datalink()
        for ts, buf in reader:
            yield float(ts), linktype, bytes(buf)


def _network_layer(linktype: int, frame: bytes) -> object | None:
    """Return a dpkt IP/IP6 object for the frame, or None."""
    try:
        if linktype == 1:
            eth = dpkt.ethernet.Ethernet(frame)
            ip = eth.data
        elif linktype == 113:
            ip = dpkt.sll.SLL(frame).data
        elif linktype in (0, 108):
            ip = dpkt.loopback.Loopback(frame).data
        elif linktype in (12, 14, 101, 228, 229):
            ip = (dpkt.ip6.IP6 if frame[:1] and frame[0] >> 4 == 6 else dpkt.ip.IP)(
                frame
            )
        else:
            return None
    except (dpkt.UnpackError, IndexError, struct.error, ValueError):
        return None
    if isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
        return ip
    return None


class _Defrag:
    """Just enough IPv4 reassembly for large UDP messages (DNS, Kerberos)."""

    def __init__(self) -> None:
        self.parts: dict[tuple[bytes, bytes, int, int], dict[int, bytes]] = {}
        self.total: dict[tuple[bytes, bytes, int, int], int] = {}

    def add(self, ip: dpkt.ip.IP) -> dpkt.ip.IP | None:
        key = (ip.src, ip.dst, ip.id, ip.p)
        off = (ip.off & dpkt.ip.IP_OFFMASK) * 8
        body = bytes(ip.data)
        self.parts.setdefault(key, {})[off] = body
        if not ip.off & dpkt.ip.IP_MF:
            self.total[key] = off + len(body)
        if key not in self.total:
            return None
        got, pos = self.parts[key], 0
        buf = bytearray()
        while pos < self.total[key]:
            if pos not in got:
                return None
            buf += got[pos]
            pos += len(got[pos])
        del self.parts[key], self.total[key]
        whole = dpkt.ip.IP(src=ip.src, dst=ip.dst, p=ip.p, id=ip.id, ttl=ip.ttl)
        try:
            cls = {6: dpkt.tcp.TCP, 17: dpkt.udp.UDP}.get(ip.p)
            whole.data = cls(bytes(buf)) if cls else bytes(buf)
        except (dpkt.UnpackError, struct.error):
            return None
        return whole


@dataclass
class Segment:
    """One transport packet: where it goes and what it carries."""

    ts: float
    proto: str
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes


def segments(path: Path) -> Iterator[Segment]:
    """Yield TCP/UDP packets of a capture, decapsulating Teredo once."""
    defrag = _Defrag()
    for ts, linktype, frame in _open(path):
        ip = _network_layer(linktype, frame)
        if ip is None:
            continue
        yield from _transport(ts, ip, defrag, depth=0)


def _transport(ts: float, ip: object, defrag: _Defrag, depth: int) -> Iterator[Segment]:
    if isinstance(ip, dpkt.ip.IP) and ip.off & (dpkt.ip.IP_MF | dpkt.ip.IP_OFFMASK):
        ip = defrag.add(ip)
        if ip is None:
            return
    l4 = ip.data  # type: ignore[attr-defined]
    src, dst = _ip_str(ip.src), _ip_str(ip.dst)  # type: ignore[attr-defined]
    if isinstance(l4, dpkt.tcp.TCP):
        proto = "tcp"
    elif isinstance(l4, dpkt.udp.UDP):
        proto = "udp"
    else:
        return
    payload = bytes(l4.data)
    yield Segment(ts, proto, src, l4.sport, dst, l4.dport, payload)

    # Teredo (RFC 4380): IPv6 in UDP; Zeek logs the inner connections too.
    if proto == "udp" and depth == 0 and payload[:1] in (b"\x00", b"\x60"):
        inner = _teredo_inner(payload)
        if inner is not None:
            yield from _transport(ts, inner, defrag, depth=1)


def _teredo_inner(payload: bytes) -> dpkt.ip6.IP6 | None:
    buf = payload
    # Authentication (0x0001) and origin indication (0x0000) headers.
    if buf[:2] == b"\x00\x01" and len(buf) >= 13:
        buf = buf[13 + buf[2] + buf[3] :]
    if buf[:2] == b"\x00\x00" and len(buf) >= 8:
        buf = buf[8:]
    if (
        len(buf) < 40
        or buf[0] >> 4 != 6
        or 40 + int.from_bytes(buf[4:6], "big") != len(buf)
    ):
        return None
    if b"\x20\x01\x00\x00" not in (buf[8:12], buf[24:28]):
        return None
    try:
        ip6 = dpkt.ip6.IP6(buf)
    except (dpkt.UnpackError, struct.error, IndexError):
        return None
    return ip6 if isinstance(ip6.data, (dpkt.tcp.TCP, dpkt.udp.UDP)) else None


@dataclass
class _Conn:
    rec: dict[str, object]
    npkts: list[int] = field(default_factory=lambda: [0, 0])
    nbytes: list[int] = field(default_factory=lambda: [0, 0])


@dataclass
class Result:
    """Per-record outcome of one capture."""

    capture: str
    uid: str
    key: tuple[str, str, int, str, int]
    zeek: tuple[str, ...]
    ours: tuple[str, ...]
    zeek_order: tuple[str, ...] = ()
    ours_order: tuple[str, ...] = ()


def zeek_conns(log: Path) -> list[dict[str, object]]:
    """Read Zeek's JSON conn.log."""
    out = []
    with log.open() as fh:
        for line in fh:
            if line.startswith("{"):
                out.append(json.loads(line))
    return out


def replay(
    capture: Path,
    log: Path,
    max_pkts: int = 8,
    max_bytes: int = 4096,
    wants_more: bool = False,
) -> list[Result]:
    """Feed one capture to a fresh detector and score every Zeek record."""
    recs = zeek_conns(log)
    by_key: dict[tuple[str, frozenset[tuple[str, int]]], list[tuple[float, _Conn]]]
    by_key = collections.defaultdict(list)
    for rec in recs:
        a = (str(rec["id.orig_h"]), int(rec["id.orig_p"]))  # type: ignore[call-overload]
        b = (str(rec["id.resp_h"]), int(rec["id.resp_p"]))  # type: ignore[call-overload]
        by_key[(str(rec["proto"]), frozenset((a, b)))].append(
            (float(rec["ts"]), _Conn(rec))  # type: ignore[arg-type]
        )
    for lst in by_key.values():
        lst.sort(key=lambda x: x[0])
    starts = {k: [t for t, _ in v] for k, v in by_key.items()}

    det = ServiceDetector(DetectorConfig(max_packets=max_pkts, max_bytes=max_bytes))
    for seg in segments(capture):
        if not seg.payload:
            continue
        key = (seg.proto, frozenset(((seg.src, seg.sport), (seg.dst, seg.dport))))
        cands = by_key.get(key)
        if not cands:
            continue
        i = bisect.bisect_right(starts[key], seg.ts + 1e-6) - 1
        conn = cands[max(i, 0)][1]
        rec = conn.rec
        is_orig = (seg.src, seg.sport) == (rec["id.orig_h"], rec["id.orig_p"])
        d = 0 if is_orig else 1
        full = conn.npkts[d] >= max_pkts or conn.nbytes[d] >= max_bytes
        if full and not (wants_more and det.wants_more(str(rec["uid"]))):
            continue
        data = seg.payload[: max_bytes - conn.nbytes[d]]
        conn.npkts[d] += 1
        conn.nbytes[d] += len(data)
        det.feed(
            str(rec["uid"]),
            is_orig,
            seg.ts,
            data,
            seg.proto,
            str(rec["id.orig_h"]),
            int(rec["id.orig_p"]),  # type: ignore[call-overload]
            str(rec["id.resp_h"]),
            int(rec["id.resp_p"]),  # type: ignore[call-overload]
        )

    results = []
    ends = sorted(recs, key=lambda r: float(r["ts"]) + float(r.get("duration", 0)))  # type: ignore[arg-type]
    name = str(capture.relative_to(PCAPS))
    for rec in ends:
        ours_order = tuple(det.finish(str(rec["uid"]), rec.get("history")))
        svc = rec.get("service")
        zeek_order = tuple(str(svc).split(",")) if svc else ()
        key = (
            str(rec["proto"]),
            str(rec["id.orig_h"]),
            int(rec["id.orig_p"]),  # type: ignore[call-overload]
            str(rec["id.resp_h"]),
            int(rec["id.resp_p"]),  # type: ignore[call-overload]
        )
        results.append(
            Result(
                name,
                str(rec["uid"]),
                key,
                tuple(sorted(zeek_order)),
                tuple(sorted(ours_order)),
                zeek_order,
                ours_order,
            )
        )
    return results


def captures() -> list[tuple[Path, Path]]:
    """Every shared capture that has a Zeek conn.log."""
    out = []
    for log in sorted(ZEEK_LOGS.rglob("conn.log")):
        cap = PCAPS / log.parent.relative_to(ZEEK_LOGS)
        if cap.is_file():
            out.append((cap, log))
    return out


def run_all(
    max_pkts: int = 8, max_bytes: int = 4096, wants_more: bool = False
) -> list[Result]:
    """Replay every shared capture; return all per-record results.

    ``wants_more`` feeds a connection past the limits while the detector's
    :meth:`~sensor.proto.detect.ServiceDetector.wants_more` asks for it.
    """
    res: list[Result] = []
    for cap, log in captures():
        res.extend(replay(cap, log, max_pkts, max_bytes, wants_more))
    return res


def main(argv: list[str]) -> None:
    verbose = "-v" in argv
    max_pkts = 8
    if "--limit-packets" in argv:
        max_pkts = int(argv[argv.index("--limit-packets") + 1])
    res = run_all(max_pkts, 4096 if max_pkts == 8 else 1 << 30, "--wants-more" in argv)
    ok = sum(r.zeek == r.ours for r in res)
    print(f"service agreement: {ok}/{len(res)} = {ok / len(res):.4%}")
    same_order = sum(r.zeek_order == r.ours_order for r in res)
    print(f"same names in Zeek's order: {same_order}/{len(res)}")
    bad = collections.Counter(
        (r.key[0], r.key[4], ",".join(r.zeek) or "-", ",".join(r.ours) or "-")
        for r in res
        if r.zeek != r.ours
    )
    print("worst disagreements (proto, resp_p, zeek, ours): count")
    for k, n in bad.most_common(40):
        print(f"  {k}: {n}")
    if verbose:
        for r in res:
            if r.zeek != r.ours:
                print(r.capture, r.uid, r.key, r.zeek, r.ours)


if __name__ == "__main__":
    main(sys.argv[1:])
