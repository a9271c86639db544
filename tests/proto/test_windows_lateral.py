"""The lateral-movement captures, through the whole engine: the steps each
one holds (CATALOG.md), in the Windows protocol logs, with client and server.

Every analyzer of the default registry is on, as ``sensord --replay`` runs
them, so the SMB to DCE-RPC pipe path, the authentication carried inside
SMB and DCE-RPC, and conn.log's services are those an operator sees. A
capture added to ``attacks/lateral/`` without its steps here fails
``test_every_lateral_capture_is_checked``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import PCAPS
from tests.detect.winreplay import records

L = "attacks/lateral/"
Recs = tuple[tuple[str, dict[str, Any]], ...]


def logged(recs: Recs, log: str, *fields: str) -> set[tuple[Any, ...]]:
    """(client, server, *fields) of every ``log`` record."""
    return {
        (r["id.orig_h"], r["id.resp_h"], *(r.get(f) for f in fields))
        for n, r in recs
        if n == log
    }


def calls(recs: Recs) -> set[tuple[Any, ...]]:
    """(client, server, named_pipe, endpoint, operation) of dce_rpc.log."""
    return logged(recs, "dce_rpc", "named_pipe", "endpoint", "operation")


def count(recs: Recs, log: str, **match: Any) -> int:
    return sum(
        1
        for n, r in recs
        if n == log and all(r.get(k) == v for k, v in match.items())
    )


def psexec_401trg(recs: Recs) -> None:
    """PsExec adds a user: the binary copied to ADMIN$, a service created
    and started through svcctl over the ntsvcs pipe."""
    c, s = "192.168.10.31", "192.168.10.10"
    assert (c, s, "\\\\dc1\\ADMIN$", "DISK") in logged(
        recs, "smb_mapping", "path", "share_type"
    )
    assert (c, s, "\\\\dc1\\IPC$", "PIPE") in logged(
        recs, "smb_mapping", "path", "share_type"
    )
    assert (c, s, "SMB::FILE_OPEN", "PSEXESVC.exe", 145568) in logged(
        recs, "smb_files", "action", "name", "size"
    )
    pipe = "\\pipe\\ntsvcs"
    for op in ("OpenSCManagerW", "CreateServiceWOW64W", "StartServiceW", "DeleteService"):
        assert (c, s, pipe, "svcctl", op) in calls(recs), op
    assert (c, s, "CreateServiceWOW64W", "%SystemRoot%\\PSEXESVC.exe") in logged(
        recs, "dce_rpc_command", "operation", "command"
    )
    # The SMB session authenticated with Kerberos, to the DC's cifs service.
    assert (c, s, "AP", "cifs/dc1.contoso.local", True) in logged(
        recs, "kerberos", "request_type", "service", "success"
    )


def net_user_401trg(recs: Recs) -> None:
    """``net user`` over SMB: SAMR and LSARPC on the lsass pipe of IPC$."""
    c, s = "192.168.10.31", "192.168.10.10"
    assert logged(recs, "smb_mapping", "path", "share_type") == {
        (c, s, "\\\\DC1.contoso.local\\IPC$", "PIPE")
    }
    pipe = "\\pipe\\lsass"
    for ep, op in [
        ("samr", "SamrConnect5"), ("samr", "SamrLookupNamesInDomain"),
        ("samr", "SamrOpenUser"), ("samr", "SamrQueryInformationUser"),
        ("samr", "SamrGetGroupsForUser"), ("lsarpc", "LsarLookupNames3"),
    ]:  # fmt: skip
        assert (c, s, pipe, ep, op) in calls(recs), op
    assert {x[:3] for x in calls(recs)} == {(c, s, pipe)}


def impacket_psexec(recs: Recs) -> None:
    """impacket psexec: a random-named binary on ADMIN$, svcctl
    CreateServiceW naming it, share enumeration first; NTLM as administrator."""
    c, s = "192.168.1.161", "192.168.1.46"
    assert (c, s, "\\\\192.168.1.46\\ADMIN$", "DISK") in logged(
        recs, "smb_mapping", "path", "share_type"
    )
    assert (c, s, "SMB::FILE_OPEN", "HtCOoeYd.exe", 56320) in logged(
        recs, "smb_files", "action", "name", "size"
    )
    assert (c, s, "\\PIPE\\srvsvc", "srvsvc", "NetrShareEnum") in calls(recs)
    for op in ("OpenSCManagerW", "CreateServiceW", "StartServiceW", "DeleteService"):
        assert (c, s, "\\pipe\\ntsvcs", "svcctl", op) in calls(recs), op
    assert (c, s, "CreateServiceW", "%systemroot%\\HtCOoeYd.exe") in logged(
        recs, "dce_rpc_command", "operation", "command"
    )
    assert (c, s, "administrator", True) in logged(recs, "ntlm", "username", "success")


def invoke_wmiexec(recs: Recs) -> None:
    """Invoke-WMIExec: DCOM activation on 135, then WMI login and
    IWbemServices ExecMethod (Win32_Process.Create) on the dynamic port,
    NTLM as chewbacca from SNICKLEFRITZ."""
    c, s = "192.168.1.62", "192.168.1.46"
    got = calls(recs)
    assert (c, s, "135", "IRemoteSCMActivator", "RemoteCreateInstance") in got
    assert (c, s, "49154", "IWbemLevel1Login", "NTLMLogin") in got
    assert (c, s, "49154", "IWbemServices", "ExecMethod") in got
    assert (c, s, 49154, "chewbacca", "SNICKLEFRITZ") in logged(
        recs, "ntlm", "id.resp_p", "username", "hostname"
    )


def poshc2_dcom(recs: Recs) -> None:
    """PoshC2 over DCOM: activations on 135 and WMI calls on 49154 from
    10.0.0.2 to 10.0.0.3 (stubs sealed, so no command line is shown)."""
    c, s = "10.0.0.2", "10.0.0.3"
    got = calls(recs)
    assert (c, s, "135", "IRemoteSCMActivator", "RemoteCreateInstance") in got
    assert (c, s, "49154", "IWbemServices", "ExecMethod") in got
    assert (c, s, "49154", "IWbemServices", "PutInstance") in got
    assert count(recs, "dce_rpc", operation="RemoteCreateInstance") == 7
    assert (c, s, "AP", "host/Chip_Douglas-PC.picklesworth.local") in logged(
        recs, "kerberos", "request_type", "service"
    )


def overpass_the_hash(recs: Recs) -> None:
    """mimikatz over-pass-the-hash: the one AS-REQ asks the KDC for RC4
    types only (the NT hash is an RC4 key), and gets a ticket."""
    (k,) = [r for n, r in recs if n == "kerberos"]
    assert (k["id.orig_h"], k["id.resp_h"], k["id.resp_p"]) == ("10.0.0.3", "10.0.0.2", 88)
    assert (k["request_type"], k["client"], k["service"]) == (
        "AS", "chewbacca/picklesworth.local", "krbtgt/PICKLESWORTH.LOCAL",
    )  # fmt: skip
    assert k["req_ciphers"][2:] == [
        "rc4-hmac", "rc4-hmac-old", "rc4-md4", "rc4-hmac-exp", "rc4-hmac-old-exp",
    ]  # fmt: skip
    assert (k["cipher"], k["success"]) == ("aes256-cts-hmac-sha1-96", True)


def rubeus_kerberoast(recs: Recs) -> None:
    """Rubeus' first step, the LDAP search for user accounts with an SPN.
    The capture stops before any ticket request: nothing went to port 88."""
    c, s = "192.168.1.46", "192.168.1.62"
    spn = [
        r for n, r in recs if n == "ldap_search" and "servicePrincipalName=*" in r["filter"]
    ]
    assert [(r["id.orig_h"], r["id.resp_h"], r["base_object"]) for r in spn] == [
        (c, s, "DC=picklesworth,DC=local")
    ]
    assert not [r for n, r in recs if n == "conn" and r["id.resp_p"] == 88]
    assert not [r for n, r in recs if n == "kerberos"]


def weird(recs: Recs) -> set[tuple[Any, ...]]:
    """(client, server, name) of weird.log."""
    return logged(recs, "weird", "name")


def eternalblue(recs: Recs) -> None:
    """EternalBlue: SMB1 to IPC$ of the victim, as Zeek logs it, and the
    exploit's messages: the implant's ping, the TRANSACTION2_SECONDARY that
    continues an NT_TRANSACT, and at last the implant's answer."""
    c, s = "192.168.198.204", "192.168.198.203"
    assert logged(recs, "smb_mapping", "path", "share_type") == {
        (c, s, "\\\\192.168.198.203\\IPC$", "PIPE")
    }
    assert count(recs, "smb_mapping") == 2
    assert {
        (c, s, "SMB1_trans2_session_setup"),
        (c, s, "SMB1_trans2_secondary_for_nt_transact"),
        (c, s, "SMB1_doublepulsar_reply"),
    } <= weird(recs)


