"""files.log records of SMB file content against Zeek's.

Every shared capture whose Zeek files.log has SMB files is replayed with
the SMB analyzer; records are paired by connection and filename. Measured:
8/8 files equal in ts, direction, sizes, duration and analyzers; MIME
types 5/8 (Zeek's signatures call two Group Policy text files
``text/ini``, libmagic ``text/plain``, and registry.pol
``application/vnd.ms-pol``, which libmagic does not name).
"""

from __future__ import annotations

import json
from typing import Any

from sensor.capture.merge import merge
from sensor.capture.pcapfile import CaptureFile
from sensor.engine import Engine
from sensor.proto.analyzers.smb import SMBAnalyzer
from sensor.proto.dispatch import Dispatcher
from tests.conftest import PCAPS

ZEEK = PCAPS / "zeek-logs"
FIELDS = ("is_orig", "seen_bytes", "total_bytes", "missing_bytes", "analyzers")
#: Zeek's signatures name Group Policy files; libmagic calls the .ini/.inf
#: ones plain text and has no name for registry.pol.
MIME_DIFFERENCES = {("text/ini", "text/plain"), ("application/vnd.ms-pol", None)}


def _files(capture: str) -> list[dict[str, Any]]:
    engine = Engine()
    engine.analyzers = Dispatcher((SMBAnalyzer,))
    out = []
    for batch in merge([CaptureFile(str(PCAPS / capture))]):
        out += engine.process(batch)
    out += engine.flush()
    return [r for n, r in out if n == "files"]


def test_smb_file_content_agrees_with_zeek() -> None:
    total = equal = mime = extra = 0
    for log in sorted(ZEEK.glob("**/files.log")):
        zeek = [json.loads(x) for x in log.open() if '"source":"SMB"' in x]
        if not zeek:
            continue
        ours = _files(str(log.parent.relative_to(ZEEK)))
        assert all(r["source"] == "SMB" and r["fuid"].startswith("F") for r in ours)
        extra += len(ours) - len(zeek)
        for z in zeek:
            total += 1
            got = [
                r for r in ours
                if (r["id.orig_p"], r["filename"]) == (z["id.orig_p"], z["filename"])
                and abs(r["ts"] - z["ts"]) < 1e-6
            ]  # fmt: skip
            assert len(got) == 1, (log, z["filename"])
            r = got[0]
            if (
                all(r.get(f) == z.get(f) for f in FIELDS)
                and abs(r["duration"] - z["duration"]) < 1e-6
            ):
                equal += 1
            if r.get("mime_type") == z.get("mime_type"):
                mime += 1
            else:
                assert (z.get("mime_type"), r.get("mime_type")) in MIME_DIFFERENCES
    print(f"\nSMB files {equal}/{total} equal, MIME {mime}/{total}, extra {extra}")
    assert total >= 8 and equal == total and mime >= total - 3 and extra == 0


def test_psexec_service_binary_is_hashed() -> None:
    """The PSEXESVC.exe written to ADMIN$: a PE, whole, with its hashes."""
    files = _files("attacks/lateral/401trg_20171220_smb_psexec_add_user.pcap")
    assert [
        (f["filename"], f["is_orig"], f["seen_bytes"], f["mime_type"]) for f in files
    ] == [("PSEXESVC.exe", True, 145568, "application/x-dosexec")]
    assert len(files[0]["sha256"]) == 64 and files[0]["missing_bytes"] == 0
