"""Device models benchmark: update cost, memory per device, state size, throughput.

    .venv/bin/python bench/models.py [--packets N] [--repeat R] [--devices D]
        [--values V] [--dual-devices D] [--skip-db] [--capture FILE] [--json FILE]

On the benchmark capture (built once from the shared captures, see
bench/benchfile.py; ``--capture`` names another), each in a fresh
interpreter:

- ``update``: the records of the first ``--packets`` packets are made by the
  engine first; then only ``Models.observe`` is timed over them (CPU time,
  after a warm-up of the one-time tables): microseconds per conn record and
  per record of any log;
- ``memory``: ``--devices`` synthetic devices (own MAC and address, a
  Kerberos host name for one in seven; 20 connections each, with their
  DNS, TLS and HTTP records, to a shared pool of 50 outside addresses and
  domains, 3 JA3/JA4 and 5 user agents, over two days), measured with
  tracemalloc after a garbage collection. Bytes per device is the growth
  of every Python allocation from after the first device (which warms the
  vendor registry, the Public Suffix List and the other one-time tables)
  to after the last, divided by the devices added: the profile row (and
  the buffers' over-allocation), the identity object and its strings, the
  indexes by address and MAC, the address cache, role lists, and the
  pool's few hundred rarity entries. Not in it: the one-time tables. The
  bounded caches (value hashes, Bloom probes, registered domains, outside
  addresses) count for what this traffic puts in them, which is little;
  they stop growing at their bounds (a few MB) on any network, so they are
  no cost per device. Then bytes per rarity entry,
  from ``--values`` values used once each (the hash and probe caches
  emptied on both sides). Last, ``--dual-devices`` devices the same way,
  each also with a link-local IPv6 address and a DHCP host name;
- ``throughput``: the engine alone, and the engine with the models stage
  (``Pipeline(models=Models())``), on the first ``--packets`` packets, taking
  turns, best of ``--repeat``: packets per second of CPU time;
- ``db``: the whole capture through the engine and the models with a state
  file: its size at the end (WAL folded in), devices and values kept.

Prints one table; ``--json FILE`` also writes every figure.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import benchfile


def cpu() -> float:
    """User + system CPU seconds of this process."""
    t = os.times()
    return t.user + t.system


def batches(path: Path, packets: int) -> Any:
    """Batches of the capture up to about ``packets`` packets."""
    from sensor.capture.merge import merge
    from sensor.capture.pcapfile import CaptureFile

    n = 0
    for batch in merge([CaptureFile(str(path))]):
        if packets and n >= packets:
            return
        n += len(batch)
        yield batch


# --- workers (each runs in a fresh interpreter) ------------------------------


def work_update(path: Path, packets: int) -> dict[str, Any]:
    from sensor.engine import Engine
    from sensor.model import Models

    engine = Engine()
    records: list[tuple[str, dict[str, Any]]] = []
    for batch in batches(path, packets):
        records += engine.process(batch)
    records += engine.flush()

    # Warm the one-time tables (vendor registry, Public Suffix List) so
    # that they are not charged to the first records.
    warm = Models()
    for log, record in records[:2000]:
        warm.observe(log, record)

    # CPU time of the whole loop, shared among the logs by wall time.
    models = Models()
    spent: dict[str, float] = {}
    count: dict[str, int] = {}
    clock = time.perf_counter
    started = time.thread_time()
    for log, record in records:
        t = clock()
        models.observe(log, record)
        spent[log] = spent.get(log, 0.0) + clock() - t
        count[log] = count.get(log, 0) + 1
    total = time.thread_time() - started
    t = clock()
    models.finish(models.now)
    finish = clock() - t
    share = total / max(sum(spent.values()), 1e-9)
    return {
        "records": len(records),
        "conns": count.get("conn", 0),
        "us_per_conn": 1e6
        * share
        * spent.get("conn", 0.0)
        / max(count.get("conn", 0), 1),
        "us_per_record": 1e6 * total / max(len(records), 1),
        "seconds": total,
        "finish_seconds": finish,
        "devices": len(models.ids.devices),
        "values": len(models.rarity.entries),
    }


def _device_traffic(
    i: int, t0: float, dual: bool = False
) -> list[tuple[str, dict[str, Any]]]:
    """Two days of one synthetic device: 20 connections and their records.

    ``dual``: the device also has a link-local IPv6 address (one connection
    from it) and a DHCP host name.
    """
    ip = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
    mac = f"08:00:27:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"
    out: list[tuple[str, dict[str, Any]]] = []
    for k in range(20):
        ts = t0 + k * 8642.0 + i % 600
        peer = f"203.0.113.{(i + k) % 50}"
        domain = f"site{(i + k) % 50}.example.com"
        out.append(
            (
                "dns",
                {
                    "ts": ts,
                    "id.orig_h": ip,
                    "id.resp_h": "10.0.0.1",
                    "query": domain,
                    "qtype_name": "A",
                    "answers": [peer],
                },
            )
        )
        out.append(
            (
                "ssl",
                {
                    "ts": ts,
                    "id.orig_h": ip,
                    "id.resp_h": peer,
                    "server_name": domain,
                    "ja3": f"{k % 3:032x}",
                    "ja4": f"t13d1516h2_{k % 3:012x}_e5627efa2ab1",
                },
            )
        )
        if k % 5 == 0:
            out.append(
                (
                    "http",
                    {
                        "ts": ts,
                        "id.orig_h": ip,
                        "id.resp_h": peer,
                        "host": domain,
                        "user_agent": f"agent/{i % 5}",
                    },
                )
            )
        out.append(
            (
                "conn",
                {
                    "ts": ts,
                    "uid": "C1",
                    "id.orig_h": ip,
                    "id.orig_p": 50000,
                    "id.resp_h": peer,
                    "id.resp_p": 443,
                    "proto": "tcp",
                    "service": "ssl",
                    "orig_bytes": 800 + k,
                    "resp_bytes": 5000,
                    "conn_state": "SF",
                    "orig_pkts": 8,
                    "resp_pkts": 9,
                    "orig_l2_addr": mac,
                    "resp_l2_addr": "10:c3:7b:53:27:38",
                },
            )
        )
    if i % 7 == 0:
        out.append(
            (
                "kerberos",
                {
                    "ts": t0,
                    "id.orig_h": ip,
                    "id.resp_h": "10.0.0.2",
                    "client": f"PC{i}$/CORP.EXAMPLE",
                    "success": True,
                },
            )
        )
    if dual:
        v6 = f"fe80::a00:27ff:fe{i >> 16 & 255:02x}:{i >> 8 & 255:02x}{i & 255:02x}"
        out.append(
            (
                "conn",
                {
                    "ts": t0 + 5,
                    "uid": "C2",
                    "id.orig_h": v6,
                    "id.orig_p": 5353,
                    "id.resp_h": "2001:db8::53",
                    "id.resp_p": 53,
                    "proto": "udp",
                    "orig_bytes": 50,
                    "resp_bytes": 90,
                    "conn_state": "SF",
                    "orig_pkts": 1,
                    "resp_pkts": 1,
                    "orig_l2_addr": mac,
                    "resp_l2_addr": "10:c3:7b:53:27:38",
                },
            )
        )
        out.append(
            (
                "dhcp",
                {
                    "ts": t0 + 6,
                    "mac": mac,
                    "assigned_addr": ip,
                    "host_name": f"desktop-{i:06d}",
                },
            )
        )
    return out  # fmt: skip


def work_memory(devices: int, extra: int = 20000, dual: bool = False) -> dict[str, Any]:
    from sensor.model import Models
    from sensor.model import devices as identity

    t0 = 1_793_613_600.0
    tracemalloc.start()
    models = Models()
    # Warm the caches that do not grow with devices (vendor table, PSL).
    for log, record in _device_traffic(0, t0, dual):
        models.observe(log, record)
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(1, devices + 1):
        for log, record in _device_traffic(i, t0, dual):
            models.observe(log, record)
    models.finish(models.now)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    n = len(models.ids.devices) - 1
    values_before = len(models.rarity.entries)

    # Rarity entries alone: outside addresses used once each.
    # The bounded caches of hashes and Bloom probes are emptied on both
    # sides: they do not grow with the values kept.
    from sensor.model import sketch

    dev = next(iter(models.ids.devices.values()))
    sketch.hash64.cache_clear()
    sketch._probes.cache_clear()
    gc.collect()
    r_before = tracemalloc.get_traced_memory()[0]
    for j in range(extra):
        models._use(dev, "ip", f"198.51.{j >> 8 & 255}.{j & 255}#{j}", None, t0)
    sketch.hash64.cache_clear()
    sketch._probes.cache_clear()
    gc.collect()
    r_after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    probe = identity.Device(id="08:00:27:00:00:01", slot=0, ips=("10.0.0.1",))
    return {
        "devices": n,
        "bytes_per_device": (after - before) / n,
        "row_bytes": models.profiles.row_size(),
        "identity_bytes": sys.getsizeof(probe),
        "pool_values": values_before,
        "bytes_per_value": (r_after - r_before) / extra if extra else None,
    }


def work_throughput(path: Path, packets: int, with_models: bool) -> dict[str, Any]:
    from sensor.engine import Engine
    from sensor.model import Models
    from sensor.pipeline import Pipeline

    engine = Engine()
    pipeline = Pipeline(models=Models()) if with_models else None
    n = 0
    wall, c = time.perf_counter(), cpu()
    for batch in batches(path, packets):
        n += len(batch)
        records = engine.process(batch)
        if pipeline is not None:
            pipeline.feed(records)
    records = engine.flush()
    if pipeline is not None:
        pipeline.feed(records)
        pipeline.finish()
    return {
        "packets": n,
        "seconds": time.perf_counter() - wall,
        "cpu_seconds": cpu() - c,
    }


def work_db(path: Path) -> dict[str, Any]:
    from sensor.engine import Engine
    from sensor.model import Models
    from sensor.pipeline import Pipeline

    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state.db"
        models = Models(str(state))
        pipeline = Pipeline(models=models)
        engine = Engine()
        n = 0
        wall, c = time.perf_counter(), cpu()
        for batch in batches(path, 0):
            n += len(batch)
            pipeline.feed(engine.process(batch))
        pipeline.feed(engine.flush())
        pipeline.finish()
        devices, values = len(models.ids.devices), len(models.rarity.entries)
        models.close()
        return {
            "packets": n,
            "seconds": time.perf_counter() - wall,
            "cpu_seconds": cpu() - c,
            "db_bytes": state.stat().st_size,
            "wal_bytes": (
                Path(f"{state}-wal").stat().st_size
                if Path(f"{state}-wal").exists()
                else 0
            ),
            "devices": devices,
            "values": values,
        }


def run_worker(args: list[str]) -> dict[str, Any]:
    """This script in a fresh interpreter, in worker mode; its JSON result."""
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", *args],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    if proc.returncode != 0:
        return {"failed": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description="Device models benchmark.")
    default_shared = os.environ.get("SENSOR_SHARED", str(ROOT.parent / "shared"))
    p.add_argument("--shared", default=default_shared, help="the shared folder")
    p.add_argument("--cache", default="/tmp/sensor-bench", help="where bench.pcap goes")
    p.add_argument("--target", type=int, default=3_000_000, help="size of bench.pcap")
    p.add_argument(
        "--packets", type=int, default=300_000, help="packets for update and throughput"
    )
    p.add_argument(
        "--devices", type=int, default=8192, help="synthetic devices for memory"
    )
    p.add_argument(
        "--dual-devices",
        type=int,
        default=8192,
        help="synthetic devices for memory with IPv6 and a name",
    )
    p.add_argument(
        "--values", type=int, default=20000, help="values for bytes per rarity value"
    )
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument(
        "--skip-db", action="store_true", help="skip the whole-capture state run"
    )
    p.add_argument(
        "--capture", help="use this capture instead of the benchmark capture"
    )
    p.add_argument("--json", help="also write every figure to this file")
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.worker:
        mode, *rest = args.worker
        if mode == "update":
            r = work_update(Path(rest[0]), int(rest[1]))
        elif mode == "memory":
            r = work_memory(int(rest[0]), int(rest[1]), rest[2:] == ["dual"])
        elif mode == "throughput":
            r = work_throughput(Path(rest[0]), int(rest[1]), rest[2] == "models")
        else:
            r = work_db(Path(rest[0]))
        print(json.dumps(r))
        return

    try:
        import numpy  # noqa: F401
        import tldextract  # noqa: F401

        import sensor.engine  # noqa: F401
    except ImportError as e:
        sys.exit(
            f"bench/models.py: {e}; run it with the project's environment: "
            ".venv/bin/python bench/models.py"
        )
    if args.capture:
        path = Path(args.capture)
        if not path.is_file():
            sys.exit(f"bench/models.py: {path}: no such capture file")
        size = f"{path.stat().st_size / 1e6:.1f} MB"
    else:
        meta = benchfile.ensure(
            Path(args.shared) / "pcaps", Path(args.cache), args.target
        )
        path = Path(args.cache) / "bench.pcap"
        size = f"{int(meta['packets']):,d} packets"
    print(
        f"{path}: {size}; load {os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} CPUs; Python {sys.version.split()[0]}"
    )
    out: dict[str, Any] = {}
    span = f"the first {args.packets:,d} packets" if args.packets else "the capture"
    out["update"] = u = run_worker(["update", str(path), str(args.packets)])
    if "failed" not in u:
        print(
            f"update: {u['us_per_conn']:.1f} us per conn record, {u['us_per_record']:.1f} us "
            f"per record ({u['records']:,d} records, {u['conns']:,d} conns of {span}; "
            f"{u['devices']:,d} devices, {u['values']:,d} values)"
        )
    else:
        print(f"update: {u}")
    out["memory"] = m = run_worker(["memory", str(args.devices), str(args.values)])
    if "failed" not in m:
        print(
            f"memory: {m['bytes_per_device']:,.0f} bytes per device ({m['devices']:,d} devices; "
            f"profile row {m['row_bytes']:,d} B, identity object {m['identity_bytes']} B), "
            f"{m['bytes_per_value']:,.0f} bytes per rarity value"
        )
    else:
        print(f"memory: {m}")
    out["memory_dual"] = m = run_worker(["memory", str(args.dual_devices), "0", "dual"])
    if "failed" not in m:
        print(
            f"memory, each device also with a link-local IPv6 address and a DHCP name: "
            f"{m['bytes_per_device']:,.0f} bytes per device ({m['devices']:,d} devices)"
        )
    else:
        print(f"memory, dual-stack: {m}")
    turns: dict[str, list[dict[str, Any]]] = {"engine": [], "models": []}
    for _ in range(args.repeat):
        for mode, runs in turns.items():
            runs.append(run_worker(["throughput", str(path), str(args.packets), mode]))
    for mode, runs in turns.items():
        good = [r for r in runs if "cpu_seconds" in r]
        if not good:
            out[mode] = runs[0]
            print(f"throughput {mode}: {runs[0]}")
            continue
        best = min(good, key=lambda r: r["cpu_seconds"])
        best["wall_best"] = min(r["seconds"] for r in good)
        out[mode] = best
        print(
            f"throughput, engine{' + models' if mode == 'models' else ''}: "
            f"{best['packets'] / best['cpu_seconds']:,.0f} packets/s CPU, "
            f"{best['packets'] / best['wall_best']:,.0f} wall (best of {len(good)})"
        )
    if "cpu_seconds" in out["engine"] and "cpu_seconds" in out["models"]:
        ratio = out["models"]["cpu_seconds"] / out["engine"]["cpu_seconds"]
        print(
            f"models cost {100 * (ratio - 1):.1f}% of the engine's CPU time: replay "
            f"throughput with them is {100 / ratio:.0f}% of without (aim: over 50%)"
        )
    if not args.skip_db:
        out["db"] = d = run_worker(["db", str(path)])
        if "failed" not in d:
            print(
                f"state after the whole capture: {d['db_bytes'] / 1e6:.1f} MB "
                f"(+{d['wal_bytes'] / 1e6:.1f} MB WAL), {d['devices']:,d} devices, "
                f"{d['values']:,d} values, {d['packets']:,d} packets in {d['seconds']:.0f} s "
                f"({d['packets'] / d['cpu_seconds']:,.0f} packets/s CPU)"
            )
        else:
            print(f"db: {d}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
