"""dce_rpc.log against Zeek's on every shared capture that has one.

Each capture is replayed in process with only the DCE/RPC analyzer
attached. Records are paired by 4-tuple and, within it, by time order
(uids differ between the two programs), and a pair agrees when ts, rtt
(to the microsecond), named_pipe, endpoint and operation are all equal.

Calls over SMB named pipes (port 445/139) reach the analyzer only through
the SMB analyzer's ``pipe_session`` hook; the per-capture test scores them
apart and asserts only the TCP ones, and one capture with the SMB analyzer
attached checks the pipe path end to end (with it, 452/454 pipe calls of
all captures agree).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from sensor.capture.merge import merge
from sensor.capture.pcapfile import CaptureFile
from sensor.engine import Engine
from sensor.proto.analyzers.dcerpc import DCERPCAnalyzer
from sensor.proto.dispatch import Dispatcher

PCAPS = Path("/work/shared/pcaps")
ZEEK = PCAPS / "zeek-logs"
FIELDS = ("named_pipe", "endpoint", "operation")
SMB_PORTS = frozenset({139, 445})


def zeek_captures() -> list[str]:
    """Captures (relative paths) for which Zeek wrote a non-empty dce_rpc.log."""
    logs = sorted(ZEEK.glob("**/dce_rpc.log"))
    return [str(p.parent.relative_to(ZEEK)) for p in logs if p.stat().st_size]


def replay(capture: Path) -> list[dict[str, Any]]:
    """The dce_rpc records the Engine writes for ``capture``."""
    engine = Engine()
    engine.analyzers = Dispatcher((DCERPCAnalyzer,))
    out: list[dict[str, Any]] = []
    for batch in merge([CaptureFile(str(capture))]):
        out += [r for n, r in engine.process(batch) if n == "dce_rpc"]
    out += [r for n, r in engine.flush() if n == "dce_rpc"]
    return out


def _key(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"])


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if abs(a["ts"] - b["ts"]) > 1e-6 or abs(a.get("rtt", -1) - b.get("rtt", -1)) > 1e-6:
        return False
    return all(a.get(f) == b.get(f) for f in FIELDS)


def score(capture: str) -> dict[str, int]:
    """Zeek's records, and those we match, split into TCP and SMB-pipe calls."""
    zeek = [json.loads(x) for x in (ZEEK / capture / "dce_rpc.log").open() if x.strip()]
    ours: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in replay(PCAPS / capture):
        ours[_key(r)].append(r)
    for rs in ours.values():
        rs.sort(key=lambda r: r["ts"])

    s = {"tcp": 0, "tcp_equal": 0, "pipe": 0, "pipe_equal": 0, "extra": 0}
    for z in sorted(zeek, key=lambda r: r["ts"]):
        kind = "pipe" if z["id.resp_p"] in SMB_PORTS else "tcp"
        s[kind] += 1
        cands = ours.get(_key(z), [])
        hit = next((i for i, r in enumerate(cands) if _same(r, z)), None)
        if hit is not None:
            s[kind + "_equal"] += 1
            cands.pop(hit)
    s["extra"] = sum(len(v) for v in ours.values())
    return s


#: Share of Zeek's TCP calls we match in every field, per capture. Measured
#: 3049/3053 overall. Named differences: poshc2_jscript_dcom's three
#: IWbemServices opnum 16 calls, which [MS-WMI] 3.1.4.3 names DeleteInstance
#: and Zeek's table DeleteClass (108/111), and one zerologon call
#: (1321/1322): a NetrServerPasswordSet2 answered by a fault, for which
#: Zeek writes a record repeating the previous call's operation and rtt
#: (NetrServerAuthenticate3, 0.00304 s) while we write none.
MIN_TCP_SHARE = 0.97


