"""DCE/RPC interface UUIDs and operation numbers, as names.

Protocol constants from Microsoft's published Open Specifications; each
interface cites the document that defines its UUID and its opnums:
[MS-SCMR] 3.1.4 (svcctl), [MS-TSCH] 3.2.5 (atsvc, ITaskSchedulerService),
[MS-WMI] 3.1.4 (IWbem*), [MS-DCOM] 3.1.2.5 / 3.1.1.5 (activation,
IObjectExporter, IRemUnknown), [MS-DRSR] 4.1 (drsuapi), [MS-SAMR] 3.1.5
(samr), [MS-LSAD] 3.1.4 and [MS-LSAT] 3.1.4 (lsarpc), [MS-NRPC] 3.5.4
(netlogon), [MS-SRVS] 3.1.4 (srvsvc), [MS-WKST] 3.2.4 (wkssvc), [MS-RRP]
3.1.5 (winreg), [MS-DSSP] 3.2.5 (dssetup), [MS-BKRP] 3.1.4 (BackupKey),
[MS-EVEN] 3.1.4 (eventlog), C706 appendix O / [MS-RPCE] 2.2.1.2.5 (the
endpoint mapper). Operation names drop the ``R``/``IDL_`` prefixes, as
Zeek's logs write them. Interfaces whose methods Zeek does not name (the
WMI enumerator helpers) have none here either, so their calls read
``unknown-N`` in both.
"""

from __future__ import annotations

#: Interface UUID (lower case) to name.
ENDPOINTS: dict[str, str] = {
    "367abb81-9844-35f1-ad32-98f038001003": "svcctl",
    "1ff70682-0a51-30e8-076d-740be8cee98b": "atsvc",
    "86d35949-83c9-4044-b424-db363231fd0c": "ITaskSchedulerService",
    "378e52b0-c0a9-11cf-822d-00aa0051e40f": "sasec",
    "9556dc99-828c-11cf-a37e-00aa003240c7": "IWbemServices",
    "f309ad18-d86a-11d0-a075-00c04fb68820": "IWbemLevel1Login",
    "d4781cd6-e5d3-44df-ad94-930efe48a887": "IWbemLoginClientID",
    "027947e1-d731-11ce-a357-000000000001": "IEnumWbemClassObject interface",
    "44aca675-e8fc-11d0-a07c-00c04fb68820": "IWbemCallResult interface",
    "1c1c45ee-4395-11d2-b60b-00104b703efd": "IWbemFetchSmartEnum interface",
    "423ec01e-2e35-11d2-b604-00104b703efd": "IWbemWCOSmartEnum interface",
    "000001a0-0000-0000-c000-000000000046": "IRemoteSCMActivator",
    "4d9f4ab8-7d1c-11cf-861e-0020af6e7c57": "IActivation",
    "99fcfec4-5260-101b-bbcb-00aa0021347a": "IObjectExporter",
    "00000131-0000-0000-c000-000000000046": "IRemUnknown",
    "00000143-0000-0000-c000-000000000046": "IRemUnknown2",
    "e3514235-4b06-11d1-ab04-00c04fc2dcd2": "drsuapi",
    "12345778-1234-abcd-ef00-0123456789ac": "samr",
    "12345778-1234-abcd-ef00-0123456789ab": "lsarpc",
    "12345678-1234-abcd-ef00-01234567cffb": "netlogon",
    "4b324fc8-1670-01d3-1278-5a47bf6ee188": "srvsvc",
    "6bffd098-a112-3610-9833-46c3f87e345a": "wkssvc",
    "338cd001-2244-31f1-aaaa-900038001003": "winreg",
    "e1af8308-5d1f-11c9-91a4-08002b14a0fa": "epmapper",
    "3919286a-b10c-11d0-9ba8-00c04fd92ef5": "dssetup",
    "3dde7c30-165d-11d1-ab8f-00805f14db40": "BackupKey",
    "82273fdc-e32a-18c3-3f78-827929dc23ea": "eventlog",
    "12345678-1234-abcd-ef00-0123456789ab": "spoolss",
}


