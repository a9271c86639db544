"""sensord capturing live with its API on, driven by sensorctl.

    unshare --net python3 -m tests.api.live_probe --dir DIR PCAP

Runs in a network namespace of its own: a veth pair (tests.daemon.netns),
sensord on ``cap0`` with ``[api] listen = "unix:DIR/sensor.sock"``, a
``sensorctl alerts --follow`` started before tcpreplay sends PCAP into
``tx0``, then ``sensorctl status``, ``approve`` and ``actions`` while the daemon
still runs. Prints one JSON object with what each command said.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.daemon.netns import setup_veth

ROOT = Path(__file__).resolve().parents[2]


def ctl(sock: Path, *args: str) -> dict[str, object]:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "sensor.cli.sensorctl",
            "--timeout",
            "60",
            "--socket",
            str(sock),
            "--json",
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=90,
    )
    out: object = (
        json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else r.stdout
    )
    return {"code": r.returncode, "out": out, "err": r.stderr}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("pcap")
    p.add_argument("--dir", required=True)
    p.add_argument("--wait", type=float, default=60.0, help="for the followed alert")
    args = p.parse_args()

    setup_veth()
    d = Path(args.dir)
    sock = d / "sensor.sock"
    cfg = d / "sensor.toml"
    cfg.write_text(
        f'[capture]\ninterface = "cap0"\nworkers = 1\n[output]\nlogdir = "{d / "logs"}"\n'
        f'[api]\nlisten = "unix:{sock}"\nsocket_group = ""\n'
        '[response]\nmode = "confirm"\n'
        # A scan is judged when its source has been quiet this long; the
        # default (60 s) would outlast the follower's wait.
        '[detect."scan.port"]\nidle_seconds = 1.0\n'
    )
    with open(d / "sensord.stderr", "wb") as err:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "sensor.cli.sensord", "--config", str(cfg)],
            cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    report: dict[str, object] = {}
    try:
        deadline = time.monotonic() + 60
        while (
            not sock.exists() and daemon.poll() is None and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        report["before"] = ctl(sock, "status")
        follow = subprocess.Popen(
            [sys.executable, "-m", "sensor.cli.sensorctl", "--socket", str(sock),
             "--json", "alerts", "--follow", "--all", "--limit", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        # --all: a follower that connects late (a loaded machine) still gets
        # the first alert; "before" shows there was none before tcpreplay.
        time.sleep(1.0)
        sent = subprocess.run(
            ["tcpreplay", "-i", "tx0", "--topspeed", args.pcap],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        report["tcpreplay"] = sent.returncode
        try:
            out, ferr = follow.communicate(timeout=args.wait)
            report["followed"] = [json.loads(x) for x in out.splitlines() if x.strip()]
        except subprocess.TimeoutExpired:
            follow.kill()
            out, ferr = follow.communicate()
            report["followed"] = []
        report["follow_err"] = ferr
        report["status"] = ctl(sock, "status")
        pending = ctl(sock, "actions", "--state", "pending")
        report["pending"] = pending
        if pending["code"] == 0 and pending["out"]:
            first = pending["out"][0]["id"]  # type: ignore[index]
            report["approve"] = ctl(sock, "approve", first, "--reason", "live test")
            time.sleep(1.5)  # the main loop writes the change within a tick
        report["actions"] = ctl(sock, "actions")
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            report["exit"] = daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            report["exit"] = "killed"
    report["stderr"] = (d / "sensord.stderr").read_text(errors="replace")
    report["socket_left"] = sock.exists()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
