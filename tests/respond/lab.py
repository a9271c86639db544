"""A client, a gateway with the sensor and nftables, and servers, in
network namespaces; runs one response scenario and prints one JSON report.

    unshare --mount --net python3 -m tests.respond.lab block|reset
    unshare --mount --net python3 -m tests.respond.lab daemon WORKDIR

Must run under ``unshare --mount --net``: this process's namespace is the
gateway (or the switch); ``cl`` and ``sv`` are made with ``ip netns add``
on a tmpfs mounted over ``/run/netns``, so that every namespace vanishes
when the process exits, even on a crash. Only documentation addresses are
used, and only between these namespaces.

``block`` (routed)::

    cl 192.0.2.10, .20 ── gw-c | gateway 192.0.2.1 / 198.51.100.1 | gw-s ── sv 198.51.100.10-12
                                 mirror of gw-c and gw-s -> mir0 -> mir1 (the sensor)

The sensor (capture ring, engine, scan.port, incidents, responder with the
nftables back-end) runs in this process on ``mir1``.

``daemon``: the same network, with ``sensord --config`` (nftables back-end,
scan.port autonomous) on the gateway instead of the in-process sensor.

``reset`` (one switch)::

    cl 192.0.2.30 ── br0 ── sv 192.0.2.40          br0 also: inj-br ── inj (injection)
    mirror of both ports -> mir0 -> mir1 (the sensor's only view)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

CLIENT, NEVER = "192.0.2.10", "192.0.2.20"
SERVER, SERVER2, SERVER3 = "198.51.100.10", "198.51.100.11", "198.51.100.12"
L2_CLIENT, L2_SERVER = "192.0.2.30", "192.0.2.40"
OPEN_PORT = 8080


def sh(*cmd: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")


def quiet(dev: str, ns: str | None = None) -> None:
    pre = ["ip", "netns", "exec", ns] if ns else []
    subprocess.run(
        [*pre, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"],
        capture_output=True,
        check=False,
    )
    subprocess.run([*pre, "ethtool", "-K", dev, "gro", "off", "gso", "off", "tso", "off", "tx", "off", "rx", "off"],
                   capture_output=True, check=False)  # fmt: skip


def netns_root() -> None:
    os.makedirs("/run/netns", exist_ok=True)
    sh("mount", "-t", "tmpfs", "tmpfs", "/run/netns")
    sh("ip", "link", "set", "lo", "up")


def veth(a: str, b: str, ns_b: str | None) -> None:
    sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
    if ns_b:
        sh("ip", "link", "set", b, "netns", ns_b)
    quiet(a)
    quiet(b, ns_b)
    sh("ip", "link", "set", a, "up")
    sh(*(["ip", "netns", "exec", ns_b] if ns_b else []), "ip", "link", "set", b, "up")


def mirror(ports: list[str]) -> None:
    """Every frame arriving on ``ports`` is copied to mir0 (read on mir1)."""
    veth("mir0", "mir1", None)
    for dev in ports:
        sh("tc", "qdisc", "add", "dev", dev, "ingress")
        sh("tc", "filter", "add", "dev", dev, "parent", "ffff:", "protocol", "all",
           "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "mirror", "dev", "mir0")  # fmt: skip


def in_ns(ns: str, *cmd: str) -> None:
    sh("ip", "netns", "exec", ns, *cmd)


def routed() -> None:
    netns_root()
    for ns in ("cl", "sv"):
        sh("ip", "netns", "add", ns)
        in_ns(ns, "ip", "link", "set", "lo", "up")
    veth("gw-c", "eth0", "cl")
    veth("gw-s", "eth0", "sv")
    sh("ip", "addr", "add", "192.0.2.1/24", "dev", "gw-c")
    sh("ip", "addr", "add", "198.51.100.1/24", "dev", "gw-s")
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1")
    for a in (CLIENT, NEVER):
        in_ns("cl", "ip", "addr", "add", f"{a}/24", "dev", "eth0")
    in_ns("cl", "ip", "route", "add", "default", "via", "192.0.2.1")
    for a in (SERVER, SERVER2, SERVER3):
        in_ns("sv", "ip", "addr", "add", f"{a}/24", "dev", "eth0")
    in_ns("sv", "ip", "route", "add", "default", "via", "198.51.100.1")
    mirror(["gw-c", "gw-s"])


def switched() -> None:
    netns_root()
    for ns in ("cl", "sv"):
        sh("ip", "netns", "add", ns)
        in_ns(ns, "ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", "br0", "type", "bridge")
    sh("ip", "link", "set", "br0", "up")
    veth("c-br", "eth0", "cl")
    veth("s-br", "eth0", "sv")
    veth("inj-br", "inj", None)
    for dev in ("c-br", "s-br", "inj-br"):
        sh("ip", "link", "set", dev, "master", "br0")
    in_ns("cl", "ip", "addr", "add", f"{L2_CLIENT}/24", "dev", "eth0")
    in_ns("sv", "ip", "addr", "add", f"{L2_SERVER}/24", "dev", "eth0")
    mirror(["c-br", "s-br"])


class Agent:
    """A tests.respond.agent process in a namespace."""

    def __init__(self, ns: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "tests.respond.agent"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env,
        )  # fmt: skip

    def __call__(self, **cmd: Any) -> Any:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Sensor(threading.Thread):
    """Capture ring -> engine -> pipeline (scan.port, incidents, responder)."""

    def __init__(self, interface: str, responder: Any) -> None:
        super().__init__(daemon=True)
        from sensor.capture.live import open_capture
        from sensor.detect.runner import Detector
        from sensor.engine import Engine
        from sensor.flow.table import FlowConfig
        from sensor.incident import IncidentBuilder
        from sensor.pipeline import Pipeline

        self.capture = open_capture(
            interface, 1, block_size=1 << 16, blocks=8, block_timeout_ms=5
        )
        # With early notices, as the daemon: a refused attempt counts at its
        # RST, not when the close delay has run 5 s later.
        self.engine = Engine(FlowConfig(udp_inactivity=1.0), early=True)
        detector = Detector(
            None, {"scan.port": {"idle_seconds": 1.0}}, only=["scan.port"]
        )
        self.pipeline = Pipeline(
            detector=detector, incidents=IncidentBuilder(), responder=responder
        )
        self.responder = responder
        self.records: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        #: Wall time at which each alert was raised.
        self.alerted: list[float] = []
        #: Wall time at which each connection's first record (its early
        #: notice, or else its conn record) came out of the engine, by uid.
        self.emitted: dict[str, float] = {}

    def run(self) -> None:
        ring = self.capture.rings[0]
        advance = self.engine.table.advance
        while not self.stop.is_set():
            batch = ring.read(20)
            recs = self.engine.process(batch) if batch is not None else []
            recs += self.engine._records(advance(time.time_ns()))
            now = time.time()
            for n, r in recs:
                if n in ("conn", "conn_early"):
                    self.emitted.setdefault(r["uid"], now)
            out = self.pipeline.feed([*recs, ("tick", {"ts": now})])
            out += self.responder.tick(time.time())
            if any(n == "alerts" for n, _ in out):
                self.alerted.append(time.time())
            with self.lock:
                self.records += recs + out

    def logged(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for n, r in self.records if n == name]

    def close(self) -> None:
        self.stop.set()
        self.join(timeout=5)
        self.capture.close()


def wait(pred: Any, timeout: float, step: float = 0.02) -> float | None:
    """Seconds until ``pred()`` held, or None after ``timeout``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(step)
    return None


