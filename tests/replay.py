"""Helpers for tests that replay captures through the whole pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import PCAPS, ROOT


def shared_captures() -> list[Path]:
    """Every capture under ../shared/pcaps, in a stable order."""
    found = []
    for path in sorted(PCAPS.rglob("*")):
        if not path.is_file() or "zeek-logs" in path.parts:
            continue
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic in (
            b"\xd4\xc3\xb2\xa1",
            b"\xa1\xb2\xc3\xd4",
            b"\x4d\x3c\xb2\xa1",
            b"\xa1\xb2\x3c\x4d",
            b"\x0a\x0d\x0d\x0a",
        ):
            found.append(path)
    return found


def read_log(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines log; an absent log has none."""
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def sensord(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run sensord as a subprocess, as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "sensor.cli.sensord", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
