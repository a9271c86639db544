"""Shared check for the dns, dhcp and ssh agreement tests.

Each implementation (compiled and pure Python, picked at import by
``SENSOR_NO_EXTENSIONS``) replays every capture for which Zeek wrote the log
in a subprocess running tests/proto/analyzer_harness.py, which scores the
log with ../shared/tools/zeek-compare against Zeek's logs and the
zeek-pairs.jsonl baselines and validates every record against its schema.

The Engine runs with its default configuration, so the analyzers see what
they see in sensord: every UDP datagram, and each TCP direction reassembled
by the dispatcher for as long as an analyzer follows the connection. Only
the dns, dhcp and ssh analyzers are attached, so that the figures are
theirs alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import ROOT

HARNESS = ROOT / "tests" / "proto" / "analyzer_harness.py"

#: Share of Zeek's records that must be fully equal, overall and per capture.
MIN_EQUAL = 0.95


def run(log: str, impl: str) -> dict[str, dict[str, Any]]:
    """The harness's per-capture results for ``log`` with one implementation."""
    env = dict(os.environ)
    if impl == "python":
        env["SENSOR_NO_EXTENSIONS"] = "1"
    res = subprocess.run(
        [sys.executable, str(HARNESS), log, "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    if res.returncode != 0:
        pytest.fail(f"harness failed for {log} ({impl}): {res.stderr[-2000:]}")
    return dict(json.loads(res.stdout.strip().splitlines()[-1]))


def check(
    log: str, impl: str, known_below: dict[str, str], overall: float, identical: float
) -> None:
    """Assert the agreement of ``log``: overall, per capture, per baseline.

    ``known_below`` names the captures or baselines that cannot reach
    MIN_EQUAL, with the reason; ``overall`` is the share of Zeek's records
    that zeek-compare finds fully equal today and ``identical`` the share
    equal in every field (uids aside); the test fails if either drops.
    """
    results = run(log, impl)
    assert results, f"no capture has a Zeek {log}.log"
    total = equal = same = 0
    for name, s in results.items():
        assert not s["schema_errors"], f"{name}: {s['schema_errors'][:3]}"
        if "@" not in name:
            total += s["expected"]
            equal += s["equal"]
            same += s["identical"]
        share = s["equal"] / s["expected"] if s["expected"] else 1.0
        if name in known_below:
            assert share < MIN_EQUAL, (
                f"{name} now agrees ({share:.1%}): drop it from KNOWN_BELOW"
            )
        else:
            assert share >= MIN_EQUAL, f"{name}: {s['equal']}/{s['expected']} equal"
    assert equal / total >= overall, f"{log}: {equal}/{total} fully equal"
    assert same / total >= identical, f"{log}: {same}/{total} identical"
