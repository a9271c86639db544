"""Records per second through the network detections (beacons, tunnels, rarity).

    python3 bench/netdetect.py [--records N] [--seed S]

Makes N synthetic records of a busy office in memory (30% DNS lookups with
answers, 15% TLS hellos, the rest connections, from 1000 devices to 250
addresses and 2000 domains), then times the runner over them in CPU
seconds of this process: once with no detection (the runner's own cost)
and once with the nine network detections (c2.beacon, tunnel.dns,
tunnel.icmp, dns.dga, exfil.volume, endpoint.rare, email.rare_link,
file.rare_download, tls.rare_fingerprint). The models answer as a busy
network would: every value used by 10 devices, so rarity alerts stay
quiet and the figure is the cost of looking, not of writing alerts.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sensor.detect.runner import Detector, NoModels

NETWORK = [
    "c2.beacon",
    "tunnel.dns",
    "tunnel.icmp",
    "dns.dga",
    "exfil.volume",
    "endpoint.rare",
    "email.rare_link",
    "file.rare_download",
    "tls.rare_fingerprint",
]


class BusyNetwork(NoModels):
    """Every value is used by ten devices."""

    def network_devices(self, kind: str, value: str) -> int:
        return 10


def records(n: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """``n`` synthetic conn, dns and ssl records in time order."""
    rnd = random.Random(seed)
    out: list[tuple[str, dict[str, Any]]] = []
    t = 1_700_000_000.0
    for i in range(n):
        t += 0.01
        src = f"192.168.{rnd.randint(0, 3)}.{rnd.randint(1, 250)}"
        dst = f"198.51.100.{rnd.randint(1, 250)}"
        base = {
            "ts": t,
            "uid": f"C{i}",
            "id.orig_h": src,
            "id.orig_p": 50000,
            "id.resp_h": dst,
        }
        k = rnd.random()
        if k < 0.3:
            name = f"h{rnd.randint(0, 5000)}.site{rnd.randint(0, 2000)}.com"
            base.update({"id.resp_h": "192.168.0.1", "id.resp_p": 53, "query": name,
                         "qtype_name": "A", "rcode_name": "NOERROR", "answers": [dst]})  # fmt: skip
            out.append(("dns", base))
        elif k < 0.45:
            base.update({"id.resp_p": 443, "server_name": f"www.site{rnd.randint(0, 2000)}.com",
                         "ja3": f"{rnd.randint(0, 50):032d}"})  # fmt: skip
            out.append(("ssl", base))
        else:
            base.update({"id.resp_p": rnd.choice([443, 80, 8080]), "proto": "tcp",
                         "duration": 0.5, "orig_bytes": rnd.randint(100, 5000),
                         "resp_bytes": rnd.randint(100, 50000), "conn_state": "SF"})  # fmt: skip
            out.append(("conn", base))
    return out


def timed(only: list[str], recs: list[tuple[str, dict[str, Any]]]) -> float:
    """CPU seconds of one runner over the records, finish included."""
    det = Detector(BusyNetwork(), only=only)
    start = time.process_time()
    for log, record in recs:
        det.observe(log, record)
    det.finish(recs[-1][1]["ts"])
    return time.process_time() - start


def main() -> None:
    """Print records/s with no detection and with the network detections."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    recs = records(args.records, args.seed)
    bare = timed([], recs)
    net = timed(NETWORK, recs)
    print(f"runner alone:          {len(recs) / bare:>10,.0f} records/s")
    print(f"nine network detections: {len(recs) / net:>8,.0f} records/s")


if __name__ == "__main__":
    main()