def _ops(names: str) -> dict[int, str]:
    # Opnums are consecutive from 0; "-" marks a number not used on the wire.
    return {i: n for i, n in enumerate(names.split()) if n != "-"}


_SCMR = _ops(
    "CloseServiceHandle ControlService DeleteService LockServiceDatabase "
    "QueryServiceObjectSecurity SetServiceObjectSecurity QueryServiceStatus "
    "SetServiceStatus UnlockServiceDatabase NotifyBootConfigStatus "
    "ScSetServiceBitsW ChangeServiceConfigW CreateServiceW "
    "EnumDependentServicesW EnumServicesStatusW OpenSCManagerW OpenServiceW "
    "QueryServiceConfigW QueryServiceLockStatusW StartServiceW "
    "GetServiceDisplayNameW GetServiceKeyNameW ScSetServiceBitsA "
    "ChangeServiceConfigA CreateServiceA EnumDependentServicesA "
    "EnumServicesStatusA OpenSCManagerA OpenServiceA QueryServiceConfigA "
    "QueryServiceLockStatusA StartServiceA GetServiceDisplayNameA "
    "GetServiceKeyNameA ScGetCurrentGroupStateW EnumServiceGroupW "
    "ChangeServiceConfig2A ChangeServiceConfig2W QueryServiceConfig2A "
    "QueryServiceConfig2W QueryServiceStatusEx EnumServicesStatusExA "
    "EnumServicesStatusExW ScSendTSMessage CreateServiceWOW64A "
    "CreateServiceWOW64W ScQueryServiceTagInfo NotifyServiceStatusChange "
    "GetNotifyResults CloseNotifyHandle ControlServiceExA ControlServiceExW "
    "ScSendPnPMessage ScValidatePnPService ScOpenServiceStatusHandle"
)

_SAMR = _ops(
    "SamrConnect SamrCloseHandle SamrSetSecurityObject SamrQuerySecurityObject "
    "SamrShutdownSamServer SamrLookupDomainInSamServer "
    "SamrEnumerateDomainsInSamServer SamrOpenDomain SamrQueryInformationDomain "
    "SamrSetInformationDomain SamrCreateGroupInDomain "
    "SamrEnumerateGroupsInDomain SamrCreateUserInDomain "
    "SamrEnumerateUsersInDomain SamrCreateAliasInDomain "
    "SamrEnumerateAliasesInDomain SamrGetAliasMembership "
    "SamrLookupNamesInDomain SamrLookupIdsInDomain SamrOpenGroup "
    "SamrQueryInformationGroup SamrSetInformationGroup SamrAddMemberToGroup "
    "SamrDeleteGroup SamrRemoveMemberFromGroup SamrGetMembersInGroup "
    "SamrSetMemberAttributesOfGroup SamrOpenAlias SamrQueryInformationAlias "
    "SamrSetInformationAlias SamrDeleteAlias SamrAddMemberToAlias "
    "SamrRemoveMemberFromAlias SamrGetMembersInAlias SamrOpenUser "
    "SamrDeleteUser SamrQueryInformationUser SamrSetInformationUser "
    "SamrChangePasswordUser SamrGetGroupsForUser SamrQueryDisplayInformation "
    "SamrGetDisplayEnumerationIndex SamrTestPrivateFunctionsDomain "
    "SamrTestPrivateFunctionsUser SamrGetUserDomainPasswordInformation "
    "SamrRemoveMemberFromForeignDomain SamrQueryInformationDomain2 "
    "SamrQueryInformationUser2 SamrQueryDisplayInformation2 "
    "SamrGetDisplayEnumerationIndex2 SamrCreateUser2InDomain "
    "SamrQueryDisplayInformation3 SamrAddMultipleMembersToAlias "
    "SamrRemoveMultipleMembersFromAlias SamrOemChangePasswordUser2 "
    "SamrUnicodeChangePasswordUser2 SamrGetDomainPasswordInformation "
    "SamrConnect2 SamrSetInformationUser2 SamrSetBootKeyInformation "
    "SamrGetBootKeyInformation SamrConnect3 SamrConnect4 "
    "SamrUnicodeChangePasswordUser3 SamrConnect5 SamrRidToSid "
    "SamrSetDSRMPassword SamrValidatePassword"
)

