"""lateral.remote_exec: one host starts a program on another.

The ways Windows offers to run a program on another host all leave their
steps in the Windows protocol logs, with the client and the server:

- a service created and started through the service control manager
  (dce_rpc.log: svcctl ``CreateService*`` then ``StartService*``), as
  PsExec, smbexec and Impacket do (T1569.002), usually after copying the
  program to the ``ADMIN$`` share (smb_files.log: an ``.exe`` opened on
  ``ADMIN$``; PsExec's ``PSEXESVC`` pipes and files), T1021.002;
- a scheduled task or job (atsvc ``NetrJobAdd``, ITaskSchedulerService
  ``SchRpcRegisterTask``/``SchRpcRun``), T1053.005;
- WMI (IWbemServices ``ExecMethod``, as Win32_Process.Create is called,
  after IWbemLevel1Login), T1047;
- DCOM (IRemoteSCMActivator ``RemoteCreateInstance`` of an object, then
  IDispatch calls carrying a command line, as MMC20.Application or
  ShellWindows are used), T1021.003;
- WinRM (conn.log service ``winrm``: WS-Management over HTTP), T1021.006.

dce_rpc_command.log adds the program the call names, when the stub is in
the clear. Each piece of evidence adds points to the (client, server)
pair for :data:`WINDOW` seconds; the alert goes out when a pair's score
first reaches ``min_score``, and again when a new technique raises it.
The score is the sum of the evidence, capped at 100; the reasons list
each piece with its count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from sensor.detect.alert import Alert, DeviceRef, Endpoint, Reason
from sensor.detect.base import NON_NEGATIVE, SCORE, Detection, Threshold, register

#: (endpoint, operation) -> (evidence name, technique family).
RPC_EVIDENCE: dict[tuple[str, str], tuple[str, str]] = {
    ("svcctl", "CreateServiceW"): ("service created", "service"),
    ("svcctl", "CreateServiceA"): ("service created", "service"),
    ("svcctl", "CreateServiceWOW64W"): ("service created", "service"),
    ("svcctl", "CreateServiceWOW64A"): ("service created", "service"),
    ("svcctl", "ChangeServiceConfigW"): ("service reconfigured", "service"),
    ("svcctl", "ChangeServiceConfigA"): ("service reconfigured", "service"),
    ("svcctl", "StartServiceW"): ("service started", "service"),
    ("svcctl", "StartServiceA"): ("service started", "service"),
    ("atsvc", "NetrJobAdd"): ("job scheduled", "task"),
    ("ITaskSchedulerService", "SchRpcRegisterTask"): ("task registered", "task"),
    ("ITaskSchedulerService", "SchRpcRun"): ("task run", "task"),
    ("IWbemServices", "ExecMethod"): ("WMI method executed", "wmi"),
    ("IWbemServices", "ExecMethodAsync"): ("WMI method executed", "wmi"),
    ("IWbemLevel1Login", "NTLMLogin"): ("WMI login", "wmi"),
    ("IRemoteSCMActivator", "RemoteCreateInstance"): ("DCOM object created", "dcom"),
    ("ISystemActivator", "RemoteCreateInstance"): ("DCOM object created", "dcom"),
}
#: Points per piece of evidence (the first of each kind; repeats add none).
POINTS: dict[str, int] = {
    "service created": 45,
    "service reconfigured": 35,
    "service started": 20,
    "job scheduled": 55,
    "task registered": 50,
    "task run": 20,
    "WMI method executed": 55,
    "WMI login": 10,
    "DCOM object created": 10,
    "command in RPC call": 30,
    "DCOM call with a command line": 55,
    "executable opened on an admin share": 25,
    "PsExec service pipe or file": 30,
    "WinRM session": 50,
}
#: ATT&CK technique per family.
MITRE = {
    "service": "T1569.002",
    "admin_share": "T1021.002",
    "task": "T1053.005",
    "wmi": "T1047",
    "dcom": "T1021.003",
    "winrm": "T1021.006",
}
#: Seconds evidence of one pair is kept together.
WINDOW = 3600.0
#: Pairs followed at once; the oldest is forgotten at the bound.
MAX_PAIRS = 10_000
_ADMIN_SHARES = ("ADMIN$", "C$")
_PSEXEC_NAMES = ("psexesvc", "remcom", "paexec", "csexec")


@dataclass
class _Pair:
    first: float
    evidence: dict[str, int] = field(default_factory=dict)
    families: list[str] = field(default_factory=list)
    uids: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    alerted_families: set[str] = field(default_factory=set)

    def score(self) -> int:
        return min(100, sum(POINTS[e] for e in self.evidence))


@register
class RemoteExec(Detection):
    """Remote execution from one host on another over SMB, RPC or WinRM."""

    name: ClassVar[str] = "lateral.remote_exec"
    mitre: ClassVar[str] = "T1021.002"
    logs: ClassVar[tuple[str, ...]] = (
        "dce_rpc",
        "dce_rpc_command",
        "smb_files",
        "conn",
    )
    thresholds: ClassVar[tuple[Threshold, ...]] = (
        Threshold(
            "min_score",
            50,
            "score (0-100) at which a pair's evidence is alerted",
            SCORE,
        ),
        Threshold(
            "winrm_min_bytes",
            2000,
            "bytes a WinRM connection must carry (both ways) to count as a session",
            NON_NEGATIVE,
        ),
    )

    def __init__(self, models: Any, overrides: dict[str, Any] | None = None) -> None:
        super().__init__(models, overrides)
        self.pairs: dict[tuple[str, str], _Pair] = {}

    def observe(self, log: str, record: dict[str, Any]) -> list[Alert]:
        """Add the evidence a record holds; alert when a pair crosses the bar."""
        got = self._evidence(log, record)
        if got is None:
            return []
        evidence, family, command = got
        src, dst = record["id.orig_h"], record["id.resp_h"]
        ts = float(record["ts"])

        pair = self.pairs.get((src, dst))
        if pair is None or ts - pair.first > WINDOW:
            if len(self.pairs) >= MAX_PAIRS:
                del self.pairs[next(iter(self.pairs))]
            pair = self.pairs[(src, dst)] = _Pair(ts)
        pair.evidence[evidence] = pair.evidence.get(evidence, 0) + 1
        if family not in pair.families:
            pair.families.append(family)
        if record["uid"] not in pair.uids and len(pair.uids) < 20:
            pair.uids.append(record["uid"])
        if command and command not in pair.commands and len(pair.commands) < 3:
            pair.commands.append(command)

        score = pair.score()
        if score < self.t["min_score"] or family in pair.alerted_families:
            return []
        pair.alerted_families.add(family)
        return [self._alert(ts, src, dst, record.get("id.resp_p"), pair, family)]

    def _evidence(
        self, log: str, r: dict[str, Any]
    ) -> tuple[str, str, str | None] | None:
        """(evidence, family, command) of one record, or None."""
        if log == "dce_rpc":
            return self._rpc(r)
        if log == "dce_rpc_command":
            if "endpoint" not in r:
                return ("DCOM call with a command line", "dcom", r.get("command"))
            got = self._rpc(r)
            family = got[1] if got else "dcom"
            return ("command in RPC call", family, r.get("command"))
        if log == "smb_files":
            name = str(r.get("name", "")).lower()
            path = str(r.get("path") or "").upper()
            if any(p in name for p in _PSEXEC_NAMES):
                return ("PsExec service pipe or file", "service", None)
            if path.endswith(_ADMIN_SHARES) and name.endswith(
                (".exe", ".dll", ".bat", ".ps1")
            ):
                return ("executable opened on an admin share", "admin_share", None)
            return None
        if log == "conn" and "winrm" in str(r.get("service", "")).split(","):
            size = (r.get("orig_bytes") or 0) + (r.get("resp_bytes") or 0)
            if size >= self.t["winrm_min_bytes"]:
                return ("WinRM session", "winrm", None)
        return None

    @staticmethod
    def _rpc(r: dict[str, Any]) -> tuple[str, str, str | None] | None:
        got = RPC_EVIDENCE.get((r.get("endpoint", ""), r.get("operation", "")))
        return None if got is None else (got[0], got[1], None)

    def _alert(
        self, ts: float, src: str, dst: str, port: Any, pair: _Pair, family: str
    ) -> Alert:
        steps = ", ".join(
            f"{e} ({n}x)" if n > 1 else e for e, n in pair.evidence.items()
        )
        summary = (
            f"{src} ran a program on {dst} remotely: {steps} within "
            f"{ts - pair.first:.0f} s; score {pair.score()} of 100"
        )
        if pair.commands:
            summary += f"; command: {pair.commands[0]}"
        reasons = [
            Reason(e, n, f"{POINTS[e]} points; none expected between two hosts")
            for e, n in pair.evidence.items()
        ]
        reasons += [Reason("command", c, None) for c in pair.commands]
        dev = self.models.device(src) if self.models is not None else None
        return Alert(
            ts=ts,
            detection=self.name,
            score=pair.score(),
            device=DeviceRef(
                ip=src,
                mac=getattr(dev, "mac", None),
                name=getattr(dev, "name", None),
            ),
            src=Endpoint(ip=src),
            dst=Endpoint(ip=dst, port=port if isinstance(port, int) else None),
            summary=summary,
            reasons=reasons,
            mitre=MITRE.get(family, self.mitre),
            uids=list(pair.uids),
        )
