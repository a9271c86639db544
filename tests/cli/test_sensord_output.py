"""What sensord prints besides the logs: -v keeps libraries' chatter out,
and a served replay's summary line counts the replay, not the serving."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT

WIKIPEDIA = "zeek/traces/wikipedia.pcap"


def test_verbose_keeps_libraries_at_warning() -> None:
    # pyroute2 logs every netlink message at DEBUG: under -v it drowned
    # the daemon's own lines. Live capture needs root, so the logging set-up
    # is run alone, in a process of its own.
    code = (
        "import logging; from sensor.cli.sensord import setup_logging;"
        "setup_logging(True);"
        "logging.getLogger('pyroute2.netlink').debug('library debug');"
        "logging.getLogger('pyroute2.netlink').info('library info');"
        "logging.getLogger('pyroute2.netlink').warning('library warning');"
        "logging.getLogger('sensor.capture.live').debug('own debug');"
        "logging.getLogger('sensord').debug('daemon debug')"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        check=False, capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [
        "pyroute2.netlink: WARNING: library warning",
        "sensor.capture.live: DEBUG: own debug",
        "sensord: DEBUG: daemon debug",
    ]


def test_served_replay_summary_counts_the_replay_only(
    pcaps: Path, tmp_path: Path
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sensor.cli.sensord",
         "--replay", str(pcaps / WIKIPEDIA), "--logdir", str(tmp_path / "logs"),
         "--serve", f"unix:{tmp_path / 's.sock'}", "--socket-group", ""],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        started = time.monotonic()
        assert proc.stderr is not None
        # Log lines (the API's own "serving on") may come first; an empty
        # line is the end of stderr: the daemon stopped without serving.
        lines = []
        while not lines or "replay done; serving on" not in lines[-1]:
            lines.append(proc.stderr.readline())
            assert lines[-1], "".join(lines)
        # The replay ended before that line was printed: its time is at
        # most ``replayed``. Serving on for longer than that would show in
        # a summary that counted it.
        replayed = time.monotonic() - started
        time.sleep(replayed + 1.0)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    match = re.search(r" in (\d+\.\d\d) s \(", out)
    assert match, out
    assert float(match.group(1)) <= replayed + 0.01, (out, replayed)
