"""capture.ignore_outgoing with one worker and with a fanout group.

On ``lo`` every frame passes the packet taps twice, as it leaves and as it
comes back in, so ``lo`` shows at once whether outgoing frames are skipped:
each datagram must be captured exactly once, whatever the number of
workers. A socket in a fanout group receives through the group's hook, so
its own PACKET_IGNORE_OUTGOING is not enough (sensor/capture/live.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.daemon.conftest import env_for, require_netns


def probe(workers: int, ignore: bool, impl: str) -> dict[str, Any]:
    done = subprocess.run(
        ["unshare", "--net", sys.executable, "-m", "tests.capture.outgoing_probe",
         str(workers), "1" if ignore else "0"],
        cwd=ROOT, env=env_for(impl), capture_output=True, check=False, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    expected = "sensor._ext.ring" if impl == "compiled" else "sensor.capture.ring"
    assert result["impl"] == expected
    return result


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_each_datagram_on_lo_is_captured_once_when_ignoring_outgoing(
    workers: int, impl: str
) -> None:
    require_netns()
    r = probe(workers, True, impl)

    assert r["distinct"] == r["sent"] == 40
    assert r["copies"] == [1]
    assert len(r["per_worker"]) == workers and sum(r["per_worker"]) == 40
    if workers > 1:
        # The datagrams (each from its own source port) were spread over the
        # group, so the flag held for every member, not only the first.
        assert sum(1 for n in r["per_worker"] if n) > 1, r["per_worker"]


@pytest.mark.parametrize("workers", [1, 2])
def test_each_datagram_on_lo_is_captured_twice_when_keeping_outgoing(
    workers: int, impl: str
) -> None:
    require_netns()
    r = probe(workers, False, impl)

    assert r["distinct"] == 40 and r["copies"] == [2]
    assert sum(r["per_worker"]) == 80
