"""Count how often each datagram sent over ``lo`` reaches the capture.

    unshare --net python3 -m tests.capture.outgoing_probe WORKERS IGNORE

Run in a network namespace of its own (its ``lo`` carries nothing else);
prints one JSON object. On ``lo`` every frame passes the packet taps twice:
once as it leaves (``PACKET_OUTGOING``) and once as it comes back in
(``PACKET_HOST``); with ``capture.ignore_outgoing`` the capture must see
each one once, however many workers share the interface.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

from sensor.capture import live

COUNT = 40


def main(workers: int, ignore: bool) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    cap = live.open_capture(
        "lo", workers, block_size=1 << 16, blocks=4, block_timeout_ms=5,
        promiscuous=False, ignore_outgoing=ignore,
    )  # fmt: skip
    # A listener, so that no ICMP port unreachable quotes the datagram
    # back; a new sender per datagram (a new source port) spreads them
    # over the fanout members.
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    for i in range(COUNT):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            tx.sendto(b"probe-%04d" % i, rx.getsockname())
    received = 0
    rx.settimeout(1.0)
    while received < COUNT:
        rx.recv(64)
        received += 1
    rx.close()
    time.sleep(0.1)

    seen: dict[str, int] = {}
    per_worker = []
    for ring in cap.rings:
        n = 0
        while (batch := ring.read(64)) is not None:
            for i in range(len(batch)):
                data = batch.packet(i)
                at = data.find(b"probe-")
                if at >= 0:
                    key = data[at : at + 10].decode()
                    seen[key] = seen.get(key, 0) + 1
                    n += 1
        per_worker.append(n)
    print(json.dumps({
        "impl": type(cap.rings[0]).__module__, "sent": COUNT,
        "copies": sorted(set(seen.values())), "distinct": len(seen),
        "per_worker": per_worker,
    }))  # fmt: skip
    cap.close()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2] == "1")
