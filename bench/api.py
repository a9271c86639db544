"""API benchmark: how fast a follower hears of an alert, and how fast a
long list pages out.

    python3 bench/api.py [--follow 2000] [--list 100000]

An in-process server (sensor.api.server.ApiServer over an ApiState, on a
Unix socket, through the SO_PEERCRED relay as in production) gets alerts
published one at a time; a follower in another process (plain gRPC
stubs) notes when each arrives. CLOCK_MONOTONIC is system-wide, so the
publisher's send time travels in the alert and the follower subtracts.
Then ``--list`` alerts are published and ``sensorctl --json alerts`` pages
through all of them (pages of 500), timed from the command line.

Prints one JSON object: follow latency p50/p99/max in milliseconds, and
the list time in seconds and alerts per second.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sensor.api.server import ApiServer
from sensor.api.state import ApiState

FOLLOWER = """
import sys, time, grpc
from sensor.api.v1 import alerts_pb2, alerts_pb2_grpc
n = int(sys.argv[2])
ch = grpc.insecure_channel("unix:" + sys.argv[1])
stream = alerts_pb2_grpc.AlertsStub(ch).FollowAlerts(alerts_pb2.FollowAlertsRequest())
print("ready", flush=True)
out = []
for a in stream:
    out.append((time.monotonic() - float(a.summary)) * 1000)
    if len(out) == n:
        break
stream.cancel()
print(" ".join(f"{x:.3f}" for x in out), flush=True)
"""


def record(n: int, summary: str) -> tuple[str, dict[str, object]]:
    return (
        "alerts",
        {"ts": 1000.0 + n, "id": f"A{n:08d}", "detection": "scan.port", "score": 80.0,
         "device": {"ip": "192.0.2.10"}, "src": {"ip": "192.0.2.10"},
         "dst": {"ip": "198.51.100.7", "port": 22}, "uids": [f"C{n}"], "summary": summary,
         "reasons": [{"feature": "ports", "value": 300, "baseline": 25}], "mitre": "T1046"},
    )  # fmt: skip


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--follow", type=int, default=2000, help="alerts to follow")
    p.add_argument("--list", type=int, default=100000, help="alerts to list")
    args = p.parse_args()

    d = tempfile.mkdtemp(prefix="sensor-bench-api-")
    sock = os.path.join(d, "s.sock")
    state = ApiState("live")
    server = ApiServer(state, f"unix:{sock}", socket_group="")
    server.start()
    result: dict[str, object] = {}
    try:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        follower = subprocess.Popen(
            [sys.executable, "-c", FOLLOWER, sock, str(args.follow)],
            stdout=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        assert follower.stdout is not None
        assert follower.stdout.readline().strip() == "ready"
        while state.followers == 0:
            time.sleep(0.01)
        for n in range(1, args.follow + 1):
            state.publish([record(n, repr(time.monotonic()))])
            time.sleep(0.001)  # a stream of alerts, not one burst
        latencies = [float(x) for x in follower.stdout.readline().split()]
        follower.wait(timeout=60)
        result["follow_alerts"] = len(latencies)
        result["follow_ms_p50"] = round(percentile(latencies, 50), 2)
        result["follow_ms_p99"] = round(percentile(latencies, 99), 2)
        result["follow_ms_max"] = round(max(latencies), 2)

        base = args.follow + 1
        state.publish([record(base + n, "listed") for n in range(args.list)])
        started = time.perf_counter()
        listed = subprocess.run(
            [sys.executable, "-m", "sensor.cli.sensorctl", "--socket", sock, "--timeout", "120",
             "--json", "alerts", "--since", f"A{args.follow:08d}"],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        count = len(json.loads(listed.stdout))
        assert count == args.list, count
        result["list_alerts"] = count
        result["list_seconds"] = round(seconds, 2)
        result["list_alerts_per_second"] = round(count / seconds)
    finally:
        server.stop()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