@pytest.mark.parametrize("capture", zeek_captures())
def test_tcp_calls_agree_with_zeek(capture: str) -> None:
    s = score(capture)
    if s["tcp"]:
        assert s["tcp_equal"] / s["tcp"] >= MIN_TCP_SHARE, s
    assert s["extra"] <= max(6, s["tcp"] // 5), s


def test_lateral_movement_steps() -> None:
    """The steps CATALOG.md describes, with the right client and server."""
    lateral = PCAPS / "attacks/lateral"
    smbexec = replay(lateral / "pcapattack_LM_smbexec_smb_dcerpc_svcctl_epm.pcapng")
    ops = [
        (r["id.orig_h"], r["id.resp_h"], r["endpoint"], r["operation"]) for r in smbexec
    ]
    assert ("172.16.66.1", "172.16.66.36", "svcctl", "CreateServiceA") in ops
    assert ("172.16.66.1", "172.16.66.36", "svcctl", "StartServiceA") in ops

    wmi = replay(lateral / "elcabezzonn_invoke-wmiexec.pcap")
    ops = [(r["id.orig_h"], r["id.resp_h"], r["endpoint"], r["operation"]) for r in wmi]
    assert ("192.168.1.62", "192.168.1.46", "IWbemServices", "ExecMethod") in ops
    assert (
        "192.168.1.62",
        "192.168.1.46",
        "IRemoteSCMActivator",
        "RemoteCreateInstance",
    ) in ops

    zl = replay(
        lateral
        / "pcapattack_CVE-2020-1472_Zerologon_RPC_NetLogon_NullChallenge_SecChan_6_from_nonDC_to_DC.pcapng"
    )
    names = {r["operation"] for r in zl if r.get("endpoint") == "netlogon"}
    assert {"NetrServerReqChallenge", "NetrServerAuthenticate3"} <= names
    # The attack's last step, the machine password set to empty, was
    # refused here (a fault, which Zeek does not log); it succeeds in
    # suricata/dcerpc__zerologon.
    ok = replay(PCAPS / "suricata/dcerpc__zerologon/input.pcap")
    resets = [r for r in ok if r["operation"] == "NetrServerPasswordSet2"]
    assert [(r["id.orig_h"], r["id.resp_h"], r["named_pipe"]) for r in resets] == [
        ("172.16.0.10", "172.16.5.58", "49668")
    ]


def replay_with_smb(capture: Path) -> list[dict[str, Any]]:
    """dce_rpc records with the SMB analyzer feeding named pipes to us."""
    from sensor.proto.analyzers.smb import SMBAnalyzer

    engine = Engine()
    engine.analyzers = Dispatcher((SMBAnalyzer, DCERPCAnalyzer))
    out: list[dict[str, Any]] = []
    for batch in merge([CaptureFile(str(capture))]):
        out += [r for n, r in engine.process(batch) if n == "dce_rpc"]
    out += [r for n, r in engine.flush() if n == "dce_rpc"]
    return out


def test_pipe_calls_through_smb_match_suricata_test_yaml() -> None:
    """suricata/dcerpc-smb-test-01: its rules alert twice on svcctl opnum 15
    (OpenSCManagerW) to the server, and Zeek's 18 pipe calls agree."""
    capture = "suricata/dcerpc-smb-test-01/input.pcap"
    recs = replay_with_smb(PCAPS / capture)
    opens = [
        r
        for r in recs
        if r.get("endpoint") == "svcctl" and r["operation"] == "OpenSCManagerW"
    ]
    assert len(opens) == 2
    assert {(r["id.resp_h"], r["id.resp_p"]) for r in opens} == {("192.168.10.10", 445)}
    assert {r["named_pipe"] for r in opens} == {"\\pipe\\ntsvcs"}

    zeek = [json.loads(x) for x in (ZEEK / capture / "dce_rpc.log").open()]
    ours = sorted(recs, key=lambda r: r["ts"])
    assert len(ours) == len(zeek) == 18
    assert all(_same(a, b) for a, b in zip(ours, sorted(zeek, key=lambda r: r["ts"])))
