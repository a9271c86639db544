"""Replay captures through the Engine with the SMB analyzer alone.

Used by the agreement test and by hand::

    python3 tests/proto/smb_harness.py CAPTURE

prints the smb_mapping and smb_files records as JSON lines.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sensor.capture.merge import merge
from sensor.capture.pcapfile import CaptureFile
from sensor.engine import Engine
from sensor.proto.analyzers.smb import SMBAnalyzer
from sensor.proto.dispatch import Dispatcher

LOGS = ("smb_mapping", "smb_files")


def replay(capture: Path) -> dict[str, list[dict[str, Any]]]:
    """The smb_mapping and smb_files records of one capture."""
    engine = Engine()
    engine.analyzers = Dispatcher((SMBAnalyzer,))
    out: dict[str, list[dict[str, Any]]] = {log: [] for log in LOGS}
    for batch in merge([CaptureFile(str(capture))]):
        for name, record in engine.process(batch):
            if name in out:
                out[name].append(record)
    for name, record in engine.flush():
        if name in out:
            out[name].append(record)
    return out


if __name__ == "__main__":
    for log, recs in replay(Path(sys.argv[1])).items():
        for rec in recs:
            print(log, json.dumps(rec))
