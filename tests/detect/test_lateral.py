"""lateral.remote_exec on the shared lateral-movement captures.

Each capture is replayed through the engine and the detection (with a
fake model view); expected-detections.json names the hosts.
"""

from __future__ import annotations

import pytest

from sensor.detect.base import REGISTRY, ThresholdError
from sensor.detect.lateral import RemoteExec
from tests.detect.winreplay import FakeModels, run

L = "attacks/lateral/"
BENIGN = [
    "benign/winlab_2016-08-15_2009_macgyver.pcapng",
    "benign/winlab_2016-08-16_2044_windows_miscellany.pcapng",
    "benign/winlab_2016-08-16_2104_aug16_part2.pcapng",
    L + "pcapattack_Discovery_dcerp_srvsvc_NetShareEnum.pcapng",
    L + "401trg_20171220_smb_net_user.pcap",
]


@pytest.mark.parametrize(
    ("capture", "src", "dst", "mitre", "evidence"),
    [
        (L + "pcapattack_LM_psexec_smb_dcerpc_epm_svcctl.pcapng",
         "172.16.66.1", "172.16.66.36", "T1569.002", "service created"),
        (L + "pcapattack_LM_smbexec_smb_dcerpc_svcctl_epm.pcapng",
         "172.16.66.1", "172.16.66.36", "T1569.002", "service started"),
        (L + "401trg_20171220_smb_psexec_add_user.pcap",
         "192.168.10.31", "192.168.10.10", "T1569.002", "PsExec service pipe or file"),
        (L + "elcabezzonn_impacket_psexec.pcapng",
         "192.168.1.161", "192.168.1.46", "T1569.002", "command in RPC call"),
        (L + "elcabezzonn_invoke-wmiexec.pcap",
         "192.168.1.62", "192.168.1.46", "T1047", "WMI method executed"),
        (L + "pcapattack_LM_dcom_mmc20.application_dcerpc.pcapng",
         "172.16.66.1", "172.16.66.36", "T1021.003", "DCOM call with a command line"),
    ],
)  # fmt: skip
def test_remote_execution_found(
    capture: str, src: str, dst: str, mitre: str, evidence: str
) -> None:
    alerts = run(RemoteExec(FakeModels()), capture)
    assert alerts, f"{capture}: no alert"
    first = alerts[0]
    assert (first.src.ip, first.dst.ip, first.device.ip) == (src, dst, src)
    assert first.score >= 50
    assert first.mitre == mitre
    assert evidence in {r.feature for r in first.reasons}
    assert src in first.summary and dst in first.summary
    assert first.uids and all(u.startswith("C") for u in first.uids)
    rec = first.record()
    assert rec["detection"] == "lateral.remote_exec" and rec["mitre"] == mitre


def test_commands_named_in_summary() -> None:
    """The program a service was created for, read from the svcctl stub."""
    alerts = run(
        RemoteExec(FakeModels()), L + "401trg_20171220_smb_psexec_add_user.pcap"
    )
    assert "%SystemRoot%\\PSEXESVC.exe" in alerts[0].summary
    dcom = run(
        RemoteExec(FakeModels()),
        L + "pcapattack_LM_dcom_mmc20.application_dcerpc.pcapng",
    )
    assert "cmd.exe" in dcom[0].summary and "/c notepad.exe" in dcom[0].summary


@pytest.mark.parametrize("capture", BENIGN)
def test_no_notable_alert_on_normal_windows_traffic(capture: str) -> None:
    alerts = run(RemoteExec(FakeModels()), capture)
    assert [a.summary for a in alerts if a.score >= 50] == []


def test_thresholds_are_declared_and_checked() -> None:
    assert REGISTRY["lateral.remote_exec"] is RemoteExec
    assert {t.name for t in RemoteExec.thresholds} == {"min_score", "winrm_min_bytes"}
    strict = RemoteExec(FakeModels(), {"min_score": 100})  # the capture scores 75
    assert run(strict, L + "elcabezzonn_invoke-wmiexec.pcap") == []
    with pytest.raises(ThresholdError):
        RemoteExec(FakeModels(), {"min_score": "high"})
    with pytest.raises(
        ThresholdError, match=r"min_score = 101: must be between 0 and 100"
    ):
        RemoteExec(FakeModels(), {"min_score": 101})


def test_winrm_session_is_evidence() -> None:
    """A conn.log record naming winrm adds the WinRM technique."""
    det = RemoteExec(FakeModels())
    rec = {
        "ts": 1.0, "uid": "CW1", "id.orig_h": "192.0.2.1", "id.orig_p": 50000,
        "id.resp_h": "192.0.2.2", "id.resp_p": 5985, "service": "http,winrm",
        "orig_bytes": 4000, "resp_bytes": 3000,
    }  # fmt: skip
    alerts = det.observe("conn", rec)
    assert [(a.mitre, a.score, a.uids) for a in alerts] == [("T1021.006", 50, ["CW1"])]
    small = dict(
        rec, uid="CW2", **{"id.orig_h": "192.0.2.3", "orig_bytes": 10, "resp_bytes": 10}
    )
    assert det.observe("conn", small) == []


def _rpc(uid: str, endpoint: str, operation: str, ts: float) -> dict[str, object]:
    return {
        "ts": ts, "uid": uid, "id.orig_h": "192.0.2.20", "id.orig_p": 50100,
        "id.resp_h": "192.0.2.30", "id.resp_p": 49700, "rtt": 0.01,
        "named_pipe": "49700", "endpoint": endpoint, "operation": operation,
    }  # fmt: skip


def test_scheduled_task_registered_and_run() -> None:
    det = RemoteExec(FakeModels())
    first = det.observe(
        "dce_rpc", _rpc("CT1", "ITaskSchedulerService", "SchRpcRegisterTask", 1.0)
    )
    more = det.observe(
        "dce_rpc", _rpc("CT1", "ITaskSchedulerService", "SchRpcRun", 2.0)
    )
    assert [(a.score, a.mitre) for a in first] == [(50, "T1053.005")]
    assert more == []  # the same technique on the same pair alerts once
    job = RemoteExec(FakeModels()).observe(
        "dce_rpc", _rpc("CT2", "atsvc", "NetrJobAdd", 1.0)
    )
    assert [(a.score, a.mitre) for a in job] == [(55, "T1053.005")]


def test_service_opened_and_queried_is_not_execution() -> None:
    det = RemoteExec(FakeModels())
    out = []
    for i, op in enumerate(
        ["OpenSCManagerW", "OpenServiceW", "QueryServiceStatus"] * 5
    ):
        out += det.observe("dce_rpc", _rpc("CS", "svcctl", op, float(i)))
    assert out == []
    # Starting an existing service alone stays below the notable score.
    start = det.observe("dce_rpc", _rpc("CS", "svcctl", "StartServiceW", 20.0))
    assert start == []


def test_window_forgets_old_evidence() -> None:
    det = RemoteExec(FakeModels())
    assert det.observe("dce_rpc", _rpc("C1", "svcctl", "StartServiceW", 0.0)) == []
    late = det.observe("dce_rpc", _rpc("C2", "svcctl", "CreateServiceW", 7200.0))
    assert late == []  # 45 points alone: the start two hours before is forgotten