def pairs(nft: Any) -> list[list[str]]:
    return [e["concat"] for e in nft.listed().get("pair4", [])]


def block_scenario() -> dict[str, Any]:
    from sensor.respond import Responder
    from sensor.respond.backends.nftables import NFT, NFTables
    from sensor.respond.policy import Policy, PolicyConfig

    routed()
    cfg = PolicyConfig(
        mode="observe", autonomous=["scan.port"], never_act_networks=["192.0.2.16/28"],
        breaker_limit=1, breaker_window=60.0, jitter=0.0,
        durations={"reset": 10.0, "block": 10.0, "enforce": 10.0, "quarantine": 10.0},
    )  # fmt: skip
    nft = NFTables()
    responder = Responder(Policy(cfg), [nft], reconcile_seconds=3600.0)
    sensor = Sensor("mir1", responder)
    sensor.start()
    cl, sv = Agent("cl"), Agent("sv")
    out: dict[str, Any] = {}
    try:
        sv(op="serve", ports=[OPEN_PORT])
        time.sleep(0.2)
        out["before"] = {
            "server": cl(op="connect", src=CLIENT, dst=SERVER, port=OPEN_PORT)[
                "result"
            ],
            "server2": cl(op="connect", src=CLIENT, dst=SERVER2, port=OPEN_PORT)[
                "result"
            ],
        }
        # Two scans at once: the client, and a never-act device.
        ports = list(range(1000, 1040))
        other = Agent("cl")
        assert other.proc.stdin is not None
        other.proc.stdin.write(
            json.dumps({"op": "scan", "src": NEVER, "dst": SERVER, "ports": ports})
            + "\n"
        )
        other.proc.stdin.flush()
        out["scan"] = cl(op="scan", src=CLIENT, dst=SERVER, ports=ports)
        scanned = time.time()
        assert other.proc.stdout is not None
        out["scan_never"] = json.loads(other.proc.stdout.readline())
        other.close()

        took = wait(lambda: [CLIENT, SERVER] in pairs(nft), 20.0)
        out["block_after_scan_s"] = (
            None if took is None else round(time.time() - scanned, 3)
        )
        wait(
            lambda: (
                len([a for a in sensor.logged("actions") if a["target"] == NEVER]) > 0
            ),
            5.0,
        )
        out["sets_while_blocked"] = pairs(nft)
        out["during"] = {
            "server": cl(op="connect", src=CLIENT, dst=SERVER, port=OPEN_PORT)[
                "result"
            ],
            "server2": cl(op="connect", src=CLIENT, dst=SERVER2, port=OPEN_PORT)[
                "result"
            ],
            "never_act_to_server": cl(
                op="connect", src=NEVER, dst=SERVER, port=OPEN_PORT
            )["result"],
        }
        # Someone flushes the ruleset; the reconciler puts the block back.
        NFT().run([{"flush": {"ruleset": None}}])
        out["after_flush"] = pairs(nft) if _table(nft) else "no table"
        out["after_flush_server"] = cl(
            op="connect", src=CLIENT, dst=SERVER, port=OPEN_PORT, timeout=0.5
        )["result"]
        responder.reconcile(time.time())
        out["after_reconcile"] = pairs(nft)
        out["after_reconcile_server"] = cl(
            op="connect", src=CLIENT, dst=SERVER, port=OPEN_PORT, timeout=0.5
        )["result"]
        # The expiry passes: the client reaches the server again.
        active = [a for a in sensor.logged("actions") if a["state"] == "active"]
        expires = active[0]["expires"]
        wait(lambda: not pairs(nft), expires - time.time() + 5.0, 0.05)
        out["lifted_after_expiry_s"] = round(time.time() - expires, 3)
        out["after"] = {
            "server": cl(op="connect", src=CLIENT, dst=SERVER, port=OPEN_PORT)["result"]
        }
        # A second scan by the client: the breaker (limit 1) holds it back.
        out["scan3"] = cl(op="scan", src=CLIENT, dst=SERVER3, ports=ports)
        wait(
            lambda: any(a.get("dst_ip") == SERVER3 for a in sensor.logged("actions")),
            10.0,
        )
        out["server3_after_scan3"] = cl(
            op="connect", src=CLIENT, dst=SERVER3, port=OPEN_PORT
        )["result"]
        out["sets_after_scan3"] = pairs(nft)

        # The daemon gone: the kernel lifts a block by its own timeout.
        sensor.close()
        rec = responder.block(
            CLIENT,
            SERVER2,
            None,
            None,
            2.0,
            "test",
            "daemon-gone check",
            now=time.time(),
        )
        out["gone_blocked"] = cl(
            op="connect", src=CLIENT, dst=SERVER2, port=OPEN_PORT, timeout=0.5
        )["result"]
        time.sleep(max(0.0, rec["expires"] - time.time()) + 1.2)
        out["gone_after"] = cl(op="connect", src=CLIENT, dst=SERVER2, port=OPEN_PORT)[
            "result"
        ]
        out["gone_sets"] = pairs(nft)
    finally:
        if not sensor.stop.is_set():
            sensor.close()
        cl.close()
        sv.close()
    out["actions"] = sensor.logged("actions")
    out["alerts"] = sensor.logged("alerts")
    return out


