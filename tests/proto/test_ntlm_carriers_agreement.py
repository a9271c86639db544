"""ntlm.log and kerberos.log "AP" records through their real carriers.

Every shared capture with a Zeek ntlm.log, or a kerberos.log holding AP
records, is replayed with the SMB and DCE-RPC analyzers, which hand their
session-setup and bind security blobs to the NTLM and Kerberos AP
trackers. Records are paired by 4-tuple and ts (uids differ); a pair
agrees when every name field and ``success`` (NTLM) or client, service,
cipher, success and error_msg (Kerberos) are equal.

Measured: ntlm 236/236, AP 38/38, and no record of ours that Zeek lacks
(as Zeek, one NTLM record per connection: the xscan capture's scanner
repeats bare NTLMSSP session setups on three connections, which make one
record each).
"""

from __future__ import annotations

import json
from typing import Any

from sensor.capture.merge import merge
from sensor.capture.pcapfile import CaptureFile
from sensor.engine import Engine
from sensor.proto.analyzers.dcerpc import DCERPCAnalyzer
from sensor.proto.analyzers.smb import SMBAnalyzer
from sensor.proto.dispatch import Dispatcher
from tests.conftest import PCAPS

ZEEK = PCAPS / "zeek-logs"
NTLM_FIELDS = (
    "username", "hostname", "domainname", "server_nb_computer_name",
    "server_dns_computer_name", "server_tree_name", "success",
)  # fmt: skip
AP_FIELDS = ("client", "service", "cipher", "success", "error_msg")
#: Shares of Zeek's records we must match (measured 236/236 and 38/38).
MIN_NTLM = 1.0
MIN_AP = 1.0
MAX_EXTRA_NTLM = 0


def _key(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"])


def _match(
    zeek: list[dict[str, Any]], ours: list[dict[str, Any]], fields: tuple[str, ...]
) -> tuple[int, int]:
    """(Zeek's records matched, our records left over)."""
    pool: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in sorted(ours, key=lambda r: r["ts"]):
        pool.setdefault(_key(r), []).append(r)
    equal = 0
    for z in sorted(zeek, key=lambda r: r["ts"]):
        cands = pool.get(_key(z), [])
        hit = next(
            (
                i
                for i, r in enumerate(cands)
                if abs(r["ts"] - z["ts"]) < 1e-5
                and all(r.get(f) == z.get(f) for f in fields)
            ),
            None,
        )
        if hit is not None:
            equal += 1
            cands.pop(hit)
    return equal, sum(len(v) for v in pool.values())


def test_ntlm_and_kerberos_ap_through_smb_and_dcerpc() -> None:
    dirs = {p.parent for p in ZEEK.glob("**/ntlm.log")}
    dirs |= {p.parent for p in ZEEK.glob("**/kerberos.log") if '"AP"' in p.read_text()}
    totals = {"ntlm": [0, 0, 0], "ap": [0, 0, 0]}
    for d in sorted(dirs):
        engine = Engine()
        engine.analyzers = Dispatcher((SMBAnalyzer, DCERPCAnalyzer))
        out = []
        for batch in merge([CaptureFile(str(PCAPS / d.relative_to(ZEEK)))]):
            out += engine.process(batch)
        out += engine.flush()
        for name, log, fields in (
            ("ntlm", "ntlm", NTLM_FIELDS),
            ("ap", "kerberos", AP_FIELDS),
        ):
            path = d / f"{log}.log"
            zeek = [json.loads(x) for x in path.open()] if path.exists() else []
            ours = [r for n, r in out if n == log]
            if name == "ap":
                zeek = [r for r in zeek if r.get("request_type") == "AP"]
                assert all(r["request_type"] == "AP" for r in ours)
            equal, extra = _match(zeek, ours, fields)
            t = totals[name]
            t[0], t[1], t[2] = t[0] + len(zeek), t[1] + equal, t[2] + extra
    print(f"\nntlm {totals['ntlm'][1]}/{totals['ntlm'][0]} extra {totals['ntlm'][2]}; "
          f"kerberos AP {totals['ap'][1]}/{totals['ap'][0]} extra {totals['ap'][2]}")  # fmt: skip
    assert totals["ntlm"][0] >= 236 and totals["ap"][0] >= 38
    assert totals["ntlm"][1] >= MIN_NTLM * totals["ntlm"][0]
    assert totals["ap"][1] >= MIN_AP * totals["ap"][0]
    assert totals["ntlm"][2] <= MAX_EXTRA_NTLM and totals["ap"][2] == 0
