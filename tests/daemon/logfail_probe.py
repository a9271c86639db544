"""Run sensord on a veth pair with its logs on a tiny tmpfs, and send
traffic until the logs no longer fit.

    unshare --net --mount python3 -m tests.daemon.logfail_probe DIR PCAP

Must run in namespaces of its own (network and mount), as ``tests.daemon
.netns`` does: the veths and the tmpfs vanish with them. Prints one JSON
object: sensord's exit status ("hung" when it did not exit), its stderr,
and what it left behind (promiscuous mode, the API socket, workers).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.daemon.netns import ROOT, setup_veth, wait_for

#: Enough for the start's records, not for a few seconds of traffic.
TMPFS_SIZE = "64k"


def main() -> int:
    work, pcap = Path(sys.argv[1]), sys.argv[2]
    setup_veth()
    logdir, sock = work / "logs", work / "sensor.sock"
    logdir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs",
                    str(logdir)], check=True)  # fmt: skip
    conf = work / "sensor.toml"
    conf.write_text(
        '[capture]\ninterface = "cap0"\nworkers = 1\n'
        f'[output]\nlogdir = "{logdir}"\nflush_seconds = 0.1\n'
        f'[model]\nstate = "{work / "state.db"}"\n'
        f'[api]\nlisten = "unix:{sock}"\n'
    )
    err_path = work / "sensord.stderr"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sensor.cli.sensord", "--config", str(conf)],
            cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    out: dict[str, object] = {}
    try:
        if not wait_for(err_path, "capturing with", proc, 45):
            out["error"] = "sensord did not start"
            return 0
        workers = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        sender = subprocess.Popen(
            ["tcpreplay", "-i", "tx0", "--topspeed", "--loop", "0", pcap],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            out["status"] = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            out["status"] = "hung"
        finally:
            sender.kill()
            sender.wait()
        # /sys is the host's: ask netlink (ip) about this namespace's cap0.
        link = subprocess.run(["ip", "-o", "link", "show", "cap0"],
                              capture_output=True, text=True, check=True)  # fmt: skip
        out["promiscuous"] = "PROMISC" in link.stdout.split(">")[0]
        out["socket_left"] = sock.exists()
        out["workers_left"] = [p for p in workers if Path(f"/proc/{p}").exists()]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in out.get("workers_left", ()):  # type: ignore[attr-defined]
            os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["umount", str(logdir)], check=False)
        out["stderr"] = err_path.read_text(errors="replace")
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    sys.exit(main())
