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
    strict = RemoteExec(FakeModels(), {"min_score": 101})
    assert run(strict, L + "elcabezzonn_invoke-wmiexec.pcap") == []
    with pytest.raises(ThresholdError):
        RemoteExec(FakeModels(), {"min_score": "high"})


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