def doublepulsar(recs: Recs) -> None:
    """DoublePulsar: the attacker's IPC$ on the implanted host, its ping
    and the implant's answer."""
    c, s = "192.168.198.204", "192.168.198.203"
    assert (c, s, "\\\\192.168.198.203\\IPC$", "PIPE") in logged(
        recs, "smb_mapping", "path", "share_type"
    )
    assert {
        (c, s, "SMB1_trans2_session_setup"), (c, s, "SMB1_doublepulsar_reply"),
    } <= weird(recs)  # fmt: skip


def zerologon(recs: Recs) -> None:
    """Zerologon: the endpoint mapper, then NetrServerReqChallenge and
    NetrServerAuthenticate3 once per attempt (440), non-DC to DC."""
    c, s = "172.16.66.37", "172.16.66.36"
    assert calls(recs) == {
        (c, s, "135", "epmapper", "ept_map"),
        (c, s, "49668", "netlogon", "NetrServerReqChallenge"),
        (c, s, "49668", "netlogon", "NetrServerAuthenticate3"),
    }
    assert count(recs, "dce_rpc", operation="NetrServerReqChallenge") == 440
    assert count(recs, "dce_rpc", operation="NetrServerAuthenticate3") == 440


def net_share_enum(recs: Recs) -> None:
    """Share enumeration: srvsvc NetrShareEnum on IPC$, NTLM as lgreen."""
    c, s = "172.16.66.1", "172.16.66.36"
    assert logged(recs, "smb_mapping", "path") == {(c, s, "\\\\172.16.66.36\\IPC$")}
    assert (c, s, "\\PIPE\\srvsvc", "srvsvc", "NetrShareEnum") in calls(recs)
    assert (c, s, "lgreen", "3B", True) in logged(
        recs, "ntlm", "username", "domainname", "success"
    )


