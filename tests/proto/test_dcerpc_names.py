"""Interface UUIDs and operation numbers to names, for the interfaces that
remote execution, discovery and credential theft use (the UUIDs and opnums
as the Microsoft protocol documents give them)."""

from __future__ import annotations

import pytest

from sensor.proto.parsers.dcerpc_names import endpoint_name, operation_name

INTERFACES = {
    "367abb81-9844-35f1-ad32-98f038001003": "svcctl",  # [MS-SCMR] 2.1
    "1ff70682-0a51-30e8-076d-740be8cee98b": "atsvc",  # [MS-TSCH] 1.9
    "86d35949-83c9-4044-b424-db363231fd0c": "ITaskSchedulerService",  # [MS-TSCH] 1.9
    "9556dc99-828c-11cf-a37e-00aa003240c7": "IWbemServices",  # [MS-WMI] 1.9
    "000001a0-0000-0000-c000-000000000046": "IRemoteSCMActivator",  # [MS-DCOM] 1.9
    "e3514235-4b06-11d1-ab04-00c04fc2dcd2": "drsuapi",  # [MS-DRSR] 1.9
    "12345778-1234-abcd-ef00-0123456789ac": "samr",  # [MS-SAMR] 1.9
    "12345778-1234-abcd-ef00-0123456789ab": "lsarpc",  # [MS-LSAT] 1.9
    "12345678-1234-abcd-ef00-01234567cffb": "netlogon",  # [MS-NRPC] 1.9
    "4b324fc8-1670-01d3-1278-5a47bf6ee188": "srvsvc",  # [MS-SRVS] 1.9
    "338cd001-2244-31f1-aaaa-900038001003": "winreg",  # [MS-RRP] 1.9
    "e1af8308-5d1f-11c9-91a4-08002b14a0fa": "epmapper",  # C706 appendix I
}

OPERATIONS = [
    ("svcctl", 12, "CreateServiceW"), ("svcctl", 24, "CreateServiceA"),
    ("svcctl", 44, "CreateServiceWOW64A"), ("svcctl", 45, "CreateServiceWOW64W"),
    ("svcctl", 19, "StartServiceW"), ("svcctl", 11, "ChangeServiceConfigW"),
    ("atsvc", 0, "NetrJobAdd"),
    ("ITaskSchedulerService", 1, "SchRpcRegisterTask"),
    ("ITaskSchedulerService", 12, "SchRpcRun"),
    ("IWbemServices", 24, "ExecMethod"),
    ("IRemoteSCMActivator", 3, "RemoteGetClassObject"),
    ("IRemoteSCMActivator", 4, "RemoteCreateInstance"),
    ("drsuapi", 0, "DRSBind"), ("drsuapi", 3, "DRSGetNCChanges"),
    ("samr", 64, "SamrConnect5"), ("samr", 13, "SamrEnumerateUsersInDomain"),
    ("lsarpc", 44, "LsarOpenPolicy2"), ("lsarpc", 68, "LsarLookupNames3"),
    ("netlogon", 4, "NetrServerReqChallenge"), ("netlogon", 26, "NetrServerAuthenticate3"),
    ("srvsvc", 15, "NetrShareEnum"), ("srvsvc", 12, "NetrSessionEnum"),
    ("winreg", 2, "OpenLocalMachine"), ("winreg", 6, "BaseRegCreateKey"),
    ("winreg", 22, "BaseRegSetValue"),
    ("epmapper", 3, "ept_map"),
]  # fmt: skip


@pytest.mark.parametrize(("uuid", "name"), sorted(INTERFACES.items()))
def test_interface_names(uuid: str, name: str) -> None:
    assert endpoint_name(uuid) == name


@pytest.mark.parametrize(("endpoint", "opnum", "name"), OPERATIONS)
def test_operation_names(endpoint: str, opnum: int, name: str) -> None:
    assert operation_name(endpoint, opnum) == name


def test_unknown_numbers_are_named_by_number() -> None:
    assert operation_name("winreg", 4000) == "unknown-4000"
    assert operation_name("no-such-interface", 1) == "unknown-1"
