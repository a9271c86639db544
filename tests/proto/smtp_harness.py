"""Dev harness: SMTP captures through the SMTP analyzer over reassembled streams.

The connection table does not deliver whole TCP streams yet, so this reads a
capture with dpkt, reassembles each direction of every TCP connection
(in sequence order, retransmissions and overlaps dropped, out-of-order
segments held until the hole fills), and feeds the pieces in capture order
to a :class:`~sensor.proto.dispatch.Dispatcher` holding only the SMTP
analyzer, exactly as the engine will. Connections are oriented by their SYN
(else by the first packet), and named by a counter, not Zeek's uid.

Run as a script to score smtp.log against Zeek's logs of every capture that
has one::

    python3 tests/proto/smtp_harness.py [-v] [CAPTURE ...]
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dpkt

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sensor.output.zeeklog import LogWriter
from sensor.proto.analyzers.smtp import SMTPAnalyzer
from sensor.proto.dispatch import Dispatcher

SHARED = ROOT.parent / "shared"
PCAPS = SHARED / "pcaps"
ZEEK_LOGS = PCAPS / "zeek-logs"
COMPARE = SHARED / "tools" / "zeek-compare"

Record = tuple[str, dict[str, Any]]


def _frames(path: Path) -> Iterator[tuple[float, int, bytes]]:
    with path.open("rb") as fh:
        magic = fh.read(4)
        fh.seek(0)
        if magic == b"\x0a\x0d\x0d\x0a":
            reader: Any = dpkt.pcapng.Reader(fh)
        else:
            reader = dpkt.pcap.Reader(fh)
        linktype = reader.datalink()
        for ts, frame in reader:
            yield float(ts), linktype, frame


def _ip(linktype: int, frame: bytes) -> Any:
    try:
        if linktype == dpkt.pcap.DLT_EN10MB:
            return dpkt.ethernet.Ethernet(frame).data
        if linktype in (dpkt.pcap.DLT_NULL, dpkt.pcap.DLT_LOOP):
            return dpkt.loopback.Loopback(frame).data
        if linktype == dpkt.pcap.DLT_LINUX_SLL:
            return dpkt.sll.SLL(frame).data
        if linktype in (dpkt.pcap.DLT_RAW, 101):
            return dpkt.ip.IP(frame) if frame[0] >> 4 == 4 else dpkt.ip6.IP6(frame)
    except (dpkt.UnpackError, IndexError):
        return None
    return None


class _Stream:
    """One direction: the next expected sequence number and held segments."""

    def __init__(self) -> None:
        self.next: int | None = None
        self.held: dict[int, bytes] = {}

    def deliver(self, seq: int, data: bytes, syn: bool) -> list[tuple[int, bytes]]:
        if self.next is None:
            self.next = seq + 1 if syn else seq
        if syn:
            seq += 1
        if data:
            self.held.setdefault(seq, data)
        out = []
        while True:
            assert self.next is not None
            start = next(
                (s for s in self.held if s <= self.next < s + len(self.held[s])), None
            )
            for s in [s for s in self.held if s + len(self.held[s]) <= self.next]:
                del self.held[s]
            if start is None:
                return out
            piece = self.held.pop(start)[self.next - start :]
            out.append((self.next & 0xFFFFFFFF, piece))
            self.next += len(piece)


def run(capture: Path) -> list[Record]:
    """The records (smtp, files) the SMTP analyzer writes for ``capture``."""
    dispatcher = Dispatcher((SMTPAnalyzer,))
    conns: dict[
        tuple[Any, ...], tuple[str, tuple[str, int, str, int], list[_Stream]]
    ] = {}
    last_ts: dict[str, float] = {}
    for ts, linktype, frame in _frames(capture):
        ip = _ip(linktype, frame)
        tcp = getattr(ip, "data", None)
        if not isinstance(tcp, dpkt.tcp.TCP):
            continue
        fam = socket.AF_INET6 if len(ip.src) == 16 else socket.AF_INET
        src, dst = socket.inet_ntop(fam, ip.src), socket.inet_ntop(fam, ip.dst)
        fwd, rev = (src, tcp.sport, dst, tcp.dport), (dst, tcp.dport, src, tcp.sport)
        if fwd in conns:
            uid, orient, streams = conns[fwd]
        elif rev in conns:
            uid, orient, streams = conns[rev]
        else:
            syn_ack = tcp.flags & dpkt.tcp.TH_SYN and tcp.flags & dpkt.tcp.TH_ACK
            orient = rev if syn_ack else fwd
            uid = f"C{len(conns) + 1}"
            streams = [_Stream(), _Stream()]
            conns[fwd] = (uid, orient, streams)
        is_orig = (src, tcp.sport) == orient[:2]
        syn = bool(tcp.flags & dpkt.tcp.TH_SYN)
        for seq, piece in streams[is_orig].deliver(tcp.seq, bytes(tcp.data), syn):
            # The sequence number is for a dispatcher that reassembles
            # itself (sensor/proto/stream.py); in order, it changes nothing.
            dispatcher.payload(uid, is_orig, ts, piece, "tcp", *orient, seq)
        last_ts[uid] = ts
    for uid, ts in last_ts.items():
        dispatcher.finish(uid, ts)
    return dispatcher.records


def captures() -> list[str]:
    """Every shared capture for which Zeek wrote an smtp.log."""
    return sorted(
        str(p.parent.relative_to(ZEEK_LOGS)) for p in ZEEK_LOGS.rglob("smtp.log")
    )


def score(
    rel: str, records: list[Record], tmp: Path, verbose: bool = False
) -> dict[str, Any]:
    """zeek-compare's summary of our smtp.log for capture ``rel``."""
    logdir = tmp / rel
    with LogWriter(logdir) as out:
        for name, record in records:
            out.write(name, record)
    ours = logdir / "smtp.log"
    if not ours.exists():
        ours.write_text("")
    res = subprocess.run(
        [
            sys.executable,
            str(COMPARE),
            "--log",
            "smtp",
            str(ZEEK_LOGS / rel / "smtp.log"),
            str(ours),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if verbose:
        print(res.stdout)
    return dict(json.loads(res.stdout.strip().splitlines()[-2]))


def main(argv: list[str]) -> int:
    verbose = "-v" in argv
    chosen = [a for a in argv if a != "-v"] or captures()
    total = equal = 0
    with tempfile.TemporaryDirectory() as tmp:
        for rel in chosen:
            s = score(rel, run(PCAPS / rel), Path(tmp), verbose)
            total += s["expected"]
            equal += s["equal"]
            print(f"{rel}: {s['equal']}/{s['expected']} equal, {s['extra']} extra")
    print(f"smtp: {equal}/{total} fully equal ({100.0 * equal / max(total, 1):.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