DAEMON_CONFIG = """
[capture]
interface = "mir1"
workers = 1
block_timeout_ms = 10
[output]
logdir = "{dir}/logs"
flush_seconds = 0.0
[model]
state = "{dir}/state.db"
[api]
listen = ""
[flow]
udp_inactivity = 1.0
[detect.scan.port]
idle_seconds = 1.0
[response]
mode = "observe"
autonomous = ["scan.port"]
backends = ["nftables"]
never_act_networks = ["192.0.2.16/28"]
breaker_limit = 1
block_seconds = 20.0
jitter = 0.0
reconcile_seconds = 1.0
"""


def daemon_scenario(workdir: str) -> dict[str, Any]:
    """The block scenario through the real ``sensord --config`` on the
    gateway: its reconciler, and the kernel lifting a block it left."""
    from sensor.respond.backends.nftables import NFT, NFTables

    routed()
    conf = Path(workdir) / "sensor.toml"
    conf.write_text(DAEMON_CONFIG.format(dir=workdir))
    logs = Path(workdir) / "logs"
    err = open(Path(workdir) / "sensord.stderr", "wb")  # noqa: SIM115 - closed in finally
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "sensor.cli.sensord", "--config", str(conf)],
                            cwd=ROOT, env=env, stderr=err, stdout=subprocess.DEVNULL)  # fmt: skip
    nft = NFTables()
    cl, sv = Agent("cl"), Agent("sv")
    out: dict[str, Any] = {}

    def logged(name: str) -> list[dict[str, Any]]:
        path = logs / f"{name}.log"
        if not path.exists():
            return []
        return [
            json.loads(line) for line in path.read_text().splitlines() if line.strip()
        ]

    try:
        started = wait(
            lambda: "capturing with" in (Path(workdir) / "sensord.stderr").read_text(),
            30.0,
        )
        out["started"] = started is not None
        sv(op="serve", ports=[OPEN_PORT])
        time.sleep(0.3)
        ports = list(range(1000, 1040))
        out["scan"] = cl(op="scan", src=CLIENT, dst=SERVER, ports=ports)
        out["scan_never"] = cl(op="scan", src=NEVER, dst=SERVER, ports=ports)
        scanned = time.time()
        took = wait(lambda: _table(nft) and [CLIENT, SERVER] in pairs(nft), 20.0)
        out["block_after_scan_s"] = (
            None if took is None else round(time.time() - scanned, 3)
        )
        wait(lambda: any(a["target"] == NEVER for a in logged("actions")), 5.0)
        out["during"] = {
            "server": cl(op="connect", src=CLIENT, dst=SERVER, port=OPEN_PORT)[
                "result"
            ],
            "server2": cl(op="connect", src=CLIENT, dst=SERVER2, port=OPEN_PORT)[
                "result"
            ],
            "never_act_to_server": cl(
                op="connect", src=NEVER, dst=SERVER, port=OPEN_PORT
            )["result"],
        }
        out["sets_while_blocked"] = pairs(nft)
        NFT().run([{"flush": {"ruleset": None}}])
        out["after_flush"] = pairs(nft) if _table(nft) else "no table"
        back = wait(lambda: _table(nft) and [CLIENT, SERVER] in pairs(nft), 5.0)
        out["reconciled_after_s"] = None if back is None else round(back, 3)
        out["after_reconcile_server"] = cl(
            op="connect", src=CLIENT, dst=SERVER, port=OPEN_PORT, timeout=0.5
        )["result"]
        out["scan3"] = cl(op="scan", src=CLIENT, dst=SERVER3, ports=ports)
        wait(lambda: any(a.get("dst_ip") == SERVER3 for a in logged("actions")), 15.0)
        out["server3_after_scan3"] = cl(
            op="connect", src=CLIENT, dst=SERVER3, port=OPEN_PORT
        )["result"]
        # The daemon stops; the block it put in the kernel ends by itself.
        proc.send_signal(signal.SIGTERM)
        out["status"] = proc.wait(timeout=60)
        out["sets_after_stop"] = pairs(nft)
        out["server_after_stop"] = cl(
            op="connect", src=CLIENT, dst=SERVER, port=OPEN_PORT, timeout=0.5
        )["result"]
        applied = [a for a in logged("actions") if a["change"] == "apply"]
        expires = applied[0]["expires"] if applied else time.time()
        gone = wait(lambda: not pairs(nft), expires - time.time() + 5.0, 0.05)
        out["kernel_lifted_after_expiry_s"] = (
            None if gone is None else round(time.time() - expires, 3)
        )
        out["server_after_expiry"] = cl(
            op="connect", src=CLIENT, dst=SERVER, port=OPEN_PORT
        )["result"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.close()
        cl.close()
        sv.close()
    out["actions"] = logged("actions")
    out["alerts"] = logged("alerts")
    out["stderr"] = (Path(workdir) / "sensord.stderr").read_text()[-3000:]
    return out


def _table(nft: Any) -> bool:
    from sensor.respond.backends import BackendError

    try:
        nft.listed()
        return True
    except BackendError:
        return False


def reset_scenario() -> dict[str, Any]:
    from sensor.respond import Responder
    from sensor.respond.backends.tcpreset import TCPReset
    from sensor.respond.policy import Policy, PolicyConfig

    switched()
    backend = TCPReset("inj", watch="mir1")
    responder = Responder(Policy(PolicyConfig(jitter=0.0)), [backend])
    cl, sv = Agent("cl"), Agent("sv")
    out: dict[str, Any] = {}
    try:
        sv(op="serve", ports=[OPEN_PORT])
        time.sleep(0.2)
        port = cl(op="hold", src=L2_CLIENT, dst=L2_SERVER, port=OPEN_PORT)["port"]
        time.sleep(0.5)
        out["held_before"] = cl(op="held")
        asked = time.time()
        rec = responder.create("reset", L2_CLIENT, who="test", reason="synthetic alert",
                               conn=(L2_CLIENT, port, L2_SERVER, OPEN_PORT), now=asked)  # fmt: skip
        out["created"] = rec
        records: list[dict[str, Any]] = []
        wait(lambda: bool(records.extend(r for _, r in responder.tick(time.time())) or
                          any(r["change"] in ("reset", "fail", "expire") for r in records)), 5.0)  # fmt: skip
        out["records"] = records
        wait(lambda: cl(op="held").get("ended") is not None, 3.0, 0.1)
        out["held_after"] = cl(op="held")
        wait(lambda: bool(sv(op="served")), 2.0, 0.1)
        out["served"] = sv(op="served")
        out["asked"] = asked
        # The server's side is gone too: a new connection works, the old is closed.
        out["again"] = cl(op="connect", src=L2_CLIENT, dst=L2_SERVER, port=OPEN_PORT)[
            "result"
        ]

        # A silent connection: the back-end probes the client (whose MAC the
        # alert names) and resets from the answer.
        mac = subprocess.run(["ip", "netns", "exec", "cl", "cat", "/sys/class/net/eth0/address"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        port = cl(op="hold", src=L2_CLIENT, dst=L2_SERVER, port=OPEN_PORT, idle=True)[
            "port"
        ]
        time.sleep(0.5)
        responder.create("reset", L2_CLIENT, who="test", reason="synthetic alert", target_mac=mac,
                         conn=(L2_CLIENT, port, L2_SERVER, OPEN_PORT), now=time.time())  # fmt: skip
        idle: list[dict[str, Any]] = []
        wait(lambda: bool(idle.extend(r for _, r in responder.tick(time.time())) or
                          any(r["change"] in ("reset", "fail", "expire") for r in idle)), 5.0)  # fmt: skip
        out["idle_records"] = idle
        wait(lambda: cl(op="held").get("ended") is not None, 3.0, 0.1)
        out["idle_held_after"] = cl(op="held")
        wait(lambda: sv(op="served").get("ECONNRESET", 0) >= 2, 2.0, 0.1)
        out["idle_served"] = sv(op="served")
    finally:
        responder.close()
        cl.close()
        sv.close()
    return out


def main() -> int:
    sys.path.insert(0, str(ROOT))
    scenario = sys.argv[1]
    if scenario == "daemon":
        report = daemon_scenario(sys.argv[2])
    else:
        report = {"block": block_scenario, "reset": reset_scenario}[scenario]()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
