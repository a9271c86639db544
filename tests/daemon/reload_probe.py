"""SIGHUP while capturing: a new filter and rotation apply, state survives.

    unshare --net python3 -m tests.daemon.reload_probe CONFIG LOGDIR

Run in a network namespace of its own. Starts sensord with CONFIG on a veth,
sends a UDP packet and a TCP SYN, rewrites CONFIG (filter ``udp``, rotation
after every record, a worker count that needs a restart), sends SIGHUP,
sends the same again plus one more UDP packet on the first flow, then
tries a broken configuration, and stops. Prints one JSON object.
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from tests.daemon.netns import ROOT, setup_veth, wait_for

MAC = {"192.0.2.10": b"\x02\0\0\0\0\x0a", "192.0.2.53": b"\x02\0\0\0\0\x35"}


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s >> 16) + (s & 0xFFFF)
    return ~s & 0xFFFF


def frame(proto: int, src: str, dst: str, sport: int, dport: int) -> bytes:
    """An Ethernet/IPv4 frame with a UDP datagram or a TCP SYN, checksums right."""
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    if proto == 17:
        payload = b"hello"
        l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
        at = 6
    else:
        l4 = struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, 5 << 4, 0x02, 65535, 0, 0)
        at = 16
    pseudo = s + d + struct.pack("!BBH", 0, proto, len(l4))
    l4 = l4[:at] + struct.pack("!H", checksum(pseudo + l4)) + l4[at + 2 :]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0, s, d)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return MAC[dst] + MAC[src] + b"\x08\x00" + ip + l4


def main(config: Path, logdir: Path) -> None:
    setup_veth()
    tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    tx.bind(("tx0", 0))
    err = logdir / "sensord.stderr"
    logdir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "sensor.cli.sensord",
        "--config",
        str(config),
        "--logdir",
        str(logdir),
    ]
    with open(err, "wb") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, stderr=f)
    out: dict[str, object] = {}
    try:
        assert wait_for(err, "capturing with", proc, 45), err.read_text()
        tx.send(frame(17, "192.0.2.10", "192.0.2.53", 40000, 5353))
        tx.send(frame(6, "192.0.2.10", "192.0.2.53", 40000, 80))
        time.sleep(0.4)

        text = config.read_text()
        config.write_text(
            text.replace('bpf_filter = ""', 'bpf_filter = "udp"')
            .replace("rotate_bytes = 0", "rotate_bytes = 1")
            .replace("workers = 1", "workers = 2")
        )
        proc.send_signal(signal.SIGHUP)
        out["reloaded"] = wait_for(err, "reload: applied", proc, 10)
        tx.send(frame(17, "192.0.2.10", "192.0.2.53", 40001, 5353))
        tx.send(frame(6, "192.0.2.10", "192.0.2.53", 40001, 80))
        tx.send(frame(17, "192.0.2.10", "192.0.2.53", 40000, 5353))
        time.sleep(0.4)

        config.write_text("[capture\n")
        proc.send_signal(signal.SIGHUP)
        out["bad_reload_logged"] = wait_for(
            err, "keeping the running configuration", proc, 10
        )
        out["alive_after_bad_reload"] = proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        out["status"] = proc.wait(timeout=60)
    out["stderr"] = err.read_text()
    print(json.dumps(out))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