_LSA = _ops(
    "LsarClose LsarDelete LsarEnumeratePrivileges LsarQuerySecurityObject "
    "LsarSetSecurityObject LsarChangePassword LsarOpenPolicy "
    "LsarQueryInformationPolicy LsarSetInformationPolicy LsarClearAuditLog "
    "LsarCreateAccount LsarEnumerateAccounts LsarCreateTrustedDomain "
    "LsarEnumerateTrustedDomains LsarLookupNames LsarLookupSids "
    "LsarCreateSecret LsarOpenAccount LsarEnumeratePrivilegesAccount "
    "LsarAddPrivilegesToAccount LsarRemovePrivilegesFromAccount "
    "LsarGetQuotasForAccount LsarSetQuotasForAccount "
    "LsarGetSystemAccessAccount LsarSetSystemAccessAccount "
    "LsarOpenTrustedDomain LsarQueryInfoTrustedDomain "
    "LsarSetInformationTrustedDomain LsarOpenSecret LsarSetSecret "
    "LsarQuerySecret LsarLookupPrivilegeValue LsarLookupPrivilegeName "
    "LsarLookupPrivilegeDisplayName LsarDeleteObject "
    "LsarEnumerateAccountsWithUserRight LsarEnumerateAccountRights "
    "LsarAddAccountRights LsarRemoveAccountRights LsarQueryTrustedDomainInfo "
    "LsarSetTrustedDomainInfo LsarDeleteTrustedDomain LsarStorePrivateData "
    "LsarRetrievePrivateData LsarOpenPolicy2 LsarGetUserName "
    "LsarQueryInformationPolicy2 LsarSetInformationPolicy2 "
    "LsarQueryTrustedDomainInfoByName LsarSetTrustedDomainInfoByName "
    "LsarEnumerateTrustedDomainsEx LsarCreateTrustedDomainEx "
    "LsarCloseTrustedDomainEx LsarQueryDomainInformationPolicy "
    "LsarSetDomainInformationPolicy LsarOpenTrustedDomainByName LsarTestCall "
    "LsarLookupSids2 LsarLookupNames2 LsarCreateTrustedDomainEx2"
)
_LSA.update({68: "LsarLookupNames3", 76: "LsarLookupSids3", 77: "LsarLookupNames4"})

_NRPC = _ops(
    "NetrLogonUasLogon NetrLogonUasLogoff NetrLogonSamLogon "
    "NetrLogonSamLogoff NetrServerReqChallenge NetrServerAuthenticate "
    "NetrServerPasswordSet NetrDatabaseDeltas NetrDatabaseSync "
    "NetrAccountDeltas NetrAccountSync NetrGetDCName NetrLogonControl "
    "NetrGetAnyDCName NetrLogonControl2 NetrServerAuthenticate2 "
    "NetrDatabaseSync2 NetrDatabaseRedo NetrLogonControl2Ex "
    "NetrEnumerateTrustedDomains DsrGetDcName NetrLogonGetCapabilities "
    "NetrLogonSetServiceBits NetrLogonGetTrustRid "
    "NetrLogonComputeServerDigest NetrLogonComputeClientDigest "
    "NetrServerAuthenticate3 DsrGetDcNameEx DsrGetSiteName "
    "NetrLogonGetDomainInfo NetrServerPasswordSet2 NetrServerPasswordGet "
    "NetrLogonSendToSam DsrAddressToSiteNamesW DsrGetDcNameEx2 "
    "NetrLogonGetTimeServiceParentDomain NetrEnumerateTrustedDomainsEx "
    "DsrAddressToSiteNamesExW DsrGetDcSiteCoverageW NetrLogonSamLogonEx "
    "DsrEnumerateDomainTrusts DsrDeregisterDnsHostRecords "
    "NetrServerTrustPasswordsGet DsrGetForestTrustInformation "
    "NetrGetForestTrustInformation NetrLogonSamLogonWithFlags "
    "NetrServerGetTrustInfo"
)

