"""dce_rpc_command.log: the program a remote-execution call asks to run.

Beyond Zeek. Lateral movement over DCE-RPC names the program it starts in
the call's stub: the binary path of a service created through svcctl
([MS-SCMR] 3.1.4.12 lpBinaryPathName), the command of a scheduled job or
task ([MS-TSCH] 3.2.5), the arguments of a WMI method call ([MS-WMI]
3.1.4.3.12 ExecMethod, such as Win32_Process.Create's CommandLine) or of
an automation call (IDispatch::Invoke, as MMC20.Application's
ExecuteShellCommand or ShellWindows' ShellExecute use). When the stub is
not encrypted (authentication level below packet privacy), the strings
that look like a command line are logged: fields ``ts`` (the request),
the connection's ``uid`` and ``id.*``, ``named_pipe``, ``endpoint`` and
``operation`` as in dce_rpc.log, and ``command``.

The same is done for a DCOM call (a request with an object UUID,
[MS-RPCE] 2.2.2.5) on a context whose bind the capture missed, such as
a capture that starts in the middle of the connection: ``endpoint`` is
then left out and ``operation`` is ``unknown-<opnum>``. Zeek writes no
record for such calls.

The strings are found by shape, not by decoding the NDR of each
operation: printable runs of UTF-16LE or ASCII text that name an
executable or a shell. A command split across fragments is missed.
"""

from __future__ import annotations

import re

#: (endpoint, operation) pairs whose stub names a program to run.
EXEC_CALLS = frozenset(
    {
        ("svcctl", "CreateServiceW"),
        ("svcctl", "CreateServiceA"),
        ("svcctl", "CreateServiceWOW64W"),
        ("svcctl", "CreateServiceWOW64A"),
        ("svcctl", "ChangeServiceConfigW"),
        ("svcctl", "ChangeServiceConfigA"),
        ("atsvc", "NetrJobAdd"),
        ("ITaskSchedulerService", "SchRpcRegisterTask"),
        ("IWbemServices", "ExecMethod"),
        ("IWbemServices", "ExecMethodAsync"),
        ("IDispatch", "Invoke"),
    }
)
#: IDispatch's interface id ([MS-OAUT] 3.1.4), named here since Zeek's
#: table (and so dce_rpc.log) leaves it as a UUID.
IDISPATCH = "00020400-0000-0000-c000-000000000046"
#: Longest command logged, and strings kept per call.
MAX_COMMAND = 512
MAX_STRINGS = 4

_UTF16 = re.compile(rb"(?:[\x20-\x7e]\x00){4,}")
_ASCII = re.compile(rb"[\x20-\x7e]{4,}")
_COMMANDISH = re.compile(
    r"\.(?:exe|bat|cmd|ps1|vbs|js|hta|dll|msi)\b|\bcmd(?:\.exe)?\s+/[ckq]|"
    r"powershell|%comspec%|rundll32|regsvr32|mshta|wscript|cscript|"
    r"\bcmd\b|/c\s",
    re.IGNORECASE,
)


def command_in(stub: bytes) -> str | None:
    """The command-like strings of a stub joined by spaces, or None."""
    found: list[str] = []
    texts = [m.group().decode("utf-16-le") for m in _UTF16.finditer(stub)]
    texts += [m.group().decode("ascii") for m in _ASCII.finditer(stub)]
    for text in texts:
        text = text.strip()
        if _COMMANDISH.search(text) and text not in found:
            found.append(text)
            if len(found) == MAX_STRINGS:
                break
    if not found:
        return None
    return " ".join(found)[:MAX_COMMAND]


def wants(endpoint: str, operation: str) -> bool:
    """Whether a call to ``endpoint``/``operation`` may name a program."""
    if endpoint == IDISPATCH:
        return operation == "Invoke" or operation == "unknown-6"
    return (endpoint, operation) in EXEC_CALLS