def dcom_mmc20(recs: Recs) -> None:
    """MMC20.Application ExecuteShellCommand: the capture missed the binds
    (no dce_rpc.log, as Zeek), but the IDispatch call's command is read."""
    assert logged(recs, "dce_rpc_command", "id.resp_p", "command") == {
        ("172.16.66.1", "172.16.66.36", 60283, "/c notepad.exe c:\\windows\\system32\\cmd.exe")
    }


def psexec_pcapattack(recs: Recs) -> None:
    """PsExec: PSEXESVC.exe to ADMIN$, then svcctl over TCP (port 49688,
    found through the endpoint mapper) creates and starts the service."""
    c, s = "172.16.66.1", "172.16.66.36"
    assert (c, s, "\\\\172.16.66.36\\ADMIN$", "DISK") in logged(
        recs, "smb_mapping", "path", "share_type"
    )
    assert (c, s, "PSEXESVC.exe") in logged(recs, "smb_files", "name")
    got = calls(recs)
    assert (c, s, "135", "epmapper", "ept_map") in got
    for op in ("OpenSCManagerW", "CreateServiceWOW64W", "StartServiceW"):
        assert (c, s, "49688", "svcctl", op) in got, op
    assert (c, s, "backdoor", "3B", True) in logged(
        recs, "ntlm", "username", "domainname", "success"
    )


