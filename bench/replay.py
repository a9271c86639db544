"""Replay benchmark: our decode + connection tracking against argus.

    make bench                       # or: python3 bench/replay.py [options]

Builds (once, then cached) a capture of about three million packets out of
the shared real captures (see bench/benchfile.py), then measures, each in a
fresh interpreter (bench/worker.py):

- the capture reader alone, compiled and pure Python;
- reader + decode + connection table, compiled and pure Python (the pure
  Python path on the first ``--python-packets`` packets, as it is slow);
- argus (``argus -r FILE -w /dev/null``) on the same file, in the same run
  (argus 3 is three threads - reader, modeler, output - so its CPU time can
  exceed or fall short of its wall time; both are shown);
- bytes of memory per tracked connection;
- the whole engine (table, service detection, stream reassembly and every
  registered protocol analyzer; records made, not written), compiled, on the
  first ``--engine-packets`` packets, with and without the analyzers, and the
  analyzers' share of its CPU time; with ``--analyzer-groups``, also each
  group of analyzers registered alone (what it adds to the bare engine).

Prints one table. Timings are the best of ``--repeat`` runs, argus and the
compiled path taking turns (the long pure Python runs once); "CPU" is the process's user + system time, which a busy
machine disturbs less than the wall clock. argus's wall time comes in whole
seconds (plus about 10 ms): it seems to notice the end of the file only on a
one-second tick, so compare CPU figures where that matters.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: Analyzers timed together with --analyzer-groups (bench/worker.py names).
ANALYZER_GROUPS = (
    "HTTP",
    "DNS",
    "TLS",
    "SMTP,SSH,DHCP,WinRM",
    "SMB,DCERPC,Kerberos,LDAP",
)
sys.path.insert(0, str(ROOT))  # benchfile reads the shared captures with sensor

import benchfile

MISSING = 3  # worker's exit status when a piece is not built yet


def machine() -> dict[str, Any]:
    """CPU model, cores, memory and load, from /proc."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": model,
        "nproc": os.cpu_count(),
        "ram_gib": round(mem_kb / 2**20, 1),
        "load": os.getloadavg(),
        "python": sys.version.split()[0],
    }


