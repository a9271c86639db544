"""Two sensord on one host: what the second may share with the first.

    unshare --net python3 -m tests.daemon.twice WORKDIR

Must run in a network namespace of its own (``unshare --net``): daemon A
captures on its ``lo`` with the nftables back-end, so the ``inet sensor``
table it owns is the namespace's, gone with it. Each second daemon shares
one thing with A (the namespace's table, the log directory, the state
directory) and must be refused; one that shares nothing starts. Prints one
JSON object.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OFFICE = ROOT / "pcaps/office/office.pcap"

CONFIG = """\
[capture]
interface = "lo"
workers = 1
[output]
logdir = "{logdir}"
[model]
state = "{state}"
[response]
backends = ["{backend}"]
[api]
listen = ""
"""


def sensord(*args: str) -> list[str]:
    return [sys.executable, "-m", "sensor.cli.sensord", *args]


def config(work: Path, name: str, logdir: str, state: str, backend: str) -> str:
    path = work / f"{name}.toml"
    for d in (work / logdir, (work / state).parent):
        d.mkdir(parents=True, exist_ok=True)
    path.write_text(
        CONFIG.format(logdir=work / logdir, state=work / state, backend=backend)
    )
    return str(path)


def start(work: Path, name: str, conf: str) -> tuple[subprocess.Popen[bytes], Path]:
    err = work / f"{name}.stderr"
    with open(err, "wb") as f:
        proc = subprocess.Popen(sensord("--config", conf), cwd=ROOT, stderr=f,
                                stdout=subprocess.DEVNULL)  # fmt: skip
    return proc, err


def started(proc: subprocess.Popen[bytes], err: Path, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "capturing with" in err.read_text(errors="replace"):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def second(work: Path, name: str, conf: str) -> dict[str, Any]:
    """Start a second daemon: its status and last stderr line, or
    "started" (then stopped) when it was not refused."""
    proc, err = start(work, name, conf)
    up = started(proc, err)
    status = stop(proc)
    lines = err.read_text(errors="replace").strip().splitlines()
    return {"status": "started" if up else status, "line": lines[-1] if lines else ""}


def run(*args: str) -> dict[str, Any]:
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    out = (done.stdout + done.stderr).strip().splitlines()
    return {"status": done.returncode, "line": out[-1] if out else ""}


def tables() -> list[str]:
    done = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                          check=False)  # fmt: skip
    return done.stdout.strip().splitlines()


def main() -> int:
    work = Path(sys.argv[1])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    a = config(work, "a", "logs", "state/state.db", "nftables")
    out: dict[str, Any] = {}
    proc, err = start(work, "a", a)
    try:
        out["a_started"] = started(proc, err)
        out["a_pid"] = proc.pid
        # Its reconciler makes the table within one tick of the start.
        deadline = time.monotonic() + 10.0
        while not tables() and time.monotonic() < deadline:
            time.sleep(0.05)
        out["tables_with_a"] = tables()
        # The same table (everything else its own).
        out["table"] = second(
            work, "b1", config(work, "b1", "b1/logs", "b1/state.db", "nftables")
        )
        # The same log directory.
        out["logdir"] = second(
            work, "b2", config(work, "b2", "logs", "b2/state.db", "dry-run")
        )
        # The same state directory, another model state.
        out["statedir"] = second(
            work, "b3", config(work, "b3", "b3/logs", "state/other.db", "dry-run")
        )
        # Nothing shared: it runs beside A.
        out["alone"] = second(
            work, "b4", config(work, "b4", "b4/logs", "b4/state.db", "dry-run")
        )
        out["replay"] = run(*sensord("--replay", str(OFFICE), "--logdir",
                                     str(work / "logs"), "--progress", "never"))  # fmt: skip
        out["cleanup"] = run(*sensord("--cleanup"))
        out["tables_after_cleanup"] = tables()
    finally:
        out["a_status"] = stop(proc)
    out["a_stderr"] = err.read_text(errors="replace")[-2000:]
    # A is gone: what it held is free again.
    out["table_after_a"] = second(
        work, "b5", config(work, "b5", "b5/logs", "b5/state.db", "nftables")
    )
    out["cleanup_after_a"] = run(*sensord("--cleanup"))
    out["lock_files_left"] = sorted(
        str(p.relative_to(work)) for p in work.rglob("*.lock")
    ) + sorted(str(p) for p in Path("/run/sensor").glob(f"*{_netns()}*"))
    print(json.dumps(out))
    return 0


def _netns() -> int:
    return os.stat("/proc/self/ns/net").st_ino


if __name__ == "__main__":
    sys.exit(main())