def smbexec(recs: Recs) -> None:
    """smbexec: a service per command through svcctl (the A calls) over
    TCP 49683, the output file on C$."""
    c, s = "172.16.66.1", "172.16.66.36"
    got = calls(recs)
    for op in ("OpenSCManagerA", "CreateServiceA", "StartServiceA", "DeleteService"):
        assert (c, s, "49683", "svcctl", op) in got, op
    assert count(recs, "dce_rpc", operation="CreateServiceA") == 2
    assert (c, s, "\\\\172.16.66.36\\C$", "__LegitFile") in logged(
        recs, "smb_files", "path", "name"
    )


def sharprdp(recs: Recs) -> None:
    """SharpRDP: RDP over TLS and over UDP (RDPEUDP) to 3389."""
    services = logged(recs, "conn", "id.resp_p", "proto", "service")
    c, s = "192.168.56.1", "192.168.56.101"
    assert (c, s, 3389, "tcp", "ssl") in services
    assert (c, s, 3389, "udp", "rdpeudp") in services


STEPS: dict[str, Callable[[Recs], None]] = {
    "401trg_20171220_smb_psexec_add_user.pcap": psexec_401trg,
    "401trg_20171220_smb_net_user.pcap": net_user_401trg,
    "elcabezzonn_impacket_psexec.pcapng": impacket_psexec,
    "elcabezzonn_invoke-wmiexec.pcap": invoke_wmiexec,
    "elcabezzonn_overpass-the-hash.pcap": overpass_the_hash,
    "elcabezzonn_poshc2_jscript_dcom.pcap": poshc2_dcom,
    "elcabezzonn_rubeus_kerberoast.pcap": rubeus_kerberoast,
    "eternalsafety_doublepulsar-backdoor-connect-win7.pcap": doublepulsar,
    "eternalsafety_eternalblue-success-unpatched-win7.pcap": eternalblue,
    "pcapattack_CVE-2020-1472_Zerologon_RPC_NetLogon_NullChallenge_SecChan_6_from_nonDC_to_DC.pcapng": zerologon,
    "pcapattack_Discovery_dcerp_srvsvc_NetShareEnum.pcapng": net_share_enum,
    "pcapattack_LM_dcom_mmc20.application_dcerpc.pcapng": dcom_mmc20,
    "pcapattack_LM_psexec_smb_dcerpc_epm_svcctl.pcapng": psexec_pcapattack,
    "pcapattack_LM_rdp_sharprdp.pcapng": sharprdp,
    "pcapattack_LM_smbexec_smb_dcerpc_svcctl_epm.pcapng": smbexec,
}


def test_every_lateral_capture_is_checked() -> None:
    found = {
        p.name
        for p in (PCAPS / L).iterdir()
        if p.suffix in (".pcap", ".pcapng")
    }
    assert found == set(STEPS)


@pytest.mark.parametrize("capture", sorted(STEPS))
def test_steps_in_the_logs(capture: str) -> None:
    STEPS[capture](records(L + capture))


def test_drsuapi_replication() -> None:
    """DRSUAPI replication (what DCSync asks): suricata/bug-5162 holds a
    DRSGetNCChanges, no lateral capture does."""
    recs = records("suricata/bug-5162/input.pcap")
    got = calls(recs)
    c, s = "192.168.56.104", "192.168.56.102"
    assert (c, s, "49667", "drsuapi", "DRSBind") in got
    assert (c, s, "49667", "drsuapi", "DRSGetNCChanges") in got
    assert count(recs, "dce_rpc", operation="DRSGetNCChanges") == 1
