"""Run sensord on one end of a veth pair while tcpreplay sends into the other.

    unshare --net --mount python3 -m tests.daemon.netns --logdir DIR PCAP [options]

Must run in a network namespace of its own (``unshare --net``): it creates
``tx0``/``cap0`` there, with IPv6 off (so the kernel's own neighbour and
multicast listener messages stay out of the capture) and offloads off (so
frames are captured as they were sent). Everything vanishes with the
namespace. Prints one JSON object: sensord's exit status, stderr, and
tcpreplay's summary.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def setup_veth(mtu: int = 1500) -> None:
    """``tx0`` <-> ``cap0``, up, IPv6 and offloads off."""
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", "tx0", "type", "veth", "peer", "name", "cap0")
    for dev in ("tx0", "cap0"):
        Path(f"/proc/sys/net/ipv6/conf/{dev}/disable_ipv6").write_text("1")
        sh("ip", "link", "set", dev, "mtu", str(mtu))
        sh("ip", "link", "set", dev, "up")
        # ethtool may be missing or refuse some features; offloads matter
        # only for locally generated traffic, which tcpreplay's is not.
        subprocess.run(
            [
                "ethtool",
                "-K",
                dev,
                "gro",
                "off",
                "gso",
                "off",
                "tso",
                "off",
                "tx",
                "off",
                "rx",
                "off",
            ],
            capture_output=True,
            check=False,
        )


def wait_for(
    stream_path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in stream_path.read_text(errors="replace"):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def stop_during(
    proc: subprocess.Popen[bytes],
    rate: list[str],
    pcaps: list[str],
    after: float,
    out: dict[str, object],
) -> None:
    """SIGTERM sensord while tcpreplay sends without end; time the stop."""
    sender = subprocess.Popen(
        ["tcpreplay", "-i", "tx0", *rate, "--loop", "0", *pcaps],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(after)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        out["stop_seconds"] = round(time.monotonic() - started, 2)
    finally:
        sender.kill()
        sender.wait()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("pcap", nargs="+")
    p.add_argument("--logdir", required=True)
    p.add_argument("--config")
    p.add_argument("--workers", default="1")
    p.add_argument("--pps", help="tcpreplay rate in packets/s (default: top speed)")
    p.add_argument("--loop", default="1")
    p.add_argument("--limit", help="send at most this many packets")
    p.add_argument(
        "--mtu",
        type=int,
        default=1500,
        help="of both veths (big captured frames need more)",
    )
    p.add_argument("--settle", type=float, default=0.5)
    p.add_argument(
        "--stop-during",
        type=float,
        help="send endlessly; stop sensord this many seconds in (report stop_seconds)",
    )
    args = p.parse_args()

    setup_veth(args.mtu)
    logdir = Path(args.logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    err_path = logdir / "sensord.stderr"
    cmd = [sys.executable, "-m", "sensor.cli.sensord", "--interface", "cap0",
           "--workers", args.workers, "--logdir", str(logdir)]  # fmt: skip
    if args.config:
        cmd += ["--config", args.config]
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL)
    out: dict[str, object] = {}
    try:
        if not wait_for(err_path, "capturing with", proc, 45):
            out["error"] = "sensord did not start"
        else:
            rate = ["--pps", args.pps] if args.pps else ["--topspeed"]
            if args.limit:
                rate += ["--limit", args.limit]
            if args.stop_during:
                stop_during(proc, rate, args.pcap, args.stop_during, out)
            else:
                replay = subprocess.run(
                    ["tcpreplay", "-i", "tx0", *rate, "--loop", args.loop, *args.pcap],
                    capture_output=True, text=True, check=False,
                )  # fmt: skip
                out["tcpreplay"] = replay.stdout + replay.stderr
            time.sleep(args.settle)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            out["status"] = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out["status"] = "killed"
    out["stderr"] = err_path.read_text(errors="replace")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    sys.exit(main())