_DRSR = _ops(
    "DRSBind DRSUnbind DRSReplicaSync DRSGetNCChanges DRSUpdateRefs "
    "DRSReplicaAdd DRSReplicaDel DRSReplicaModify DRSVerifyNames "
    "DRSGetMemberships DRSInterDomainMove DRSGetNT4ChangeLog DRSCrackNames "
    "DRSWriteSPN DRSRemoveDsServer DRSRemoveDsDomain DRSDomainControllerInfo "
    "DRSAddEntry DRSExecuteKCC DRSGetReplInfo DRSAddSidHistory "
    "DRSGetMemberships2 DRSReplicaVerifyObjects DRSGetObjectExistence "
    "DRSQuerySitesByCost DRSInitDemotion DRSReplicaDemotion "
    "DRSFinishDemotion DRSAddCloneDC DRSWriteNgcKey DRSReadNgcKey"
)

_SRVS = _ops(
    "- - - - - - - - NetrConnectionEnum NetrFileEnum NetrFileGetInfo "
    "NetrFileClose NetrSessionEnum NetrSessionDel NetrShareAdd NetrShareEnum "
    "NetrShareGetInfo NetrShareSetInfo NetrShareDel NetrShareDelSticky "
    "NetrShareCheck NetrServerGetInfo NetrServerSetInfo NetrServerDiskEnum "
    "NetrServerStatisticsGet NetrServerTransportAdd NetrServerTransportEnum "
    "NetrServerTransportDel NetrRemoteTOD - NetprPathType "
    "NetprPathCanonicalize NetprPathCompare NetprNameValidate "
    "NetprNameCanonicalize NetprNameCompare NetrShareEnumSticky "
    "NetrShareDelStart NetrShareDelCommit NetrpGetFileSecurity "
    "NetrpSetFileSecurity NetrServerTransportAddEx"
)

_RRP = _ops(
    "OpenClassesRoot OpenCurrentUser OpenLocalMachine OpenPerformanceData "
    "OpenUsers BaseRegCloseKey BaseRegCreateKey BaseRegDeleteKey "
    "BaseRegDeleteValue BaseRegEnumKey BaseRegEnumValue BaseRegFlushKey "
    "BaseRegGetKeySecurity BaseRegLoadKey - BaseRegOpenKey "
    "BaseRegQueryInfoKey BaseRegQueryValue BaseRegReplaceKey "
    "BaseRegRestoreKey BaseRegSaveKey BaseRegSetKeySecurity BaseRegSetValue "
    "BaseRegUnLoadKey BaseInitiateSystemShutdown BaseAbortSystemShutdown "
    "BaseRegGetVersion OpenCurrentConfig - BaseRegQueryMultipleValues "
    "BaseInitiateSystemShutdownEx BaseRegSaveKeyEx OpenPerformanceText "
    "OpenPerformanceNlsText BaseRegQueryMultipleValues2 BaseRegDeleteKeyEx"
)

