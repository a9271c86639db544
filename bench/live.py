"""Live capture benchmark: the highest rate sensord takes without a kernel drop.

    python3 bench/live.py [--packets N] [--rates 50000,100000,...] [--workers 1,2]
    python3 bench/live.py --transport      # the worker -> main pipe alone
    python3 bench/live.py --ring           # the ring readers alone, no engine

Needs root (network namespaces). For each worker count, and each rate in
increasing order, a fresh network namespace gets a veth pair; sensord
captures on one end (compiled ring and engine) while tcpreplay sends the
first ``--packets`` packets of the benchmark capture (``bench/benchfile.py``,
the one ``bench/replay.py`` uses) into the other at that rate
(``tcpreplay --pps``; ``top`` is ``--topspeed``). The kernel's
``PACKET_STATISTICS`` counters, read by sensord into ``health.log``, say
how many packets reached the sockets and how many were dropped. A worker
count's series stops at the first rate with drops.

The achieved rate is tcpreplay's own figure: on a loaded machine it can fall
short of the rate asked for. tcpreplay runs on the same cores as the
workers, so these are lower bounds for a machine whose NIC does the sending.

``--transport`` times the pipe between a worker and the main process alone:
one process sends lists of real conn.log records (pickled, as the workers
do), the other receives them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench import benchfile

RATED = re.compile(r"Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps")


def run_json(cmd: list[str], env: dict[str, str], timeout: int, what: str) -> Any:
    """Run a measuring subprocess; return the JSON object on its last line."""
    done = subprocess.run(
        cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise SystemExit(f"bench/live.py: {what} failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def one_run(
    pcap: Path, packets: int, workers: int, rate: str, ring_mib: int
) -> dict[str, Any]:
    """sensord in a fresh namespace while tcpreplay sends; counts and rate."""
    with tempfile.TemporaryDirectory(prefix="sensor-live-") as tmp:
        conf = Path(tmp) / "sensor.toml"
        # A ring much smaller than what is sent, so that a run measures the
        # sustained rate rather than how much the ring can buffer.
        conf.write_text(
            f'[capture]\ninterface = "cap0"\nblocks = {ring_mib}\n[health]\ninterval = 3600.0\n'
        )
        cmd = ["unshare", "--net", sys.executable, "-m", "tests.daemon.netns",
               "--logdir", f"{tmp}/logs", "--config", str(conf), "--workers", str(workers),
               "--limit", str(packets), "--mtu", "65535", "--settle", "1.0", str(pcap)]  # fmt: skip
        if rate != "top":
            cmd[cmd.index("--settle") : cmd.index("--settle")] = ["--pps", rate]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        env.pop("SENSOR_NO_EXTENSIONS", None)
        report = run_json(cmd, env, 900, "run")
        health = []
        health_log = Path(tmp) / "logs" / "health.log"
        if health_log.exists():
            health = [json.loads(line) for line in health_log.read_text().splitlines()]
    match = RATED.search(report.get("tcpreplay", ""))
    return {
        "workers": workers,
        "asked": rate,
        "achieved_pps": float(match.group(1)) if match else 0.0,
        "received": sum(h["packets"] for h in health),
        "drops": sum(h["drops"] for h in health),
        "processed": sum(h["processed"] for h in health),
        "per_worker": [h["packets"] for h in health],
    }


def transport(seconds: float = 3.0) -> dict[str, float]:
    """Records per second through one worker -> main pipe, 1000 per message."""
    record = {
        "ts": 1793613600.123456, "uid": "CmES5u32sYpV7JYN", "id.orig_h": "192.0.2.10",
        "id.orig_p": 49152, "id.resp_h": "198.51.100.7", "id.resp_p": 443, "proto": "tcp",
        "service": "ssl", "duration": 1.5, "orig_bytes": 517, "resp_bytes": 4180,
        "conn_state": "SF", "missed_bytes": 0, "history": "ShADadFf", "orig_pkts": 9,
        "orig_ip_bytes": 1001, "resp_pkts": 8, "resp_ip_bytes": 4600, "ip_proto": 6,
        "orig_l2_addr": "02:00:00:00:00:0a", "resp_l2_addr": "02:00:00:00:00:35",
        "community_id": "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
    }  # fmt: skip
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)

    def sender() -> None:
        batch = [("conn", dict(record)) for _ in range(1000)]
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            send.send(("records", 0, batch))
        send.send(("done", 0))

    p = ctx.Process(target=sender)
    p.start()
    send.close()
    n, start = 0, time.monotonic()
    while True:
        msg = receive.recv()
        if msg[0] == "done":
            break
        n += len(msg[2])
    elapsed = time.monotonic() - start
    p.join()
    return {
        "records": n,
        "seconds": round(elapsed, 2),
        "records_per_s": round(n / elapsed),
    }


def ring_only(pcap: Path, packets: int, ring_mib: int) -> list[dict[str, Any]]:
    """The ring readers alone (compiled and Python twin) at tcpreplay's top speed."""
    out = []
    for impl in ("compiled", "python"):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        env.pop("SENSOR_NO_EXTENSIONS", None)
        if impl == "python":
            env["SENSOR_NO_EXTENSIONS"] = "1"
        cmd = [
            "unshare",
            "--net",
            sys.executable,
            str(HERE / "ringread.py"),
            str(pcap),
            str(packets),
            str(ring_mib),
        ]
        r = run_json(cmd, env, 600, "ring run")
        match = RATED.search(r.pop("tcpreplay"))
        r["achieved_pps"] = float(match.group(1)) if match else 0.0
        out.append(r)
        print(f"ring only, {r['impl']:22} sent at {r['achieved_pps']:9,.0f} packets/s: "
              f"{r['read']:,} read, {r['drops']:,} dropped of {r['kernel_packets']:,}", flush=True)  # fmt: skip
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_shared = os.environ.get("SENSOR_SHARED", str(ROOT.parent / "shared"))
    p.add_argument("--shared", default=default_shared)
    p.add_argument("--cache", default="/tmp/sensor-bench")
    p.add_argument("--packets", type=int, default=300_000, help="packets sent per run")
    p.add_argument("--rates", default="25000,50000,100000,150000,200000,300000,top")
    p.add_argument("--workers", default="1,2")
    p.add_argument(
        "--ring-mib", type=int, default=8, help="ring per worker (1 MiB blocks)"
    )
    p.add_argument(
        "--transport", action="store_true", help="time the worker -> main pipe only"
    )
    p.add_argument(
        "--ring", action="store_true", help="time the ring readers alone, at top speed"
    )
    p.add_argument("--json", help="also write every figure to this file")
    args = p.parse_args()

    if args.transport:
        print(json.dumps(transport()))
        return
    if os.geteuid() != 0:
        raise SystemExit("bench/live.py: needs root for network namespaces")
    benchfile.ensure(Path(args.shared) / "pcaps", Path(args.cache), 3_000_000)
    pcap = Path(args.cache) / "bench.pcap"

    if args.ring:
        rings = ring_only(pcap, args.packets, args.ring_mib)
        if args.json:
            Path(args.json).write_text(json.dumps({"ring_only": rings}, indent=1))
        return
    results, best = [], {}
    print("workers  asked pps   achieved pps   received   dropped   per worker")
    for workers in (int(w) for w in args.workers.split(",")):
        for rate in args.rates.split(","):
            r = one_run(pcap, args.packets, workers, rate, args.ring_mib)
            results.append(r)
            print(f"{workers:7}  {rate:>9}  {r['achieved_pps']:13,.0f}  {r['received']:9,}  "
                  f"{r['drops']:8,}   {r['per_worker']}", flush=True)  # fmt: skip
            if r["drops"] or r["processed"] != r["received"]:
                break
            best[workers] = r["achieved_pps"]
    for workers, pps in best.items():
        print(
            f"highest rate without kernel drops, {workers} worker(s): {pps:,.0f} packets/s"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"runs": results, "best": best}, indent=1)
        )


if __name__ == "__main__":
    main()
