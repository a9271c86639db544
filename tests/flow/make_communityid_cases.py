"""Regenerate tests/flow/communityid_cases.json from the shared captures.

Zeek's conn.logs in ../shared/pcaps/zeek-logs carry no community_id (that
policy script was not loaded), so the expected values come from an
independent implementation instead: Wireshark's "communityid" dissector
(tshark 4.0), run over the same captures. For every ICMP connection in those
conn.logs, and the first few TCP and UDP connections of each, this finds a
packet of the connection in the capture and records Zeek's tuple with the id
tshark printed for that packet.

    python3 tests/flow/make_communityid_cases.py [SHARED_PCAPS]

Connections whose packets tshark shows with more than one IP layer (tunnels,
ICMP errors quoting a header) use the outer layer, which is what both Zeek's
conn record and the tshark field describe.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "communityid_cases.json"
PER_PROTO = 4  # TCP and UDP connections taken per conn.log
FIELDS = [
    "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
    "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport",
    "icmp.type", "icmp.code", "icmpv6.type", "icmpv6.code", "communityid",
]  # fmt: skip
ICMP_PAIRS = {0: 8, 8: 0, 9: 10, 10: 9, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17}
ICMP6_PAIRS = {128: 129, 129: 128, 130: 131, 131: 130, 133: 134, 134: 133,
               135: 136, 136: 135, 139: 140, 140: 139, 144: 145, 145: 144}  # fmt: skip


def first(value: str) -> str:
    return value.split(",")[0]


def packets(capture: Path) -> list[dict[str, str]]:
    cmd = ["tshark", "-r", str(capture), "--enable-protocol", "communityid",
           "-T", "fields", "-E", "separator=\t", "-E", "occurrence=f"]  # fmt: skip
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    rows = []
    for line in out.splitlines():
        cols = line.split("\t")
        if len(cols) == len(FIELDS) and cols[-1]:
            rows.append({k: first(v) for k, v in zip(FIELDS, cols)})
    return rows


def key(row: dict[str, str]) -> tuple[str, str, str, str, str, str] | None:
    # ICMP first: an ICMP error quotes the offending TCP/UDP header, which
    # tshark also shows. ICMPv6 takes the IPv6 layer (inner one for Teredo).
    v4 = (row["ip.src"], row["ip.dst"])
    v6 = (row["ipv6.src"], row["ipv6.dst"])
    if row["icmp.type"]:
        src, dst = v4
        a, b = row["icmp.type"], row["icmp.code"]
    elif row["icmpv6.type"]:
        src, dst = v6
        a, b = row["icmpv6.type"], row["icmpv6.code"]
    else:
        src, dst = v4 if v4[0] else v6
        a, b = (
            row["tcp.srcport"] or row["udp.srcport"],
            row["tcp.dstport"] or row["udp.dstport"],
        )
        if not a:
            return None
        proto = "tcp" if row["tcp.srcport"] else "udp"
        return proto, src, dst, a, b, row["communityid"]
    return "icmp", src, dst, a, b, row["communityid"]


def main() -> None:
    shared = Path(
        sys.argv[1] if len(sys.argv) > 1 else HERE.parents[2] / "shared/pcaps"
    )
    cases = []
    for log in sorted((shared / "zeek-logs").rglob("conn.log")):
        rel = log.parent.relative_to(shared / "zeek-logs")
        conns = [json.loads(line) for line in log.read_text().splitlines() if line]
        chosen = [c for c in conns if c["proto"] == "icmp"]
        for proto in ("tcp", "udp"):
            chosen += [c for c in conns if c["proto"] == proto][:PER_PROTO]
        if not chosen:
            continue
        seen: dict[tuple[str, ...], str] = {}
        for row in packets(shared / rel):
            k = key(row)
            if k is not None:
                seen.setdefault(k[:5], k[5])
                seen.setdefault(k[:4], k[5])  # ICMP pairs: the type decides
        for c in chosen:
            oh, rh = c["id.orig_h"], c["id.resp_h"]
            op, rp = str(c["id.orig_p"]), str(c["id.resp_p"])
            if c["proto"] == "icmp":
                pairs = ICMP_PAIRS if c["ip_proto"] == 1 else ICMP6_PAIRS
                if c["id.orig_p"] in pairs:
                    want = [("icmp", oh, rh, op), ("icmp", rh, oh, rp)]
                else:
                    want = [("icmp", oh, rh, op, rp)]
            else:
                want = [(c["proto"], oh, rh, op, rp), (c["proto"], rh, oh, rp, op)]
            cid = next((seen[w] for w in want if w in seen), None)  # type: ignore[index]
            if cid is None:
                print(f"{rel}: no packet for {c['uid']} {want[0]}", file=sys.stderr)
                continue
            cases.append(
                {
                    "capture": str(rel),
                    "uid": c["uid"],
                    "orig_h": oh,
                    "orig_p": c["id.orig_p"],
                    "resp_h": rh,
                    "resp_p": c["id.resp_p"],
                    "ip_proto": c.get("ip_proto"),
                    "community_id": cid,
                }
            )
    OUT.write_text("[\n" + ",\n".join(json.dumps(c) for c in cases) + "\n]\n")
    print(f"{len(cases)} cases written to {OUT}")


if __name__ == "__main__":
    main()
