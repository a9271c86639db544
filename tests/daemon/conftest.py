"""Fixtures for live-capture tests: root, namespaces, tcpreplay."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

WIKIPEDIA = "zeek/traces/wikipedia.pcap"


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "live capture needs root for network namespaces and AF_PACKET (CI runs as root)"
    for tool in ("unshare", "ip", "tcpreplay"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/install-system installs it)"
    probe = subprocess.run(
        ["unshare", "--net", "true"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        return f"cannot create a network namespace: {probe.stderr.decode().strip()}"
    return None


@pytest.fixture(scope="session")
def netns_ok() -> None:
    """Skip (with the reason) where namespaces or tcpreplay are unavailable."""
    require_netns()


def require_netns() -> None:
    """Skip, or fail in CI, where namespaces or tcpreplay are unavailable."""
    why = _why_not()
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


def env_for(impl: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("NOTIFY_SOCKET", None)
    if impl == "python":
        env["SENSOR_NO_EXTENSIONS"] = "1"
    else:
        env.pop("SENSOR_NO_EXTENSIONS", None)
    return env


def live_run(
    pcaps: list[Path], logdir: Path, impl: str = "compiled", *extra: str
) -> dict[str, Any]:
    """Run tests.daemon.netns in a fresh network namespace; its JSON report."""
    cmd = ["unshare", "--net", sys.executable, "-m", "tests.daemon.netns",
           "--logdir", str(logdir), *extra, *map(str, pcaps)]  # fmt: skip
    done = subprocess.run(
        cmd,
        cwd=ROOT,
        env=env_for(impl),
        capture_output=True,
        check=False,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report