_TSCH = _ops(
    "SchRpcHighestVersion SchRpcRegisterTask SchRpcRetrieveTask "
    "SchRpcCreateFolder SchRpcSetSecurity SchRpcGetSecurity SchRpcEnumFolders "
    "SchRpcEnumTasks SchRpcEnumInstances SchRpcGetInstanceInfo "
    "SchRpcStopInstance SchRpcStop SchRpcRun SchRpcDelete SchRpcRename "
    "SchRpcScheduledRuntimes SchRpcGetLastRunInfo SchRpcGetTaskInfo "
    "SchRpcGetNumberOfMissedRuns SchRpcEnableTask"
)

_WBEM_SERVICES = _ops(
    "- - - OpenNamespace CancelAsyncCall QueryObjectSink GetObject "
    "GetObjectAsync PutClass PutClassAsync DeleteClass DeleteClassAsync "
    "CreateClassEnum CreateClassEnumAsync PutInstance PutInstanceAsync "
    "DeleteInstance DeleteInstanceAsync CreateInstanceEnum "
    "CreateInstanceEnumAsync ExecQuery ExecQueryAsync ExecNotificationQuery "
    "ExecNotificationQueryAsync ExecMethod ExecMethodAsync"
)

#: Interface name to its operations, opnum to name.
OPERATIONS: dict[str, dict[int, str]] = {
    "svcctl": _SCMR,
    "atsvc": _ops("NetrJobAdd NetrJobDel NetrJobEnum NetrJobGetInfo"),
    "ITaskSchedulerService": _TSCH,
    "IWbemServices": _WBEM_SERVICES,
    "IWbemLevel1Login": _ops(
        "- - - EstablishPosition RequestChallenge WBEMLogin NTLMLogin"
    ),
    "IEnumWbemClassObject interface": _ops("- - - Reset Next NextAsync Clone Skip"),
    "IRemoteSCMActivator": _ops("- - - RemoteGetClassObject RemoteCreateInstance"),
    "IActivation": _ops("RemoteActivation"),
    "IObjectExporter": _ops(
        "ResolveOxid SimplePing ComplexPing ServerAlive ResolveOxid2 ServerAlive2"
    ),
    "IRemUnknown": _ops("- - - RemQueryInterface RemAddRef RemRelease"),
    "IRemUnknown2": _ops(
        "- - - RemQueryInterface RemAddRef RemRelease RemQueryInterface2"
    ),
    "drsuapi": _DRSR,
    "samr": _SAMR,
    "lsarpc": _LSA,
    "netlogon": _NRPC,
    "srvsvc": _SRVS,
    "wkssvc": _ops("NetrWkstaGetInfo NetrWkstaSetInfo NetrWkstaUserEnum"),
    "winreg": _RRP,
    "epmapper": _ops(
        "ept_insert ept_delete ept_lookup ept_map ept_lookup_handle_free "
        "ept_inq_object ept_mgmt_delete"
    ),
    "dssetup": _ops("DsRolerGetPrimaryDomainInformation"),
    "BackupKey": _ops("bkrp_BackupKey"),
}

#: Operations Zeek leaves out of dce_rpc.log by default because they are
#: frequent and say little (its DCE_RPC::ignored_operations).
IGNORED: dict[str, frozenset[str]] = {
    "winreg": frozenset(
        [
            "BaseRegCloseKey",
            "BaseRegGetVersion",
            "BaseRegOpenKey",
            "BaseRegQueryValue",
            "BaseRegDeleteKeyEx",
            "OpenLocalMachine",
            "BaseRegEnumKey",
            "OpenClassesRoot",
        ]
    ),
    "spoolss": frozenset({"RpcSplOpenPrinter", "RpcClosePrinter"}),
    "wkssvc": frozenset({"NetrWkstaGetInfo"}),
}


def endpoint_name(uuid: str) -> str:
    """The interface's name, or its UUID when it is not known."""
    return ENDPOINTS.get(uuid, uuid)


def operation_name(endpoint: str, opnum: int) -> str:
    """The operation's name, or ``unknown-<opnum>`` as Zeek writes it."""
    return OPERATIONS.get(endpoint, {}).get(opnum, f"unknown-{opnum}")
