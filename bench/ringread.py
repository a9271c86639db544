"""Ring reader alone, no engine: how fast the capture path itself can go.

    unshare --net python3 bench/ringread.py PCAP PACKETS RING_MIB

Run by ``bench/live.py --ring`` in a network namespace of its own (set
SENSOR_NO_EXTENSIONS=1 for the Python twin). tcpreplay sends PACKETS packets
of PCAP at top speed into a veth; one socket with a ring of RING_MIB blocks
of 1 MiB reads them and only counts. Prints one JSON object.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sensor.capture import live
from tests.daemon.netns import setup_veth


def main(pcap: str, packets: int, ring_mib: int) -> None:
    setup_veth(65535)
    cap = live.open_capture("cap0", 1, blocks=ring_mib, block_timeout_ms=10)
    ring = cap.rings[0]
    sender = subprocess.Popen(
        ["tcpreplay", "-i", "tx0", "--topspeed", "--limit", str(packets), pcap],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    read, started = 0, time.monotonic()
    while True:
        batch = ring.read(50)
        if batch is not None:
            read += len(batch)
        elif sender.poll() is not None:
            break
    seconds = time.monotonic() - started
    stats = cap.stats()[0]
    out = sender.stdout.read() if sender.stdout else ""
    cap.close()
    print(json.dumps({
        "impl": type(ring).__module__, "read": read, "kernel_packets": stats.packets,
        "drops": stats.drops, "seconds": round(seconds, 2), "tcpreplay": out,
    }))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
