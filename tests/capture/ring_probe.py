"""Send known frames through a veth and read them back from a ring.

    unshare --net python3 -m tests.capture.ring_probe frames|overflow

Run in a network namespace of its own; prints one JSON object. ``frames``
sends a few frames (one with an 802.1Q tag, which the kernel strips and the
ring reader must put back) and reports what the ring returned; ``overflow``
sends more than a tiny ring holds before reading, and reports the reads and
the kernel's counters.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

from sensor.capture import live

DST, SRC = b"\x02\x00\x00\x00\x00\x02", b"\x02\x00\x00\x00\x00\x01"


def frames() -> list[bytes]:
    plain = DST + SRC + b"\x88\xb5" + bytes(range(50))
    tagged = DST + SRC + b"\x81\x00\x20\x07" + b"\x88\xb5" + b"tagged" * 10
    big = DST + SRC + b"\x88\xb5" + bytes(i & 0xFF for i in range(1486))
    return [plain, tagged, big]


def main(mode: str) -> None:
    subprocess.run("ip link add tx0 type veth peer name cap0 && ip link set tx0 up && ip link set cap0 up",
                   shell=True, check=True)  # fmt: skip
    for dev in ("tx0", "cap0"):
        with open(f"/proc/sys/net/ipv6/conf/{dev}/disable_ipv6", "w") as f:
            f.write("1")
    blocks = 2 if mode == "overflow" else 4
    cap = live.open_capture(
        "cap0", 1, block_size=4096, blocks=blocks, block_timeout_ms=5
    )
    ring = cap.rings[0]
    tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    tx.bind(("tx0", 0))
    sent = frames() if mode == "frames" else [DST + SRC + b"\x88\xb5" + bytes(986)] * 40
    for frame in sent:
        tx.send(frame)
    time.sleep(0.05)

    got, batches = [], 0
    while (batch := ring.read(50)) is not None:
        batches += 1
        for i in range(len(batch)):
            got.append({
                "data": batch.packet(i).hex(), "caplen": int(batch.caplens[i]),
                "wirelen": int(batch.wirelens[i]), "ts": int(batch.ts[i]),
                "linktype": int(batch.linktypes[i]),
            })  # fmt: skip
    stats = cap.stats()[0]
    print(json.dumps({
        "impl": type(ring).__module__, "sent": [f.hex() for f in sent], "got": got,
        "batches": batches, "packets_read": ring.packets_read,
        "kernel_packets": stats.packets, "kernel_drops": stats.drops, "promisc": cap.promisc_set,
        "now": time.time_ns(),
    }))  # fmt: skip
    cap.close()


if __name__ == "__main__":
    main(sys.argv[1])