def worker(args: list[str], impl: str) -> dict[str, Any]:
    """One run of bench/worker.py; {"missing": why} when a piece is not built."""
    env = dict(os.environ, SENSOR_NO_EXTENSIONS="1" if impl == "python" else "0")
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, str(HERE / "worker.py"), args[0], impl, *args[1:]],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode == MISSING:
        return {"missing": proc.stderr.strip().removeprefix("bench worker: ")}
    if proc.returncode != 0:
        return {"failed": proc.stderr.strip().splitlines()[-1:] or ["?"]}
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def argus(capture: Path) -> dict[str, Any]:
    """One argus run over ``capture``: wall and CPU (all its threads) seconds."""
    exe = shutil.which("argus") or "/usr/sbin/argus"
    if not Path(exe).exists():
        return {"missing": "argus is not installed (Debian package argus-server)"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run([exe, "-r", str(capture), "-w", "/dev/null"], check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        return {"failed": [f"argus exited with status {proc.returncode}"]}
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": wall, "cpu_seconds": cpu}


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest wall and the fastest CPU time of several runs of one thing."""
    good = [r for r in runs if "seconds" in r]
    if not good:
        return runs[0]
    out = dict(good[0])
    out["seconds"] = min(r["seconds"] for r in good)
    out["cpu_seconds"] = min(r["cpu_seconds"] for r in good)
    out["runs"] = len(good)
    return out


def write_tiny(path: Path, out: Path, packets: int = 1000) -> None:
    """The first ``packets`` records of a nanosecond pcap, for argus's floor."""
    with path.open("rb") as f, out.open("wb") as g:
        g.write(f.read(24))
        for _ in range(packets):
            head = f.read(16)
            g.write(head + f.read(int.from_bytes(head[8:12], "little")))


def row(
    name: str, r: dict[str, Any], packets: int, argus: dict[str, Any] | None
) -> str:
    """One line of the speed table; ratios are to argus's packets per second."""
    if "missing" in r or "failed" in r:
        why = r.get("missing") or "failed: " + " ".join(r["failed"])
        return f"{name:40s} {'-':>10s}  ({why})"
    packets = r.get("packets", packets)  # the worker stops at a batch boundary
    pps, cpu_pps = packets / r["seconds"], packets / r["cpu_seconds"]
    line = (
        f"{name:40s} {packets:>10,d} {r['seconds']:7.2f} {r['cpu_seconds']:7.2f} "
        f"{pps:>11,.0f} {cpu_pps:>11,.0f}"
    )
    if argus and "seconds" in argus:
        a_pps = argus["packets"] / argus["seconds"]
        a_cpu = argus["packets"] / argus["cpu_seconds"]
        line += f" {pps / a_pps:7.2f}x {cpu_pps / a_cpu:7.2f}x"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description="Replay benchmark against argus.")
    default_shared = os.environ.get("SENSOR_SHARED", str(ROOT.parent / "shared"))
    parser.add_argument("--shared", default=default_shared, help="the shared folder")
    parser.add_argument(
        "--cache", default="/tmp/sensor-bench", help="where bench.pcap goes"
    )
    parser.add_argument(
        "--packets", type=int, default=3_000_000, help="size of bench.pcap"
    )
    parser.add_argument("--python-packets", type=int, default=1_000_000)
    parser.add_argument("--conns", type=int, default=200_000, help="memory run")
    parser.add_argument(
        "--engine-packets",
        type=int,
        default=300_000,
        help="packets for the whole-engine runs (0: skip them)",
    )
    parser.add_argument(
        "--analyzer-groups",
        action="store_true",
        help="also time each group of analyzers alone (engine runs)",
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args()

    info = machine()
    meta = benchfile.ensure(Path(args.shared) / "pcaps", Path(args.cache), args.packets)
    path = Path(args.cache) / "bench.pcap"
    tiny = Path(args.cache) / "tiny.pcap"
    write_tiny(path, tiny)
    total, subset = int(meta["packets"]), min(args.python_packets, int(meta["packets"]))
    print(
        f"{info['cpu']}, {info['nproc']} CPUs, {info['ram_gib']} GiB; load "
        f"{info['load'][0]:.2f}; Python {info['python']}\n"
        f"{path}: {total:,d} packets, {meta['bytes'] / 1e6:,.0f} MB, "
        f"{meta['loops']} loops of {len(meta['sources'])} shared captures "
        f"({'cached' if meta['cached'] else 'built in ' + str(meta['build_seconds']) + ' s'})\n"
    )

    # argus and the compiled path take turns, so that both meet the same
    # load from whatever else runs on the machine.
    r: dict[str, Any] = {"machine": info, "capture": meta}
    r["argus_tiny"] = argus(tiny)
    turns: dict[str, list[dict[str, Any]]] = {"argus": [], "read": [], "track": []}
    for _ in range(args.repeat):
        turns["argus"].append(argus(path))
        turns["read"].append(worker(["read", str(path)], "compiled"))
        turns["track"].append(worker(["track", str(path)], "compiled"))
    r["argus"] = best(turns["argus"])
    r["read_compiled"] = best(turns["read"])
    r["track_compiled"] = best(turns["track"])
    limit = ["--packets", str(subset)] if subset < total else []
    r["read_python"] = worker(["read", str(path), *limit], "python")
    r["track_python"] = worker(["track", str(path), *limit], "python")
    for impl in ("compiled", "python"):
        r[f"memory_{impl}"] = worker(["memory", "--conns", str(args.conns)], impl)
    if args.engine_packets:
        engine = ["--packets", str(min(args.engine_packets, total))]
        runs: dict[str, list[dict[str, Any]]] = {"engine": [], "engine-bare": []}
        for _ in range(min(args.repeat, 3)):  # taking turns, as above
            for mode, results in runs.items():
                results.append(worker([mode, str(path), *engine], "compiled"))
        r["engine_compiled"] = best(runs["engine"])
        r["engine_bare_compiled"] = best(runs["engine-bare"])
        if args.analyzer_groups:
            r["engine_groups"] = {
                group: best(
                    [
                        worker(
                            ["engine", str(path), *engine, "--analyzers", group],
                            "compiled",
                        )
                        for _ in range(min(args.repeat, 2))
                    ]
                )
                for group in ANALYZER_GROUPS
            }
    report(r, total, subset)
    print(
        f"load average at the end: {os.getloadavg()[0]:.2f} (on {info['nproc']} CPUs)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1) + "\n")


def report(r: dict[str, Any], total: int, subset: int) -> None:
    """The tables of figures."""
    a = r["argus"]
    a["packets"] = total
    print(
        f"{'speed':40s} {'packets':>10s} {'wall s':>7s} {'CPU s':>7s} "
        f"{'pkts/s wall':>11s} {'pkts/s CPU':>11s} {'/argus':>8s} {'/argus':>8s}"
    )
    print(
        f"{'':40s} {'':>10s} {'':>7s} {'':>7s} {'':>11s} {'':>11s} {'wall':>8s} {'CPU':>8s}"
    )
    print(row("argus -r FILE -w /dev/null", a, total, None))
    for impl in ("compiled", "python"):
        n = total if impl == "compiled" else subset
        note = "" if n == total else f" [first {n / 1e6:g}M]"
        print(row(f"read, {impl}{note}", r[f"read_{impl}"], n, a))
        print(row(f"read+decode+track, {impl}{note}", r[f"track_{impl}"], n, a))
    if "engine_compiled" in r:
        full, bare = r["engine_compiled"], r["engine_bare_compiled"]
        n = full.get("packets", 0)
        note = f" [first {n / 1e6:.2g}M]"
        print(row(f"engine bare, compiled{note}", bare, n, a))
        print(row(f"engine + analyzers, compiled{note}", full, n, a))
        if "cpu_seconds" in full and "cpu_seconds" in bare:
            share = 1 - bare["cpu_seconds"] / full["cpu_seconds"]
            print(
                f"(analyzers, their dispatch and stream reassembly: {share:.0%} "
                f"of the engine's CPU time; {full.get('records', 0):,d} records)"
            )
        for group, alone in r.get("engine_groups", {}).items():
            if "cpu_seconds" in alone and "cpu_seconds" in bare:
                extra = alone["cpu_seconds"] - bare["cpu_seconds"]
                print(f"  {group:38s} alone: {extra:+.2f} CPU s over the bare engine")
    if "seconds" in r["argus_tiny"]:
        tiny = r["argus_tiny"]["seconds"]
        print(f"(argus takes {tiny:.2f} s wall on a 1,000-packet file)")

    print(
        f"\n{'memory per connection':40s} {'conns':>10s} {'RSS B':>7s} "
        f"{'table B':>7s} {'struct B':>8s}"
    )
    for impl in ("compiled", "python"):
        for label, m, conns in (
            (f"{impl}, fresh SYN-only conns", r[f"memory_{impl}"], "conns_tracked"),
            (f"{impl}, real mix at peak open", r[f"track_{impl}"], "peak_open"),
        ):
            if "missing" in m or "failed" in m:
                print(
                    f"{label:40s} {'-':>10s}  ({m.get('missing') or m.get('failed')})"
                )
                continue
            cells = [
                f"{m[k]:{w}.0f}" if m.get(k) else f"{'-':>{w}s}"
                for k, w in (
                    ("rss_bytes_per_conn", 7),
                    ("held_bytes_per_conn", 7),
                    ("conn_struct", 8),
                )
            ]
            print(f"{label:40s} {m.get(conns, 0):>10,d} {' '.join(cells)}")
    print(
        "RSS B: growth of the resident set per connection open; table B: what the\n"
        "compiled table says it holds (struct pool + index + timers) per connection open."
    )


if __name__ == "__main__":
    main()
