"""Response latency: from the packet that completes the evidence to the
block in force in the kernel, and to the reset on the wire.

    python3 bench/response.py [--blocks 100] [--resets 30] [--block-ms 100]

Needs root (network namespaces, nftables, raw sockets). Each part runs in
a fresh ``unshare --mount --net`` with the topology of
``tests/respond/lab.py`` and prints p50, p99 and the worst case.

Blocks: the routed lab (client, gateway with the sensor and nftables,
server). The sensor runs the real chain on the mirror: capture ring
(5 ms block timeout), engine, a bench detection that alerts on any
connection to port 9999 (so that the detection's own judging time, such as
scan.port's idle wait, is not counted), incidents, the responder
(autonomous) and the nftables back-end. The client connects from N
different addresses to the server's closed port 9999; for each, the
latency is from the kernel receive time of the connection's last packet
(the RST that completes the evidence: ``ts + duration`` of its record) to
the return of the ``add element`` batch, when the kernel has committed
the rule. The connection table finishes a reset connection 5 s after its
RST (Zeek's close delay, kept for agreement with Zeek's conn.log); the
engine hands the detections its early notice (``conn_early``) at the RST,
as the daemon's does, and the trigger reads those. Also reported: from
that record leaving the engine to the rule in force (detection, incident,
policy, nftables), and the batch alone.

Daemon: the same blocks through the real ``sensord --config`` on the
gateway (one capture worker with ``capture.block_timeout_ms`` =
``--block-ms``, the pipe to the main process, the pipeline and the
nftables back-end there; the trigger registered in its process). The
latency is from the RST (``ts + duration`` of the conn record in conn.log)
to the ``changed`` time of the ``apply`` record in actions.log, stamped
when the batch has returned.

Resets: the switched lab (client and server on one bridge, the sensor sees
only a mirror). For each of N connections (the client sends a byte every
0.1 s), the responder is asked to reset it; the latency is from the
kernel receive time of the connection's next packet on the mirror (the
one the reset is built from) to the return of the send of both RST frames
(a veth transmits synchronously: the frame is on the wire). Also reported:
from the request to the reset, which includes waiting for that packet.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def summary(values: list[float]) -> dict[str, Any]:
    ms = sorted(v * 1000.0 for v in values)
    if not ms:
        return {"n": 0}
    q = (
        statistics.quantiles(ms, n=100, method="inclusive")
        if len(ms) > 1
        else [ms[0]] * 99
    )
    return {
        "n": len(ms),
        "p50_ms": round(q[49], 2),
        "p99_ms": round(q[98], 2),
        "max_ms": round(ms[-1], 2),
    }


def register_trigger() -> None:
    """Register ``bench.trigger``: an alert for any connection to port 9999,
    once per connection (from its early notice, else its conn record)."""
    from sensor.detect.alert import Alert, DeviceRef, Endpoint, Reason
    from sensor.detect.base import REGISTRY, Detection, register
    from sensor.detect.runner import load_all

    load_all()
    if "bench.trigger" in REGISTRY:
        return

    @register
    class Trigger(Detection):
        name = "bench.trigger"
        mitre = "T0000"
        logs = ("conn", "conn_early")

        def __init__(self, models: Any, overrides: Any = None) -> None:
            super().__init__(models, overrides)
            self.seen: set[str] = set()

        def observe(self, log: str, r: dict[str, Any]) -> list[Alert]:
            if r.get("id.resp_p") != 9999 or r["uid"] in self.seen:
                return []
            self.seen.add(r["uid"])
            src, dst = r["id.orig_h"], r["id.resp_h"]
            return [Alert(ts=r["ts"], detection=self.name, score=90.0, device=DeviceRef(ip=src),
                          src=Endpoint(ip=src), dst=Endpoint(ip=dst, port=9999), uids=[r["uid"]],
                          summary=f"{src} reached port 9999", reasons=[Reason("port", 9999)],
                          mitre=self.mitre)]  # fmt: skip


def blocks(n: int) -> dict[str, Any]:
    from sensor.respond import Responder
    from sensor.respond.backends.nftables import NFTables
    from sensor.respond.intent import Intent
    from sensor.respond.policy import Policy, PolicyConfig
    from tests.respond import lab

    register_trigger()
    applied: dict[str, float] = {}
    batch: list[float] = []

    class Timed(NFTables):
        def apply(self, intent: Intent, now: float) -> None:
            t0 = time.perf_counter()
            super().apply(intent, now)
            batch.append(time.perf_counter() - t0)
            applied[intent.target] = time.time()

    lab.routed()
    sources = [f"192.0.2.{100 + i}" for i in range(n)]
    for a in sources:
        lab.in_ns("cl", "ip", "addr", "add", f"{a}/24", "dev", "eth0")
    cfg = PolicyConfig(mode="autonomous", breaker_limit=10_000, jitter=0.0,
                       durations={"reset": 10.0, "block": 120.0, "enforce": 60.0, "quarantine": 60.0})  # fmt: skip
    nft = Timed()
    responder = Responder(Policy(cfg), [nft], reconcile_seconds=3600.0)
    sensor = lab.Sensor("mir1", responder)
    sensor.pipeline.detector = __import__(
        "sensor.detect.runner", fromlist=["Detector"]
    ).Detector(None, only=["bench.trigger"])
    sensor.start()
    cl, sv = lab.Agent("cl"), lab.Agent("sv")
    try:
        time.sleep(0.3)
        for a in sources:
            cl(op="connect", src=a, dst=lab.SERVER, port=9999, timeout=0.5)
            time.sleep(0.02)
        lab.wait(lambda: len(applied) >= n, 20.0)
        in_kernel = len(nft.listed().get("pair4", []))
    finally:
        sensor.close()
        cl.close()
        sv.close()
    conns = {r["uid"]: r for r in sensor.logged("conn")}
    conns.update((r["uid"], r) for r in sensor.logged("conn_early"))
    latency, from_record = [], []
    for alert in sensor.logged("alerts"):
        if alert.get("detection") != "bench.trigger":
            continue
        c = conns[alert["uids"][0]]
        target = alert["device"]["ip"]
        if target in applied:
            latency.append(applied[target] - (c["ts"] + (c.get("duration") or 0.0)))
            from_record.append(applied[target] - sensor.emitted[c["uid"]])
    return {
        "blocks": n,
        "applied": len(applied),
        "in_kernel": in_kernel,
        "early_notices": len(sensor.logged("conn_early")),
        "evidence_to_rule": summary(latency),
        "record_to_rule": summary(from_record),
        "nft_batch": summary(batch),
    }


DAEMON_CONFIG = """
[capture]
interface = "mir1"
workers = 1
block_timeout_ms = {block_ms}
[output]
logdir = "{dir}/logs"
flush_seconds = 0.0
[model]
state = "{dir}/state.db"
[api]
listen = ""
[response]
mode = "observe"
autonomous = ["bench.trigger"]
backends = ["nftables"]
breaker_limit = 10000
block_seconds = 120.0
jitter = 0.0
reconcile_seconds = 3600.0
"""


def daemon(n: int, block_ms: int) -> dict[str, Any]:
    """Blocks through ``sensord --config`` on the gateway: a capture worker,
    the pipe to the main process, the pipeline and nftables there."""
    from tests.respond import lab

    lab.routed()
    sources = [f"192.0.2.{100 + i}" for i in range(n)]
    for a in sources:
        lab.in_ns("cl", "ip", "addr", "add", f"{a}/24", "dev", "eth0")
    work = Path(tempfile.mkdtemp(prefix="bench-response-"))
    conf = work / "sensor.toml"
    conf.write_text(DAEMON_CONFIG.format(dir=work, block_ms=block_ms))
    stderr = work / "sensord.stderr"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(stderr, "wb") as err:
        proc = subprocess.Popen([sys.executable, __file__, "--sensord", str(conf)],
                                cwd=ROOT, env=env, stderr=err, stdout=subprocess.DEVNULL)  # fmt: skip

    def logged(name: str) -> list[dict[str, Any]]:
        path = work / "logs" / f"{name}.log"
        if not path.exists():
            return []
        lines = path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def applied() -> dict[str, float]:
        return {a["target"]: a["changed"] for a in logged("actions")
                if a["change"] == "apply" and a.get("detection") == "bench.trigger"}  # fmt: skip

    cl, sv = lab.Agent("cl"), lab.Agent("sv")
    try:
        if lab.wait(lambda: "capturing with" in stderr.read_text(), 30.0) is None:
            raise RuntimeError(f"sensord did not start: {stderr.read_text()[-800:]}")
        time.sleep(0.3)
        for a in sources:
            cl(op="connect", src=a, dst=lab.SERVER, port=9999, timeout=0.5)
            time.sleep(0.02)
        lab.wait(lambda: len(applied()) >= n, 30.0, 0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        cl.close()
        sv.close()
    done = applied()
    latency = [
        done[c["id.orig_h"]] - (c["ts"] + (c.get("duration") or 0.0))
        for c in logged("conn")
        if c["id.resp_p"] == 9999 and c["id.orig_h"] in done
    ]
    shutil.rmtree(work, ignore_errors=True)
    return {
        "daemon_blocks": n,
        "daemon_applied": len(done),
        "daemon_block_timeout_ms": block_ms,
        "daemon_evidence_to_rule": summary(latency),
    }


def until_reset(responder: Any, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The responder's records until a reset (or a failure) is among them."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got += [r for _, r in responder.tick(time.time())]
        if any(r["change"] in ("reset", "fail", "expire") for r in got):
            break
        time.sleep(0.005)
    return got


def resets(n: int) -> dict[str, Any]:
    from sensor.respond import Responder
    from sensor.respond.backends.tcpreset import TCPReset
    from sensor.respond.policy import Policy, PolicyConfig
    from tests.respond import lab

    lab.switched()
    responder = Responder(
        Policy(PolicyConfig(jitter=0.0)), [TCPReset("inj", watch="mir1")]
    )
    cl, sv = lab.Agent("cl"), lab.Agent("sv")
    wire, asked_to_wire, ended = [], [], 0
    try:
        sv(op="serve", ports=[lab.OPEN_PORT])
        time.sleep(0.2)
        for _ in range(n):
            port = cl(
                op="hold", src=lab.L2_CLIENT, dst=lab.L2_SERVER, port=lab.OPEN_PORT
            )["port"]
            time.sleep(0.15)
            asked = time.time()
            responder.create("reset", lab.L2_CLIENT, who="bench", reason="bench",
                             conn=(lab.L2_CLIENT, port, lab.L2_SERVER, lab.OPEN_PORT), now=asked)  # fmt: skip
            got = until_reset(responder)
            for r in got:
                if r["change"] == "reset":
                    wire.append(r["sent"] - r["seen"])
                    asked_to_wire.append(r["sent"] - asked)
            lab.wait(lambda: cl(op="held").get("ended") is not None, 2.0, 0.05)
            ended += cl(op="held").get("ended") == "ECONNRESET"
    finally:
        responder.close()
        cl.close()
        sv.close()
    return {
        "resets": n,
        "econnreset": ended,
        "packet_to_reset_on_wire": summary(wire),
        "request_to_reset_on_wire": summary(asked_to_wire),
    }


PARTS = ("blocks", "daemon", "resets")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--blocks", type=int, default=100, help="blocks to time (at most 150)"
    )
    p.add_argument("--resets", type=int, default=30, help="resets to time")
    p.add_argument(
        "--block-ms",
        type=int,
        default=100,
        help="the daemon's capture.block_timeout_ms (default: its own, 100)",
    )
    p.add_argument("--inner", choices=PARTS, help=argparse.SUPPRESS)
    p.add_argument("--sensord", metavar="CONFIG", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.sensord:
        register_trigger()
        from sensor.cli.sensord import main as sensord

        return sensord(["--config", args.sensord])
    if args.inner:
        if args.inner == "blocks":
            out = blocks(args.blocks)
        elif args.inner == "daemon":
            out = daemon(args.blocks, args.block_ms)
        else:
            out = resets(args.resets)
        print(json.dumps(out))
        return 0
    if os.geteuid() != 0:
        raise SystemExit("bench/response.py: needs root (network namespaces, nftables)")
    report: dict[str, Any] = {}
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for part in PARTS:
        done = subprocess.run(
            ["unshare", "--mount", "--net", sys.executable, __file__, "--inner", part,
             "--blocks", str(min(args.blocks, 150)), "--resets", str(args.resets),
             "--block-ms", str(args.block_ms)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(
                f"bench/response.py: {part} failed: {done.stderr.strip()[-800:]}"
            )
        report.update(json.loads(done.stdout.strip().splitlines()[-1]))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
