"""The expected detections on the shared captures (bench/detect.py).

At least 90% of the cases of ``expected-detections.json`` must be found
(an alert of an expected kind, notable score, naming an expected host) and
the benign captures must raise no notable alert; every alert of every
replay must have a summary and reasons, and cite only connections that
conn.log holds. Takes about 40 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_expected_detections(pcaps: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "detect.py"),
            "--json",
            "--pcaps",
            str(pcaps),
            "--jobs",
            "2",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)

    missed = [c["capture"] for c in result["cases"] if not c["found"]]
    noisy = {b["capture"]: b["summaries"] for b in result["benign"] if b["notable"]}
    assert result["total"] >= 20
    assert result["share"] >= 0.9, (
        f"found {result['found']}/{result['total']}; missed: {missed}"
    )
    assert result["benign_notable"] == 0, f"notable alerts on benign captures: {noisy}"
    assert not result["unchecked"], result["unchecked"][:10]
